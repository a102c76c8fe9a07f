// The data of one train() run: loading, the train/validation/test splits, normalization, and whether the training
// images are held in memory or streamed from shards.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { halfNormalization, type ImageSet, type Normalization } from '../data/image-set.ts'
import { checkDecodable, formatGB, MAX_DECODED_BYTES } from '../data/image-folder.ts'
import { loadData, type ImagePicks, type ListedImages } from '../data/load-data.ts'
import { datasetNormalization, NAMED_NORMALIZATIONS } from '../data/normalization.ts'
import { describeShardSource, isShardSource, readShardImages, subsetShards } from '../data/shards/shard-source.ts'
import type { ShardSet } from '../data/shards/shard-stream.ts'
import { cachedFolderShards } from '../data/shards/folder-shards.ts'
import { chooseDataPath } from '../data/shards/stream-train.ts'
import {
  deriveSeed,
  limitIndices,
  mergeIndices,
  range,
  selectImages,
  shuffle,
  stratifiedSplit,
  type Selection,
  type SelectOptions,
} from '../data/split.ts'
import { DataError, InputError } from '../errors.ts'
import { labelFileOptionsOf } from '../data/label-file.ts'
import { readExcludeList, withoutExcluded } from '../data/exclude-list.ts'
import type { ResolvedTrainOptions, TrainOptions } from './train-options.ts'
import { pretrainedWeights } from '../zoo/weights.ts'
import { formatBytes } from '../util/progress.ts'

/** Images a streamed run holds in memory from its training shards: for statistics, whitening, samples.png and the precision probe. */
const STREAM_SAMPLE = 2048
const SAMPLE_BYTES_MAX = 128 * 2 ** 20

/** Images a run validates on: held in memory (`val`) or streamed (`valStream`). */
export function validationCount(data: Pick<TrainData, 'val' | 'valStream'>): number {
  return data.valStream?.total ?? data.val.length
}

export interface TrainData {
  classes: string[]
  /** Several labels per image (`trainSet.targets`): a sigmoid per class and binary cross-entropy. */
  multiLabel: boolean
  normalization: Normalization
  /** Resident: every training image. Streamed: a seeded sample of the training shards. */
  trainSet: ImageSet
  /** The images `val` indexes (the training set itself when validation is held out of it). */
  valSet: ImageSet
  testSet: ImageSet
  /** Indices into `trainSet` of the images trained on (streamed: of the sample). */
  train: Int32Array
  val: Int32Array
  test: Int32Array
  /** Images one epoch trains on. */
  trainCount: number
  /** The training shards when they are streamed, else null. */
  stream: ShardSet | null
  /**
   * A streamed run's validation shards, decoded a part at a time at each evaluation (`val` is then empty), else
   * null. See validationCount.
   */
  valStream: ShardSet | null
  /** Why the shards are resident or streamed (null for other data). */
  dataPath: string | null
  skipped: string[]
  /** Images left out because `exclude`'s list names them. */
  excluded: number
}

/** Thrown by a listing's pick when its training images would not fit the memory budget: the folder streams instead. */
/** The options a streamed training set cannot honour, refused by name. */
function checkStreamable(config: ResolvedTrainOptions): void {
  if (config.multiLabel)
    throw new InputError(
      'INVALID_OPTION',
      'option multiLabel: streamed data (image folders and shards) gives one class per image; give a label file (CSV, TSV, JSON)',
    )
  if (config.trainMetrics === 'full')
    throw new InputError(
      'INVALID_OPTION',
      "option trainMetrics: 'running' when the training shards are streamed (a full pass would read them all again)",
    )
  if (config.exclude !== null)
    throw new InputError(
      'INVALID_OPTION',
      "option exclude: streamed training shards cannot leave single images out; pass stream: 'never' to hold them in memory, or write the shards without them",
    )
  if (config.sampler === 'balanced')
    throw new InputError(
      'INVALID_OPTION',
      "option sampler: 'shuffle' when the training shards are streamed (a balanced draw picks single images out of every shard); pass stream: 'never' to hold them in memory",
    )
}

