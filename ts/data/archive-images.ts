// Reads image folders straight out of a .tar.gz/.tgz/.tar: entries are streamed, hashed and decoded from memory, and
// only the decoded result is written to the cache, never 60 000 extracted files.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { PassThrough, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'
import { CancelledError, DataError } from '../errors.ts'
import { ProgressBar, formatBytes } from '../util/progress.ts'
import { datasetCacheDir } from './cache-dir.ts'
import { cacheMaxBytes, recordCacheUse, withPinned, type CacheUse } from './cache-index.ts'
import {
  archiveLayout,
  archiveSha256,
  contentHash,
  folderDigest,
  rememberArchive,
  subsetDigest,
  type ArchiveSplit,
} from './content-hash.ts'
import { decodeInto } from './decode-image.ts'
import { PARALLEL_MIN_IMAGES, decodedFile, decodedKey, readDecoded, writeDecoded } from './decoded-cache.ts'
import { badImages, checkDecodable, IMAGE_EXTENSIONS, pickedIndices, type ImageFolderResult } from './image-folder.ts'
import type { ImagePicks, ListedImages } from './image-set.ts'
import { decodeJpegBuffersNatively } from './native-jpeg.ts'
import { decodeInProcesses } from './parallel-decode.ts'
import { TarStreamParser, looksLikeTar, type TarStreamEntry } from './tar-stream.ts'

export interface ArchiveImagesOptions {
  size?: [number, number]
  channels?: 1 | 3
  /** Resize the shorter side to this, then take the centre `size` (see `ImageFolderOptions.resizeShorter`). */
  resizeShorter?: number
  cacheDir?: string
  skipBadImages?: boolean
  quiet?: boolean
  /**
   * Child processes for the images sharp decodes. Defaults to one per core, used only for batches with 2 000 or more
   * of them, where it pays for starting them; 1 decodes in this process.
   */
  processes?: number
  cacheMaxBytes?: number
  signal?: AbortSignal
  /** Chooses the images to decode once they are listed (see `LoadDataOptions.pick`); undefined: all. */
  pick?: (listed: ListedImages) => ImagePicks | undefined
}

/** An archive's image folders, decoded; `train`/`test` when it has those folders, else one set in `train`. */
export interface ArchiveImages {
  train: ImageFolderResult
  test?: ImageFolderResult
  /** Where the sets' files are named from: `<archive>/<folder inside it>`, for messages. */
  trainRoot: string
  testRoot?: string
  /** When `pick` chose a subset: each image's index in its folder's listing (see `LoadedData.picked`). */
  picked?: { train: Int32Array; test?: Int32Array }
}

/** Entries decoded at once: enough to keep every core busy, few enough to bound the memory held. */
const BATCH_IMAGES = 4096
const BATCH_BYTES = 64 << 20

/** Files that make an archive something other than image folders: idx files, CIFAR batches. */
const NOT_IMAGES = /(^|\/)((train|t10k)-(images|labels)[-.]idx\d-ubyte(\.gz)?|data_batch_1(\.bin)?|test_batch(\.bin)?)$/

/** Thrown inside the stream to stop reading an archive that is to be extracted instead. */
class NeedsExtraction extends Error {}

const isHidden = (segment: string) => segment.startsWith('.') || segment === '__MACOSX'

/** Whether an entry may be an image of an image folder: an image extension, below some folder, nothing hidden on the way. */
function isImageEntry(name: string): boolean {
  const parts = name
    .replace(/^(\.\/)+/, '')
    .replace(/\/+$/, '')
    .split('/')
  return parts.length >= 2 && IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase()) && !parts.some(isHidden)
}

