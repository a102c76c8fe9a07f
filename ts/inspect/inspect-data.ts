// `convkit inspect` / inspectData(): what is wrong with a dataset before training on it — unreadable files, exact and
// near-duplicates inside and across splits (leakage), likely label errors, class counts, image sizes.
import { call, native } from '../binding.ts'
import { imageId, type ImageSplit } from '../data/exclude-list.ts'
import type { ImageSet } from '../data/image-set.ts'
import { labelFileOptionsOf } from '../data/label-file.ts'
import { range, shuffle } from '../data/split.ts'
import { loadData } from '../data/load-data.ts'
import { TensorDataset } from '../data/tensor-dataset.ts'
import { Model } from '../model/model.ts'
import { resolveTable } from '../options/option.ts'
import { classCounts } from '../train/class-balance.ts'
import { cpuBf16Flags } from '../train/precision.ts'
import type { Device } from '../util/device.ts'
import { ProgressBar } from '../util/progress.ts'
import { exactDuplicates, nearDuplicates, type ImageRef, type SplitImages } from './duplicates.ts'
import { readImageSizes, summarizeSizes, type SizeSummary } from './image-sizes.ts'
import {
  INSPECT_OPTIONS,
  MIN_NETWORK_FOLD_IMAGES,
  NETWORK_FOLDS,
  NETWORK_MIN_IMAGES,
  type InspectOptions,
  type InspectSettings,
} from './inspect-options.ts'
import { argmax, findLabelIssues } from './label-issues.ts'
import { networkProbabilities } from './label-network.ts'

/** An image in the report. */
export interface InspectImage {
  /** Its file (absolute, or `<archive>/<path inside>`), else `<split>:<index>`: the name `--exclude` takes. */
  id: string
  split: ImageSplit
  /** Index in its split's set, in loading order. */
  index: number
  /** Its (first) label. */
  label: string
}

export interface InspectReport {
  /** The data source, resolved. */
  source: string
  format: string
  classes: string[]
  /** Images per class in each split present. */
  counts: Partial<Record<ImageSplit, number[]>>
  /** Largest over smallest class count in the training split (Infinity when a class has none). */
  imbalance: number
  /** Sizes as stored in the files (or the fixed size of CIFAR-10 and idx data). */
  sizes: SizeSummary
  /** Files that could not be decoded (with why), or rows a label file could not use. */
  unreadable: string[]
  /** Groups of images with identical pixels; `leakage` when a group spans splits. */
  exactDuplicates: { images: InspectImage[]; leakage: boolean }[]
  /**
   * Pairs whose pictures match (`match` ≥ `matchThreshold`) or whose embeddings are very close (`similarity` ≥
   * `nearThreshold`), and whose pixels differ; most alike first; `leakage` across splits.
   */
  nearDuplicates: { a: InspectImage; b: InspectImage; similarity: number; match: number; leakage: boolean }[]
  nearThreshold: number
  matchThreshold: number
  /** Likely label errors, likeliest first; empty when not looked for (see `labelErrorsSkipped`). */
  labelIssues: { image: InspectImage; suggested: string; selfConfidence: number; suggestedProbability: number }[]
  /** Why label errors were not looked for. */
  labelErrorsSkipped?: string
  /** What gave the out-of-sample probabilities the label findings come from (see `labelModel`). */
  labelModel?: 'network' | 'probe'
  /** Top-1 accuracy of those probabilities against the given labels: how far to trust the label findings. */
  labelModelAccuracy?: number
  /** The embedding: weights, layer, input size, dimension. */
  embedding: { model: string; layer: string; inputSize: number; dim: number; precision: string }
  /** Images to leave out (`train --exclude inspect.json`): likely label errors, all but one of each duplicate group, and the training side of every duplicate across splits. */
  exclude: string[]
  /** Seconds per phase. */
  seconds: Record<string, number>
}

