// Streams training batches from WebDataset-style tar shards: each rank reads its shards sequentially, a shuffle
// buffer mixes samples, and batches are decoded ahead of the consumer with bounded memory.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { CancelledError, DataError, InputError } from '../../errors.ts'
import { IMAGE_EXTENSIONS } from '../image-folder.ts'
import { deriveSeed, prng, range, shuffle } from '../split.ts'
import { expandBraces, indexPathFor } from './brace-pattern.ts'
import { BufferPool } from './buffer-pool.ts'
import { BatchDecoder, RAW_PIXELS_EXT, type EncodedSample, type SkippedSample } from './shard-decode.ts'
import { readTarChunks } from './tar-reader.ts'
import type { ShardIndex } from './write-shards.ts'

export type { SkippedSample } from './shard-decode.ts'

/** Extensions (after the key's first dot) read as a sample's image. */
const IMAGE_EXTS = new Set([...IMAGE_EXTENSIONS.map((e) => e.slice(1)), RAW_PIXELS_EXT])

/** What is known about a set of shards before reading them. */
export interface ShardSet {
  /** The shard files, in pattern order. */
  files: string[]
  /** Samples in each shard, in `files` order. */
  counts: number[]
  /** All samples. */
  total: number
  /** Class names from the index; else `class 0`, `class 1`, … up to the largest label seen. */
  classes: string[]
  /** `[C, H, W]` of the stored images when they all share one (from the index), else null. */
  imageShape: [number, number, number] | null
  /** The index file used, or null when the shards were scanned. */
  index: string | null
}

export interface ShardStreamOptions {
  /** `[height, width]` every image is decoded to. Defaults to `[32, 32]`. */
  size?: [number, number]
  /** 3 (RGB) or 1 (grayscale). Defaults to 3. */
  channels?: 1 | 3
  /** Samples per batch. Defaults to 128. */
  batchSize?: number
  /**
   * Samples held in the shuffle buffer (as stored, so a few KB each for small JPEGs; at most 256 MiB of them); 0 or 1
   * keeps the shards' order. Defaults to 5000.
   */
  shuffleBuffer?: number
  /** Seeds the shard order and the shuffle buffer. Defaults to 0. */
  seed?: number
  /** The epoch; with `seed` it fixes this epoch's order, different from every other epoch's. Defaults to 0. */
  epoch?: number
  /** This process's rank under data parallelism. Defaults to 0. */
  rank?: number
  /** Processes sharing the data; rank r reads the shards at positions r, r + worldSize, … of the epoch's order. Defaults to 1. */
  worldSize?: number
  /** Threads decoding JPEGs natively (and sharp decodes in flight, twice this). Defaults to one per core. */
  decodeThreads?: number
  /** Batches decoded (or decoding) ahead of the consumer. Defaults to 2. */
  prefetch?: number
  /** Leave out the last, partial batch. Defaults to false. */
  dropLast?: boolean
  /**
   * Every rank yields the same number of batches (the smallest rank's), as data-parallel steps must; the surplus
   * samples of larger ranks are left out of this epoch (a different surplus each epoch). Defaults to `worldSize > 1`.
   */
  evenRanks?: boolean
  /** Stop after this many batches (a fractional last epoch). Defaults to all. */
  maxBatches?: number
  /** Skip samples whose image cannot be decoded (listed in `skipped`) instead of failing. Defaults to false. */
  skipBadImages?: boolean
  /** Bytes per sequential read. Defaults to 1 MiB. */
  readBytes?: number
  /** Cancels reading and decoding; the iteration then throws a CancelledError. */
  signal?: AbortSignal
}

/** One batch: `count` images `[N, C, H, W]` as uint8 and their labels. */
export interface ShardBatch {
  pixels: Uint8Array
  labels: Int32Array
  /** The samples' keys, for tracing a batch back to its shard entries. */
  keys: string[]
  count: number
  shape: [number, number, number]
  /** 0-based batch number within this stream. */
  index: number
}

/** An epoch's batches for one rank. Iterate it once; breaking out of the loop closes it. */
export interface ShardStream extends AsyncIterable<ShardBatch> {
  readonly set: ShardSet
  /** This rank's shards, in the order this epoch reads them. */
  readonly shards: readonly string[]
  /** Samples in this rank's shards. */
  readonly samples: number
  /** Batches this stream yields (after `dropLast`, `evenRanks` and `maxBatches`). */
  readonly batches: number
  /** Samples skipped so far (with `skipBadImages`). */
  readonly skipped: readonly SkippedSample[]
  /** Stops reading and decoding and releases files; safe to call more than once. */
  close(): Promise<void>
}

