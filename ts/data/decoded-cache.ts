// Decodes an image folder once and keeps the uint8 result in one binary file, so later runs skip decoding.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { DataError } from '../errors.ts'
import { ProgressBar } from '../progress.ts'
import { datasetCacheDir } from './cache-dir.ts'
import { IMAGE_EXTENSIONS, readImageFolder, type ImageFolderOptions, type ImageFolderResult } from './image-folder.ts'
import { decodeJpegsNatively } from './native-jpeg.ts'
import { decodeInProcesses } from './parallel-decode.ts'

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
}

/** Below this many images a fresh decode stays in this process: starting children costs about half a second. */
const PARALLEL_MIN_IMAGES = 2000

/** File layout version; bump it when the layout or what `readImageFolder` produces changes. */
const VERSION = 1
const MAGIC = 'CKDECODE'
/** The fixed prefix: magic, version, header length. */
const PREFIX = MAGIC.length + 8

interface Header {
  version: number
  root: string
  size: [number, number]
  channels: number
  fingerprint: string
  count: number
  classes: string[]
  /** Relative to `root`, so the header stays small. */
  files: string[]
  skipped: string[]
  labelsOffset: number
  pixelsOffset: number
  totalBytes: number
}

/**
 * `readImageFolder` with a disk cache. The first call decodes and writes `<cacheDir>/decoded/<name>-<key>.bin`,
 * keyed by the root's absolute path, `size` and `channels`; later calls read that one file instead of decoding, as
 * long as the folder's fingerprint (every file's name, size and mtime) is unchanged. Any change means one fresh decode.
 * The cache file is written under a temporary name and renamed, and its recorded length is checked on load, so an
 * interrupted write is never mistaken for a cache.
 *
 * @example
 * const train = await readImageFolderCached('cifar10-jpg/train', { size: [32, 32] }) // decodes
 * const again = await readImageFolderCached('cifar10-jpg/train', { size: [32, 32] }) // one file read
 */
export async function readImageFolderCached(root: string, options: CachedImageFolderOptions = {}): Promise<ImageFolderResult> {
  const absRoot = path.resolve(root)
  const size = options.size ?? [32, 32]
  const channels = options.channels ?? 3
  const key = createHash('sha256').update(JSON.stringify([absRoot, size, channels])).digest('hex').slice(0, 16)
  const file = path.join(datasetCacheDir(options.cacheDir), 'decoded', `${path.basename(absRoot) || 'root'}-${key}.bin`)
  const fingerprint = fingerprintFolder(absRoot)

  const cached = await readCache(file, { root: absRoot, size, channels, fingerprint })
  // Skipped images are failures that only skipBadImages excuses; without it, decode again so the error names them and why.
  if (cached && (cached.skipped.length === 0 || options.skipBadImages)) return cached

  const result = await decodeFolder(absRoot, { ...options, size, channels })
  await writeCache(file, result, { root: absRoot, size, channels, fingerprint }).catch((err: Error) => {
    // A cache that cannot be written (read-only or full disk) costs speed next time, not this run.
    process.emitWarning(`convkit: could not write the decoded-image cache ${file}: ${err.message}`)
  })
  return result
}

/**
 * Decodes JPEGs at the wanted size natively, then the rest with sharp: in child processes when that pays, else (and
 * whenever something is off) with `readImageFolder`, which then also produces the errors and skip lists: bad images
 * cost a second, in-process pass, but their handling stays in one place.
 */
async function decodeFolder(root: string, options: CachedImageFolderOptions & { size: [number, number]; channels: 1 | 3 }): Promise<ImageFolderResult> {
  const processes = Math.max(1, Math.floor(options.processes ?? os.availableParallelism()))
  const listing = listFolder(root)
  if (listing) {
    const { size, channels } = options
    const bar = new ProgressBar(`decode ${path.basename(root)}`, { total: listing.files.length, rateUnit: ' img/s', quiet: options.quiet })
    try {
      const { pixels, rest } = await decodeJpegsNatively(listing.files, { size, channels }, (n) => bar.update(n))
      const inChildren = processes > 1 && rest.length > 0 && (options.processes !== undefined || rest.length >= PARALLEL_MIN_IMAGES)
      const decoded = inChildren
        ? await decodeInProcesses(rest.map((i) => listing.files[i]!), { size, channels }, Math.min(processes, rest.length), (n) =>
            bar.update(listing.files.length - rest.length + n),
          )
        : undefined
      if (rest.length === 0 || (decoded && decoded.failed.length === 0)) {
        const perImage = channels * size[0] * size[1]
        rest.forEach((i, k) => pixels.set(decoded!.pixels.subarray(k * perImage, (k + 1) * perImage), i * perImage))
        return { pixels, labels: listing.labels, shape: [channels, size[0], size[1]], classes: listing.classes, files: listing.files, skipped: [] }
      }
    } catch (err) {
      process.emitWarning(`convkit: decoding ${root} in parallel failed (${(err as Error).message}); decoding it again in this process`)
    } finally {
      bar.done()
    }
  }
  return readImageFolder(root, options)
}