/** What inspectData() found, with what it was found in. */
export interface Inspection {
  report: InspectReport
  /** The decoded images of each split (for drawing the findings: see `writeInspection`). */
  sets: Partial<Record<ImageSplit, ImageSet>>
  /**
   * The out-of-sample probabilities the label findings came from: `rows × classes`, rows in split order (train, val,
   * test) and in each split's order; undefined when label errors were not looked for.
   */
  probabilities?: Float32Array
}

/** Images embedded per native call: the progress bar moves between calls. */
const EMBED_CHUNK = 2048

/**
 * Inspects a data source (anything `--data` takes) and returns what it found. Images are decoded at `size`, embedded
 * by a pretrained network, compared by cosine similarity (each image's nearest neighbours then by their pixels' detail,
 * see `nearDuplicates`), and classified out of sample, cross-validated, by a network trained on the images or a linear
 * probe on the embeddings (`labelModel`), whose probabilities confident learning turns into likely label errors.
 *
 * @example
 * const report = await inspectData('photos/labels.csv')
 * for (const issue of report.labelIssues.slice(0, 10)) console.log(issue.image.id, issue.image.label, '→', issue.suggested)
 */
export async function inspectData(source: string, options: InspectOptions = {}): Promise<Inspection> {
  const seconds: Record<string, number> = {}
  let started = performance.now()
  const lap = (phase: string) => {
    const now = performance.now()
    seconds[phase] = Math.round(now - started) / 1000
    started = now
  }
  const { signal, ...given } = options
  const o = resolveTable(INSPECT_OPTIONS, given)
  const loaded = await loadData(source, {
    size: o.size,
    skipBadImages: true,
    quiet: o.quiet,
    signal,
    cacheDir: o.cacheDir ?? undefined,
    ...labelFileOptionsOf(o),
  })
  const sets: Partial<Record<ImageSplit, ImageSet>> = { train: loaded.train }
  if (loaded.val) sets.val = loaded.val
  if (loaded.test) sets.test = loaded.test
  const splits = (['train', 'val', 'test'] as const).filter((s) => sets[s] && sets[s].labels.length > 0)
  const classes = loaded.train.classes
  const ref = (split: ImageSplit, index: number): InspectImage => {
    const set = sets[split]!
    return { id: imageId(set, split, index), split, index, label: classes[set.labels[index]!]! }
  }
  lap('load')

  const files = splits.flatMap((s) => sets[s]!.files ?? [])
  const sizeBar = new ProgressBar('image sizes', { total: files.length, quiet: o.quiet, rateUnit: ' img/s' })
  const stored = splits.flatMap((s) =>
    Array.from({ length: sets[s]!.files ? 0 : sets[s]!.labels.length }, () => [sets[s]!.shape[2], sets[s]!.shape[1]] as [number, number]),
  )
  const sizes = summarizeSizes([...(await readImageSizes(files, (n) => sizeBar.update(n))).values(), ...stored])
  sizeBar.done()
  lap('sizes')

  const model = await Model.create(null, {
    pretrained: o.model,
    // As train() does: one cache folder holds the data and, for a named weight set, its file.
    ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
    inputSize: [o.embedSize, o.embedSize],
    device: o.device,
    quiet: o.quiet,
    signal,
  })
  // bf16 halves the time where the CPU has native bf16 arithmetic, and ranks neighbours the same.
  if (model.device === 'cpu' && cpuBf16Flags().length > 0) model.setPrecision('bf16')
  const total = splits.reduce((n, s) => n + sets[s]!.labels.length, 0)
  const bar = new ProgressBar('embedding', { total, quiet: o.quiet, rateUnit: ' img/s' })
  const images: SplitImages[] = []
  let done = 0
  let embedding = { layer: '', dim: 0 }
  for (const split of splits) {
    const set = threeChannels(sets[split]!)
    const data = await TensorDataset.create(set, { device: model.device as Device, normalization: model.normalization })
    const parts: Float32Array[] = []
    for (let start = 0; start < data.length; start += EMBED_CHUNK) {
      const indices = Int32Array.from({ length: Math.min(EMBED_CHUNK, data.length - start) }, (_, i) => start + i)
      const e = await model.embed(data, { indices, batchSize: 128, layer: o.layer ?? undefined, signal })
      parts.push(e.values)
      embedding = { layer: e.layer, dim: e.dim }
      bar.update((done += indices.length))
    }
    images.push({
      split,
      pixels: set.pixels,
      shape: set.shape,
      count: data.length,
      embeddings: concat(parts),
    })
  }
  bar.done()
  lap('embed')

  const exact = exactDuplicates(images).map((g) => ({
    images: g.images.map((r) => ref(r.split, r.index)),
    leakage: new Set(g.images.map((r) => r.split)).size > 1,
  }))
  // One search per pair of splits, each with itself too.
  const searches = (images.length * (images.length + 1)) / 2
  const searchBar = new ProgressBar('near-duplicates', { total: searches, quiet: o.quiet, rateUnit: ' searches/s' })
  const thresholds = { similarity: o.nearThreshold, match: o.matchThreshold }
  const pairs = await nearDuplicates(images, embedding.dim, thresholds, (done) => searchBar.update(done))
  searchBar.done()
  const near = pairs.map((p) => ({
    a: ref(p.a.split, p.a.index),
    b: ref(p.b.split, p.b.index),
    similarity: p.similarity,
    match: p.match,
    leakage: p.a.split !== p.b.split,
  }))
  lap('duplicates')

  const labels = await labelFindings(images, sets, splits, classes, embedding.dim, { ...o, ...(signal ? { signal } : {}) })
  lap('labels')
  const labelIssues = labels.issues.map((i) => ({
    image: ref(i.ref.split, i.ref.index),
    suggested: classes[i.suggested]!,
    selfConfidence: i.selfConfidence,
    suggestedProbability: i.suggestedProbability,
  }))

  const counts: Partial<Record<ImageSplit, number[]>> = {}
  for (const s of splits) counts[s] = classCounts(sets[s]!, range(sets[s]!.labels.length), classes.length)
  const trainCounts = counts.train ?? []
  const report: InspectReport = {
    source: loaded.source,
    format: loaded.format,
    classes,
    counts,
    imbalance: Math.max(...trainCounts) / Math.min(...trainCounts),
    sizes,
    unreadable: loaded.skipped,
    exactDuplicates: exact,
    nearDuplicates: near,
    nearThreshold: o.nearThreshold,
    matchThreshold: o.matchThreshold,
    labelIssues,
    ...(labels.skipped ? { labelErrorsSkipped: labels.skipped } : {}),
    ...(labels.model ? { labelModel: labels.model } : {}),
    ...(labels.accuracy !== undefined ? { labelModelAccuracy: labels.accuracy } : {}),
    embedding: { model: o.model, inputSize: o.embedSize, precision: model.precision, ...embedding },
    exclude: excluded(exact, near, labelIssues),
    seconds,
  }
  return { report, sets, ...(labels.probabilities ? { probabilities: labels.probabilities } : {}) }
}