/**
 * Reads `archive` (an absolute path; `stat` its stat) as image folders without extracting it, through the decoded
 * cache: the archive's sha256 (remembered per path, size, times and inode) finds what it was seen to hold before, and
 * each folder's decoded file is keyed by its images' content, as for folders on disk, so an archive, its copies and
 * its extraction share them. Returns undefined when the archive holds something else (idx files, CIFAR batches, a
 * format other than gzip or plain tar): the caller extracts it then. Laid out as `loadData` reads folders: one top
 * folder is looked into; `train/` (and `test/`) are the sets when present, else the top itself is one image folder.
 */
export async function readImageArchiveCached(
  archive: string,
  stat: fs.Stats,
  options: ArchiveImagesOptions = {},
): Promise<ArchiveImages | undefined> {
  const size = options.size ?? [32, 32]
  const channels = options.channels ?? 3
  const dir = datasetCacheDir(options.cacheDir)
  const maxBytes = cacheMaxBytes(options.cacheMaxBytes)
  const sha256 = await archiveSha256(dir, archive, stat)
  const known = await archiveLayout(dir, sha256)
  if (known?.layout === 'extract') return undefined
  if (options.pick) {
    // The counts (and the training classes' sizes, for stratified splits) the pick is made from: remembered, else
    // listed by reading the archive once without decoding.
    const remembered =
      known?.layout === 'images' && known.splits.every((s) => s.count !== undefined && s.classCounts !== undefined)
        ? known.splits
        : undefined
    const format = remembered ? undefined : archiveFormat(archive)
    const listed =
      remembered || !format ? undefined : await listArchive(archive, format === 'gzip', stat.size, { ...options, size, channels })
    if (!remembered && !listed) {
      if ((await unchangedSince(archive, stat)) || !format) await rememberArchive(dir, archive, stat, sha256, { layout: 'extract' })
      return undefined
    }
    if (listed && known?.layout === 'images' && (await unchangedSince(archive, stat))) {
      // Remembered now, so that the next pick need not read the archive to list it.
      const splits = known.splits.map((s) => {
        const l = listed.find((x) => x.name === s.name)
        return l ? { ...s, count: l.rels.length, classCounts: classCounts(l.labels, l.classes.length) } : s
      })
      await rememberArchive(dir, archive, stat, sha256, { layout: 'images', splits })
    }
    const n = remembered ? remembered.map((s) => s.count!) : listed!.map((l) => l.rels.length)
    // Listings are in class order, so the sizes of the classes give every image's label.
    const labels = remembered ? labelsOf(remembered[0]!.classCounts!) : Int32Array.from(listed![0]!.labels)
    const picks = options.pick({ train: n[0]!, test: n[1], labels, shape: [channels, size[0], size[1]] })
    const chosen = [picks?.train, picks?.test].map((p, i) => (p && p.length < n[i]! ? p : undefined))
    if (chosen.some(Boolean)) {
      const splits = listed ?? (await listArchive(archive, archiveFormat(archive) === 'gzip', stat.size, { ...options, size, channels }))
      if (!splits) return undefined
      return readArchiveSubset(archive, stat.size, splits, chosen, { ...options, size, channels })
    }
  }
  if (known?.layout === 'images') {
    const files = known.splits.map((s) => decodedFile(dir, decodedKey(s.digest, size, channels, options.resizeShorter)))
    const hit = await withPinned(files, async () => {
      const sets = await Promise.all(
        known.splits.map((s, i) =>
          readDecoded(files[i]!, decodedKey(s.digest, size, channels, options.resizeShorter), splitRoot(archive, s)),
        ),
      )
      if (sets.some((r) => !r || (r.skipped.length > 0 && !options.skipBadImages))) return undefined
      await recordCacheUse(
        dir,
        files.map((file, i) => ({ file, kind: 'decoded', source: splitRoot(archive, known.splits[i]!) })),
      )
      return sets as ImageFolderResult[]
    })
    if (hit) return assemble(archive, known.splits, hit)
  }
  const format = archiveFormat(archive)
  if (!format) {
    await rememberArchive(dir, archive, stat, sha256, { layout: 'extract' })
    return undefined
  }

  const streamed = await decodeArchive(archive, format === 'gzip', stat.size, { ...options, size, channels })
  // The sha256 was taken before this read; a file that changed since must not be remembered under it.
  const unchanged = await unchangedSince(archive, stat)
  if (!streamed) {
    if (unchanged) await rememberArchive(dir, archive, stat, sha256, { layout: 'extract' })
    return undefined
  }
  const files = streamed.splits.map((s) => decodedFile(dir, decodedKey(s.digest, size, channels, options.resizeShorter)))
  return withPinned(files, async () => {
    const uses: CacheUse[] = []
    for (const [i, split] of streamed.splits.entries()) {
      const root = splitRoot(archive, split)
      const bytes = await writeDecoded(
        files[i]!,
        decodedKey(split.digest, size, channels, options.resizeShorter),
        streamed.sets[i]!,
        root,
        maxBytes,
      )
      if (bytes !== undefined) uses.push({ file: files[i]!, kind: 'decoded', source: root, bytes })
    }
    if (unchanged) await rememberArchive(dir, archive, stat, sha256, { layout: 'images', splits: streamed.splits })
    await recordCacheUse(dir, uses, { wrote: true, maxBytes })
    return assemble(archive, streamed.splits, streamed.sets)
  })
}

