// Content hashes for the dataset cache: of every image in a folder (read once, then remembered per file by its size,
// times and inode) and of archives (sha256, remembered per path the same way), so cache keys follow content, not paths.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { writeFileAtomic } from '../util/atomic-write.ts'

/** Hex digits kept of a sha256: 128 bits, plenty to tell files apart, and half the memo. */
const HASH_HEX = 32
const MEMO_VERSION = 1
/** Archives and their layouts remembered; the least recently used beyond this are forgotten. */
const ARCHIVE_MEMO_MAX = 256

/** The sha256 of `data`, shortened to the length kept in keys and memos. */
export function contentHash(data: Uint8Array): string {
  return crypto.hash('sha256', data, 'hex').slice(0, HASH_HEX)
}

/**
 * What a decode of a folder depends on besides size and channels: its images' relative paths and contents, in
 * listing order. Two folders with the same digest decode to the same bytes, wherever they are.
 */
export function folderDigest(files: readonly { rel: string; hash: string }[]): string {
  const h = crypto.createHash('sha256')
  for (const f of files) h.update(`${f.rel}\0${f.hash}\n`)
  return h.digest('hex')
}

/**
 * What a folder's files are checked against, in listing order: each one's path relative to the folder
 * (`<class>/<name>`, with `/`), and its size, mtime, ctime and inode (four numbers per file in `stats`). A rewrite
 * that keeps size and mtime still changes ctime, and a replaced file its inode.
 */
export interface FolderStats {
  rels: string[]
  stats: Float64Array
}

/** Appends `stat`'s four numbers to a growing array; returns the array (a new one when it had to grow). */
export function pushStat(into: Float64Array, at: number, stat: fs.Stats): Float64Array {
  let out = into
  if (at + 4 > out.length) {
    out = new Float64Array(Math.max(1024, out.length * 2))
    out.set(into)
  }
  out[at] = stat.size
  out[at + 1] = stat.mtimeMs
  out[at + 2] = stat.ctimeMs
  out[at + 3] = stat.ino
  return out
}

function statLine(rel: string, s: Float64Array, i: number): string {
  return `${rel}\t${s[4 * i]}\t${s[4 * i + 1]}\t${s[4 * i + 2]}\t${s[4 * i + 3]}`
}

/** The memo file of a folder: `<cache>/hashes/<name>-<hash of its absolute path>.tsv`. */
export function memoFile(cacheDir: string, root: string): string {
  const key = crypto.hash('sha256', root, 'hex').slice(0, 16)
  return path.join(cacheDir, 'hashes', `${path.basename(root) || 'root'}-${key}.tsv`)
}

interface MemoHeader {
  version: number
  root: string
  /** Hash of every listed file's stat line: when it matches, `digest` holds without looking at any file. */
  stats: string
  digest: string
  count: number
}

/** The memo's first line, read without reading the rest. */
async function readMemoHeader(file: string): Promise<MemoHeader | undefined> {
  let fh: fsp.FileHandle
  try {
    fh = await fsp.open(file, 'r')
  } catch {
    return undefined
  }
  try {
    const buf = Buffer.alloc(64 * 1024)
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a)
    if (nl < 0) return undefined
    return JSON.parse(buf.toString('utf8', 0, nl)) as MemoHeader
  } catch {
    return undefined
  } finally {
    await fh.close()
  }
}

/** The memo's per-file lines: rel → [stat line, hash]. A damaged memo reads as empty: files are hashed again. */
async function readMemoLines(file: string): Promise<Map<string, [string, string]>> {
  const lines = new Map<string, [string, string]>()
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch {
    return lines
  }
  const all = text.split('\n')
  for (let i = 1; i < all.length; i++) {
    const line = all[i]!
    const tab = line.lastIndexOf('\t')
    if (tab < 0) continue
    const stat = line.slice(0, tab)
    lines.set(stat.slice(0, stat.indexOf('\t')), [stat, line.slice(tab + 1)])
  }
  return lines
}

export interface FolderHashResult {
  digest: string
  /** The memo file, when it was read or written (a cache entry of kind `hashes`). */
  memo: string
  /** Whether the memo was (re)written. */
  wrote: boolean
}

