// Learning-rate schedules stepped per batch: a multiplier of the peak rate as a function of training progress.

/** What shapes the rate over a run (see the train options of the same names). */
export interface ScheduleOptions {
  schedule: 'constant' | 'linear' | 'cosine' | 'onecycle' | 'piecewise'
  /** Fraction of the steps spent warming up, linearly (cosine for onecycle) from `warmupStart`. */
  warmup: number
  warmupStart: number
  /** The multiplier at the last step. */
  finalLr: number
  /** `[progress, multiplier]` points for `piecewise`. */
  lrPoints: readonly (readonly [number, number])[]
}

function cosineBetween(from: number, to: number, t: number): number {
  return to + ((from - to) * (1 + Math.cos(Math.PI * t))) / 2
}

function piecewise(points: ScheduleOptions['lrPoints'], progress: number): number {
  for (let i = 1; i < points.length; i++) {
    const [x1, y1] = points[i]!
    const [x0, y0] = points[i - 1]!
    if (progress <= x1) return y0 + ((y1 - y0) * (progress - x0)) / (x1 - x0)
  }
  return points.at(-1)![1]
}

/**
 * The multiplier of the peak rate at `step` of `totalSteps` (0-based). Progress runs from 0 at the first step to 1
 * at the last, so `finalLr` is the last step's multiplier; warmup ends at progress `warmup`.
 *
 * @example
 * lrMultiplier({ schedule: 'linear', warmup: 0.1, warmupStart: 0, finalLr: 0, lrPoints: [] }, 0, 100) // 0
 */
export function lrMultiplier(options: ScheduleOptions, step: number, totalSteps: number): number {
  const progress = totalSteps <= 1 ? 1 : Math.min(1, Math.max(0, step / (totalSteps - 1)))
  if (options.schedule === 'piecewise') return piecewise(options.lrPoints, progress)
  if (options.schedule === 'constant' && options.warmup === 0) return 1
  const { warmup, warmupStart, finalLr } = options
  if (progress < warmup) {
    const t = progress / warmup
    return options.schedule === 'onecycle' ? cosineBetween(warmupStart, 1, t) : warmupStart + (1 - warmupStart) * t
  }
  const t = warmup >= 1 ? 1 : (progress - warmup) / (1 - warmup)
  switch (options.schedule) {
    case 'constant':
      return 1
    case 'linear':
      return 1 + (finalLr - 1) * t
    case 'cosine':
    case 'onecycle':
      return cosineBetween(1, finalLr, t)
  }
}
