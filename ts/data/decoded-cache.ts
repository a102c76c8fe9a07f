// Decodes an image folder once and keeps the uint8 result in one binary file keyed by the images' content, so later
// runs (from this path or any copy) skip decoding.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import sharp from 'sharp'
import { ProgressBar, formatBytes } from '../util/progress.ts'
import { datasetCacheDir } from './cache-dir.ts'
import { cacheMaxBytes, diskUsage, recordCacheUse, withPinned, type CacheUse } from './cache-index.ts'
import { hashFolder, labelledDigest, pushStat, subsetDigest, type FolderStats } from './content-hash.ts'
import {
  checkDecodable,
  decodeListed,
  entryKind,
  IMAGE_EXTENSIONS,
  readImageFolder,
  type ImageFolderOptions,
  type ImageFolderResult,
} from './image-folder.ts'
import { decodeJpegsNatively } from './native-jpeg.ts'
import { decodeInProcesses } from './parallel-decode.ts'
import { writeAtomicWith } from '../util/atomic-write.ts'

export interface CachedImageFolderOptions extends ImageFolderOptions {
  /** Folder the decoded cache goes in (under `decoded/`). Defaults to `~/.cache/convkit/datasets` (see `datasetCacheDir`). */
  cacheDir?: string
  /**
   * Child processes that share a fresh decode. Defaults to one per core (`os.availableParallelism()`), used only for
   * folders of 2 000 images or more, where it pays for starting them; 1 decodes in this process.
   */
  processes?: number
  /** Draw no decode progress bar. Defaults to false; the bar is silent anyway when stderr is not a terminal. */
  quiet?: boolean
  /**
   * The dataset cache's size limit in bytes, enforced after each write by evicting least recently used entries.
   * Defaults to `$CONVKIT_CACHE_MAX` (a size such as `5G`), else 10 GB; see `cacheMaxBytes`.
   */
  cacheMaxBytes?: number
}

/** Below this many images a fresh decode stays in this process: starting children costs about half a second. */
export const PARALLEL_MIN_IMAGES = 2000

/** File layout version; bump it when the layout changes. */
const VERSION = 2
/**
 * What the decode depends on besides the images, size and channels: bump the first part when what the decoders
 * produce changes; sharp's and libvips' versions are part of it, so upgrading them decodes afresh.
 */
export const DECODER = `convkit-decode-1 sharp-${sharp.versions.sharp ?? '?'} vips-${sharp.versions.vips}`
const MAGIC = 'CKDECODE'
/** The fixed prefix: magic, version, header length. */
const PREFIX = MAGIC.length + 8

interface Header {
  version: number
  key: string
  /** The folder (or `<archive>/<folder>`) it was last decoded from; only for people reading the file. */
  source: string
  size: [number, number]
  channels: number
  count: number
  classes: string[]
  /** Relative to the folder the images came from, with `/`. */
  files: string[]
  skipped: string[]
  labelsOffset: number
  pixelsOffset: number
  totalBytes: number
}

/**
 * The decoded cache's key for images whose content digest (`folderDigest`) is `digest`: the same images at another
 * path, in another copy or inside an archive have the same key, so they share one decoded file.
 */
export function decodedKey(digest: string, size: [number, number], channels: number, resizeShorter?: number): string {
  // Stretching (no resizeShorter) keeps the key it always had.
  const parts =
    resizeShorter === undefined ? [VERSION, DECODER, size, channels, digest] : [VERSION, DECODER, size, channels, digest, resizeShorter]
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32)
}

/** Where the decoded file of `key` lives: `<cacheDir>/decoded/<key>.bin`. */
export function decodedFile(cacheDir: string, key: string): string {
  return path.join(cacheDir, 'decoded', `${key}.bin`)
}

