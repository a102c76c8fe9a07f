// Downloads one file over HTTP(S): progress bar, resume from a `.partial`, MD5 or SHA-256 check before the file takes its name.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { CancelledError, DataError, FileError, InputError } from '../errors.ts'
import { ProgressBar, formatBytes } from '../util/progress.ts'

export interface DownloadOptions {
  /** MD5 the whole file must have, as 32 hex digits; a file that differs is deleted and the download fails. Defaults to no check. */
  md5?: string
  /**
   * Hex digits the file's SHA-256 must start with: all 64, or a prefix of at least 8 as torchvision puts in its file
   * names (torch.hub's `hash_prefix`). A file that differs is deleted and the download fails. Defaults to no check.
   */
  sha256?: string
  /** Called as bytes arrive with the bytes on disk so far (a resumed part included) and the total when the server gives it. Defaults to none. */
  onProgress?: (received: number, total: number | undefined) => void
  /** Draw no progress bar. Defaults to false; the bar is silent anyway when stderr is not a terminal. */
  quiet?: boolean
  /** Stops the download with a CancelledError; the `.partial` file stays so that a later call resumes it. Defaults to none. */
  signal?: AbortSignal
  /** How many times a dropped connection is picked up again (resumed where the server allows it) before failing. Defaults to 2. */
  retries?: number
  /** Milliseconds without a byte after which the connection counts as dropped, so a stalled server cannot hang the caller. Defaults to 30 000. */
  idleTimeoutMs?: number
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])
const MAX_REDIRECTS = 10

/** Errors worth another attempt: the connection, not the request, was at fault. */
const transient = new WeakSet<Error>()

function failed(message: string, files: string[], options: { cause?: unknown; retry?: boolean } = {}): DataError {
  const err = new DataError('DOWNLOAD_FAILED', message, { cause: options.cause, files })
  if (options.retry) transient.add(err)
  return err
}

interface Attempt {
  url: URL
  dest: string
  partial: string
  options: DownloadOptions
  idleMs: number
  bar?: ProgressBar
  /** Set when the idle timer, not the peer, ended the connection, so the error can say so. */
  timedOut?: boolean
}

/**
 * Fetches `url` into `dest`. Bytes go to `dest + '.partial'`, which is renamed to `dest` only once it is whole and,
 * when `md5` or `sha256` is given, matches it; so a file at `dest` is always complete. A `.partial` left by an
 * earlier attempt is resumed with a `Range` request when the server answers `206`, and restarted otherwise.
 * Redirects are followed. It always fetches: callers decide whether an existing `dest` is good enough.
 *
 * Errors: `DOWNLOAD_FAILED` (HTTP error status, dropped connection, short body; the `.partial` is kept),
 * `CHECKSUM_MISMATCH` (the download is deleted first), `CANCELLED`.
 *
 * @example
 * await download('https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', 'cifar.tar.gz', { md5: 'c32a1d4ab5d03f1284b67883e8d87530' })
 */