/** The most bytes of samples the shuffle buffer holds, on average. */
const SHUFFLE_BUFFER_BYTES = 256 * 2 ** 20

/** The shards' bytes per sample (tar headers and label entries included); 0 when they cannot be read. */
function meanSampleBytes(set: ShardSet): number {
  let bytes = 0
  for (const file of set.files) bytes += fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0
  return set.total > 0 ? bytes / set.total : 0
}

function option(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback
  if (!Number.isInteger(v) || v < min) throw new InputError('INVALID_OPTION', `option ${name}: expected an integer >= ${min}, got ${value}`)
  return v
}

/** A sample's key and extension, as WebDataset splits them: the key is the path up to the first dot of the file name. */
export function splitSampleName(name: string): { key: string; ext: string } {
  const slash = name.lastIndexOf('/')
  const dot = name.indexOf('.', slash + 1)
  return dot < 0 ? { key: name, ext: '' } : { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() }
}

function parseLabel(data: Buffer, shard: string, key: string, classes: number | undefined): number {
  const text = data.toString('utf8').trim()
  const label = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isSafeInteger(label))
    throw new DataError(
      'DATA_CORRUPT',
      `shard ${shard}: sample ${key}: ${key}.cls holds ${JSON.stringify(text.slice(0, 40))}, expected a class index (a non-negative integer)`,
      { files: [shard] },
    )
  if (classes !== undefined && label >= classes) {
    throw new DataError(
      'DATA_CORRUPT',
      `shard ${shard}: sample ${key}: class index ${label} is out of range for the ${classes} classes of the shard index`,
      { files: [shard] },
    )
  }
  return label
}

/**
 * The samples of one shard, in order: consecutive entries sharing a key make one sample, which needs one image
 * (`.jpg`, `.png`, … as sharp reads) and a `.cls`; other entries (`.json`, `.txt`, …) are ignored.
 */
export async function* readShardSamples(
  shard: string,
  options: { classes?: number; readBytes?: number; signal?: AbortSignal } = {},
): AsyncGenerator<EncodedSample> {
  for await (const samples of readShardSampleChunks(shard, options)) yield* samples
}

/** `readShardSamples` by the read, as `readTarChunks` gives the entries. */
async function* readShardSampleChunks(
  shard: string,
  options: { classes?: number; readBytes?: number; signal?: AbortSignal; pool?: BufferPool },
): AsyncGenerator<EncodedSample[]> {
  type Partial = { key: string; ext?: string; data?: Buffer; label?: number }
  const finish = (p: Partial): EncodedSample => {
    if (p.data === undefined) {
      throw new DataError(
        'DATA_CORRUPT',
        `shard ${shard}: sample ${p.key} has no image (expected ${p.key}.jpg, .png or another of ${[...IMAGE_EXTS].join(', ')})`,
        { files: [shard] },
      )
    }
    if (p.label === undefined)
      throw new DataError(
        'DATA_CORRUPT',
        `shard ${shard}: sample ${p.key} has no .cls entry (expected ${p.key}.cls with its class index beside ${p.key}.${p.ext})`,
        { files: [shard] },
      )
    return { key: p.key, ext: p.ext!, data: p.data, label: p.label, shard }
  }
  let current: Partial | undefined
  for await (const entries of readTarChunks(shard, { chunkBytes: options.readBytes, signal: options.signal, pool: options.pool })) {
    const done: EncodedSample[] = []
    for (const entry of entries) {
      const { key, ext } = splitSampleName(entry.name)
      if (current && current.key !== key) {
        done.push(finish(current))
        current = undefined
      }
      current ??= { key }
      if (ext === 'cls') current.label = parseLabel(entry.data, shard, key, options.classes)
      else if (IMAGE_EXTS.has(ext)) {
        if (current.data !== undefined)
          throw new DataError(
            'DATA_CORRUPT',
            `shard ${shard}: sample ${key} has two images (${key}.${current.ext} and ${entry.name}); expected one`,
            { files: [shard] },
          )
        current.data = entry.data
        current.ext = ext
      }
    }
    if (done.length > 0) yield done
  }
  if (current) yield [finish(current)]
}

export function readIndex(file: string): ShardIndex | undefined {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  try {
    const index = JSON.parse(text) as ShardIndex
    return index.format === 'convkit-shards' && Array.isArray(index.shards) && Array.isArray(index.classes) ? index : undefined
  } catch {
    process.emitWarning(`convkit: the shard index ${file} is not valid JSON; scanning the shards instead`)
    return undefined
  }
}