/**
 * Out-of-sample probabilities over every split's images, from the model `labelModel` picks (cross-validated), and the
 * label issues they point to.
 */
async function labelFindings(
  images: readonly SplitImages[],
  sets: Partial<Record<ImageSplit, ImageSet>>,
  splits: readonly ImageSplit[],
  classes: readonly string[],
  dim: number,
  o: InspectSettings & { signal?: AbortSignal },
): Promise<{
  issues: { ref: ImageRef; suggested: number; selfConfidence: number; suggestedProbability: number }[]
  model?: 'network' | 'probe'
  accuracy?: number
  probabilities?: Float32Array
  skipped?: string
}> {
  if (!o.labelErrors) return { issues: [], skipped: 'not asked for (labelErrors: false)' }
  if (splits.some((s) => sets[s]!.targets))
    return { issues: [], skipped: 'multi-label data: label errors are looked for in single-label data only' }
  const refs: ImageRef[] = images.flatMap((s) => Array.from({ length: s.count }, (_, index) => ({ split: s.split, index })))
  const labels = Int32Array.from(refs, (r) => sets[r.split]!.labels[r.index]!)
  const perClass = classCounts({ labels }, range(labels.length), classes.length)
  const model = o.labelModel === 'auto' ? (refs.length >= NETWORK_MIN_IMAGES ? 'network' : 'probe') : o.labelModel
  const folds = model === 'network' ? NETWORK_FOLDS : o.folds
  if (perClass.filter((c) => c > 0).length < 2 || refs.length < folds * 2)
    return { issues: [], skipped: `too few images to cross-validate (${refs.length} in ${perClass.filter((c) => c > 0).length} class(es))` }
  if (model === 'network' && refs.length < NETWORK_FOLDS * MIN_NETWORK_FOLD_IMAGES)
    return {
      issues: [],
      skipped: `too few images for the label-error network (${refs.length}; it needs ${NETWORK_FOLDS * MIN_NETWORK_FOLD_IMAGES}, labelModel 'probe' does with fewer)`,
    }
  const foldOf = seededFolds(refs.length, folds, o.seed)
  const probabilities =
    model === 'network'
      ? await networkProbabilities(
          { pixels: concat(images.map((s) => s.pixels)), labels, shape: [...images[0]!.shape] as ImageSet['shape'], classes: [...classes] },
          foldOf,
          { folds, epochs: o.labelEpochs, seed: o.seed, device: o.device, quiet: o.quiet, ...(o.signal ? { signal: o.signal } : {}) },
        )
      : await call('label-error probe', () =>
          native.crossValidatedProbabilities(
            concat(images.map((s) => s.embeddings)),
            refs.length,
            dim,
            labels,
            classes.length,
            foldOf,
            null,
          ),
        )
  const k = classes.length
  let right = 0
  for (let i = 0; i < labels.length; i++) if (argmax(probabilities, i, k) === labels[i]) right++
  const issues = findLabelIssues(probabilities, labels, k).map((i) => ({
    ref: refs[i.row]!,
    suggested: i.suggested,
    selfConfidence: i.selfConfidence,
    suggestedProbability: i.suggestedProbability,
  }))
  return { issues, model, accuracy: right / labels.length, probabilities }
}

