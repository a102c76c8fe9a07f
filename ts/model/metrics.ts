// Metrics from evaluation counts: pure functions, no addon (the counts' type only).
import type { EvalCounts } from '../binding.ts'

/** Raw counts as the native evaluation returns them (declared in Rust). */
export type { EvalCounts }

/** Metrics over a set of images. Accuracies are percentages. */
export interface EvalMetrics {
  count: number
  /** Mean cross-entropy. */
  loss: number
  /** Summed cross-entropy. */
  lossSum: number
  top1: number
  top5: number
  /** Top-1 of each class, by class name; NaN for a class with no images. */
  perClass: Record<string, number>
  /** `confusion[true][predicted]` image counts. */
  confusion: number[][]
}

export function percent(correct: number, total: number): number {
  return total === 0 ? Number.NaN : (100 * correct) / total
}

/** Derives accuracies from counts; `classNames` label the per-class entries (indices when shorter). */
export function metricsFromCounts(counts: EvalCounts, classNames: readonly string[] = []): EvalMetrics {
  const k = counts.classes
  const confusion = Array.from({ length: k }, (_, row) => counts.confusion.slice(row * k, (row + 1) * k))
  const perClass: Record<string, number> = {}
  confusion.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0)
    perClass[classNames[i] ?? String(i)] = percent(row[i]!, total)
  })
  return {
    count: counts.count,
    loss: counts.count === 0 ? Number.NaN : counts.lossSum / counts.count,
    lossSum: counts.lossSum,
    top1: percent(counts.top1Correct, counts.count),
    top5: percent(counts.top5Correct, counts.count),
    perClass,
    confusion,
  }
}