/**
 * Expands `pattern` (see `expandBraces`), checks that every shard exists, and finds how many samples each holds:
 * from the index beside them (`<stem>.shards.json`, written by `writeShards`) for every shard whose size matches
 * it, otherwise by reading the shard once. Missing shards are one DataError listing them.
 *
 * @example
 * const set = await describeShards('shards/train-{000000..000019}.tar') // { files, counts, total, classes, ... }
 */
export async function describeShards(pattern: string | readonly string[], options: { signal?: AbortSignal } = {}): Promise<ShardSet> {
  const files = typeof pattern === 'string' ? expandBraces(pattern) : [...pattern]
  if (files.length === 0) throw new InputError('INVALID_OPTION', 'shards: expected at least one shard file')
  const sizes = await Promise.all(
    files.map((f) =>
      fsp.stat(f).then(
        (s) => (s.isFile() ? s.size : -1),
        () => -1,
      ),
    ),
  )
  const missing = files.filter((_, i) => sizes[i]! < 0)
  if (missing.length > 0) {
    const shown = missing.slice(0, 3).join(', ') + (missing.length > 3 ? ` and ${missing.length - 3} more` : '')
    const from = typeof pattern === 'string' ? ` (from the pattern ${pattern})` : ''
    throw new DataError('DATA_NOT_FOUND', `${missing.length} of ${files.length} shard file(s) do not exist${from}: ${shown}`, {
      files: missing,
    })
  }
  const indexFile = typeof pattern === 'string' ? indexPathFor(pattern) : indexPathFor(files[0]!)
  const index = readIndex(indexFile)
  const known = new Map((index?.shards ?? []).map((s) => [s.file, s]))
  const counts: number[] = []
  let maxLabel = -1
  let scanned = 0
  for (const [i, file] of files.entries()) {
    const entry = known.get(path.basename(file))
    if (entry && entry.bytes === sizes[i] && path.dirname(path.resolve(file)) === path.dirname(path.resolve(indexFile))) {
      counts.push(entry.count)
      continue
    }
    let n = 0
    for await (const sample of readShardSamples(file, { signal: options.signal })) {
      n++
      if (sample.label > maxLabel) maxLabel = sample.label
    }
    counts.push(n)
    scanned++
  }
  const classes =
    index && scanned === 0
      ? index.classes
      : Array.from({ length: Math.max(maxLabel + 1, index?.classes.length ?? 0) }, (_, k) => index?.classes[k] ?? `class ${k}`)
  return {
    files,
    counts,
    total: counts.reduce((a, b) => a + b, 0),
    classes,
    imageShape: index && scanned === 0 ? index.imageShape : null,
    index: index && scanned < files.length ? indexFile : null,
  }
}

/**
 * This epoch's shards for each rank: the shard list shuffled by (seed, epoch) identically on every rank, then
 * position i going to rank i % worldSize, as PyTorch's DistributedSampler does with samples. Ranks are disjoint and
 * together cover every shard.
 */
export function assignShards(
  shardCount: number,
  options: { seed?: number; epoch?: number; rank?: number; worldSize?: number } = {},
): number[] {
  const worldSize = options.worldSize ?? 1
  const rank = options.rank ?? 0
  const order = shuffle(range(shardCount), deriveSeed(options.seed ?? 0, options.epoch ?? 0, 0x5a4d))
  return Array.from(order).filter((_, i) => i % worldSize === rank)
}

/**
 * Batches one rank's stream yields in an epoch (before `maxBatches`): known before reading, from the shards'
 * counts, so a schedule can plan its steps. With `evenRanks`, the smallest rank's count.
 */
export function epochBatches(
  set: Pick<ShardSet, 'files' | 'counts'>,
  options: { batchSize: number; dropLast?: boolean; seed?: number; epoch?: number; rank?: number; worldSize?: number; evenRanks?: boolean },
): number {
  const worldSize = options.worldSize ?? 1
  const batchesOf = (n: number) => (options.dropLast ? Math.floor(n / options.batchSize) : Math.ceil(n / options.batchSize))
  const samplesOf = (rank: number) =>
    assignShards(set.files.length, { ...options, rank, worldSize }).reduce((a, i) => a + set.counts[i]!, 0)
  if (options.evenRanks ?? worldSize > 1) return Math.min(...Array.from({ length: worldSize }, (_, r) => batchesOf(samplesOf(r))))
  return batchesOf(samplesOf(options.rank ?? 0))
}

