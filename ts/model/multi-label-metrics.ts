// Multi-label metrics from every image's probabilities: average precision per class and its mean (mAP), a decision
// threshold per class that maximises F1, and precision, recall, F1 and the exact-match ratio at those thresholds. Pure
// functions; the metrics fill EvalMetrics so that history, monitors, plots and the report read them as they read a
// single-label run's.
import { classScores, percent, type EvalMetrics, type MultiLabelScores } from './metrics.ts'

/** The threshold a class gets when the data has no image of it to choose one on. */
export const DEFAULT_THRESHOLD = 0.5

/** One class's column of `n × k` row-major values. */
function column<T extends Float32Array | Uint8Array>(values: T, n: number, k: number, c: number): number[] {
  return Array.from({ length: n }, (_, i) => values[i * k + c]!)
}

/** Indices of `scores` from highest to lowest (ties in index order). */
function descending(scores: readonly number[]): number[] {
  return Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b)
}

/**
 * Average precision of one class, as scikit-learn's `average_precision_score`: Σ (Rₙ − Rₙ₋₁)·Pₙ over the distinct
 * scores from highest to lowest (tied scores enter together). NaN when no image has the class.
 */
export function averagePrecision(scores: readonly number[], truth: readonly number[]): number {
  const positives = truth.reduce((a, t) => a + (t ? 1 : 0), 0)
  if (positives === 0) return Number.NaN
  const order = descending(scores)
  let [tp, seen, ap, recallBefore] = [0, 0, 0, 0]
  for (let j = 0; j < order.length; j++) {
    const i = order[j]!
    tp += truth[i] ? 1 : 0
    seen++
    const next = order[j + 1]
    if (next !== undefined && scores[next] === scores[i]) continue
    const recall = tp / positives
    ap += (recall - recallBefore) * (tp / seen)
    recallBefore = recall
  }
  return ap
}

/**
 * The threshold that maximises one class's F1 on these images (a class is predicted where its probability reaches
 * its threshold): the midpoint between the lowest score predicted positive and the next one down (ties never split),
 * or that lowest score where every image is predicted positive. DEFAULT_THRESHOLD when no image has the class.
 */
export function bestThreshold(scores: readonly number[], truth: readonly number[]): number {
  const positives = truth.reduce((a, t) => a + (t ? 1 : 0), 0)
  if (positives === 0) return DEFAULT_THRESHOLD
  const order = descending(scores)
  let [tp, best, bestAt] = [0, -1, 0]
  for (let j = 0; j < order.length; j++) {
    tp += truth[order[j]!] ? 1 : 0
    const next = order[j + 1]
    if (next !== undefined && scores[next] === scores[order[j]!]) continue
    const f1 = (2 * tp) / (j + 1 + positives)
    if (f1 > best) [best, bestAt] = [f1, j]
  }
  const lowest = scores[order[bestAt]!]!
  const below = order[bestAt + 1]
  return below === undefined ? lowest : (lowest + scores[below]!) / 2
}

/** Per-class thresholds chosen on `probabilities` (`n × k`) against `targets` (multi-hot, `n × k`). */
export function fitThresholds(probabilities: Float32Array, targets: Uint8Array, n: number, k: number): number[] {
  return Array.from({ length: k }, (_, c) => bestThreshold(column(probabilities, n, k, c), column(targets, n, k, c)))
}

/**
 * EvalMetrics of a multi-label evaluation, with `multiLabel` filled: `top1` is the exact-match ratio, `top5` the
 * images whose highest-scoring class is one of their labels, `perClass` each class's recall, `balancedAccuracy` the
 * mean recall and `macroF1` the mean F1 of the classes present, all at `thresholds`; `confusion` is empty (labels are
 * not exclusive). `loss` is the mean binary cross-entropy.
 */
export function multiLabelMetrics(
  probabilities: Float32Array,
  targets: Uint8Array,
  n: number,
  classNames: readonly string[],
  lossSum: number,
  thresholds: readonly number[],
): EvalMetrics & { multiLabel: MultiLabelScores } {
  const k = classNames.length
  const correct = new Array<number>(k).fill(0)
  const predicted = new Array<number>(k).fill(0)
  const count = new Array<number>(k).fill(0)
  let [exact, topHit] = [0, 0]
  for (let i = 0; i < n; i++) {
    let same = true
    let top = 0
    for (let c = 0; c < k; c++) {
      const p = probabilities[i * k + c]!
      const yes = p >= thresholds[c]!
      const truth = targets[i * k + c] === 1
      if (p > probabilities[i * k + top]!) top = c
      if (yes) predicted[c]!++
      if (truth) count[c]!++
      if (yes && truth) correct[c]!++
      if (yes !== truth) same = false
    }
    if (same) exact++
    if (targets[i * k + top] === 1) topHit++
  }
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0)
  const [tp, pp, pos] = [sum(correct), sum(predicted), sum(count)]
  const scores = classScores({ correct, predicted, count }, classNames)
  const name = (c: number) => classNames[c] ?? String(c)
  const ap = Array.from({ length: k }, (_, c) => 100 * averagePrecision(column(probabilities, n, k, c), column(targets, n, k, c)))
  const present = ap.filter((v) => !Number.isNaN(v))
  return {
    count: n,
    loss: n === 0 ? Number.NaN : lossSum / n,
    lossSum,
    top1: percent(exact, n),
    top5: percent(topHit, n),
    perClass: Object.fromEntries(Object.entries(scores.classMetrics).map(([c, m]) => [c, m.recall])),
    ...scores,
    confusion: [],
    multiLabel: {
      mAP: present.length === 0 ? Number.NaN : sum(present) / present.length,
      microF1: pos + pp === 0 ? Number.NaN : (200 * tp) / (pos + pp),
      exactMatch: percent(exact, n),
      averagePrecision: Object.fromEntries(ap.map((v, c) => [name(c), v])),
      thresholds: [...thresholds],
    },
  }
}
