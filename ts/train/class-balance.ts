// Unbalanced classes in train(): the class counts of each split, the class weights of the training loss
// (`classWeights`) and each epoch's training order (`sampler`). Pure functions of counts, labels and seeds.
import { balancedOrder, deriveSeed, shuffle } from '../data/split.ts'
import { InputError } from '../errors.ts'
import type { ImageSet } from '../data/image-set.ts'
import type { LossOptions } from '../model/model.ts'
import { bad } from '../options/option.ts'

/** `classWeights`: a rule, or a weight per class name (classes not named weigh 1). */
export type ClassWeights = 'auto' | 'sqrt' | 'none' | Record<string, number>

/** `sampler`: each training image once per epoch, or classes drawn equally. */
export type Sampler = 'shuffle' | 'balanced'

const RULES = ['auto', 'sqrt', 'none']
const EXPECTED = "'auto', 'sqrt', 'none' or a map of class names to weights > 0 such as {\"cat\": 2}"

/** Checks a `classWeights` value; the CLI's text is a rule's name or a JSON map. */
export function checkClassWeights(v: unknown, field: string): ClassWeights {
  let value = v
  if (typeof value === 'string' && value.trim().startsWith('{')) {
    try {
      value = JSON.parse(value)
    } catch {
      throw bad(field, EXPECTED, v)
    }
  }
  if (typeof value === 'string') {
    if (!RULES.includes(value)) throw bad(field, EXPECTED, v)
    return value as ClassWeights
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.keys(value).length === 0) throw bad(field, EXPECTED, v)
  for (const [name, w] of Object.entries(value)) {
    if (typeof w !== 'number' || !Number.isFinite(w) || w <= 0) throw bad(`${field}.${name}`, 'a number > 0', w)
  }
  return value as Record<string, number>
}

/** Images of each of `classes` classes among `indices` of `set` (multi-label: images that have each label). */
export function classCounts(set: Pick<ImageSet, 'labels' | 'targets'>, indices: ArrayLike<number>, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0)
  const { labels, targets } = set
  for (let i = 0; i < indices.length; i++) {
    const image = indices[i]!
    if (targets) {
      for (let c = 0; c < classes; c++) counts[c]! += targets[image * classes + c]!
      continue
    }
    const label = labels[image]!
    if (label >= 0 && label < classes) counts[label]!++
  }
  return counts
}

/** The training loss a run's model gets (label smoothing, reduction, `classWeights` from the training counts). */
export function runLoss(
  config: { classWeights: ClassWeights; labelSmoothing: number; lossReduction: NonNullable<LossOptions['reduction']> },
  data: { trainSet: Pick<ImageSet, 'labels' | 'targets'>; train: ArrayLike<number>; classes: string[] },
): { loss: LossOptions; trainCounts: number[]; weights: number[] | null } {
  const trainCounts = classCounts(data.trainSet, data.train, data.classes.length)
  const weights = resolveClassWeights(config.classWeights, trainCounts, data.classes)
  return {
    loss: { labelSmoothing: config.labelSmoothing, reduction: config.lossReduction, classWeights: weights ?? undefined },
    trainCounts,
    weights,
  }
}

/**
 * The loss weight of each class (label order) that `rule` gives training data with `counts` images per class; null
 * for `'none'`. `'auto'` weighs each class by the inverse of its frequency and `'sqrt'` by its square root, both
 * scaled so that the mean weight over the training images (Σ count·weight / Σ count) is 1: the summed loss keeps its
 * scale, and `auto` is scikit-learn's `class_weight='balanced'`. A class without training images takes the largest
 * weight of the others (it weighs only in label smoothing's term). A map is taken as given, other classes at 1.
 *
 * @example
 * resolveClassWeights('auto', [90, 10], ['cat', 'dog']) // [0.556, 5]
 */