/**
 * Emits items in a random order drawn from a window of `size` (WebDataset's `shuffle(n)`), taking and giving them
 * in arrays so that an item costs no promise of its own.
 */
async function* shuffled<T>(source: AsyncIterable<T[]>, size: number, rand: () => number): AsyncGenerator<T[]> {
  if (size <= 1) {
    yield* source
    return
  }
  const buffer: T[] = []
  for await (const items of source) {
    const out: T[] = []
    for (const item of items) {
      if (buffer.length < size) {
        buffer.push(item)
        continue
      }
      const j = Math.floor(rand() * size)
      out.push(buffer[j]!)
      buffer[j] = item
    }
    if (out.length > 0) yield out
  }
  const out: T[] = []
  while (buffer.length > 0) {
    const j = Math.floor(rand() * buffer.length)
    out.push(buffer[j]!)
    buffer[j] = buffer[buffer.length - 1]!
    buffer.pop()
  }
  yield out
}

/**
 * Opens one epoch of batches from tar shards for one rank. Shards are read one after the other in big sequential
 * reads; samples pass a shuffle buffer of encoded bytes; batches are decoded (JPEGs natively, the rest with sharp)
 * while the consumer works on earlier ones, at most `prefetch` ahead, so memory stays at the shuffle buffer plus a
 * few batches whatever the data's size. Errors name the shard file and the sample key.
 *
 * @example
 * const stream = await openShards('shards/train-{000000..000019}.tar', { size: [32, 32], batchSize: 128, seed: 1, epoch })
 * for await (const batch of stream) await model.trainBatchPixels(batch.pixels, batch.labels, batch.shape)
 */
