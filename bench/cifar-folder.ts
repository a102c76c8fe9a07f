// The shared CIFAR-10 archive extracted once per machine as `cifar10-jpg/train/<class>` and `test/<class>`, for the
// benchmarks that read it as a folder.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { CIFAR_ARCHIVE } from '../__test__/helpers/cifar-subset.ts'

/** The extracted folder (with train/ and test/), extracting it on first use. */
export function extractedCifar(): string {
  const root = path.join(os.tmpdir(), 'convkit-bench-cifar-60000')
  const done = path.join(root, 'cifar10-jpg')
  if (fs.existsSync(path.join(done, 'test'))) return done
  const staging = `${root}.partial-${process.pid}`
  fs.mkdirSync(staging, { recursive: true })
  execFileSync('tar', ['-xzf', CIFAR_ARCHIVE, '-C', staging])
  fs.renameSync(staging, root)
  return done
}
