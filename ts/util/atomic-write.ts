// Files written through a temporary sibling and a rename, so readers never see half a file and a crash never leaves
// a truncated one. Every atomic write in ConvKit goes through here, with one temporary-name format that the cache's
// pruning recognizes (`TEMP_NAME`) and removes once its process is gone.
import { randomBytes } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'

/** `.<name>.tmp-<pid>-<hex>` (and the cache's `.partial-`, `.evicting-` folders): what is being written, and by whom. */
export const TEMP_NAME = /\.(tmp|partial|evicting)-(\d+)-[0-9a-f]+$/

/** A fresh temporary name beside `file`, hidden, naming this process. */
export function tempPathFor(file: string, kind: 'tmp' | 'partial' | 'evicting' = 'tmp'): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`)
}

/**
 * Runs `write(temp)` to fill a temporary sibling of `file`, then renames it onto `file`; on any failure the temporary
 * file is removed and the error rethrown. For files written piecewise (a stream, a file handle).
 */
export async function writeAtomicWith(file: string, write: (temp: string) => Promise<void>): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true })
  const temp = tempPathFor(file)
  try {
    await write(temp)
    await fsp.rename(temp, file)
  } catch (err) {
    await fsp.rm(temp, { force: true })
    throw err
  }
}

/** Writes `data` to `file` atomically, creating its folder. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await writeAtomicWith(file, (temp) => fsp.writeFile(temp, data))
}