/** The images `exclude` names (none without it). */
async function exclusionsOf(config: ResolvedTrainOptions): Promise<ReadonlySet<string>> {
  return config.exclude === null ? new Set() : readExcludeList(config.exclude)
}

class StreamInstead extends Error {
  readonly reason: string
  constructor(reason: string) {
    super(reason)
    this.reason = reason
  }
}

/** The memory budget of resident training images: `memoryBudgetMb`, else half the machine's memory. */
function budgetBytes(config: ResolvedTrainOptions): number | undefined {
  return config.memoryBudgetMb !== null ? config.memoryBudgetMb * 2 ** 20 : undefined
}

/** Loads `options.data` (and `testData`) and splits it as `config` says. */
export async function prepareData(options: TrainOptions, config: ResolvedTrainOptions): Promise<TrainData> {
  if (typeof options.data === 'string' && isShardSource(config.data)) return prepareShards(config, options.signal)
  try {
    return await prepareResident(options, config)
  } catch (err) {
    if (!(err instanceof StreamInstead)) throw err
    return prepareStreamedFolder(config, err.reason, options.signal)
  }
}

/**
 * An image folder whose training images do not fit the memory budget (or `stream: 'always'`): its training folder
 * is written once into the cache as shards of its images decoded at the run's size and streamed from there (each
 * epoch then copies pixels instead of decoding them again); a `test/` folder beside
 * it (or `testData`) is read as usual.
 */
async function prepareStreamedFolder(config: ResolvedTrainOptions, reason: string, signal: AbortSignal | undefined): Promise<TrainData> {
  const source = config.data
  const isFolder = fs.statSync(source, { throwIfNoEntry: false })?.isDirectory() === true
  if (!isFolder) {
    throw new DataError(
      'DATA_TOO_LARGE',
      `${reason}; an archive streams only once extracted: extract it and pass the folder, or write shards with convkit shard`,
      { files: [source] },
    )
  }
  const trainDir = path.join(source, 'train')
  const split = fs.statSync(trainDir, { throwIfNoEntry: false })?.isDirectory() === true
  const testDir = path.join(source, 'test')
  const shards = await cachedFolderShards(split ? trainDir : source, {
    decode: { size: config.size, channels: 3, skipBadImages: config.skipBadImages },
    cacheDir: config.cacheDir ?? undefined,
    quiet: config.quiet,
    signal,
  })
  const testData = config.testData ?? (split && fs.existsSync(testDir) ? testDir : null)
  const form = shards.decoded
    ? `its images decoded at 3×${config.size.join('×')}`
    : `the original bytes (decoded they would take ${formatBytes(shards.decodedBytes)}, over the dataset cache's limit: ` +
      'raise it, e.g. CONVKIT_CACHE_MAX=20G, and epochs copy pixels instead of decoding every image again)'
  const how = shards.wrote ? `written once into the dataset cache as shards of ${form}` : `from its shards of ${form} in the dataset cache`
  const data = await prepareShards(
    { ...config, data: shards.index, testData, stream: 'always' },
    signal,
    `${reason}; ${how} (${path.dirname(shards.index)})`,
  )
  return { ...data, skipped: [...shards.skipped, ...data.skipped] }
}

