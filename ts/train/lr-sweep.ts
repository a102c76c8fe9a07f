// The arithmetic of a learning-rate range test (Leslie Smith's, as fastai's `lr_find` runs it): the exponential
// sweep of rates, the smoothed loss and its divergence, and the suggested rate. Pure functions; no model here.

/** Weight of the past in the smoothed loss, fastai's (`AvgSmoothLoss`): about the last 50 steps count. */
export const SMOOTHING_BETA = 0.98

/** The sweep stops once the smoothed loss exceeds this many times the best so far (fastai's `stop_div`). */
export const DIVERGENCE_FACTOR = 4

/** A finished (or stopped) sweep: one entry per trained batch in each array. */
export interface LrSweep {
  startLr: number
  endLr: number
  /** Batches the sweep planned. */
  steps: number
  /** The rate of each batch trained. */
  rates: number[]
  /** Each batch's mean training loss, as the step reported it. */
  losses: number[]
  /** The losses' exponential moving average with bias correction ({@link SMOOTHING_BETA}). */
  smoothed: number[]
  /** True when the loss diverged (or became NaN), which ends the sweep. */
  stoppedEarly: boolean
  stopReason: string | null
  /** True when the signal stopped the sweep: the curve is partial and the suggestion provisional. */
  interrupted: boolean
  suggestion: LrSuggestion
  /** Parameters that trained during the sweep, and all of them (fine-tuning's frozen body trains nothing). */
  trainableParams: number
  paramCount: number
}

/** A suggested rate and where it sits on the sweep's curve. */
export interface LrSuggestion {
  /** NaN when there is none (rule `'none'`). */
  lr: number
  /** The batch of the sweep the rate is taken from. */
  index: number
  /** `'valley'`; `'none'` when the sweep left no curve to read (a loss that was NaN from the first batch). */
  rule: 'valley' | 'none'
  /** First and last batch of the valley the rate lies in. */
  valley: [number, number]
  /** Why this rate, in words, for the console and history.json. */
  reason: string
}

/**
 * `steps` rates growing by a constant factor from `startLr` (the first batch) to `endLr` (the last).
 *
 * @example
 * sweepRates(1e-7, 10, 9) // [1e-7, 1e-6, …, 10]
 */
export function sweepRates(startLr: number, endLr: number, steps: number): number[] {
  if (steps === 1) return [startLr]
  const ratio = endLr / startLr
  return Array.from({ length: steps }, (_, i) => startLr * ratio ** (i / (steps - 1)))
}

/**
 * An exponential moving average with bias correction: an average of zero to start with, divided by the weight its
 * updates have had (1 − βⁿ), so that the first values are not pulled towards zero.
 */
export class SmoothedLoss {
  readonly beta: number
  private average = 0
  private count = 0
  /** The lowest smoothed value so far. */
  best = Number.POSITIVE_INFINITY

  constructor(beta = SMOOTHING_BETA) {
    this.beta = beta
  }

  /** Adds a loss; returns the smoothed value. */
  add(loss: number): number {
    this.average = this.beta * this.average + (1 - this.beta) * loss
    this.count++
    const smoothed = this.average / (1 - this.beta ** this.count)
    if (smoothed < this.best) this.best = smoothed
    return smoothed
  }

  /** Why the sweep should stop after `smoothed` (the value `add` just returned), or null to go on. */
  divergence(smoothed: number): string | null {
    if (!Number.isFinite(smoothed)) return 'the loss is not finite'
    if (smoothed > DIVERGENCE_FACTOR * this.best)
      return `the smoothed loss ${smoothed.toPrecision(3)} is over ${DIVERGENCE_FACTOR}× the best, ${this.best.toPrecision(3)}`
    return null
  }
}

/**
 * The longest strictly decreasing subsequence of `values` (patience sorting, O(n log n)): where it ends and how many
 * values it holds. Of several equally long ones, the one that ends first, as fastai's valley takes.
 */
function longestDescent(values: readonly number[]): { end: number; length: number } {
  // tails[k]: the highest value that ends a descent of length k + 1 so far, the easiest to extend; they fall as k grows.
  const tails: number[] = []
  let end = 0
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    // The descents v can extend are those whose tail is above it: a prefix of tails.
    let lo = 0
    let hi = tails.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (tails[mid]! > v) lo = mid + 1
      else hi = mid
    }
    // A descent longer than any before ends here: the first to reach each length is kept.
    if (lo === tails.length) end = i
    tails[lo] = v
  }
  return { end, length: tails.length }
}

/**
 * The rate to train at from a sweep's smoothed losses: fastai's "valley" rule. The first tenth of the planned
 * `steps` (where the average still settles) and the last five batches (where it takes off) are left out. The longest
 * descent of what remains (its longest strictly decreasing subsequence, which steps over bumps of noise) measures
 * the valley: as many batches as it holds, ending where it ends, at the foot of the slope. Counting its batches
 * rather than taking its first one keeps a long, flat and noisy start, through which a descent can also thread a
 * few points, from stretching the valley back over rates that barely train. The suggestion is halfway along the
 * valley: far enough down the slope to learn fast, far enough from its foot, where the loss turns, to stay stable.
 * Curves too short to trim are read whole.
 *
 * @example
 * const { lr, reason } = suggestLearningRate(sweep.rates, sweep.smoothed, 100)
 */
export function suggestLearningRate(rates: readonly number[], smoothed: readonly number[], steps = rates.length): LrSuggestion {
  const finite = smoothed.findIndex((v) => !Number.isFinite(v))
  const usable = Math.min(rates.length, finite < 0 ? smoothed.length : finite)
  if (usable === 0) {
    return { lr: Number.NaN, index: 0, rule: 'none', valley: [0, 0], reason: 'no finite loss to read a rate from' }
  }
  let from = Math.floor(steps / 10)
  let to = usable - 5
  if (to - from < 3) {
    from = 0
    to = usable
  }
  const descent = longestDescent(smoothed.slice(from, to))
  const end = from + descent.end
  const start = end - descent.length + 1
  const index = start + Math.floor((end - start) / 2)
  const fmt = (x: number) => x.toExponential(1)
  const reason =
    end > start
      ? `valley: halfway along ${fmt(rates[start]!)}–${fmt(rates[end]!)}, the ${descent.length} batches of the smoothed loss's longest descent`
      : 'valley: the smoothed loss never fell, so the lowest rate read'
  return { lr: rates[index]!, index, rule: 'valley', valley: [start, end], reason }
}