/** One image folder's listing, with each image's stat for the content-hash memo. */
export interface FolderListing {
  classes: string[]
  /** Absolute paths, in `readImageFolder`'s order. */
  files: string[]
  labels: Int32Array
  /** What the content-hash memo checks. */
  folder: FolderStats
  /**
   * Set when the labels do not follow from the paths (a label file's rows, `from` naming the file and its split):
   * the labels are then part of the cache key, and the content-hash memo is named after `from`.
   */
  labelled?: { from: string }
}

/**
 * `readImageFolder` with a disk cache keyed by content. The first call decodes and writes
 * `<cacheDir>/decoded/<key>.bin`, where the key hashes every image's relative path and content (see `hashFolder`:
 * contents are read once and remembered per file by size, mtime, ctime and inode), `size`, `channels` and the
 * decoder's version. Later calls, from this path or any other holding the same images, read that one file instead of
 * decoding; a changed image changes the key. The file is written under a temporary name and renamed, and its recorded
 * length is checked on load, so an interrupted write is never mistaken for a cache. After a write the cache is held
 * under its size limit (see `cacheMaxBytes`), least recently used entries going first.
 *
 * @example
 * const train = await readImageFolderCached('cifar10-jpg/train', { size: [32, 32] }) // decodes
 * const again = await readImageFolderCached('copy/of/cifar10-jpg/train', { size: [32, 32] }) // one file read
 */
export async function readImageFolderCached(root: string, options: CachedImageFolderOptions = {}): Promise<ImageFolderResult> {
  const absRoot = path.resolve(root)
  return readListedCached(absRoot, listCachedFolder(absRoot), options)
}

/**
 * `readImageFolderCached` of a folder already listed (`listCachedFolder`), decoding only the images `pick` names
 * (ascending indices into the listing; all of them when undefined). A subset is its own cache entry, keyed by exactly
 * those images' content and the folder's classes; a pick of every image is the whole folder's entry.
 */
export async function readListedCached(
  absRoot: string,
  listing: FolderListing | undefined,
  options: CachedImageFolderOptions & { pick?: Int32Array },
): Promise<ImageFolderResult> {
  const size = options.size ?? [32, 32]
  const channels = options.channels ?? 3
  const dir = datasetCacheDir(options.cacheDir)
  const maxBytes = cacheMaxBytes(options.cacheMaxBytes)
  // Missing folders and empty classes: readImageFolder reports them in its own words.
  if (!listing) return readImageFolder(absRoot, { ...options, size, channels })
  const partial = options.pick !== undefined && options.pick.length < listing.files.length
  const chosen = partial ? pickListing(listing, options.pick!) : listing
  if (chosen.files.length === 0) return emptySet(chosen, size, channels)
  checkDecodable(chosen.files.length, [channels, size[0], size[1]], absRoot)
  const labelled = listing.labelled
  const hashed = await hashFolder(dir, absRoot, chosen.folder, { partial, ...(labelled ? { memoOf: labelled.from } : {}) })
  const digest = labelled
    ? labelledDigest(chosen.classes, chosen.labels, hashed.digest)
    : partial
      ? subsetDigest(chosen.classes, hashed.digest)
      : hashed.digest
  const key = decodedKey(digest, size, channels, options.resizeShorter)
  const file = decodedFile(dir, key)
  const memoUse: CacheUse = { file: hashed.memo, kind: 'hashes', source: absRoot }

  return withPinned([file, hashed.memo], async () => {
    const cached = await readDecoded(file, key, absRoot)
    // Skipped images are failures that only skipBadImages excuses; without it, decode again so the error names them and why.
    if (cached && (cached.skipped.length === 0 || options.skipBadImages)) {
      await recordCacheUse(dir, [{ file, kind: 'decoded', source: absRoot }, memoUse], { wrote: hashed.wrote, maxBytes })
      return cached
    }
    const result = await decodeFolder(absRoot, chosen, { ...options, size, channels })
    const bytes = await writeDecoded(file, key, result, absRoot, maxBytes)
    await recordCacheUse(dir, [...(bytes === undefined ? [] : [{ file, kind: 'decoded' as const, source: absRoot, bytes }]), memoUse], {
      wrote: true,
      maxBytes,
    })
    return result
  })
}

