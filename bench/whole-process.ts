// Whole-process timings: the train CLI against the seed's PyTorch workflow (bench/seed_run.py) on the same image
// folder, each as its own process, start to exit. ConvKit runs twice: with an empty decoded-image cache (a first
// run on new images) and again with it warm. Prints seconds and the ratios of this run.
//
// npm run bench:cli -- [--data <folder with train/ and test/ | .tar.gz>] [--epochs 2] [--train-images 10000] [--repeat 3]
// --train-images N trains both sides on the first N/classes files of each class (a folder of links; the test set
// whole); --repeat R runs each process R times, alternating, and reports medians.
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
const { values } = parseArgs({
  options: { data: { type: 'string' }, epochs: { type: 'string' }, 'train-images': { type: 'string' }, repeat: { type: 'string' } },
})
const epochs = Number(values.epochs ?? 2)
const repeat = Number(values.repeat ?? 1)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** A folder of links: the first `images / classes` files (sorted) of each training class, and the whole test set. */
function subsetRoot(root: string, images: number, into: string): string {
  const classes = fs.readdirSync(path.join(root, 'train')).sort()
  const perClass = Math.floor(images / classes.length)
  for (const c of classes) {
    fs.mkdirSync(path.join(into, 'train', c), { recursive: true })
    for (const f of fs
      .readdirSync(path.join(root, 'train', c))
      .sort()
      .slice(0, perClass))
      fs.symlinkSync(path.join(root, 'train', c, f), path.join(into, 'train', c, f))
  }
  fs.symlinkSync(path.join(root, 'test'), path.join(into, 'test'))
  return into
}

/** The folder holding train/ and test/: the given one, or the archive's, extracted once into the dataset cache. */
async function dataRoot(source: string): Promise<string> {
  let root = source
  if (/\.(tar\.gz|tgz|tar)$/.test(source)) root = await extractArchive(source)
  for (let depth = 0; depth < 3 && !fs.existsSync(path.join(root, 'train')); depth++) {
    const only = fs.readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory())
    if (only.length !== 1) break
    root = path.join(root, only[0]!.name)
  }
  if (!fs.existsSync(path.join(root, 'train')) || !fs.existsSync(path.join(root, 'test')))
    throw new Error(`${source}: expected train/ and test/ folders`)
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

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-whole-'))
const full = await dataRoot(values.data ?? CIFAR_ARCHIVE)
const root = values['train-images'] ? subsetRoot(full, Number(values['train-images']), path.join(scratch, 'data')) : full
try {
  console.log(
    `${epochs} epoch(s) on ${root}${values['train-images'] ? ` (${values['train-images']} training images)` : ''}; each line is one process, start to exit`,
  )
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
  const colds: number[] = []
  const warms: number[] = []
  const seeds: number[] = []
  for (let r = 0; r < repeat; r++) {
    const cache = path.join(scratch, `cache-${r}`)
    colds.push(timed('convkit train CLI, empty decoded cache', process.execPath, train(cache, `cold-${r}`)))
    warms.push(timed('convkit train CLI, decoded cache warm', process.execPath, train(cache, `warm-${r}`)))
    seeds.push(
      timed('seed PyTorch workflow (bench/seed_run.py)', python, [
        path.join(repo, 'bench', 'seed_run.py'),
        '--root',
        root,
        '--epochs',
        String(epochs),
        '--out',
        path.join(scratch, 'seed-best.pt'),
      ]),
    )
  }
  const [cold, warm, seed] = [median(colds), median(warms), median(seeds)]
  const of = repeat > 1 ? ` (medians of ${repeat}: ${cold.toFixed(1)} s, ${warm.toFixed(1)} s, seed ${seed.toFixed(1)} s)` : ''
  console.log(`\nseed / convkit: ${(seed / cold).toFixed(2)}× with an empty cache, ${(seed / warm).toFixed(2)}× warm${of}`)
} finally {
  fs.rmSync(scratch, { recursive: true, force: true })
}
