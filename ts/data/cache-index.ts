// The dataset cache's size cap: an index of what the cache holds (kind, size, last use), least-recently-used eviction
// under a limit, and the listing and pruning behind `convkit cache ls|prune`.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { InputError } from '../errors.ts'
import { datasetCacheDir } from './cache-dir.ts'
import { TEMP_NAME, tempPathFor, writeFileAtomic } from '../util/atomic-write.ts'

/**
 * What a cache entry is:
 * - `decoded`: one decoded image folder (`decoded/<key>.bin`);
 * - `extracted`: an unpacked archive (`extracted/<name>-<sha>/`, or CIFAR-10's `cifar-10-batches-bin/`);
 * - `download`: a downloaded file (`cifar-10-binary.tar.gz`);
 * - `shards`: an image folder too large to decode into memory, as tar shards of its original bytes, streamed by
 *   training (`shards/<name>-<key>/`).
 * - `hashes`: the remembered content hashes of one image folder's files (`hashes/<name>-<key>.tsv`).
 */
export type CacheKind = 'decoded' | 'extracted' | 'download' | 'hashes' | 'shards'

export interface CacheEntry {
  /** Path relative to the cache folder, with `/`. */
  path: string
  kind: CacheKind
  /** What it was made from: a folder, an archive, a URL, `cifar10`; `(unknown)` for an entry found on disk without a record. */
  source: string
  /** Bytes on disk (allocated blocks, as `du` counts them). */
  bytes: number
  /** Milliseconds since the epoch. */
  created: number
  lastUsed: number
  /** The process that used it last. */
  pid: number
  /** Processes reading it now (see `withPinned`); a process that ended without saying so is ignored. */
  users?: number[]
}

/**
 * The limit when neither `cacheMaxBytes` nor `$CONVKIT_CACHE_MAX` says otherwise: 10 GB. Decoded images are what
 * the cache is for, and at 224 px they take 150 KB each: 2 GB (the limit until 2026-12) held 14 000 of them, less
 * than CIFAR-10's training set, whose decoded shards (7.6 GB) stream at 0.94× the resident speed where 2 GB left
 * only its JPEGs to decode in every epoch (0.58×).
 */
export const DEFAULT_CACHE_MAX_BYTES = 10 * 2 ** 30
/** The index file, in the cache folder. */
export const INDEX_FILE = 'cache-index.json'
/** The subfolders whose contents are the cache's own, recognised on disk even when the index lost them. */
const OWN_FOLDERS: Record<string, CacheKind> = { decoded: 'decoded', extracted: 'extracted', hashes: 'hashes', shards: 'shards' }
/** Temporary files whose process has ended, or older than this, are left over from a crash; pruning removes them. */
const STALE_TEMP_MS = 24 * 3600_000
/** Files being written, folders being extracted or removed (util/atomic-write.ts names them). */
const TEMP = TEMP_NAME

interface IndexFile {
  version: 1
  entries: Record<string, Omit<CacheEntry, 'path'>>
}

/** Entries this process is reading right now, by absolute path, counted: eviction never removes them. */
const pinned = new Map<string, number>()

/**
 * Runs `fn` with `files` (absolute paths of cache entries) protected from eviction by this process, as loaders do
 * while they read them. With `cacheDir`, they are also marked in use in its index for the time, so other processes
 * leave them alone too: needed for folders (an extraction being read), not for files, which a reader that has opened
 * them keeps even when they are removed.
 */
export async function withPinned<T>(files: string[], fn: () => Promise<T>, cacheDir?: string): Promise<T> {
  for (const f of files) pinned.set(f, (pinned.get(f) ?? 0) + 1)
  if (cacheDir) await markUser(cacheDir, files, true)
  try {
    return await fn()
  } finally {
    for (const f of files) {
      const n = (pinned.get(f) ?? 1) - 1
      if (n > 0) pinned.set(f, n)
      else pinned.delete(f)
    }
    if (cacheDir)
      await markUser(
        cacheDir,
        files.filter((f) => !pinned.has(f)),
        false,
      )
  }
}

/**
 * Protects `files` from eviction for as long as this process lives: what a streamed run reads from until it ends
 * (train() may be called again in the same process, and its shards must not vanish under it meanwhile).
 */
export async function pinForProcess(files: string[], cacheDir: string): Promise<void> {
  for (const f of files) pinned.set(f, (pinned.get(f) ?? 0) + 1)
  await markUser(cacheDir, files, true)
}