export async function download(url: string, dest: string, options: DownloadOptions = {}): Promise<string> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (cause) {
    throw new InputError('INVALID_OPTION', `download url ${JSON.stringify(url)} is not a URL; expected http://… or https://…`, { cause })
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InputError('INVALID_OPTION', `download url ${url} uses ${parsed.protocol}; expected http:// or https://`)
  }
  if (options.md5 !== undefined && !/^[0-9a-f]{32}$/i.test(options.md5)) {
    throw new InputError('INVALID_OPTION', `download md5 ${JSON.stringify(options.md5)} for ${url}: expected 32 hex digits`)
  }
  if (options.sha256 !== undefined && !/^[0-9a-f]{8,64}$/i.test(options.sha256)) {
    throw new InputError(
      'INVALID_OPTION',
      `download sha256 ${JSON.stringify(options.sha256)} for ${url}: expected 8 to 64 hex digits (the hash or its beginning)`,
    )
  }
  const retries = options.retries ?? 2
  if (!Number.isInteger(retries) || retries < 0)
    throw new InputError('INVALID_OPTION', `download retries: expected a whole number ≥ 0, got ${retries}`)

  const target = path.resolve(dest)
  await fsp.mkdir(path.dirname(target), { recursive: true })
  const attempt: Attempt = { url: parsed, dest: target, partial: `${target}.partial`, options, idleMs: options.idleTimeoutMs ?? 30_000 }
  try {
    for (let tries = 0; ; tries++) {
      try {
        await fetchInto(attempt)
        break
      } catch (err) {
        if (!(err instanceof Error) || !transient.has(err) || tries >= retries || options.signal?.aborted) throw err
        await sleep(250 * (tries + 1), undefined, { signal: options.signal }).catch(() => {})
      }
    }
  } catch (err) {
    throw options.signal?.aborted ? cancelled(attempt, err) : err
  } finally {
    attempt.bar?.done()
  }

  if (options.md5 !== undefined) {
    const actual = await md5File(attempt.partial)
    if (actual !== options.md5.toLowerCase()) {
      await fsp.rm(attempt.partial, { force: true })
      throw new DataError(
        'CHECKSUM_MISMATCH',
        `download of ${url} has MD5 ${actual}, expected ${options.md5.toLowerCase()}; the file was deleted (${attempt.partial})`,
        { files: [target] },
      )
    }
  }
  if (options.sha256 !== undefined) {
    const expected = options.sha256.toLowerCase()
    const actual = await sha256File(attempt.partial)
    if (!actual.startsWith(expected)) {
      await fsp.rm(attempt.partial, { force: true })
      const what = expected.length === 64 ? `expected ${expected}` : `expected it to start with ${expected}`
      throw new DataError(
        'CHECKSUM_MISMATCH',
        `download of ${url} into ${target} has SHA-256 ${actual}, ${what}; the file was deleted (${attempt.partial})`,
        {
          files: [target],
        },
      )
    }
  }
  await fsp.rename(attempt.partial, target)
  return target
}

function cancelled(attempt: Attempt, cause: unknown): CancelledError {
  return new CancelledError(
    'CANCELLED',
    `download of ${attempt.url.href} was cancelled; ${attempt.partial} is kept and a later call resumes it`,
    { cause },
  )
}

/** Hex MD5 of a file, read as a stream so large files need no large buffer. */
export async function md5File(file: string): Promise<string> {
  return hashFile(file, 'md5')
}

/** Hex SHA-256 of a file, read as a stream. */
export async function sha256File(file: string): Promise<string> {
  return hashFile(file, 'sha256')
}

async function hashFile(file: string, algorithm: 'md5' | 'sha256'): Promise<string> {
  const hash = createHash(algorithm)
  await pipeline(fs.createReadStream(file), hash)
  return hash.digest('hex')
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await fsp.stat(file)).size
  } catch {
    return 0
  }
}

