// An image folder too large to hold decoded in memory, written once into the dataset cache as tar shards (of its
// images decoded at the run's size, or of their original bytes), so that training streams it exactly as it streams
// shards written by `convkit shard` (shuffling, augmentation, resume and data parallelism included). Keyed by the
// folder's content (and the size and decoder), like decoded folders.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { tempPathFor } from '../../util/atomic-write.ts'
import { cacheMaxBytes, diskUsage, pinForProcess, recordCacheUse } from '../cache-index.ts'
import { datasetCacheDir } from '../cache-dir.ts'
import { hashFolder } from '../content-hash.ts'
import { DECODER, listCachedFolder } from '../decoded-cache.ts'
import { DataError } from '../../errors.ts'
import { formatBytes } from '../../util/progress.ts'
import { indexPathFor } from './brace-pattern.ts'
import { writeShards } from './write-shards.ts'

/**
 * Samples per shard: about 20 shards (validation and test are held out as whole shards, so 5 % steps), between 100
 * and 2 000 samples each (a shard is read whole when it is held out).
 */
function perShard(count: number): number {
  return Math.min(2000, Math.max(100, Math.ceil(count / 20)))
}
/** Bytes of tar headers and the label entry beside each decoded image. */
const SAMPLE_OVERHEAD = 1536
/** The file name pattern of the shards inside their cache folder. */
const PATTERN = 'train-%06d.tar'

export interface FolderShardsOptions {
  /**
   * Store the images decoded at this size rather than as their original bytes, where that fits the cache's limit. A
   * stream then copies pixels: decoding (and resizing) every image in every epoch took longer than Lite0's
   * frozen-body training steps on 2 cores.
   */
  decode?: { size: [number, number]; channels: 1 | 3; skipBadImages?: boolean }
  cacheDir?: string
  cacheMaxBytes?: number
  quiet?: boolean
  signal?: AbortSignal
}

export interface FolderShards {
  /** The shards' index file: a data source for `openShards`/`describeShardSource`. */
  index: string
  /** Whether this call wrote them (false: found in the cache). */
  wrote: boolean
  bytes: number
  /**
   * Whether the shards hold decoded pixels; false where `decode` was asked but they would not fit the cache's limit
   * (`decodedBytes` says how large they would be).
   */
  decoded: boolean
  decodedBytes: number
  /** Images left out as undecodable while writing (with `decode.skipBadImages`; empty when found in the cache). */
  skipped: string[]
}

/** Folders this process has warned about: one warning each. */
const warned = new Set<string>()

/**
 * The shards of the image folder `root` (`root/<class>/*`) in the dataset cache, written on first use. A changed
 * image changes the key, so stale shards are never read. They count toward the cache's limit like decoded folders;
 * shards larger than the whole limit are kept for this run and said once to be evicted by the next write.
 *
 * @example
 * const { index } = await cachedFolderShards('photos/train') // then describeShardSource(index)
 */
export async function cachedFolderShards(root: string, options: FolderShardsOptions = {}): Promise<FolderShards> {
  const absRoot = path.resolve(root)
  const dir = datasetCacheDir(options.cacheDir)
  const listing = listCachedFolder(absRoot)
  if (!listing)
    throw new DataError('DATA_EMPTY', `image folder ${absRoot} has no class folders with images to write as shards`, { files: [absRoot] })
  const { digest } = await hashFolder(dir, absRoot, listing.folder)
  const maxBytes = cacheMaxBytes(options.cacheMaxBytes)
  // Decoded pixels can be far larger than the files (CIFAR's 1.5 KB JPEGs take 150 KB each at 224 px): they are stored
  // only where they fit the cache's limit, the disk its user set aside for it; else the original bytes are.
  const decodedBytes = options.decode
    ? listing.files.length * (options.decode.channels * options.decode.size[0] * options.decode.size[1] + SAMPLE_OVERHEAD)
    : 0
  const decode = options.decode && decodedBytes <= maxBytes ? options.decode : undefined
  const decodedAs = decode
    ? `-${decode.channels}x${decode.size.join('x')}-${createHash('sha256').update(DECODER).digest('hex').slice(0, 8)}`
    : ''
  const folder = path.join(dir, 'shards', `${path.basename(absRoot)}-${digest.slice(0, 16)}${decodedAs}`)
  const index = indexPathFor(path.join(folder, PATTERN))
  const wrote = !fs.existsSync(index)
  const skipped: string[] = []
  if (wrote) {
    // Written beside its final place and renamed whole: a crash leaves no half set of shards under the key.
    const staging = tempPathFor(folder, 'partial')
    await fsp.mkdir(path.dirname(folder), { recursive: true })
    try {
      const result = await writeShards(absRoot, path.join(staging, PATTERN), {
        perShard: perShard(listing.files.length),
        seed: 0,
        decode,
        quiet: options.quiet,
        signal: options.signal,
      })
      for (const bad of result.skipped) skipped.push(`${bad.file} (${bad.reason})`)
      await fsp.rename(staging, folder).catch(async (err: NodeJS.ErrnoException) => {
        // Another process finished the same shards first: theirs are as good.
        if (!fs.existsSync(index)) throw err
      })
    } finally {
      await fsp.rm(staging, { recursive: true, force: true })
    }
  }
  const bytes = await diskUsage(folder)
  // Pinned first: the write that records them, and any other of this process, must not evict what the run streams.
  await recordCacheUse(dir, [{ file: folder, kind: 'shards', source: absRoot, bytes }], { maxBytes })
  await pinForProcess([folder], dir)
  if (wrote) await recordCacheUse(dir, [], { wrote, maxBytes })
  if (bytes > maxBytes && !warned.has(folder)) {
    warned.add(folder)
    process.emitWarning(
      `convkit: the shards of ${absRoot} (${formatBytes(bytes)}) are larger than the dataset cache's limit of ${formatBytes(maxBytes)}: ` +
        'they serve this run, and the next write to the cache evicts them; raise the limit (CONVKIT_CACHE_MAX=20G, or cacheMaxBytes) ' +
        'or use a cache folder on a larger disk (--cache-dir) to keep them',
      { code: 'CONVKIT_CACHE_TOO_SMALL' },
    )
  }
  return { index, wrote, bytes, decoded: decode !== undefined, decodedBytes, skipped }
}