async function unchangedSince(archive: string, stat: fs.Stats): Promise<boolean> {
  const after = await fsp.stat(archive)
  return after.size === stat.size && after.mtimeMs === stat.mtimeMs
}

function splitRoot(archive: string, split: ArchiveSplit): string {
  return split.inner ? `${archive}/${split.inner}` : archive
}

function assemble(archive: string, splits: ArchiveSplit[], sets: ImageFolderResult[]): ArchiveImages {
  const test = splits.findIndex((s) => s.name === 'test')
  const train = splits.findIndex((s) => s.name !== 'test')
  return {
    train: sets[train]!,
    trainRoot: splitRoot(archive, splits[train]!),
    ...(test >= 0 ? { test: sets[test]!, testRoot: splitRoot(archive, splits[test]!) } : {}),
  }
}

/** Whether the file starts as gzip or as a tar header; anything else (bzip2, xz, damage) is left to the system tar. */
export function archiveFormat(file: string): 'gzip' | 'tar' | undefined {
  const head = Buffer.alloc(512)
  let fd: number | undefined
  try {
    fd = fs.openSync(file, 'r')
    const n = fs.readSync(fd, head, 0, 512, 0)
    if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
    return n === 512 && looksLikeTar(head) ? 'tar' : undefined
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

/** One image entry as it is decoded: where its pixels are, and what went wrong if it could not be decoded. */
interface Decoded {
  hash: string
  pixels: Uint8Array
  offset: number
  failed?: string
}

type DecodeSettings = ArchiveImagesOptions & { size: [number, number]; channels: 1 | 3 }

/** What one read of an archive found: every folder (explicit or implied by a path below it) and regular file. */
interface Scanned {
  dirs: Set<string>
  files: string[]
}

/**
 * Streams the archive once, handing each image entry whose bytes `keep` wants to `onImage` and calling `afterChunk`
 * after each chunk (and with `true` at the end); undefined when it is to be extracted instead.
 */
async function scanArchive(
  archive: string,
  gzip: boolean,
  totalBytes: number,
  options: DecodeSettings,
  keep: (name: string) => boolean,
  onImage: (entry: TarStreamEntry) => void,
  afterChunk: (end: boolean) => Promise<void>,
): Promise<Scanned | undefined> {
  // Only wanted images' bytes are kept; a large README or array file in the archive passes through without being held.
  const tar = new TarStreamParser((name) => isImageEntry(name) && keep(name.replace(/\/+$/, '')))
  const dirs = new Set<string>()
  const files: string[] = []
  let read = 0
  const bar = new ProgressBar(`read ${path.basename(archive)}`, {
    total: totalBytes,
    format: formatBytes,
    rateUnit: '/s',
    quiet: options.quiet,
  })

  const take = (entry: TarStreamEntry) => {
    const name = entry.name.replace(/\/+$/, '')
    if (name === '' || name.split('/').includes('..')) return
    if (NOT_IMAGES.test(name)) throw new NeedsExtraction()
    const parts = name.split('/')
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'))
    if (entry.type === '5') {
      dirs.add(name)
      return
    }
    // A hard link's bytes are another entry's; extraction resolves it.
    if (entry.type === '1' && isImageEntry(name)) throw new NeedsExtraction()
    if (entry.type !== '0') return
    files.push(name)
    if (isImageEntry(name) && keep(name)) onImage({ ...entry, name })
  }
  const consume = async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      if (options.signal?.aborted)
        throw new CancelledError('CANCELLED', `reading ${archive} was cancelled`, { cause: options.signal.reason })
      for (const entry of tar.push(chunk)) take(entry)
      await afterChunk(false)
    }
    tar.end()
    await afterChunk(true)
  }
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      read += chunk.length
      bar.update(read)
      done(null, chunk)
    },
  })

  // pipeline may reject with the error of a stream it tore down ("aborted") rather than the one that stopped it.
  let stoppedBy: unknown
  try {
    await pipeline(
      fs.createReadStream(archive, { highWaterMark: 1 << 20 }),
      counter,
      // Decompress only what is gzip; a plain tar passes through.
      gzip ? zlib.createGunzip({ chunkSize: 1 << 20 }) : new PassThrough(),
      (source: AsyncIterable<Buffer>) =>
        consume(source).catch((err: unknown) => {
          stoppedBy = err
          throw err
        }),
    )
  } catch (thrown) {
    const err = stoppedBy ?? thrown
    if (err instanceof NeedsExtraction) return undefined
    if (err instanceof CancelledError || err instanceof DataError) throw err
    throw new DataError('DATA_CORRUPT', `cannot read ${archive}: expected a readable tar archive (${(err as Error).message})`, {
      cause: err,
      files: [archive],
    })
  } finally {
    bar.done()
  }
  return { dirs, files }
}

