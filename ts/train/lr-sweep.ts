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
  /** The batch of the sweep whose rate is nearest the suggestion, where the plot marks it. */
  index: number
  /** `'minimum'`: a tenth of the rate at the smoothed loss's lowest point; `'none'` when the sweep left no curve to read. */
  rule: 'minimum' | 'none'
  /** The batch at the smoothed loss's lowest point. */
  minimum: number
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
 * The rate to train at from a sweep's smoothed losses: a tenth of the rate at their lowest point (Leslie Smith's rule
 * of thumb, fastai's `minimum`). The smoothed loss trails the loss by tens of batches, so its lowest point lies past
 * where training turns unstable; a tenth of it lands where the loss falls fastest. On `npm run bench:lr-find`
 * (bench/RESULTS.md), 3 epochs at this rule's rate scored 0.09 points above the best of a grid from 1e-4 to 3e-2 for
 * the reference CNN and 1.35 below it for a pretrained fine-tune; fastai's default, the middle of the longest descent
 * ("valley"), suggested 1.7e-4 and 8.1e-5 on the same sweeps, 8.5 points below the grid's best and under its lowest
 * rate.
 * A curve that never fell below its first value suggests the first rate.
 *
 * @example
 * const { lr, reason } = suggestLearningRate(sweep.rates, sweep.smoothed)
 */
export function suggestLearningRate(rates: readonly number[], smoothed: readonly number[]): LrSuggestion {
  const finite = smoothed.findIndex((v) => !Number.isFinite(v))
  const usable = Math.min(rates.length, finite < 0 ? smoothed.length : finite)
  if (usable === 0) {
    return { lr: Number.NaN, index: 0, rule: 'none', minimum: 0, reason: 'no finite loss to read a rate from' }
  }
  let minimum = 0
  for (let i = 1; i < usable; i++) if (smoothed[i]! < smoothed[minimum]!) minimum = i
  const lr = Math.max(rates[0]!, rates[minimum]! / 10)
  // Rates grow by a constant factor, so the nearest batch is the nearest on a log scale.
  let index = 0
  for (let i = 1; i <= minimum; i++) if (Math.abs(Math.log(rates[i]! / lr)) < Math.abs(Math.log(rates[index]! / lr))) index = i
  const fmt = (x: number) => x.toExponential(1)
  const reason =
    minimum > 0
      ? `minimum: a tenth of ${fmt(rates[minimum]!)}, where the smoothed loss is lowest`
      : 'minimum: the smoothed loss never fell, so the lowest rate swept'
  return { lr, index, rule: 'minimum', minimum, reason }
}
