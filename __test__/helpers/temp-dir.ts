// Temporary folders for a spec, removed when its tests are done.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** Returns a maker of fresh folders named `convkit-<prefix>-*` (or another name); all go after the spec's last test. */
export function tempDirs(prefix: string): (name?: string) => string {
  const made: string[] = []
  test.after.always(() => {
    for (const dir of made) fs.rmSync(dir, { recursive: true, force: true })
  })
  return (name = prefix) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `convkit-${name}-`))
    made.push(dir)
    return dir
  }
}