/** One request (plus redirects) that appends to, or restarts, the `.partial`. */
async function fetchInto(attempt: Attempt): Promise<void> {
  const start = await sizeOf(attempt.partial)
  attempt.timedOut = false
  const res = await get(attempt, start > 0 ? { Range: `bytes=${start}-` } : {})
  const status = res.statusCode ?? 0
  if (status === 416 && start > 0) {
    // The server cannot serve from where the partial file ends (it may have changed): start over.
    res.resume()
    await fsp.rm(attempt.partial, { force: true })
    return fetchInto(attempt)
  }
  if (status !== 200 && status !== 206) {
    res.resume()
    throw failed(`GET ${attempt.url.href} answered ${status} ${res.statusMessage ?? ''}; expected 200`.trim(), [attempt.dest], {
      retry: status >= 500,
    })
  }

  const length = Number(res.headers['content-length'])
  let offset = 0
  let total = Number.isFinite(length) && res.headers['content-length'] !== undefined ? length : undefined
  if (status === 206) {
    const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '')
    if (!range || Number(range[1]) !== start) {
      res.resume()
      await fsp.rm(attempt.partial, { force: true })
      throw failed(
        `GET ${attempt.url.href} answered 206 with Content-Range ${JSON.stringify(res.headers['content-range'])}, expected bytes ${start}-…; restarting`,
        [attempt.dest],
        { retry: true },
      )
    }
    offset = start
    total = range[2] !== '*' ? Number(range[2]) : total === undefined ? undefined : start + total
  }

  if (!attempt.bar || attempt.bar.total !== total) {
    attempt.bar?.done()
    attempt.bar = new ProgressBar(`download ${path.basename(attempt.dest)}`, {
      total,
      format: formatBytes,
      rateUnit: '/s',
      quiet: attempt.options.quiet,
    })
  }
  const bar = attempt.bar
  const onProgress = attempt.options.onProgress
  let received = offset
  // 'a' keeps the resumed bytes; 'w' truncates a partial file the server would not resume.
  // A large buffer means write() rarely asks to wait, so few received bytes sit unwritten when a connection drops.
  const out = fs.createWriteStream(attempt.partial, { flags: offset > 0 ? 'a' : 'w', highWaterMark: 1 << 20 })
  let writeError: Error | undefined
  out.on('error', (err) => {
    writeError ??= err
  })
  const closed = new Promise<void>((resolve) => out.once('close', resolve))
  let dropped: { cause: unknown } | undefined
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (writeError) break
      received += chunk.length
      bar.update(received)
      onProgress?.(received, total)
      if (!out.write(chunk)) await once(out, 'drain')
    }
  } catch (cause) {
    dropped = { cause }
  }
  // Ending (not destroying) the stream flushes every byte received, so a resume starts exactly where this left off.
  out.end()
  await closed
  if (writeError)
    throw new FileError('IO_ERROR', `cannot write the download ${attempt.partial}: ${writeError.message}`, { cause: writeError })
  const of = total === undefined ? '' : ` of ${total}`
  if (dropped) {
    const why = attempt.timedOut ? `no data for ${attempt.idleMs / 1000} s` : (dropped.cause as Error).message
    throw failed(
      `download of ${attempt.url.href} was interrupted after ${received}${of} bytes (${why}); ${attempt.partial} is kept for resuming`,
      [attempt.dest],
      {
        cause: dropped.cause,
        retry: true,
      },
    )
  }
  if (total !== undefined && received !== total) {
    throw failed(
      `download of ${attempt.url.href} ended after ${received}${of} bytes; ${attempt.partial} is kept for resuming`,
      [attempt.dest],
      { retry: true },
    )
  }
}

/** GET that follows redirects and gives up on a connection that goes quiet. */
async function get(attempt: Attempt, headers: Record<string, string>): Promise<http.IncomingMessage> {
  let url = attempt.url
  for (let hops = 0; hops <= MAX_REDIRECTS; hops++) {
    const res = await request(url, headers, attempt)
    const location = res.headers.location
    if (!REDIRECTS.has(res.statusCode ?? 0) || !location) return res
    res.resume()
    url = new URL(location, url)
  }
  throw failed(`GET ${attempt.url.href} redirected more than ${MAX_REDIRECTS} times`, [attempt.dest])
}

function request(url: URL, headers: Record<string, string>, attempt: Attempt): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http
    // identity: a compressed body would break both the Range arithmetic and the byte count.
    const req = client.get(
      url,
      { headers: { ...headers, 'Accept-Encoding': 'identity', 'User-Agent': 'convkit' }, signal: attempt.options.signal },
      resolve,
    )
    req.setTimeout(attempt.idleMs, () => {
      attempt.timedOut = true
      req.destroy(new Error(`no data for ${attempt.idleMs / 1000} s`))
    })
    req.on('error', (cause) => {
      reject(failed(`GET ${url.href} failed: ${cause.message}`, [attempt.dest], { cause, retry: true }))
    })
  })
}