/** Adds this process to (or removes it from) the users of `files` that the index knows. */
async function markUser(dir: string, files: string[], using: boolean): Promise<void> {
  const root = path.resolve(dir)
  const keys = files.map((f) => relative(root, f))
  if (keys.length === 0) return
  try {
    // Only entries the index knows are marked; nothing is written for data the cache did not make.
    const now = readIndexSync(root)?.entries ?? {}
    if (!keys.some((k) => now[k] && (using || now[k].users?.includes(process.pid)))) return
    await updateIndex(root, (index) => {
      for (const k of keys) {
        const e = index.entries[k]
        if (!e) continue
        const others = (e.users ?? []).filter((pid) => pid !== process.pid && alive(pid))
        if (using) e.users = [...others, process.pid]
        else if (others.length > 0) e.users = others
        else delete e.users
      }
    })
  } catch (err) {
    process.emitWarning(`convkit: could not update the dataset cache index in ${root}: ${(err as Error).message}`)
  }
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }

/**
 * Parses a size as people write it: `2G`, `500M`, `1.5GB`, `750MiB`, `0`, or plain bytes. K, M, G and T are powers of
 * 1024, as `du -h` shows them; `none` or `unlimited` means no limit (Infinity). Undefined when it is not a size.
 */
export function parseSize(text: string): number | undefined {
  const t = text.trim().toLowerCase()
  if (t === 'none' || t === 'unlimited' || t === 'inf' || t === 'infinity') return Infinity
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?)(?:i?b)?$/.exec(t)
  if (!m) return undefined
  return Math.floor(Number(m[1]) * UNITS[m[2]!]!)
}

/**
 * The cache's size limit in bytes: `cacheMaxBytes` when given, else `$CONVKIT_CACHE_MAX` (a size such as `5G`), else
 * 10 GB. A malformed value is an INVALID_OPTION InputError naming where it came from.
 */
export function cacheMaxBytes(option?: number): number {
  if (option !== undefined) {
    if (typeof option !== 'number' || Number.isNaN(option) || option < 0) {
      throw new InputError(
        'INVALID_OPTION',
        `option cacheMaxBytes: expected a number of bytes >= 0 (Infinity for no limit), got ${JSON.stringify(option)}`,
      )
    }
    return option
  }
  const env = process.env.CONVKIT_CACHE_MAX
  if (env === undefined || env.trim() === '') return DEFAULT_CACHE_MAX_BYTES
  const parsed = parseSize(env)
  if (parsed === undefined) {
    throw new InputError(
      'INVALID_OPTION',
      `CONVKIT_CACHE_MAX=${JSON.stringify(env)}: expected a size such as 2G, 500M or 1073741824 (or 'none')`,
    )
  }
  return parsed
}

function emptyIndex(): IndexFile {
  return { version: 1, entries: {} }
}

/** The index as on disk; a missing, truncated or foreign file reads as empty (entries on disk are found again). */
async function readIndex(dir: string): Promise<IndexFile> {
  let text: string
  try {
    text = await fsp.readFile(path.join(dir, INDEX_FILE), 'utf8')
  } catch {
    return emptyIndex()
  }
  try {
    const parsed = JSON.parse(text) as IndexFile
    if (parsed?.version !== 1 || typeof parsed.entries !== 'object' || parsed.entries === null) return emptyIndex()
    for (const [key, e] of Object.entries(parsed.entries)) {
      if (typeof e !== 'object' || e === null || typeof e.bytes !== 'number' || typeof e.lastUsed !== 'number') delete parsed.entries[key]
    }
    return parsed
  } catch {
    return emptyIndex()
  }
}

function readIndexSync(dir: string): IndexFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), 'utf8')) as IndexFile
  } catch {
    return undefined
  }
}

async function writeIndex(dir: string, index: IndexFile): Promise<void> {
  await writeFileAtomic(path.join(dir, INDEX_FILE), `${JSON.stringify(index, null, 1)}\n`)
}

/**
 * Reads the index, applies `change` and writes it back through a temporary file and a rename, so a reader never sees
 * half an index. Reading just before writing keeps what other processes recorded meanwhile, except in the moment
 * between the two; what such a race loses is only a last-use time, and entries on disk are found again by `reconcile`.
 */
async function updateIndex<T>(dir: string, change: (index: IndexFile) => T | Promise<T>): Promise<T> {
  const index = await readIndex(dir)
  const result = await change(index)
  await writeIndex(dir, index)
  return result
}

/** Disk usage of a file or folder tree in bytes: allocated blocks, as `du` counts them. */
export async function diskUsage(file: string): Promise<number> {
  let stat: fs.Stats
  try {
    stat = await fsp.lstat(file)
  } catch {
    return 0
  }
  const own = stat.blocks !== undefined ? stat.blocks * 512 : stat.size
  if (!stat.isDirectory()) return own
  let total = own
  for (const name of await fsp.readdir(file).catch(() => [] as string[])) total += await diskUsage(path.join(file, name))
  return total
}