/** The images of `listing` that `pick` (ascending indices) names. */
function pickListing(listing: FolderListing, pick: Int32Array): FolderListing {
  const stats = new Float64Array(4 * pick.length)
  pick.forEach((i, k) => stats.set(listing.folder.stats.subarray(4 * i, 4 * i + 4), 4 * k))
  return {
    classes: listing.classes,
    files: Array.from(pick, (i) => listing.files[i]!),
    labels: Int32Array.from(pick, (i) => listing.labels[i]!),
    folder: { rels: Array.from(pick, (i) => listing.folder.rels[i]!), stats },
    ...(listing.labelled ? { labelled: listing.labelled } : {}),
  }
}

function emptySet(listing: FolderListing, size: [number, number], channels: 1 | 3): ImageFolderResult {
  return {
    pixels: new Uint8Array(0),
    labels: new Int32Array(0),
    shape: [channels, size[0], size[1]],
    classes: listing.classes,
    files: [],
    skipped: [],
  }
}

/**
 * Decodes JPEGs at the wanted size natively, then the rest with sharp: in child processes when that pays, else (and
 * whenever something is off) with `readImageFolder`, which then also produces the errors and skip lists: bad images
 * cost a second, in-process pass, but their handling stays in one place.
 */
async function decodeFolder(
  root: string,
  listing: FolderListing,
  options: CachedImageFolderOptions & { size: [number, number]; channels: 1 | 3 },
): Promise<ImageFolderResult> {
  const processes = Math.max(1, Math.floor(options.processes ?? os.availableParallelism()))
  const { size, channels, resizeShorter } = options
  const bar = new ProgressBar(`decode ${path.basename(root)}`, { total: listing.files.length, rateUnit: ' img/s', quiet: options.quiet })
  try {
    const { pixels, rest } = await decodeJpegsNatively(listing.files, { size, channels, resizeShorter }, (n) => bar.update(n))
    const inChildren = processes > 1 && rest.length > 0 && (options.processes !== undefined || rest.length >= PARALLEL_MIN_IMAGES)
    const decoded = inChildren
      ? await decodeInProcesses(
          rest.map((i) => listing.files[i]!),
          { size, channels, resizeShorter },
          Math.min(processes, rest.length),
          (n) => bar.update(listing.files.length - rest.length + n),
        )
      : undefined
    if (rest.length === 0 || (decoded && decoded.failed.length === 0)) {
      const perImage = channels * size[0] * size[1]
      rest.forEach((i, k) => pixels.set(decoded!.pixels.subarray(k * perImage, (k + 1) * perImage), i * perImage))
      return {
        pixels,
        labels: listing.labels,
        shape: [channels, size[0], size[1]],
        classes: listing.classes,
        files: listing.files,
        skipped: [],
      }
    }
  } catch (err) {
    process.emitWarning(`convkit: decoding ${root} in parallel failed (${(err as Error).message}); decoding it again in this process`)
  } finally {
    bar.done()
  }
  return decodeListed(root, listing, options)
}

/**
 * The files `readImageFolder` would read under `root` (absolute), in its order (class folders and images sorted by name, hidden entries and
 * non-image extensions left out), each with its stat. Undefined when the folder is missing or has an empty class, so
 * that `readImageFolder` reports it in its own words. Synchronous on purpose: for 60 000 files `statSync` takes about
 * 0.2 s and the promise API over four times as long, and this sits on the path to the first step.
 */