async function prepareResident(options: TrainOptions, config: ResolvedTrainOptions): Promise<TrainData> {
  const testGiven = config.testData !== null
  // Image folders list their images first: only those the run uses are decoded, chosen here as residentSplits would.
  let chosen: Selection | undefined
  let listedBytes = 0
  const streamable = typeof options.data === 'string' && fs.statSync(config.data, { throwIfNoEntry: false })?.isDirectory() === true
  const pick = (listed: ListedImages): ImagePicks => {
    const selection = selectImages(listed.train, testGiven ? 0 : listed.test, selectOptions(config, listed.labels))
    chosen = selection
    // A source's own validation images (a label file's valid rows) are all decoded: limits choose among training images.
    const picks = selection.heldOut
      ? { train: mergeIndices(selection.train, selection.test) }
      : { train: selection.train, test: selection.test }
    const perImage = listed.shape.reduce((a, b) => a * b, 1)
    const valCount = listed.val ?? 0
    listedBytes = perImage * (picks.train.length + (picks.test?.length ?? 0) + valCount)
    // A folder's training images over the memory budget (or over what one typed array holds) stream instead of
    // failing, as long as its test images fit: they stay resident.
    const forced = config.stream === 'auto' ? undefined : config.stream === 'always'
    const trainBytes = perImage * picks.train.length
    const choice = chooseDataPath(picks.train.length, listed.shape as [number, number, number], {
      budgetBytes: budgetBytes(config),
      stream: forced,
    })
    if (streamable && forced !== false && (choice.stream || trainBytes > MAX_DECODED_BYTES)) {
      // Before the folder is written as shards (minutes for a large one), not after.
      checkStreamable(config)
      if (picks.test) checkFits([{ count: picks.test.length, shape: listed.shape }], perImage * picks.test.length)
      throw new StreamInstead(
        choice.stream
          ? choice.reason
          : `streaming: ${formatGB(trainBytes)} of training images is more than one typed array holds (${formatGB(MAX_DECODED_BYTES)})`,
      )
    }
    checkFits(
      [picks.train.length, picks.test?.length ?? 0, valCount].filter((n) => n > 0).map((count) => ({ count, shape: listed.shape })),
      listedBytes,
    )
    return picks
  }
  const loaded =
    typeof options.data === 'string' || options.data === undefined
      ? await loadData(config.data, {
          size: config.size,
          cacheDir: config.cacheDir ?? undefined,
          skipBadImages: config.skipBadImages,
          quiet: config.quiet,
          signal: options.signal,
          pick,
          ...labelFileOptionsOf(config),
        })
      : { train: options.data.train, test: options.data.test, skipped: [] as string[] }
  const given = testGiven ? await readTestData(config, options.signal, listedBytes) : undefined
  const testSet = given?.set ?? (testGiven ? undefined : loaded.test)
  const picked = 'picked' in loaded ? loaded.picked : undefined
  // Without a pick applied (idx, CIFAR-10, images in memory, a pick of every image) the sets are whole: select in them.
  const whole = selectImages(
    loaded.train.labels.length,
    given ? given.set.labels.length : testSet?.labels.length,
    selectOptions(config, loaded.train.labels),
  )
  // testData decoded only its selected images, so selecting in it again keeps them all.
  const selection = picked && chosen ? { ...placeSelection(chosen, picked), ...(given ? { test: whole.test } : {}) } : whole
  return residentSplits(
    config,
    loaded.train,
    selection.heldOut ? undefined : testSet,
    selection,
    [...(loaded.skipped ?? []), ...(given?.skipped ?? [])],
    null,
    'val' in loaded ? loaded.val : undefined,
    await exclusionsOf(config),
  )
}

/** What selection follows; `labels`, the training images' classes, make a held-out test split stratified. */
function selectOptions(config: ResolvedTrainOptions, labels?: ArrayLike<number>): SelectOptions {
  return {
    seed: config.seed,
    limitTrain: config.limitTrain ?? undefined,
    limitTest: config.limitTest ?? undefined,
    testSplit: config.testSplit,
    ...(labels ? { labels } : {}),
  }
}

/**
 * The selection made from a listing, as indices into the sets decoded from it: `picked` gives each decoded image's
 * index in the listing (images skipped as unreadable are missing, and so leave the selection).
 */
function placeSelection(chosen: Selection, picked: { train: Int32Array; test?: Int32Array }): Selection {
  const place = (wanted: Int32Array, into: Int32Array) => {
    const at = new Map(Array.from(into, (listed, i) => [listed, i]))
    return Int32Array.from(Array.from(wanted).flatMap((i) => (at.has(i) ? [at.get(i)!] : [])))
  }
  const train = place(chosen.train, picked.train)
  if (chosen.heldOut) return { train, test: place(chosen.test, picked.train), heldOut: true }
  return { train, test: place(chosen.test, picked.test ?? new Int32Array(0)), heldOut: false }
}

