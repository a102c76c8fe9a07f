// Metrics from evaluation counts: pure functions, no addon (the counts' type only). Per-class precision, recall and
// F1, macro-F1 and balanced accuracy come from the confusion matrix (or per-class totals), so they add up across
// batches and ranks as counts and are derived once.
import type { EvalCounts } from '../binding.ts'
import type { ProcessGroup } from '../distributed/process-group.ts'

/** Raw counts as the native evaluation returns them (declared in Rust). */
export type { EvalCounts }

/** One class's scores over a set of images. Precision, recall and F1 are percentages, as accuracies are. */
export interface ClassMetrics {
  /** Images of this class in the set (its support). */
  count: number
  /** Of the images predicted as this class, the percentage that are; 0 when none is predicted as it but the set has some (scikit-learn's `zero_division=0`), NaN when the set has none. */
  precision: number
  /** Of the images of this class, the percentage predicted as it (its top-1); NaN when the set has none. */
  recall: number
  /** The harmonic mean of precision and recall; 0 when both are 0, NaN when the set has none of the class. */
  f1: number
}

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
  /** The mean recall of the classes the set has images of (scikit-learn's `balanced_accuracy_score`), in percent. */
  balancedAccuracy: number
  /** The mean F1 of the classes the set has images of, in percent. */
  macroF1: number
  /** Count, precision, recall and F1 of each class, by class name. */
  classMetrics: Record<string, ClassMetrics>
  /** `confusion[true][predicted]` image counts; empty for multi-label data. */
  confusion: number[][]
  /** Multi-label data only: ranking and set metrics (see `multiLabelMetrics` for what the fields above then mean). */
  multiLabel?: MultiLabelScores
}

/** What a multi-label evaluation adds to EvalMetrics. Percentages, as accuracies are. */
export interface MultiLabelScores {
  /** Mean over the classes present of their average precision. */
  mAP: number
  /** F1 over every (image, class) decision together. */
  microF1: number
  /** Images whose predicted label set is exactly their label set. */
  exactMatch: number
  /** Average precision of each class, by class name; NaN for a class the set has no image of. */
  averagePrecision: Record<string, number>
  /** The probability above which each class is predicted (in class order). */
  thresholds: number[]
}

export function percent(correct: number, total: number): number {
  return total === 0 ? Number.NaN : (100 * correct) / total
}

/** Per-class totals: images classified right, images predicted as the class, images of the class. */
export interface ClassTotals {
  correct: ArrayLike<number>
  predicted: ArrayLike<number>
  count: ArrayLike<number>
}

/** The per-class totals of a `confusion[true][predicted]` matrix: its diagonal, column sums and row sums. */
export function confusionTotals(confusion: readonly (readonly number[])[]): ClassTotals {
  const k = confusion.length
  const predicted = new Array<number>(k).fill(0)
  for (const row of confusion) row.forEach((n, p) => (predicted[p]! += n))
  return {
    correct: confusion.map((row, i) => row[i] ?? 0),
    predicted,
    count: confusion.map((row) => row.reduce((a, b) => a + b, 0)),
  }
}

/** Precision, recall and F1 of each class from its totals, in class order. */
export function classMetrics(totals: ClassTotals): ClassMetrics[] {
  return Array.from({ length: totals.count.length }, (_, c) => {
    const count = totals.count[c]!
    const predicted = totals.predicted[c]!
    const correct = totals.correct[c]!
    const recall = percent(correct, count)
    const precision = predicted > 0 ? percent(correct, predicted) : count > 0 ? 0 : Number.NaN
    const f1 = count === 0 ? Number.NaN : precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall)
    return { count, precision, recall, f1 }
  })
}

/** The mean of `pick` over the classes with images: a class absent from a split says nothing about it. */
function meanOverPresent(classes: readonly ClassMetrics[], pick: (c: ClassMetrics) => number): number {
  const present = classes.filter((c) => c.count > 0)
  return present.length === 0 ? Number.NaN : present.reduce((a, c) => a + pick(c), 0) / present.length
}

/** Mean per-class recall, in percent: top-1 as if every class had as many images. */
export function balancedAccuracy(classes: readonly ClassMetrics[]): number {
  return meanOverPresent(classes, (c) => c.recall)
}

/** Mean per-class F1, in percent. */
export function macroF1(classes: readonly ClassMetrics[]): number {
  return meanOverPresent(classes, (c) => c.f1)
}

/** `classMetrics` keyed by class name (indices where `classNames` is shorter), with the two averages over them. */
export function classScores(
  totals: ClassTotals,
  classNames: readonly string[] = [],
): Pick<EvalMetrics, 'balancedAccuracy' | 'macroF1' | 'classMetrics'> {
  const rows = classMetrics(totals)
  return {
    balancedAccuracy: balancedAccuracy(rows),
    macroF1: macroF1(rows),
    classMetrics: Object.fromEntries(rows.map((m, i) => [classNames[i] ?? String(i), m])),
  }
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
    ...classScores(confusionTotals(confusion), classNames),
    confusion,
  }
}

/** The counts of two disjoint image sets together (`a` alone when `b` is null). */
export function addEvalCounts(a: EvalCounts, b: EvalCounts | null): EvalCounts {
  if (b === null) return a
  if (a.classes !== b.classes) throw new RangeError(`evaluation counts of ${a.classes} and ${b.classes} classes do not add up`)
  return {
    count: a.count + b.count,
    lossSum: a.lossSum + b.lossSum,
    top1Correct: a.top1Correct + b.top1Correct,
    top5Correct: a.top5Correct + b.top5Correct,
    confusion: a.confusion.map((n, i) => n + b.confusion[i]!),
    classes: a.classes,
  }
}

/** Every rank's counts summed (a collective: each rank passes the counts of its own share of the images). */
export async function allreduceEvalCounts(group: ProcessGroup, counts: EvalCounts): Promise<EvalCounts> {
  const sums = await group.allreduceSum(
    [counts.count, counts.lossSum, counts.top1Correct, counts.top5Correct, ...counts.confusion],
    'the evaluation counts',
  )
  return {
    count: sums[0]!,
    lossSum: sums[1]!,
    top1Correct: sums[2]!,
    top5Correct: sums[3]!,
    confusion: Array.from(sums.subarray(4)),
    classes: counts.classes,
  }
}