export function resolveClassWeights(rule: ClassWeights, counts: readonly number[], classNames: readonly string[]): number[] | null {
  if (rule === 'none') return null
  if (typeof rule === 'object') {
    const unknown = Object.keys(rule).filter((name) => !classNames.includes(name))
    if (unknown.length > 0)
      throw new InputError(
        'INVALID_OPTION',
        `option classWeights: ${unknown.map((u) => JSON.stringify(u)).join(', ')} ${unknown.length === 1 ? 'is not a class' : 'are not classes'} of this data; expected names among ${classNames.join(', ')}`,
      )
    return classNames.map((name) => rule[name] ?? 1)
  }
  const scale = rule === 'auto' ? (n: number) => 1 / n : (n: number) => 1 / Math.sqrt(n)
  const total = counts.reduce((a, b) => a + b, 0)
  const present = counts.filter((n) => n > 0)
  if (present.length === 0) return null
  const norm = total / present.reduce((a, n) => a + n * scale(n), 0)
  const weights = counts.map((n) => (n > 0 ? norm * scale(n) : 0))
  const largest = Math.max(...weights)
  return weights.map((w) => (w > 0 ? w : largest))
}

/**
 * The training order of epoch `epoch` over the training images `train` (indices into a set labelled `labels`):
 * a seeded shuffle, or `balancedOrder`'s class-balanced draw of as many images. Both derive from the run's seed and
 * the epoch alone, so a resumed run trains each epoch in the same order.
 */
export function epochOrder(sampler: Sampler, train: Int32Array, labels: ArrayLike<number>, seed: number, epoch: number): Int32Array {
  return sampler === 'balanced' ? balancedOrder(train, labels, deriveSeed(seed, epoch, 0xba1a)) : shuffle(train, deriveSeed(seed, epoch))
}

/** A split's counts by class name, as history.json records them. */
export function countsByName(counts: readonly number[], classNames: readonly string[]): Record<string, number> {
  return Object.fromEntries(classNames.map((c, i) => [c, counts[i] ?? 0]))
}

/** Up to this many classes are listed one by one on the console; more are summarized. */
const LISTED = 12

function summary(counts: readonly number[], classNames: readonly string[]): string {
  const order = counts.map((n, i) => [n, i] as const).sort((a, b) => a[0] - b[0])
  const [min, max] = [order[0]!, order.at(-1)!]
  const median = order[Math.floor(order.length / 2)]![0]
  return `${min[0]} (${classNames[min[1]]}) to ${max[0]} (${classNames[max[1]]}), median ${median}`
}

/**
 * The console lines that show a run's class counts (and class weights, when it has any): each class's
 * train/val/test counts on one line, or, with many classes, the range of each split.
 */
export function classBalanceLines(
  counts: { train: readonly number[]; val: readonly number[]; test: readonly number[] },
  classNames: readonly string[],
  options: { trainSampled?: boolean; weights?: readonly number[] | null; rule?: ClassWeights } = {},
): string[] {
  const splits = (['train', 'val', 'test'] as const).filter((s) => s !== 'val' || counts.val.some((n) => n > 0))
  const sampled = options.trainSampled ? ' (train: a sample of the streamed shards)' : ''
  const lines =
    classNames.length <= LISTED
      ? [
          `convkit: images per class (${splits.join('/')})${sampled}: ${classNames
            .map((c, i) => `${c} ${splits.map((s) => counts[s][i] ?? 0).join('/')}`)
            .join(', ')}`,
        ]
      : [`convkit: images per class${sampled}: ${splits.map((s) => `${s} ${summary(counts[s], classNames)}`).join('; ')}`]
  const w = options.weights
  if (w) {
    const rule = typeof options.rule === 'string' ? options.rule : 'given'
    lines.push(
      classNames.length <= LISTED
        ? `convkit: class weights (${rule}): ${classNames.map((c, i) => `${c} ${Number(w[i]!.toPrecision(3))}`).join(', ')}`
        : `convkit: class weights (${rule}): ${Number(Math.min(...w).toPrecision(3))} to ${Number(Math.max(...w).toPrecision(3))}`,
    )
  }
  return lines
}