/**
 * The splits of resident data: test held out when there is no test set, then validation held out of the rest, each
 * class in its proportion (`stratifiedSplit`, seeded). A source with its own validation set (`valSet`: a label file's
 * valid rows) is validated on that alone: `valSplit` then takes nothing from the training images, since a second
 * validation set would shrink training for a score that nothing reads (and `valSplit: 0` cannot turn the source's
 * own validation off: the rows are there to validate on).
 */
function residentSplits(
  config: ResolvedTrainOptions,
  trainSet: ImageSet,
  testSet: ImageSet | undefined,
  selection: Selection,
  skipped: string[],
  dataPath: string | null,
  valSet: ImageSet | undefined,
  exclusions: ReadonlySet<string>,
): TrainData {
  checkSameClasses(trainSet, testSet ?? trainSet)
  if (valSet) checkSameClasses(trainSet, valSet)
  const multiLabel = trainSet.targets !== undefined
  if (config.multiLabel && !multiLabel)
    throw new InputError(
      'INVALID_OPTION',
      `option multiLabel: ${config.data} gives one class per image (an image folder, CIFAR-10, idx files and shards cannot say several); ` +
        "give a label file (CSV, TSV, JSON) whose label field lists each image's labels",
    )
  // A single-label test or validation set (a folder as testData) scores a multi-label model with one label per image.
  if (multiLabel) [testSet, valSet] = [testSet && multiHot(testSet), valSet && multiHot(valSet)]
  // Excluded before the validation split, so that it stratifies what is left.
  const trainPool = withoutExcluded(selection.train, trainSet, 'train', exclusions)
  const test = selection.heldOut
    ? withoutExcluded(selection.test, trainSet, 'train', exclusions)
    : withoutExcluded(selection.test, testSet ?? trainSet, testSet ? 'test' : 'train', exclusions)
  const split = valSet
    ? { kept: range(trainPool.length), held: new Int32Array(0) }
    : stratifiedSplit(
        Int32Array.from(trainPool, (i) => trainSet.labels[i]!),
        config.valSplit,
        deriveSeed(config.seed, 0x3),
      )
  const train = split.kept.map((i) => trainPool[i]!)
  const val = valSet ? withoutExcluded(range(valSet.labels.length), valSet, 'val', exclusions) : split.held.map((i) => trainPool[i]!)
  const excluded =
    selection.train.length - trainPool.length + selection.test.length - test.length + (valSet ? valSet.labels.length - val.length : 0)
  if (train.length === 0) throw new DataError('DATA_EMPTY', `no training images left after limits and splits (valSplit ${config.valSplit})`)
  const normalization = normalizationFor(config, trainSet, train)
  return {
    classes: trainSet.classes,
    multiLabel,
    normalization,
    trainSet,
    valSet: valSet ?? trainSet,
    testSet: testSet ?? trainSet,
    train,
    val,
    test,
    trainCount: train.length,
    stream: null,
    valStream: null,
    dataPath,
    skipped,
    excluded,
  }
}

/**
 * Shards: resident when they fit the memory budget (then split like any other data), else streamed, with
 * validation and test as whole shards held out (or `testData`).
 */