function relative(dir: string, file: string): string {
  return path.relative(dir, file).split(path.sep).join('/')
}

/** What a loader used or wrote. */
export interface CacheUse {
  /** Absolute path of the entry (a file or folder inside the cache folder). */
  file: string
  kind: CacheKind
  source: string
  /** Size when known (a file just written); measured otherwise. */
  bytes?: number
}

export interface RecordOptions {
  /** Whether something was written, so the cap is enforced. Defaults to false: uses alone only refresh last-use times. */
  wrote?: boolean
  /** The cap to enforce after a write. Defaults to `cacheMaxBytes()`. */
  maxBytes?: number
}

/**
 * Records that `uses` were used now (and written, with `wrote`), then, after a write, evicts least-recently-used
 * entries until the cache fits its limit. Never throws: a cache that cannot keep its index costs tidiness, not the
 * run, so failures become one warning.
 */
export async function recordCacheUse(dir: string, uses: CacheUse[], options: RecordOptions = {}): Promise<void> {
  const root = path.resolve(dir)
  try {
    // Sizes already recorded are trusted: measuring a 60 000-file extraction again on every use would cost seconds.
    const before = await readIndex(root)
    const known = await Promise.all(
      uses.map(async (u) => ({ ...u, bytes: u.bytes ?? before.entries[relative(root, u.file)]?.bytes ?? (await diskUsage(u.file)) })),
    )
    const now = Date.now()
    await updateIndex(root, (index) => {
      for (const u of known) {
        const key = relative(root, u.file)
        const old = index.entries[key]
        index.entries[key] = {
          ...old,
          kind: u.kind,
          source: u.source,
          bytes: u.bytes,
          created: old?.created ?? now,
          lastUsed: now,
          pid: process.pid,
        }
      }
    })
    if (options.wrote) await enforceLimit(root, options.maxBytes ?? cacheMaxBytes())
  } catch (err) {
    process.emitWarning(`convkit: could not update the dataset cache index in ${root}: ${(err as Error).message}`)
  }
}

/** Refreshes the last use of entries already in the index, leaving unknown paths alone (data the user put there). */
export async function touchIfKnown(dir: string, files: string[]): Promise<void> {
  const root = path.resolve(dir)
  try {
    const index = await readIndex(root)
    const keys = files.map((f) => relative(root, f)).filter((k) => index.entries[k])
    if (keys.length === 0) return
    const now = Date.now()
    await updateIndex(root, (fresh) => {
      for (const k of keys) {
        const e = fresh.entries[k]
        if (e) Object.assign(e, { lastUsed: now, pid: process.pid })
      }
    })
  } catch (err) {
    process.emitWarning(`convkit: could not update the dataset cache index in ${root}: ${(err as Error).message}`)
  }
}

/**
 * Brings the index in line with the disk: entries whose file is gone are dropped; files in the cache's own folders
 * (`decoded/`, `extracted/`, `hashes/`) that it lacks are added, last used when they were modified. Anything else in
 * the folder is not the cache's and is never touched.
 */
async function reconcile(dir: string, index: IndexFile): Promise<void> {
  for (const [key, entry] of Object.entries(index.entries)) {
    const stat = await fsp.lstat(path.join(dir, key)).catch(() => undefined)
    if (!stat) delete index.entries[key]
    else if (entry.kind === 'decoded' || entry.kind === 'hashes' || entry.kind === 'download')
      entry.bytes = stat.blocks !== undefined ? stat.blocks * 512 : stat.size
  }
  for (const [folder, kind] of Object.entries(OWN_FOLDERS)) {
    const names = await fsp.readdir(path.join(dir, folder)).catch(() => [] as string[])
    for (const name of names) {
      const key = `${folder}/${name}`
      if (index.entries[key] || TEMP.test(name) || name.startsWith('.')) continue
      if (kind === 'decoded' && !name.endsWith('.bin')) continue
      if (kind === 'hashes' && !name.endsWith('.tsv')) continue
      const stat = await fsp.lstat(path.join(dir, key)).catch(() => undefined)
      if (!stat) continue
      const bytes = await diskUsage(path.join(dir, key))
      index.entries[key] = { kind, source: '(unknown)', bytes, created: stat.mtimeMs, lastUsed: stat.mtimeMs, pid: 0 }
    }
  }
}