/** Fold ids 0..folds-1, as even as can be, in a seeded random order. */
function seededFolds(n: number, folds: number, seed: number): Int32Array {
  const ids = new Int32Array(n)
  for (const [position, row] of shuffle(range(n), seed).entries()) ids[row] = position % folds
  return ids
}

/** What `--exclude inspect.json` leaves out; see `InspectReport.exclude`. */
function excluded(
  exact: InspectReport['exactDuplicates'],
  near: InspectReport['nearDuplicates'],
  issues: InspectReport['labelIssues'],
): string[] {
  const out = new Set<string>()
  for (const g of exact) {
    // A held-out split keeps the first of its copies (it loses no image it has once; repeats in it go); training keeps
    // one copy only where no held-out split has the image.
    const held = g.images.filter((i) => i.split !== 'train')
    const train = g.images.filter((i) => i.split === 'train')
    for (const i of held.length > 0 ? train : train.slice(1)) out.add(i.id)
    for (const i of held.slice(1).filter((i) => held[0]!.split === i.split)) out.add(i.id)
  }
  for (const p of near) if (p.leakage) out.add((p.a.split === 'train' ? p.a : p.b).id)
  for (const i of issues) out.add(i.image.id)
  return [...out]
}

/** The arrays end to end, in one of their type (`parts` is never empty: every split inspected has images). */
function concat<T extends Float32Array | Uint8Array>(parts: readonly T[]): T {
  const out = new (parts[0]!.constructor as new (n: number) => T)(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Grayscale images repeated into three channels: pretrained networks take RGB. */
function threeChannels(set: ImageSet): ImageSet {
  const [c, h, w] = set.shape
  if (c === 3) return set
  const plane = h * w
  const n = set.labels.length
  const pixels = new Uint8Array(n * 3 * plane)
  for (let i = 0; i < n; i++) {
    const src = set.pixels.subarray(i * plane, (i + 1) * plane)
    for (let ch = 0; ch < 3; ch++) pixels.set(src, (i * 3 + ch) * plane)
  }
  return { ...set, pixels, shape: [3, h, w] }
}