/** Streams the archive once, decoding image entries batch by batch; undefined when it is to be extracted instead. */
async function decodeArchive(
  archive: string,
  gzip: boolean,
  totalBytes: number,
  options: DecodeSettings,
): Promise<{ splits: ArchiveSplit[]; sets: ImageFolderResult[] } | undefined> {
  const { size, channels } = options
  const perImage = channels * size[0] * size[1]
  const decoded = new Map<string, Decoded>()
  let batch: TarStreamEntry[] = []
  let batchBytes = 0
  const flush = async (end: boolean) => {
    if (batch.length === 0 || (!end && batch.length < BATCH_IMAGES && batchBytes < BATCH_BYTES)) return
    const entries = batch
    batch = []
    batchBytes = 0
    const result = await decodeBuffers(
      entries.map((e) => e.data),
      options,
    )
    for (const [i, e] of entries.entries())
      decoded.set(e.name, { hash: contentHash(e.data), pixels: result.pixels, offset: i * perImage, failed: result.failed.get(i) })
  }
  const scanned = await scanArchive(
    archive,
    gzip,
    totalBytes,
    options,
    () => true,
    (entry) => {
      batch.push(entry)
      batchBytes += entry.data.length
    },
    flush,
  )
  return scanned && layOut(archive, listSplits(archive, scanned), decoded, options)
}

/** The archive's image folders, listed by reading it once without keeping or decoding any image; undefined: extract it. */
async function listArchive(
  archive: string,
  gzip: boolean,
  totalBytes: number,
  options: DecodeSettings,
): Promise<ListedSplit[] | undefined> {
  const scanned = await scanArchive(
    archive,
    gzip,
    totalBytes,
    options,
    () => false,
    () => {},
    async () => {},
  )
  return scanned && listSplits(archive, scanned)
}

