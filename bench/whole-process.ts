// Whole-process timings: the train CLI against the seed's PyTorch workflow (bench/seed_run.py) on the same image
// folder, each as its own process, start to exit. ConvKit runs twice: with an empty decoded-image cache (a first
// run on new images) and again with it warm. Prints seconds and the ratios of this run.
//
// npm run bench:cli -- [--data <folder with train/ and test/ | .tar.gz>] [--epochs 2]
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { extractArchive } from '../ts/index.ts'
import { CIFAR_ARCHIVE } from '../__test__/helpers/cifar-subset.ts'

const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const python = process.env.PYTHON ?? 'python3'
const { values } = parseArgs({ options: { data: { type: 'string' }, epochs: { type: 'string' } } })
const epochs = Number(values.epochs ?? 2)

/** The folder holding train/ and test/: the given one, or the archive's, extracted once into the dataset cache. */
async function dataRoot(source: string): Promise<string> {
  let root = source
  if (/\.(tar\.gz|tgz|tar)$/.test(source)) root = await extractArchive(source)
  for (let depth = 0; depth < 3 && !fs.existsSync(path.join(root, 'train')); depth++) {
    const only = fs.readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory())
    if (only.length !== 1) break
    root = path.join(root, only[0]!.name)
  }
  if (!fs.existsSync(path.join(root, 'train')) || !fs.existsSync(path.join(root, 'test'))) throw new Error(`${source}: expected train/ and test/ folders`)
  return root
}

function timed(label: string, cmd: string, args: string[]): number {
  const start = performance.now()
  const run = spawnSync(cmd, args, { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })
  const seconds = (performance.now() - start) / 1000
  if (run.status !== 0) throw new Error(`${label} failed (exit ${run.status}):\n${run.stdout}`)
  const last = run.stdout.trim().split('\n').at(-1) ?? ''
  console.log(`${label.padEnd(44)} ${seconds.toFixed(1).padStart(7)} s   ${last.slice(0, 110)}`)
  return seconds
}

const root = await dataRoot(values.data ?? CIFAR_ARCHIVE)
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-whole-'))
try {
  console.log(`${epochs} epoch(s) on ${root}; each line is one process, start to exit`)
  const train = (cache: string, out: string) => [
    '--import=tsx',
    'scripts/train.ts',
    '--data',
    root,
    '--epochs',
    String(epochs),
    '--val-split',
    '0',
    '--monitor',
    'test_loss',
    '--device',
    'cpu',
    '--cache-dir',
    cache,
    '--out',
    path.join(scratch, out),
    '--quiet',
  ]
  const cache = path.join(scratch, 'cache')
  const cold = timed('convkit train CLI, empty decoded cache', process.execPath, train(cache, 'cold'))
  const warm = timed('convkit train CLI, decoded cache warm', process.execPath, train(cache, 'warm'))
  const seed = timed('seed PyTorch workflow (bench/seed_run.py)', python, [
    path.join(repo, 'bench', 'seed_run.py'),
    '--root',
    root,
    '--epochs',
    String(epochs),
    '--out',
    path.join(scratch, 'seed-best.pt'),
  ])
  console.log(`\nseed / convkit: ${(seed / cold).toFixed(2)}× with an empty cache, ${(seed / warm).toFixed(2)}× warm`)
} finally {
  fs.rmSync(scratch, { recursive: true, force: true })
}
