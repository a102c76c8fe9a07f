// Train metrics summed from an epoch's own forward passes (before each update), as Keras reports them: no extra
// pass over the training data. Resident and streamed epochs both add their steps here.
import type { SplitMetrics } from '../callbacks/callback.ts'
import { classScores, percent } from '../model/metrics.ts'

/** What a training step reports that the running metrics add up. */
export interface CountedStep {
  loss: number
  correct: number
  top5Correct: number
  count: number
  predicted: Int32Array
}

export class RunningMetrics {
  private lossSum = 0
  private seen = 0
  private top1 = 0
  private top5 = 0
  private readonly correctPerClass: number[]
  private readonly totalPerClass: number[]
  /** Images predicted as each class, for per-class precision. */
  private readonly predictedPerClass: number[]
  private readonly classes: readonly string[]

  constructor(classes: readonly string[]) {
    this.classes = classes
    this.correctPerClass = Array(classes.length).fill(0)
    this.totalPerClass = Array(classes.length).fill(0)
    this.predictedPerClass = Array(classes.length).fill(0)
  }

  /** Adds one step; `labels` are the batch's labels, in the order of `step.predicted`. */
  add(step: CountedStep, labels: ArrayLike<number>): void {
    this.lossSum += step.loss * step.count
    this.seen += step.count
    this.top1 += step.correct
    this.top5 += step.top5Correct
    for (let j = 0; j < step.count; j++) {
      const predicted = step.predicted[j]!
      if (predicted < this.classes.length) this.predictedPerClass[predicted]!++
      const label = labels[j]!
      if (label >= this.classes.length) continue
      this.totalPerClass[label]!++
      if (step.predicted[j] === label) this.correctPerClass[label]!++
    }
  }

  /** Images added so far. */
  get count(): number {
    return this.seen
  }

  /** Mean loss so far (NaN before the first step). */
  get loss(): number {
    return this.seen > 0 ? this.lossSum / this.seen : Number.NaN
  }

  /** The sums behind the metrics, in one array, so ranks can add theirs up. */
  sums(): Float64Array {
    return Float64Array.from([
      this.lossSum,
      this.seen,
      this.top1,
      this.top5,
      ...this.correctPerClass,
      ...this.totalPerClass,
      ...this.predictedPerClass,
    ])
  }

  setSums(sums: Float64Array): void {
    const k = this.classes.length
    ;[this.lossSum, this.seen, this.top1, this.top5] = [sums[0]!, sums[1]!, sums[2]!, sums[3]!]
    for (let c = 0; c < k; c++) {
      this.correctPerClass[c] = sums[4 + c]!
      this.totalPerClass[c] = sums[4 + k + c]!
      this.predictedPerClass[c] = sums[4 + 2 * k + c]!
    }
  }

  metrics(): SplitMetrics {
    const perClass: Record<string, number> = {}
    this.classes.forEach((c, k) => (perClass[c] = percent(this.correctPerClass[k]!, this.totalPerClass[k]!)))
    return {
      loss: this.loss,
      lossSum: this.lossSum,
      top1: percent(this.top1, this.seen),
      top5: percent(this.top5, this.seen),
      perClass,
      ...classScores({ correct: this.correctPerClass, predicted: this.predictedPerClass, count: this.totalPerClass }, this.classes),
    }
  }
}