async function prepareShards(config: ResolvedTrainOptions, signal: AbortSignal | undefined, why?: string): Promise<TrainData> {
  const all = await describeShardSource(config.data, { signal })
  const channels = all.imageShape?.[0] === 1 ? 1 : 3
  const read = { size: config.size, channels, seed: config.seed, skipBadImages: config.skipBadImages, signal } as const
  const choice = chooseDataPath(all.total, [channels, ...config.size], {
    budgetBytes: budgetBytes(config),
    stream: config.stream === 'auto' ? undefined : config.stream === 'always',
  })
  const given = config.testData !== null ? await readTestData(config, signal, 0) : undefined
  if (!choice.stream) {
    const trainSet = await readShardImages(all, read)
    const selection = selectImages(trainSet.labels.length, given?.set.labels.length, selectOptions(config, trainSet.labels))
    return residentSplits(
      config,
      trainSet,
      given?.set,
      selection,
      [...trainSet.skipped, ...(given?.skipped ?? [])],
      choice.reason,
      undefined,
      await exclusionsOf(config),
    )
  }
  checkStreamable(config)
  // Whole shards held out, seeded: a streamed run cannot pick single images out of a shard without reading it all.
  const order = Array.from(shuffle(range(all.files.length), deriveSeed(config.seed, 0x7e57)))
  const testShards = given ? [] : order.splice(0, Math.max(1, Math.round(all.files.length * config.testSplit)))
  const valShards = config.valSplit > 0 ? order.splice(0, Math.max(1, Math.round(order.length * config.valSplit))) : []
  if (order.length === 0) {
    throw new DataError(
      'DATA_EMPTY',
      `${all.files.length} shard(s) cannot give whole shards to ${[given ? '' : 'test', valShards.length ? 'validation' : ''].filter(Boolean).join(' and ')} and still train; ` +
        'write more, smaller shards (convkit shard --per-shard), pass testData, or set valSplit 0',
    )
  }
  const trainShards = subsetShards(
    all,
    order.sort((a, b) => a - b),
  )
  const heldTest = given ? undefined : await readShardImages(subsetShards(all, testShards), read)
  const testSet = given?.set ?? heldTest!
  // Validation is streamed like training: it is as large as its share of data that does not fit.
  const valStream = valShards.length > 0 ? subsetShards(all, valShards) : null
  // At most 1/32 of the memory budget and 128 MiB (held twice: in JavaScript and natively), so that large images do
  // not make the sample itself too large: 850 images at 224 px, 2048 (STREAM_SAMPLE) at CIFAR's 32.
  const perImage = channels * config.size[0] * config.size[1]
  const sampleCap = Math.max(64, Math.floor(Math.min((budgetBytes(config) ?? os.totalmem() / 2) / 32, SAMPLE_BYTES_MAX) / perImage))
  const sample = await readShardImages(trainShards, { ...read, limit: Math.min(Math.max(STREAM_SAMPLE, config.whiten), sampleCap) })
  checkSameClasses(sample, testSet)
  const train = range(sample.labels.length)
  const test = limitIndices(range(testSet.labels.length), config.limitTest ?? undefined, deriveSeed(config.seed, 0x2))
  const trainCount = Math.min(trainShards.total, config.limitTrain ?? Number.POSITIVE_INFINITY)
  const normalization = normalizationFor(config, sample, train)
  const skipped = [...sample.skipped, ...(given?.skipped ?? heldTest!.skipped)]
  const held = `${testShards.length ? `${testShards.length} test shard(s)` : ''}${testShards.length && valShards.length ? ' and ' : ''}${valShards.length ? `${valShards.length} validation shard(s)` : ''}`
  const reason = `${why ?? choice.reason}; ${trainShards.files.length} training shard(s)${held ? `, ${held} held out` : ''}`
  return {
    classes: all.classes,
    multiLabel: false,
    normalization,
    trainSet: sample,
    valSet: sample,
    testSet,
    train,
    val: new Int32Array(0),
    test,
    trainCount,
    stream: trainShards,
    valStream,
    dataPath: reason,
    skipped,
    excluded: 0,
  }
}

/**
 * `testData`: a shard source read whole, or anything `loadData` reads (its test split when it has one). Image
 * folders decode only the `limitTest` images the run tests on (as `selectImages` picks them out of the whole set);
 * `dataBytes`, what the data decoded, counts towards the memory check made before that.
 */
