// Unpacks `.tar.gz`/`.tgz`/`.tar` archives into the cache once per content, with the system `tar`, never leaving a
// half-extracted folder. (Archives of image folders are read without extracting: see archive-images.ts.)
import { spawn } from 'node:child_process'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { DataError } from '../errors.ts'
import { datasetCacheDir } from './cache-dir.ts'
import { cacheMaxBytes, recordCacheUse, withPinned } from './cache-index.ts'
import { archiveSha256 } from './content-hash.ts'
import { exists } from './paths.ts'
import { tempPathFor } from '../util/atomic-write.ts'

/** Archive names `extractArchive` takes. GNU tar detects the compression itself, so the name only has to say "tar". */
export const ARCHIVE_EXTENSIONS = ['.tar.gz', '.tgz', '.tar']

/** Whether `file` is named like an archive `extractArchive` unpacks. */
export function isArchive(file: string): boolean {
  const lower = file.toLowerCase()
  return ARCHIVE_EXTENSIONS.some((ext) => lower.endsWith(ext))
}

export interface ExtractOptions {
  /** The dataset cache's size limit in bytes, enforced after extracting. Defaults to `cacheMaxBytes()` (`$CONVKIT_CACHE_MAX`, else 10 GB). */
  cacheMaxBytes?: number
}

/**
 * Extracts `file` into `<cacheDir>/extracted/<name>-<key>` and returns that folder. The key is the start of the
 * archive's sha256 (read once per version of the file, then remembered by its path, size, times and inode), so the
 * same archive from any path or copy shares one extraction, and a changed archive is extracted afresh. Extraction goes
 * to a temporary folder that is renamed into place when tar succeeds, so the folder exists only when it is complete.
 * The extraction is a cache entry: it counts against the size limit and is evicted when least recently used.
 *
 * @param cacheDir The datasets cache. Defaults to `~/.cache/convkit/datasets` (see `datasetCacheDir`).
 * @example
 * const root = await extractArchive('../shared/datasets/cifar10-jpg.tar.gz') // …/extracted/cifar10-jpg-1a2b3c4d5e6f7a8b
 */
export async function extractArchive(file: string, cacheDir?: string, options: ExtractOptions = {}): Promise<string> {
  const archive = path.resolve(file)
  let stat
  try {
    stat = await fsp.stat(archive)
  } catch (cause) {
    throw new DataError('DATA_NOT_FOUND', `archive ${file} does not exist`, { cause, files: [archive] })
  }
  if (!stat.isFile()) throw new DataError('DATA_NOT_FOUND', `archive ${file} is not a file`, { files: [archive] })
  if (!isArchive(archive)) {
    throw new DataError('DATA_CORRUPT', `archive ${file}: expected a name ending in ${ARCHIVE_EXTENSIONS.join(', ')}`, { files: [archive] })
  }
  const maxBytes = cacheMaxBytes(options.cacheMaxBytes)
  const dir = datasetCacheDir(cacheDir)
  const key = (await archiveSha256(dir, archive, stat)).slice(0, 16)
  const name = path.basename(archive).replace(/\.(tar\.gz|tgz|tar)$/i, '')
  // The name is only for people looking; a copy under another name finds the extraction by its key.
  const found = (await fsp.readdir(path.join(dir, 'extracted')).catch(() => [] as string[])).find((n) => n.endsWith(`-${key}`))
  const dest = path.join(dir, 'extracted', found ?? `${name}-${key}`)
  const existed = found !== undefined || (await exists(dest))
  if (!existed) await untarInto(archive, dest)
  await withPinned([dest], () => recordCacheUse(dir, [{ file: dest, kind: 'extracted', source: archive }], { wrote: !existed, maxBytes }))
  return dest
}

/**
 * Unpacks `archive` so that its contents appear at `dest` all at once: tar writes into a sibling temporary folder,
 * which is renamed to `dest`. If another process got there first, its copy is kept.
 */
export async function untarInto(archive: string, dest: string): Promise<void> {
  await fsp.mkdir(path.dirname(dest), { recursive: true })
  const staging = tempPathFor(dest, 'partial')
  await fsp.mkdir(staging)
  try {
    await runTar(archive, staging)
    await fsp.rename(staging, dest)
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true })
    // rename fails with ENOTEMPTY/EEXIST when a concurrent run finished first; theirs is as good as ours.
    const code = (err as NodeJS.ErrnoException).code
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await exists(dest))) return
    throw err
  }
}

function runTar(archive: string, into: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // --no-same-owner: when run as root, tar would otherwise chown files to the archive's uids.
    const tar = spawn('tar', ['-xf', archive, '-C', into, '--no-same-owner'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    tar.stderr.setEncoding('utf8')
    tar.stderr.on('data', (chunk: string) => {
      if (stderr.length < 4000) stderr += chunk
    })
    tar.on('error', (cause) => {
      reject(
        new DataError('DATA_CORRUPT', `cannot extract ${archive}: the system \`tar\` could not be started (${cause.message})`, {
          cause,
          files: [archive],
        }),
      )
    })
    tar.on('close', (code, signal) => {
      if (code === 0) return resolve()
      const why = stderr.trim().split('\n').slice(0, 3).join('; ') || `tar exited with ${code ?? signal}`
      reject(new DataError('DATA_CORRUPT', `cannot extract ${archive}: expected a readable tar archive (${why})`, { files: [archive] }))
    })
  })
}