export function listCachedFolder(root: string): FolderListing | undefined {
  try {
    const classes = fs
      .readdirSync(root, { withFileTypes: true })
      .filter((e) => !e.name.startsWith('.') && entryKind(root, e) === 'folder')
      .map((e) => e.name)
      .sort()
    const files: string[] = []
    const labels: number[] = []
    const rels: string[] = []
    let stats: Float64Array = new Float64Array(0)
    // Plain concatenation: path.join costs as much as the stat itself at this count.
    const prefix = withSep(root)
    for (const [label, name] of classes.entries()) {
      const images = fs
        .readdirSync(prefix + name)
        .filter((n) => !n.startsWith('.') && IMAGE_EXTENSIONS.includes(path.extname(n).toLowerCase()))
        .sort()
      const before = files.length
      for (const image of images) {
        const rel = `${name}/${image}`
        const file = prefix + rel
        // stat follows links, as readImageFolder's entryKind does; folders named like images and broken links are
        // left out.
        let stat: fs.Stats
        try {
          stat = fs.statSync(file)
        } catch {
          continue
        }
        if (!stat.isFile()) continue
        stats = pushStat(stats, 4 * files.length, stat)
        files.push(file)
        labels.push(label)
        rels.push(rel)
      }
      if (files.length === before) return undefined
    }
    return classes.length > 0 ? { classes, files, labels: Int32Array.from(labels), folder: { rels, stats } } : undefined
  } catch {
    return undefined
  }
}

/** `root` with one trailing separator; the cache stores paths relative to it with `/`, as POSIX spells them. */
function withSep(root: string): string {
  return root.endsWith('/') ? root : `${root}/`
}

/**
 * Reads the decoded file `file` if it holds `key`, with its files placed under `root` (the folder, or
 * `<archive>/<folder>`, they are read from this time). Undefined when it is missing, another key, or damaged.
 */
export async function readDecoded(file: string, key: string, root: string): Promise<ImageFolderResult | undefined> {
  let fh: fsp.FileHandle
  try {
    fh = await fsp.open(file, 'r')
  } catch {
    return undefined
  }
  try {
    const { size: onDisk } = await fh.stat()
    const prefix = Buffer.alloc(PREFIX)
    if (onDisk < PREFIX || (await fh.read(prefix, 0, PREFIX, 0)).bytesRead !== PREFIX) return undefined
    if (prefix.toString('latin1', 0, MAGIC.length) !== MAGIC || prefix.readUInt32LE(MAGIC.length) !== VERSION) return undefined
    const headerLength = prefix.readUInt32LE(MAGIC.length + 4)
    if (PREFIX + headerLength > onDisk) return undefined
    const headerBytes = Buffer.alloc(headerLength)
    await fh.read(headerBytes, 0, headerLength, PREFIX)
    const header = JSON.parse(headerBytes.toString('utf8')) as Header
    if (header.version !== VERSION || header.key !== key || header.totalBytes !== onDisk) return undefined

    const perImage = header.channels * header.size[0] * header.size[1]
    const labelBytes = Buffer.alloc(header.count * 4)
    await readFully(fh, labelBytes, header.labelsOffset)
    const labels = new Int32Array(header.count)
    for (let i = 0; i < header.count; i++) labels[i] = labelBytes.readInt32LE(i * 4)
    const pixels = new Uint8Array(header.count * perImage)
    await readFully(fh, pixels, header.pixelsOffset)
    const base = withSep(root)
    return {
      pixels,
      labels,
      shape: [header.channels, header.size[0], header.size[1]],
      classes: header.classes,
      files: header.files.map((f) => base + f),
      skipped: header.skipped.map((f) => base + f),
    }
  } catch {
    // Anything unreadable here only means the cache is unusable; decoding again is always correct.
    return undefined
  } finally {
    await fh.close()
  }
}

async function readFully(fh: fsp.FileHandle, into: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < into.length; ) {
    // Reads are capped below 2 GiB each, which is the most one read() call takes.
    const { bytesRead } = await fh.read(into, done, Math.min(into.length - done, 1 << 30), position + done)
    if (bytesRead === 0) throw new Error('cache file ended early')
    done += bytesRead
  }
}

async function writeFully(fh: fsp.FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fh.write(data, done, Math.min(data.length - done, 1 << 30), position + done)
    done += bytesWritten
  }
}