async function readTestData(
  config: ResolvedTrainOptions,
  signal: AbortSignal | undefined,
  dataBytes: number,
): Promise<{ set: ImageSet; skipped: string[] }> {
  const source = config.testData!
  if (isShardSource(source)) {
    const set = await describeShardSource(source, { signal })
    const images = await readShardImages(set, {
      size: config.size,
      channels: set.imageShape?.[0] === 1 ? 1 : 3,
      seed: config.seed,
      skipBadImages: config.skipBadImages,
      signal,
    })
    return { set: images, skipped: images.skipped }
  }
  const pick = (listed: ListedImages): ImagePicks => {
    const count = listed.test ?? listed.train
    const test = selectImages(0, count, selectOptions(config)).test
    const perImage = listed.shape.reduce((a, b) => a * b, 1)
    checkFits([{ count: test.length, shape: listed.shape }], dataBytes + perImage * test.length)
    // Only test images: a label file's validation rows are not decoded for it.
    const none = new Int32Array(0)
    return { ...(listed.test === undefined ? { train: test } : { train: none, test }), ...(listed.val === undefined ? {} : { val: none }) }
  }
  const loaded = await loadData(source, {
    size: config.size,
    cacheDir: config.cacheDir ?? undefined,
    skipBadImages: config.skipBadImages,
    quiet: config.quiet,
    signal,
    pick,
    ...labelFileOptionsOf(config),
  })
  return { set: loaded.test ?? loaded.train, skipped: loaded.skipped ?? [] }
}

/** `set` with `targets`: its own, or a one-hot row per image from its labels. */
function multiHot(set: ImageSet): ImageSet {
  if (set.targets) return set
  const k = set.classes.length
  const targets = new Uint8Array(set.labels.length * k)
  set.labels.forEach((label, i) => (targets[i * k + label] = 1))
  return { ...set, targets }
}

function checkSameClasses(train: ImageSet, test: ImageSet): void {
  if (train.classes.join('\n') !== test.classes.join('\n')) {
    throw new DataError(
      'DATA_CORRUPT',
      `the training classes (${train.classes.join(', ')}) differ from the test classes (${test.classes.join(', ')})`,
    )
  }
}

/** The normalization `config.normalize` names: fixed statistics, the data's own, or the pretrained weights'. */
function normalizationFor(config: ResolvedTrainOptions, set: ImageSet, train: Int32Array): Normalization {
  switch (config.normalize) {
    case 'dataset':
      return datasetNormalization(set, train)
    case 'half':
      return halfNormalization(set.shape[0])
    case 'weights': {
      // Named weights say how their inputs were normalized; weights from a file are taken to be torchvision's.
      const p = config.pretrained ? pretrainedWeights(config.pretrained)?.preprocessing : undefined
      return p ? { mean: [...p.mean], std: [...p.std] } : (structuredClone(NAMED_NORMALIZATIONS.imagenet) as Normalization)
    }
    default:
      return structuredClone(NAMED_NORMALIZATIONS[config.normalize]) as Normalization
  }
}

/** Fails before anything large is copied when the resident data would not fit in memory (it lives in JavaScript and natively). */
export function checkMemory(data: TrainData): void {
  const sets = [...new Set([data.trainSet, data.valSet, data.testSet])]
  checkFits(
    sets.map((s) => ({ count: s.labels.length, shape: s.shape })),
    sets.reduce((a, s) => a + s.pixels.length, 0),
  )
}

/**
 * Fails when images of these shapes (`bytes` in all, decoded) would not fit: a set larger than one typed array holds,
 * or more resident than the machine's memory (the images are held in JavaScript and on the device). Image folders
 * call it with what they listed, before decoding anything; other data once read.
 */
function checkFits(sets: { count: number; shape: readonly number[] }[], bytes: number): void {
  const detail = sets.map((s) => `${s.count} images × ${s.shape.join('×')} bytes`).join(' + ')
  const advice = 'use --limit-train/--limit-test, a smaller --size, or write shards (convkit shard) to stream it'
  for (const s of sets) checkDecodable(s.count, s.shape, undefined, advice)
  const need = 2 * bytes
  if (need > os.totalmem() * 0.9) {
    throw new DataError(
      'DATA_TOO_LARGE',
      `the dataset needs ${formatGB(need)} resident (${detail}, held in JavaScript and on the device), more than this machine's ${formatGB(os.totalmem())}; ${advice}`,
    )
  }
}