/**
 * Reads the archive again keeping only the images `picks` names (per split, indices into its listing; undefined: all
 * of it), and decodes those through the decoded cache, a subset being its own entry (see `subsetDigest`).
 */
async function readArchiveSubset(
  archive: string,
  totalBytes: number,
  splits: ListedSplit[],
  picks: (Int32Array | undefined)[],
  options: DecodeSettings,
): Promise<ArchiveImages | undefined> {
  const { size, channels } = options
  const dir = datasetCacheDir(options.cacheDir)
  const chosen = splits.map((s, i) => picks[i] ?? Int32Array.from(s.rels, (_, k) => k))
  for (const [i, s] of splits.entries()) checkDecodable(chosen[i]!.length, [channels, size[0], size[1]], s.root)
  const wanted = new Set(splits.flatMap((s, i) => Array.from(chosen[i]!, (k) => join(s.inner, s.rels[k]!))))
  const bytes = new Map<string, Buffer>()
  const scanned = await scanArchive(
    archive,
    archiveFormat(archive) === 'gzip',
    totalBytes,
    options,
    (name) => wanted.has(name),
    (entry) => bytes.set(entry.name, entry.data),
    async () => {},
  )
  if (!scanned) return undefined
  const sets: ImageFolderResult[] = []
  const uses: CacheUse[] = []
  const files: string[] = []
  for (const [i, split] of splits.entries()) {
    const pick = chosen[i]!
    const data = Array.from(pick, (k) => bytes.get(join(split.inner, split.rels[k]!)))
    // The archive changed between the two reads: an image listed the first time is gone.
    if (data.some((d) => d === undefined))
      throw new DataError('DATA_CORRUPT', `${archive} changed while it was read; read it again`, { files: [archive] })
    const hashes = data.map((d) => contentHash(d!))
    const digest = folderDigest(Array.from(pick, (k, j) => ({ rel: split.rels[k]!, hash: hashes[j]! })))
    const key = decodedKey(picks[i] ? subsetDigest(split.classes, digest) : digest, size, channels, options.resizeShorter)
    const file = decodedFile(dir, key)
    files.push(file)
    const cached = await readDecoded(file, key, split.root)
    if (cached && (cached.skipped.length === 0 || options.skipBadImages)) {
      sets.push(cached)
      uses.push({ file, kind: 'decoded', source: split.root })
      continue
    }
    const decoded = new Map<string, Decoded>()
    const perImage = channels * size[0] * size[1]
    const result = await decodeBuffers(data as Buffer[], options)
    Array.from(pick).forEach((k, j) =>
      decoded.set(join(split.inner, split.rels[k]!), {
        hash: hashes[j]!,
        pixels: result.pixels,
        offset: j * perImage,
        failed: result.failed.get(j),
      }),
    )
    const set = gather({ ...split, pick }, decoded, options).set
    const written = await writeDecoded(file, key, set, split.root, cacheMaxBytes(options.cacheMaxBytes))
    if (written !== undefined) uses.push({ file, kind: 'decoded', source: split.root, bytes: written })
    sets.push(set)
  }
  await withPinned(files, () =>
    recordCacheUse(dir, uses, { wrote: uses.some((u) => u.bytes !== undefined), maxBytes: cacheMaxBytes(options.cacheMaxBytes) }),
  )
  const images = assemble(
    archive,
    splits.map((s) => ({ name: s.name, inner: s.inner, digest: '' })),
    sets,
  )
  const pickedOf = (i: number) =>
    pickedIndices(
      splits[i]!.rels.map((rel) => `${splits[i]!.root}/${rel}`),
      sets[i]!,
      picks[i],
    )
  const test = splits.findIndex((s) => s.name === 'test')
  const train = splits.findIndex((s) => s.name !== 'test')
  return { ...images, picked: { train: pickedOf(train), ...(test >= 0 ? { test: pickedOf(test) } : {}) } }
}

