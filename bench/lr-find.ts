// Is the learning-rate finder's suggestion a good rate? Three epochs of the reference CNN at the rate `lr-find`
// suggests, against the same three epochs at each rate of a grid (1e-4 … 3e-2), on the shared CIFAR-10 JPEGs.
// Prints a Markdown table of test top-1 by rate, the suggestion's rank and the sweep's time. Not run in CI; long.
//
// With `--pretrained <name>` it is the fine-tune half instead: the fine-tuning recipe (its defaults, 3 epochs, no
// validation split) on BENCH_DATA, which must then be a folder of photos (bench/finetune.ts prepares one).
// Besides the suggestion (a tenth of the rate at the smoothed loss's minimum), the table has the rate another rule
// reads from the same sweep: the smoothed loss's steepest descent against log rate.
//
// Usage: npm run bench:lr-find [-- --optimizer sgd] [-- --pretrained efficientnet_lite0]
// Environment: BENCH_DATA (default ../shared/datasets/cifar10-jpg.tar.gz), BENCH_LIMIT_TRAIN (10000; none with
// --pretrained), BENCH_LIMIT_TEST (all), BENCH_EPOCHS (3), BENCH_SEEDS (1), BENCH_DEVICE (auto).
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { findLearningRate, train, type TrainOptions } from '../ts/index.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
const optimizer = (process.argv.includes('--optimizer') ? process.argv[process.argv.indexOf('--optimizer') + 1] : 'adam') as
  | 'adam'
  | 'adamw'
  | 'sgd'
const pretrained = process.argv.includes('--pretrained') ? process.argv[process.argv.indexOf('--pretrained') + 1] : undefined
const seeds = Number(process.env.BENCH_SEEDS ?? 1)
const common: TrainOptions = {
  data: process.env.BENCH_DATA ?? path.join(repo, '..', 'shared', 'datasets', 'cifar10-jpg.tar.gz'),
  epochs: Number(process.env.BENCH_EPOCHS ?? 3),
  device: (process.env.BENCH_DEVICE ?? 'auto') as TrainOptions['device'],
  valSplit: 0,
  monitor: 'train_loss',
  patience: 100,
  quiet: true,
  report: false,
  ...(process.env.BENCH_LIMIT_TEST ? { limitTest: Number(process.env.BENCH_LIMIT_TEST) } : {}),
}
const base: TrainOptions = pretrained
  ? { ...common, pretrained }
  : { ...common, limitTrain: Number(process.env.BENCH_LIMIT_TRAIN ?? 10_000), optimizer, augment: true }

/** The rate the steepest descent of a sweep's smoothed losses against log rate reads, up to their minimum (batch `low`). */
function steepestDescent(rates: number[], smoothed: number[], low: number): number {
  let steep = 1
  let slope = Number.POSITIVE_INFINITY
  // Central differences against log rate, up to the minimum (beyond it the loss turns).
  for (let i = 1; i < Math.max(2, low); i++) {
    const s = (smoothed[i + 1]! - smoothed[i - 1]!) / (Math.log(rates[i + 1]!) - Math.log(rates[i - 1]!))
    if (s < slope) [slope, steep] = [s, i]
  }
  return rates[steep]!
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
const steepest = steepestDescent(sweep.rates, sweep.smoothed, sweep.suggestion.minimum)
console.log(`suggested ${suggested.toExponential(2)} (${sweep.suggestion.reason}) in ${sweepSeconds.toFixed(1)} s`)
console.log(`steepest descent: ${steepest.toExponential(2)}`)

const rows: { lr: number; top1: number; suggested: boolean; rule?: string }[] = []
for (const lr of GRID) rows.push({ lr, top1: await topOneAt(lr), suggested: false })
rows.push({ lr: suggested, top1: await topOneAt(suggested), suggested: true })
for (const [rule, lr] of [['steepest', steepest]] as const) {
  const same = rows.find((r) => Math.abs(r.lr / lr - 1) < 1e-9)
  rows.push({ lr, top1: same ? same.top1 : await topOneAt(lr), suggested: false, rule })
}
rows.sort((a, b) => a.lr - b.lr)
const best = Math.max(...rows.filter((r) => !r.suggested && !r.rule).map((r) => r.top1))
const mine = rows.find((r) => r.suggested)!
const rank = rows.filter((r) => !r.rule && r.top1 > mine.top1).length + 1

const what = pretrained ? `${pretrained} fine-tuned (the recipe)` : `${optimizer}, ${base.limitTrain} images`
console.log(`\n${what}, ${base.epochs} epochs, ${seeds} seed(s): test top-1 after the last epoch\n`)
console.log('| lr | test top-1 (%) |\n|---|---|')
for (const r of rows) {
  const label = r.suggested ? ' (suggested)' : r.rule ? ` (${r.rule})` : ''
  console.log(`| ${r.lr.toExponential(1)}${label} | ${r.top1.toFixed(2)} |`)
}
console.log(
  `\nthe suggestion ranks ${rank} of ${rows.filter((r) => !r.rule).length}; ${(mine.top1 - best).toFixed(2)} points from the grid's best; the sweep took ${sweepSeconds.toFixed(1)} s`,
)