/**
 * The digest of the images under `root` that `folder` lists. Each file's content hash is remembered in the folder's memo by its
 * size, mtime, ctime and inode; only files whose stat changed are read again. When nothing changed (the common warm
 * case) only the memo's first line is read. The memo is written through a temporary file and a rename.
 *
 * With `partial`, `folder` lists only some of the folder's images (a seeded subset): only those are hashed, and the
 * memo keeps what it knew of the others, so that a later run over the whole folder need not read them again.
 *
 * `memoOf` names the memo after another path than `root`: a label file lists its own selection of the files under its
 * folder, and a memo of its own keeps it and the folder's listing from rewriting each other's memo on every run.
 */
export async function hashFolder(
  cacheDir: string,
  root: string,
  folder: FolderStats,
  options: { partial?: boolean; memoOf?: string } = {},
): Promise<FolderHashResult> {
  const memo = memoFile(cacheDir, options.memoOf ?? root)
  const { rels, stats } = folder
  // Numbers hashed as bytes: turning 200 000 of them into text would cost more than the stats themselves.
  const statsHash = crypto
    .createHash('sha256')
    .update(rels.join('\n'))
    .update(stats.subarray(0, 4 * rels.length))
    .digest('hex')
  const header = await readMemoHeader(memo)
  if (
    !options.partial &&
    header &&
    header.version === MEMO_VERSION &&
    header.root === root &&
    header.stats === statsHash &&
    header.count === rels.length
  ) {
    return { digest: header.digest, memo, wrote: false }
  }

  const known = await readMemoLines(memo)
  const prefix = root.endsWith('/') ? root : `${root}/`
  const hashed: { rel: string; hash: string }[] = []
  const lines: string[] = []
  let read = 0
  for (const [i, rel] of rels.entries()) {
    const line = statLine(rel, stats, i)
    const old = known.get(rel)
    const fresh = !(old && old[0] === line)
    // Synchronous reads on purpose: tens of thousands of small files read faster this way than through promises.
    const hash = fresh ? contentHash(fs.readFileSync(prefix + rel)) : old![1]
    if (fresh) read++
    hashed.push({ rel, hash })
    lines.push(`${line}\t${hash}`)
  }
  const digest = folderDigest(hashed)
  if (options.partial) {
    // Nothing new learnt: the memo stays as it is.
    if (read === 0) return { digest, memo, wrote: false }
    const picked = new Set(rels)
    for (const [rel, [line, hash]] of known) if (!picked.has(rel)) lines.push(`${line}\t${hash}`)
  }
  // A partial listing vouches for no whole-folder digest: an earlier header stays (it still holds for the stats it names).
  const head: MemoHeader =
    options.partial && header?.version === MEMO_VERSION && header.root === root
      ? header
      : options.partial
        ? { version: MEMO_VERSION, root, stats: '', digest: '', count: -1 }
        : { version: MEMO_VERSION, root, stats: statsHash, digest, count: rels.length }
  await writeFileAtomic(memo, `${JSON.stringify(head)}\n${lines.join('\n')}\n`).catch((err: Error) => {
    process.emitWarning(`convkit: could not write the content-hash memo ${memo}: ${err.message}`)
  })
  return { digest, memo, wrote: true }
}

/**
 * The digest of a subset of a folder's images (`digest`, their `folderDigest`): the folder's classes are part of it,
 * since labels index them and a subset need not hold every class.
 */
export function subsetDigest(classes: readonly string[], digest: string): string {
  return crypto.hash('sha256', JSON.stringify(['subset', classes, digest]), 'hex')
}

/**
 * The digest of images whose labels do not follow from their paths (the rows of a label file; `digest`, their
 * `folderDigest`): the classes and each image's label are part of it, so relabelling the same images is another entry.
 */
export function labelledDigest(classes: readonly string[], labels: ArrayLike<number>, digest: string): string {
  const h = crypto.createHash('sha256').update(JSON.stringify(['labelled', classes, digest]))
  return h.update(Int32Array.from(labels)).digest('hex')
}