/** Decodes encoded images: the native JPEG path first, then sharp for the rest (in child processes when many). */
async function decodeBuffers(buffers: Buffer[], options: DecodeSettings): Promise<{ pixels: Uint8Array; failed: Map<number, string> }> {
  const { size, channels, resizeShorter } = options
  const perImage = channels * size[0] * size[1]
  const { pixels, rest } = await decodeJpegBuffersNatively(buffers, { size, channels, resizeShorter })
  const failed = new Map<number, string>()
  const processes = Math.max(1, Math.floor(options.processes ?? os.availableParallelism()))
  if (processes > 1 && rest.length > 0 && (options.processes !== undefined || rest.length >= PARALLEL_MIN_IMAGES)) {
    try {
      const out = await decodeInProcesses(
        rest.map((i) => buffers[i]!),
        { size, channels, resizeShorter },
        Math.min(processes, rest.length),
      )
      rest.forEach((i, k) => pixels.set(out.pixels.subarray(k * perImage, (k + 1) * perImage), i * perImage))
      for (const f of out.failed) failed.set(rest[f.index]!, f.reason)
      return { pixels, failed }
    } catch (err) {
      process.emitWarning(`convkit: decoding archive images in parallel failed (${(err as Error).message}); decoding them in this process`)
    }
  }
  let next = 0
  const worker = async () => {
    for (let k = next++; k < rest.length; k = next++) {
      const i = rest[k]!
      try {
        await decodeInto(buffers[i]!, { size, channels, resizeShorter }, pixels, i * perImage)
      } catch (err) {
        failed.set(i, (err as Error).message)
      }
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
  return { pixels, failed }
}

const join = (...parts: string[]) => parts.filter(Boolean).join('/')

/** Images per class of a listing's labels. */
function classCounts(labels: readonly number[], classes: number): number[] {
  const counts: number[] = new Array(classes).fill(0)
  for (const l of labels) counts[l]!++
  return counts
}

/** The labels of a listing in class order from its classes' sizes. */
function labelsOf(counts: readonly number[]): Int32Array {
  const labels = new Int32Array(counts.reduce((a, b) => a + b, 0))
  let at = 0
  for (const [label, count] of counts.entries()) {
    labels.fill(label, at, at + count)
    at += count
  }
  return labels
}

/** One image folder of an archive, listed as `listImageFolder` lists one on disk. */
interface ListedSplit {
  name: ArchiveSplit['name']
  /** Its folder inside the archive. */
  inner: string
  /** `<archive>/<inner>`: how its images are named. */
  root: string
  classes: string[]
  /** `<class>/<image>`, in listing order. */
  rels: string[]
  labels: number[]
}

/**
 * Finds the image folders among the archive's entries as `loadData` would among extracted files, and lists their
 * images in `readImageFolder`'s order, with its errors for empty folders.
 */
function listSplits(archive: string, { dirs, files }: Scanned): ListedSplit[] {
  const tops = new Set([...dirs, ...files].map((n) => n.split('/')[0]!).filter((n) => !isHidden(n)))
  const only = tops.size === 1 ? [...tops][0]! : undefined
  const base = only !== undefined && dirs.has(only) ? only : ''
  const splits: { name: ArchiveSplit['name']; inner: string }[] = dirs.has(join(base, 'train'))
    ? [
        { name: 'train', inner: join(base, 'train') },
        ...(dirs.has(join(base, 'test')) ? [{ name: 'test' as const, inner: join(base, 'test') }] : []),
      ]
    : [{ name: 'images', inner: base }]

  const children = new Map<string, { dirs: string[]; files: string[] }>()
  const childrenOf = (parent: string) => {
    let c = children.get(parent)
    if (!c) children.set(parent, (c = { dirs: [], files: [] }))
    return c
  }
  for (const d of dirs) childrenOf(d.includes('/') ? d.slice(0, d.lastIndexOf('/')) : '').dirs.push(d.slice(d.lastIndexOf('/') + 1))
  for (const f of files) childrenOf(f.includes('/') ? f.slice(0, f.lastIndexOf('/')) : '').files.push(f.slice(f.lastIndexOf('/') + 1))

  return splits.map((split) => {
    const root = split.inner ? `${archive}/${split.inner}` : archive
    const classes = (children.get(split.inner)?.dirs ?? []).filter((c) => !c.startsWith('.')).sort()
    if (classes.length === 0)
      throw new DataError('DATA_EMPTY', `image folder ${root} has no class folders; expected ${root}/<class>/<image>`)
    const rels: string[] = []
    const labels: number[] = []
    for (const [label, cls] of classes.entries()) {
      const images = (children.get(join(split.inner, cls))?.files ?? [])
        .filter((f) => !f.startsWith('.') && IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase()))
        .sort()
      if (images.length === 0)
        throw new DataError('DATA_EMPTY', `class folder ${root}/${cls} has no images (looked for ${IMAGE_EXTENSIONS.join(', ')})`)
      for (const image of images) {
        rels.push(`${cls}/${image}`)
        labels.push(label)
      }
    }
    return { ...split, root, classes, rels, labels }
  })
}

/** Every image folder of the archive, gathered from what was decoded. */
function layOut(
  archive: string,
  splits: ListedSplit[],
  decoded: Map<string, Decoded>,
  options: DecodeSettings,
): { splits: ArchiveSplit[]; sets: ImageFolderResult[] } {
  const out: { splits: ArchiveSplit[]; sets: ImageFolderResult[] } = { splits: [], sets: [] }
  for (const split of splits) {
    const { set, digest } = gather(split, decoded, options)
    out.splits.push({
      name: split.name,
      inner: split.inner,
      digest,
      count: split.rels.length,
      classCounts: classCounts(split.labels, split.classes.length),
    })
    out.sets.push(set)
  }
  return out
}

/**
 * Gathers one folder's decoded images (those `pick` names, else all) in listing order, with `readImageFolder`'s
 * error for undecodable images or their skip list, and the digest of their content.
 */
function gather(
  split: ListedSplit & { pick?: Int32Array },
  decoded: Map<string, Decoded>,
  options: DecodeSettings,
): { set: ImageFolderResult; digest: string } {
  const { size, channels } = options
  const perImage = channels * size[0] * size[1]
  const { root } = split
  const order = split.pick ? Array.from(split.pick) : split.rels.map((_, i) => i)
  const rels = order.map((k) => split.rels[k]!)
  const labels = order.map((k) => split.labels[k]!)
  const entries = rels.map((rel) => decoded.get(join(split.inner, rel))!)
  const digest = folderDigest(rels.map((rel, i) => ({ rel, hash: entries[i]!.hash })))
  const bad = rels.flatMap((rel, i) => (entries[i]!.failed === undefined ? [] : [{ file: `${root}/${rel}`, reason: entries[i]!.failed! }]))
  if (bad.length > 0 && !options.skipBadImages) throw badImages(bad)
  const keep = rels.map((_, i) => i).filter((i) => entries[i]!.failed === undefined)
  checkDecodable(keep.length, [channels, size[0], size[1]], root)
  const pixels = new Uint8Array(keep.length * perImage)
  keep.forEach((i, k) => pixels.set(entries[i]!.pixels.subarray(entries[i]!.offset, entries[i]!.offset + perImage), k * perImage))
  return {
    digest,
    set: {
      pixels,
      labels: Int32Array.from(keep.map((i) => labels[i]!)),
      shape: [channels, size[0], size[1]],
      classes: split.classes,
      files: keep.map((i) => `${root}/${rels[i]}`),
      skipped: bad.map((f) => f.file).sort(),
    },
  }
}
