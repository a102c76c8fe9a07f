// Shards as a training data source: recognizing a shard pattern among `data`'s other forms, reading shards into
// memory when they fit, and cutting whole shards out of a set for validation and test when they are streamed.
import fs from 'node:fs'
import path from 'node:path'
import { DataError } from '../../errors.ts'
import type { ImageSet } from '../image-set.ts'
import { indexPathFor } from './brace-pattern.ts'
import { describeShards, openShards, readIndex, type ShardSet } from './shard-stream.ts'

/** A brace group such as `{000000..000019}` or `{a,b}`. */
const BRACES = /\{[^{}]*(\.\.|,)[^{}]*\}/

/**
 * True when `source` names tar shards: a brace pattern of `.tar` files, a `.shards.json` index, or one `.tar` with an
 * index beside it (a `.tar` without one is an archive of an image folder).
 */
export function isShardSource(source: string): boolean {
  if (source.endsWith('.shards.json')) return true
  if (!/\.tar$/i.test(source)) return false
  return BRACES.test(source) || fs.existsSync(indexPathFor(source))
}

/** The shard set `source` names; an index file stands for the pattern it records (relative to the index's folder). */
export async function describeShardSource(source: string, options: { signal?: AbortSignal } = {}): Promise<ShardSet> {
  if (!source.endsWith('.shards.json')) return describeShards(source, options)
  const index = readIndex(source)
  if (!index)
    throw new DataError(
      'DATA_CORRUPT',
      `${source} is not a shard index (expected the JSON that convkit shard writes, with format 'convkit-shards')`,
      { files: [source] },
    )
  return describeShards(path.join(path.dirname(source), index.pattern), options)
}

/** The shards at `positions` of `set`, as a set of their own. */
export function subsetShards(set: ShardSet, positions: readonly number[]): ShardSet {
  const counts = positions.map((i) => set.counts[i]!)
  return { ...set, files: positions.map((i) => set.files[i]!), counts, total: counts.reduce((a, b) => a + b, 0) }
}

export interface ReadShardImagesOptions {
  size: [number, number]
  channels: 1 | 3
  /** Read only this many samples (from the shuffle buffer's seeded mix, not the first shard alone). */
  limit?: number
  seed?: number
  skipBadImages?: boolean
  signal?: AbortSignal
}

/**
 * Decodes shards into one resident ImageSet (`files` are the samples' keys). With `limit`,
 * a seeded sample of that many images drawn through the shuffle buffer.
 */
export async function readShardImages(set: ShardSet, options: ReadShardImagesOptions): Promise<ImageSet & { skipped: string[] }> {
  const total = Math.min(options.limit ?? set.total, set.total)
  const shape: [number, number, number] = [options.channels, options.size[0], options.size[1]]
  const per = shape[0] * shape[1] * shape[2]
  const batchSize = 1024
  const stream = await openShards(set, {
    size: options.size,
    channels: options.channels,
    batchSize,
    // The whole set keeps the shards' order; a sample mixes shards so it is no one shard's images.
    shuffleBuffer: total < set.total ? 5000 : 0,
    seed: options.seed ?? 0,
    maxBatches: Math.ceil(total / batchSize),
    evenRanks: false,
    skipBadImages: options.skipBadImages,
    signal: options.signal,
  })
  const pixels = new Uint8Array(total * per)
  const labels = new Int32Array(total)
  const files: string[] = []
  let n = 0
  for await (const batch of stream) {
    const take = Math.min(batch.count, total - n)
    pixels.set(batch.pixels.subarray(0, take * per), n * per)
    labels.set(batch.labels.subarray(0, take), n)
    files.push(...batch.keys.slice(0, take))
    n += take
    if (n === total) break
  }
  const skipped = stream.skipped.map((s) => `${s.shard}:${s.key}`)
  return {
    pixels: n < total ? pixels.slice(0, n * per) : pixels,
    labels: n < total ? labels.slice(0, n) : labels,
    shape,
    classes: set.classes,
    files,
    skipped,
  }
}
