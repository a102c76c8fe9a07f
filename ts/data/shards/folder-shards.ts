// An image folder too large to hold decoded in memory, written once into the dataset cache as tar shards of its
// original bytes, so that training streams it exactly as it streams shards written by `convkit shard` (shuffling,
// augmentation, resume and data parallelism included). Keyed by the folder's content, like decoded folders.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { tempPathFor } from '../../util/atomic-write.ts'
import { cacheMaxBytes, diskUsage, pinForProcess, recordCacheUse } from '../cache-index.ts'
import { datasetCacheDir } from '../cache-dir.ts'
import { hashFolder } from '../content-hash.ts'
import { listCachedFolder } from '../decoded-cache.ts'
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
/** The file name pattern of the shards inside their cache folder. */
const PATTERN = 'train-%06d.tar'

export interface FolderShardsOptions {
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
  const folder = path.join(dir, 'shards', `${path.basename(absRoot)}-${digest.slice(0, 16)}`)
  const index = indexPathFor(path.join(folder, PATTERN))
  const maxBytes = cacheMaxBytes(options.cacheMaxBytes)
  const wrote = !fs.existsSync(index)
  if (wrote) {
    // Written beside its final place and renamed whole: a crash leaves no half set of shards under the key.
    const staging = tempPathFor(folder, 'partial')
    await fsp.mkdir(path.dirname(folder), { recursive: true })
    try {
      await writeShards(absRoot, path.join(staging, PATTERN), {
        perShard: perShard(listing.files.length),
        seed: 0,
        quiet: options.quiet,
        signal: options.signal,
      })
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
  return { index, wrote, bytes }
}