/**
 * The files `readImageFolder` would read, in its order: class folders and images sorted by name, hidden entries and
 * non-image extensions left out. Undefined when the folder is missing or has an empty class, so that
 * `readImageFolder` reports it in its own words.
 */
function listFolder(root: string): { classes: string[]; files: string[]; labels: Int32Array } | undefined {
  try {
    const classes = fs
      .readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort()
    const files: string[] = []
    const labels: number[] = []
    for (const [label, name] of classes.entries()) {
      const dir = path.join(root, name)
      const images = fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isFile() && !e.name.startsWith('.') && IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase()))
        .map((e) => e.name)
        .sort()
      if (images.length === 0) return undefined
      for (const image of images) {
        files.push(path.join(dir, image))
        labels.push(label)
      }
    }
    return classes.length > 0 ? { classes, files, labels: Int32Array.from(labels) } : undefined
  } catch {
    return undefined
  }
}

/**
 * Hashes every entry's relative path, size and mtime under `root/<class>/`. Synchronous on purpose: for 60 000 files
 * `statSync` takes about 0.2 s and the promise API over four times as long, and this sits on the path to the first step.
 */
function fingerprintFolder(root: string): string {
  const hash = createHash('sha256')
  let classes: fs.Dirent[]
  try {
    classes = fs.readdirSync(root, { withFileTypes: true })
  } catch (cause) {
    throw new DataError('DATA_NOT_FOUND', `image folder ${root} does not exist or is not a folder`, { cause, files: [root] })
  }
  // Plain concatenation: path.join costs as much as the stat itself at this count.
  const prefix = withSep(root)
  for (const dir of classes.filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
    const entries = fs.readdirSync(prefix + dir).sort()
    for (const name of entries) {
      const rel = `${dir}/${name}`
      const stat = fs.statSync(prefix + rel, { throwIfNoEntry: false })
      hash.update(`${rel}\0${stat?.size ?? -1}\0${stat?.mtimeMs ?? -1}\n`)
    }
  }
  return hash.digest('hex')
}

/** `root` with one trailing separator; the cache stores paths relative to it with `/`, as POSIX spells them. */
function withSep(root: string): string {
  return root.endsWith('/') ? root : `${root}/`
}

interface Identity {
  root: string
  size: [number, number]
  channels: number
  fingerprint: string
}

async function readCache(file: string, want: Identity): Promise<ImageFolderResult | undefined> {
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
    const matches =
      header.version === VERSION &&
      header.root === want.root &&
      header.size[0] === want.size[0] &&
      header.size[1] === want.size[1] &&
      header.channels === want.channels &&
      header.fingerprint === want.fingerprint &&
      header.totalBytes === onDisk
    if (!matches) return undefined

    const perImage = want.channels * want.size[0] * want.size[1]
    const labelBytes = Buffer.alloc(header.count * 4)
    await readFully(fh, labelBytes, header.labelsOffset)
    const labels = new Int32Array(header.count)
    for (let i = 0; i < header.count; i++) labels[i] = labelBytes.readInt32LE(i * 4)
    const pixels = new Uint8Array(header.count * perImage)
    await readFully(fh, pixels, header.pixelsOffset)
    return {
      pixels,
      labels,
      shape: [want.channels, want.size[0], want.size[1]],
      classes: header.classes,
      files: header.files.map((f) => withSep(want.root) + f),
      skipped: header.skipped.map((f) => withSep(want.root) + f),
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

async function writeCache(file: string, result: ImageFolderResult, id: Identity): Promise<void> {
  const rel = (f: string) => path.relative(id.root, f)
  const header: Header = {
    version: VERSION,
    ...id,
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

  await fsp.mkdir(path.dirname(file), { recursive: true })
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  const fh = await fsp.open(temp, 'w')
  try {
    await writeFully(fh, prefix, 0)
    await writeFully(fh, headerBytes, PREFIX)
    await writeFully(fh, labels, header.labelsOffset)
    await writeFully(fh, result.pixels, header.pixelsOffset)
    await fh.truncate(header.totalBytes)
  } catch (err) {
    await fh.close()
    await fsp.rm(temp, { force: true })
    throw err
  }
  await fh.close()
  try {
    await fsp.rename(temp, file)
  } catch (err) {
    await fsp.rm(temp, { force: true })
    throw err
  }
}