function alive(pid: number): boolean {
  if (!pid || pid === process.pid) return pid === process.pid
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Why an entry may not be evicted now, or undefined when it may. */
function inUse(dir: string, key: string, entry: Omit<CacheEntry, 'path'>): string | undefined {
  if (pinned.has(path.join(dir, key))) return 'in use by this process'
  const reader = entry.users?.find((pid) => pid !== process.pid && alive(pid))
  return reader === undefined ? undefined : `in use by running process ${reader}`
}

/** Removes one entry: a folder is renamed aside first, so nobody sees it half deleted. */
async function removeEntry(file: string): Promise<void> {
  const stat = await fsp.lstat(file).catch(() => undefined)
  if (!stat) return
  if (!stat.isDirectory()) return fsp.rm(file, { force: true })
  const aside = tempPathFor(file, 'evicting')
  await fsp.rename(file, aside)
  await fsp.rm(aside, { recursive: true, force: true })
}

export interface PruneResult {
  removed: CacheEntry[]
  /** Entries that would have gone but are in use, with why. */
  kept: (CacheEntry & { why: string })[]
  /** Bytes the cache's entries take after pruning. */
  totalBytes: number
}

function total(index: IndexFile): number {
  return Object.values(index.entries).reduce((sum, e) => sum + e.bytes, 0)
}

/** Evicts least-recently-used entries until the entries take at most `maxBytes`. */
async function enforceLimit(dir: string, maxBytes: number): Promise<PruneResult> {
  return updateIndex(dir, async (index) => {
    await reconcile(dir, index)
    const removed: CacheEntry[] = []
    const kept: PruneResult['kept'] = []
    let bytes = total(index)
    const oldestFirst = Object.entries(index.entries).sort(([, a], [, b]) => a.lastUsed - b.lastUsed)
    for (const [key, entry] of oldestFirst) {
      if (bytes <= maxBytes) break
      const why = inUse(dir, key, entry)
      if (why) {
        kept.push({ path: key, ...entry, why })
        continue
      }
      await removeEntry(path.join(dir, key))
      delete index.entries[key]
      removed.push({ path: key, ...entry })
      bytes -= entry.bytes
    }
    return { removed, kept, totalBytes: bytes }
  })
}

/** Everything the dataset cache holds, most recently used first, with the total and the limit. */
export interface CacheListing {
  dir: string
  entries: CacheEntry[]
  totalBytes: number
  maxBytes: number
}

/**
 * Lists the dataset cache (`cacheDir`, defaulting to `~/.cache/convkit/datasets`): what `convkit cache ls` prints.
 *
 * @example
 * const { entries, totalBytes } = await listCache()
 */
export async function listCache(options: { cacheDir?: string; maxBytes?: number } = {}): Promise<CacheListing> {
  const dir = datasetCacheDir(options.cacheDir)
  const maxBytes = cacheMaxBytes(options.maxBytes)
  const index = await readIndex(dir)
  await reconcile(dir, index)
  if (fs.existsSync(dir)) await writeIndex(dir, index)
  const entries = Object.entries(index.entries)
    .map(([key, e]) => ({ path: key, ...e }))
    .sort((a, b) => b.lastUsed - a.lastUsed)
  return { dir, entries, totalBytes: total(index), maxBytes }
}

/**
 * Evicts least-recently-used entries until the cache fits `maxBytes` (defaulting to the configured limit), or with
 * `all` removes every entry; either way entries in use (by this process, or marked in use by another running
 * process) stay. Also removes temporary files a crashed process left behind. What `convkit cache prune` does.
 *
 * @example
 * await pruneCache({ maxBytes: 500 * 2 ** 20 }) // down to 500 MB
 * await pruneCache({ all: true })
 */
export async function pruneCache(options: { cacheDir?: string; maxBytes?: number; all?: boolean } = {}): Promise<PruneResult> {
  const dir = datasetCacheDir(options.cacheDir)
  const maxBytes = options.all ? 0 : cacheMaxBytes(options.maxBytes)
  if (!fs.existsSync(dir)) return { removed: [], kept: [], totalBytes: 0 }
  const now = Date.now()
  for (const folder of ['', ...Object.keys(OWN_FOLDERS)]) {
    for (const name of await fsp.readdir(path.join(dir, folder)).catch(() => [] as string[])) {
      const temp = TEMP.exec(name)
      if (!temp) continue
      const file = path.join(dir, folder, name)
      const stat = await fsp.lstat(file).catch(() => undefined)
      if (stat && (!alive(Number(temp[2])) || now - stat.mtimeMs > STALE_TEMP_MS)) await fsp.rm(file, { recursive: true, force: true })
    }
  }
  const result = await enforceLimit(dir, maxBytes)
  // What archives were found to hold is only worth keeping while their decoded files are.
  if (options.all && result.kept.length === 0) await fsp.rm(path.join(dir, 'hashes', 'archives.json'), { force: true })
  return result
}
