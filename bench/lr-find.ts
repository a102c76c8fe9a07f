// Is the learning-rate finder's suggestion a good rate? Three epochs of the reference CNN at the rate `lr-find`
// suggests, against the same three epochs at each rate of a grid (1e-4 … 3e-2), on the shared CIFAR-10 JPEGs.
// Prints a Markdown table of test top-1 by rate, the suggestion's rank and the sweep's time. Not run in CI; long.
//
// Usage: npm run bench:lr-find [-- --optimizer sgd]
// Environment: BENCH_DATA (default ../shared/datasets/cifar10-jpg.tar.gz), BENCH_LIMIT_TRAIN (10000),
// BENCH_EPOCHS (3), BENCH_SEEDS (1), BENCH_DEVICE (auto).
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { findLearningRate, train, type TrainOptions } from '../ts/index.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
const optimizer = (process.argv.includes('--optimizer') ? process.argv[process.argv.indexOf('--optimizer') + 1] : 'adam') as
  | 'adam'
  | 'adamw'
  | 'sgd'
const seeds = Number(process.env.BENCH_SEEDS ?? 1)
const base: TrainOptions = {
  data: process.env.BENCH_DATA ?? path.join(repo, '..', 'shared', 'datasets', 'cifar10-jpg.tar.gz'),
  limitTrain: Number(process.env.BENCH_LIMIT_TRAIN ?? 10_000),
  epochs: Number(process.env.BENCH_EPOCHS ?? 3),
  device: (process.env.BENCH_DEVICE ?? 'auto') as TrainOptions['device'],
  optimizer,
  augment: true,
  valSplit: 0,
  monitor: 'train_loss',
  patience: 100,
  quiet: true,
  report: false,
}

/** Mean test top-1 over the seeds of three epochs at `lr`. */
async function topOneAt(lr: number): Promise<number> {
  let sum = 0
  for (let seed = 0; seed < seeds; seed++) {
    const result = await train({ ...base, lr, seed, out: path.join('runs', 'bench-lr-find', `${lr}-${seed}`) })
    sum += result.history.epochs.at(-1)!.test!.top1
  }
  return sum / seeds
}

const started = performance.now()
const sweep = await findLearningRate({ ...base, seed: 0, out: path.join('runs', 'bench-lr-find', 'sweep') })
const sweepSeconds = (performance.now() - started) / 1000
const suggested = sweep.suggestion.lr
console.log(`suggested ${suggested.toExponential(2)} (${sweep.suggestion.reason}) in ${sweepSeconds.toFixed(1)} s`)

const rows: { lr: number; top1: number; suggested: boolean }[] = []
for (const lr of GRID) rows.push({ lr, top1: await topOneAt(lr), suggested: false })
rows.push({ lr: suggested, top1: await topOneAt(suggested), suggested: true })
rows.sort((a, b) => a.lr - b.lr)
const best = Math.max(...rows.filter((r) => !r.suggested).map((r) => r.top1))
const mine = rows.find((r) => r.suggested)!
const rank = rows.filter((r) => r.top1 > mine.top1).length + 1

console.log(`\n${optimizer}, ${base.epochs} epochs on ${base.limitTrain} images, ${seeds} seed(s): test top-1 after the last epoch\n`)
console.log('| lr | test top-1 (%) |\n|---|---|')
for (const r of rows) console.log(`| ${r.lr.toExponential(1)}${r.suggested ? ' (suggested)' : ''} | ${r.top1.toFixed(2)} |`)
console.log(
  `\nthe suggestion ranks ${rank} of ${rows.length}; ${(mine.top1 - best).toFixed(2)} points from the grid's best; the sweep took ${sweepSeconds.toFixed(1)} s`,
)