/** What a split of an image archive holds: its folder inside the archive and the digest of its images. */
export interface ArchiveSplit {
  name: 'train' | 'test' | 'images'
  /** Path of the split's folder inside the archive (`cifar10-jpg/train`), or '' for the archive's top. */
  inner: string
  digest: string
  /** Images it lists (undecodable ones included); absent in what older versions remembered. */
  count?: number
  /** Images per class, in class order (the listing's order); absent in what older versions remembered. */
  classCounts?: number[]
}

/** What an archive was found to be, by its sha256: image folders read from the stream, or something to extract. */
export type ArchiveLayout = { layout: 'images'; splits: ArchiveSplit[] } | { layout: 'extract' }

interface ArchiveMemo {
  version: number
  /** Absolute path → the stat it had and its sha256. */
  paths: Record<string, { size: number; mtimeMs: number; ctimeMs: number; ino: number; sha256: string; lastUsed: number }>
  /** sha256 → layout. */
  contents: Record<string, ArchiveLayout & { lastUsed: number }>
}

function archiveMemoFile(cacheDir: string): string {
  return path.join(cacheDir, 'hashes', 'archives.json')
}

async function readArchiveMemo(cacheDir: string): Promise<ArchiveMemo> {
  try {
    const memo = JSON.parse(await fsp.readFile(archiveMemoFile(cacheDir), 'utf8')) as ArchiveMemo
    if (memo.version === MEMO_VERSION && typeof memo.paths === 'object' && typeof memo.contents === 'object') return memo
  } catch {
    // Missing or damaged: start afresh; archives are hashed again.
  }
  return { version: MEMO_VERSION, paths: {}, contents: {} }
}

function keepNewest<T extends { lastUsed: number }>(record: Record<string, T>): void {
  const keys = Object.keys(record)
  if (keys.length <= ARCHIVE_MEMO_MAX) return
  keys.sort((a, b) => record[b]!.lastUsed - record[a]!.lastUsed)
  for (const k of keys.slice(ARCHIVE_MEMO_MAX)) delete record[k]
}

/** Re-reads the archive memo, applies `change` and writes it atomically; failures only cost a later re-hash. */
async function updateArchiveMemo(cacheDir: string, change: (memo: ArchiveMemo) => void): Promise<void> {
  try {
    const memo = await readArchiveMemo(cacheDir)
    change(memo)
    keepNewest(memo.paths)
    keepNewest(memo.contents)
    await writeFileAtomic(archiveMemoFile(cacheDir), JSON.stringify(memo))
  } catch (err) {
    process.emitWarning(`convkit: could not write the archive memo in ${cacheDir}: ${(err as Error).message}`)
  }
}

/** Streams `file` through sha256. */
export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256')
  await pipeline(fs.createReadStream(file, { highWaterMark: 1 << 20 }), hash)
  return hash.digest('hex')
}

/**
 * The sha256 of the archive at `file` (absolute), read once per version of the file: it is remembered by path, size,
 * mtime, ctime and inode, so later calls only stat it.
 */
export async function archiveSha256(cacheDir: string, file: string, stat: fs.Stats): Promise<string> {
  const memo = await readArchiveMemo(cacheDir)
  const known = memo.paths[file]
  if (known && known.size === stat.size && known.mtimeMs === stat.mtimeMs && known.ctimeMs === stat.ctimeMs && known.ino === stat.ino)
    return known.sha256
  const sha256 = await sha256File(file)
  await rememberArchive(cacheDir, file, stat, sha256)
  return sha256
}

/** Remembers that `file`, as `stat` describes it, has `sha256` (also when it was computed while reading it). */
export async function rememberArchive(
  cacheDir: string,
  file: string,
  stat: fs.Stats,
  sha256: string,
  layout?: ArchiveLayout,
): Promise<void> {
  await updateArchiveMemo(cacheDir, (memo) => {
    const now = Date.now()
    memo.paths[file] = { size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino, sha256, lastUsed: now }
    if (layout) memo.contents[sha256] = { ...layout, lastUsed: now }
  })
}

/** The layout remembered for an archive's content, if any. */
export async function archiveLayout(cacheDir: string, sha256: string): Promise<ArchiveLayout | undefined> {
  const found = (await readArchiveMemo(cacheDir)).contents[sha256]
  if (!found) return undefined
  return found.layout === 'images' ? { layout: 'images', splits: found.splits } : { layout: 'extract' }
}