export async function openShards(pattern: string | readonly string[] | ShardSet, options: ShardStreamOptions = {}): Promise<ShardStream> {
  const size = options.size ?? [32, 32]
  if (!Array.isArray(size) || size.length !== 2 || !size.every((d) => Number.isInteger(d) && d > 0)) {
    throw new InputError(
      'INVALID_OPTION',
      `option size: expected [height, width] of positive integers, got ${JSON.stringify(options.size)}`,
    )
  }
  const channels = options.channels ?? 3
  if (channels !== 1 && channels !== 3)
    throw new InputError('INVALID_OPTION', `option channels: expected 1 or 3, got ${JSON.stringify(options.channels)}`)
  const batchSize = option('batchSize', options.batchSize, 128, 1)
  const shuffleBuffer = option('shuffleBuffer', options.shuffleBuffer, 5000, 0)
  const seed = option('seed', options.seed, 0, 0)
  const epoch = option('epoch', options.epoch, 0, 0)
  const worldSize = option('worldSize', options.worldSize, 1, 1)
  const rank = option('rank', options.rank, 0, 0)
  if (rank >= worldSize)
    throw new InputError('INVALID_OPTION', `option rank: expected 0..${worldSize - 1} for worldSize ${worldSize}, got ${rank}`)
  const threads = option('decodeThreads', options.decodeThreads, os.availableParallelism(), 1)
  const prefetch = option('prefetch', options.prefetch, 2, 1)
  const maxBatches = options.maxBatches === undefined ? Number.POSITIVE_INFINITY : option('maxBatches', options.maxBatches, 0, 0)
  const dropLast = options.dropLast ?? false
  const evenRanks = options.evenRanks ?? worldSize > 1
  const signal = options.signal
  if (signal?.aborted) throw new CancelledError('CANCELLED', 'shard stream: cancelled before it started', { cause: signal.reason })

  const set = isShardSet(pattern) ? pattern : await describeShards(pattern, { signal })
  // The buffer holds samples as stored: a few KB each for small JPEGs, but 150 KB each as decoded pixels at 224 px,
  // where 5 000 would hold 750 MB. So it holds at most SHUFFLE_BUFFER_BYTES of the shards' average sample.
  const bufferSamples =
    shuffleBuffer <= 1 ? shuffleBuffer : Math.min(shuffleBuffer, Math.max(2, Math.floor(SHUFFLE_BUFFER_BYTES / meanSampleBytes(set))))
  if (worldSize > set.files.length) {
    throw new InputError(
      'INVALID_OPTION',
      `option worldSize: ${worldSize} ranks need at least ${worldSize} shards, and there are ${set.files.length}; write more, smaller shards (convkit shard --per-shard)`,
    )
  }
  const mine = assignShards(set.files.length, { seed, epoch, rank, worldSize })
  const samples = mine.reduce((a, i) => a + set.counts[i]!, 0)
  const batches = Math.min(maxBatches, epochBatches(set, { batchSize, dropLast, seed, epoch, rank, worldSize, evenRanks }))
  const shards = mine.map((i) => set.files[i]!)
  const shape: [number, number, number] = [channels, size[0], size[1]]
  const classCount = set.index ? set.classes.length : undefined

  const decoder = new BatchDecoder({ size, channels, threads, skipBadImages: options.skipBadImages ?? false })
  const pool = new BufferPool()
  const skipped: SkippedSample[] = []
  const queue: Promise<ShardBatch>[] = []
  let closed = false
  let finished = false
  let failure: unknown
  let wakeProducer: (() => void) | undefined
  let wakeConsumer: (() => void) | undefined
  const wake = () => {
    wakeProducer?.()
    wakeConsumer?.()
    wakeProducer = wakeConsumer = undefined
  }
  // Aborting stops the producer, whose own reads also see the signal, and fails the consumer's next wait.
  const stop = new AbortController()
  const onAbort = () => {
    failure ??= new CancelledError('CANCELLED', 'shard stream: cancelled', { cause: signal?.reason })
    closed = true
    stop.abort()
    wake()
  }
  signal?.addEventListener('abort', onAbort, { once: true })

  async function* allSamples(): AsyncGenerator<EncodedSample[]> {
    for (const shard of shards)
      yield* readShardSampleChunks(shard, { classes: classCount, readBytes: options.readBytes, signal: stop.signal, pool })
  }

  let made = 0
  const push = async (group: EncodedSample[]) => {
    while (queue.length >= prefetch && !closed) await new Promise<void>((resolve) => (wakeProducer = resolve))
    if (closed) return
    const index = made++
    const decoded = decoder.decode(group).then((d) => {
      // The batch holds copies: the samples' buffers go back for the reads to come.
      for (const sample of group) pool.release(sample.data)
      skipped.push(...d.skipped)
      return { pixels: d.pixels, labels: d.labels, keys: d.keys, count: d.count, shape, index }
    })
    decoded.catch(() => {}) // awaited by the consumer; this only keeps an early failure from being "unhandled"
    queue.push(decoded)
    wakeConsumer?.()
    wakeConsumer = undefined
  }

  // Started by the first next(): a stream that is opened and never iterated reads nothing.
  let producer: Promise<void> | undefined
  const produce = async () => {
    try {
      if (batches === 0) return
      let group: EncodedSample[] = []
      reading: for await (const samples of shuffled(allSamples(), bufferSamples, prng(deriveSeed(seed, epoch, rank, 0x5b)))) {
        for (const sample of samples) {
          group.push(sample)
          if (group.length === batchSize) {
            await push(group)
            group = []
            if (closed || made >= batches) break reading
          }
        }
      }
      if (group.length > 0 && !closed && made < batches) await push(group)
    } catch (err) {
      // After close() the reads fail with "cancelled" on purpose; that is no failure to report.
      if (!closed) failure ??= err
    } finally {
      finished = true
      wake()
    }
  }

  const close = async () => {
    if (!closed) {
      closed = true
      stop.abort()
      wake()
    }
    signal?.removeEventListener('abort', onAbort)
    await producer
    await Promise.allSettled(queue)
    queue.length = 0
  }

  const iterator: AsyncIterator<ShardBatch> = {
    async next(): Promise<IteratorResult<ShardBatch>> {
      if (!producer && !closed) producer = produce()
      for (;;) {
        if (failure !== undefined && (queue.length === 0 || closed)) {
          await close()
          throw failure
        }
        if (queue.length > 0 && !closed) {
          const head = queue.shift()!
          wakeProducer?.()
          wakeProducer = undefined
          let batch: ShardBatch
          try {
            batch = await head
          } catch (err) {
            // A batch that failed to decode ends the stream; later batches are not handed out after it.
            failure ??= err
            await close()
            throw failure
          }
          return { value: batch, done: false }
        }
        if (finished || closed) {
          await close()
          return { value: undefined, done: true }
        }
        await new Promise<void>((resolve) => (wakeConsumer = resolve))
      }
    },
    async return(): Promise<IteratorResult<ShardBatch>> {
      await close()
      return { value: undefined, done: true }
    },
  }

  let iterated = false
  return {
    set,
    shards,
    samples,
    batches,
    skipped,
    close,
    [Symbol.asyncIterator]() {
      if (iterated) throw new InputError('INVALID_OPTION', 'shard stream: already iterated; open another one for the next epoch')
      iterated = true
      return iterator
    },
  }
}

function isShardSet(value: unknown): value is ShardSet {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'files' in value && 'counts' in value
}
