// Extracts a small, fixed subset of the shared CIFAR-10 JPEGs once per machine, for tests.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** `../shared/datasets/cifar10-jpg.tar.gz` beside the checkout, as CI lays it out. */
export const CIFAR_ARCHIVE = process.env.CONVKIT_CIFAR_ARCHIVE ?? path.resolve(repo, '..', 'shared', 'datasets', 'cifar10-jpg.tar.gz')

/**
 * 200 training images per class (files 0000–0199: 2 000 in all) and 100 test images per class
 * (0000–0099: 1 000), as `root/train/<class>` and `root/test/<class>`.
 */
export function cifarSubset(): { train: string; test: string } {
  const root = path.join(os.tmpdir(), 'convkit-test-cifar-2000')
  const done = { train: path.join(root, 'cifar10-jpg', 'train'), test: path.join(root, 'cifar10-jpg', 'test') }
  if (fs.existsSync(done.train)) return done
  if (!fs.existsSync(CIFAR_ARCHIVE)) throw new Error(`the shared CIFAR-10 archive is missing: ${CIFAR_ARCHIVE}`)
  const staging = `${root}.partial-${process.pid}`
  fs.rmSync(staging, { recursive: true, force: true })
  fs.mkdirSync(staging, { recursive: true })
  execFileSync('tar', [
    '-xzf',
    CIFAR_ARCHIVE,
    '-C',
    staging,
    '--wildcards',
    'cifar10-jpg/train/*/0[01]??.jpg',
    'cifar10-jpg/test/*/00??.jpg',
  ])
  try {
    fs.renameSync(staging, root)
  } catch {
    fs.rmSync(staging, { recursive: true, force: true })
  }
  return done
}