/** Decoded files already said to be over the cache's limit, so that a process says it once. */
const overLimit = new Set<string>()

/**
 * Writes `result` (read from `root`) as the decoded file `file` of `key`, through a temporary file and a rename.
 * Returns its size, or undefined when it could not be written: a read-only or full disk costs speed next time, not
 * this run, so that is a warning. A result larger than the cache's whole limit `maxBytes` is not written: eviction
 * would remove it (or everything else) at the next write, so the next run would decode again anyway; a warning says
 * so once and how to raise the limit.
 */
export async function writeDecoded(
  file: string,
  key: string,
  result: ImageFolderResult,
  root: string,
  maxBytes = Infinity,
): Promise<number | undefined> {
  if (result.pixels.length + 4 * result.labels.length > maxBytes) {
    if (!overLimit.has(file)) {
      overLimit.add(file)
      process.emitWarning(
        `convkit: the decoded images of ${root} (${result.labels.length} images, ${formatBytes(result.pixels.length)}) are larger than the ` +
          `dataset cache's limit of ${formatBytes(maxBytes)}, so they are not cached and the next run decodes them again; ` +
          'raise the limit (CONVKIT_CACHE_MAX=5G, or cacheMaxBytes), pass a smaller size or limitTrain, or use a cache folder on a larger disk (--cache-dir) with its own limit',
        { code: 'CONVKIT_CACHE_TOO_SMALL' },
      )
    }
    return undefined
  }
  try {
    return await writeDecodedOrThrow(file, key, result, root)
  } catch (err) {
    process.emitWarning(`convkit: could not write the decoded-image cache ${file}: ${(err as Error).message}`)
    return undefined
  }
}

async function writeDecodedOrThrow(file: string, key: string, result: ImageFolderResult, root: string): Promise<number> {
  const base = withSep(root)
  const rel = (f: string) => (f.startsWith(base) ? f.slice(base.length) : path.relative(root, f).split(path.sep).join('/'))
  const [channels, height, width] = result.shape
  const header: Header = {
    version: VERSION,
    key,
    source: root,
    size: [height, width],
    channels,
    count: result.labels.length,
    classes: result.classes,
    files: result.files.map(rel),
    skipped: result.skipped.map(rel),
    labelsOffset: 0,
    pixelsOffset: 0,
    totalBytes: 0,
  }
  // The offsets are part of the header whose length they depend on; a few rounds settle them (they only grow).
  const align = (n: number) => Math.ceil(n / 8) * 8
  let json = JSON.stringify(header)
  for (;;) {
    const labelsOffset = align(PREFIX + Buffer.byteLength(json))
    const pixelsOffset = align(labelsOffset + header.count * 4)
    if (labelsOffset === header.labelsOffset && pixelsOffset === header.pixelsOffset) break
    header.labelsOffset = labelsOffset
    header.pixelsOffset = pixelsOffset
    header.totalBytes = pixelsOffset + result.pixels.length
    json = JSON.stringify(header)
  }
  const headerBytes = Buffer.from(json, 'utf8')
  const prefix = Buffer.alloc(PREFIX)
  prefix.write(MAGIC, 0, 'latin1')
  prefix.writeUInt32LE(VERSION, MAGIC.length)
  prefix.writeUInt32LE(headerBytes.length, MAGIC.length + 4)
  const labels = Buffer.alloc(header.count * 4)
  result.labels.forEach((l, i) => labels.writeInt32LE(l, i * 4))

  await writeAtomicWith(file, async (temp) => {
    const fh = await fsp.open(temp, 'w')
    try {
      await writeFully(fh, prefix, 0)
      await writeFully(fh, headerBytes, PREFIX)
      await writeFully(fh, labels, header.labelsOffset)
      await writeFully(fh, result.pixels, header.pixelsOffset)
      await fh.truncate(header.totalBytes)
    } finally {
      await fh.close()
    }
  })
  return diskUsage(file)
}
