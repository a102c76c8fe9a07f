// Multi-label CIFAR-10 mosaics (64×64, 1–4 of the shared images in a 2×2 grid, labelled with their classes; see
// __test__/helpers/mosaics.ts): resnet18 from scratch trained by ConvKit (sigmoid outputs, binary cross-entropy) and by
// PyTorch with BCEWithLogitsLoss (bench/multi_label_torch.py) on the same CSV with the same recipe, one after the other
// in this sitting. Both score the test mosaics alike: mAP, and macro-/micro-F1 and exact match at per-class thresholds
// chosen on the validation rows. Issue 24's target: ConvKit's mAP at least PyTorch's.
//
// With --same-start, PyTorch's run starts from ConvKit's initial weights and trains on ConvKit's order of images, so
// that the two runs differ only in their training steps: the step losses are printed side by side.
//
// npm run bench:multi-label -- [--train 6000] [--valid 600] [--test 2000] [--epochs 8] [--seed 0] [--skip-torch]
//   [--same-start]
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { writeMosaics } from '../__test__/helpers/mosaics.ts'
import { epochOrder, train } from '../ts/index.ts'
import { zooModel } from '../ts/zoo/architectures.ts'
import { extractedCifar } from './cifar-folder.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { values } = parseArgs({
  options: {
    train: { type: 'string' },
    valid: { type: 'string' },
    test: { type: 'string' },
    epochs: { type: 'string' },
    seed: { type: 'string' },
    'skip-torch': { type: 'boolean' },
    'same-start': { type: 'boolean' },
  },
})
const [nTrain, nValid, nTest] = [Number(values.train ?? 6000), Number(values.valid ?? 600), Number(values.test ?? 2000)]
const epochs = Number(values.epochs ?? 8)
const seed = Number(values.seed ?? 0)
const recipe = { batchSize: 64, lr: 1e-3 }

const cifar = extractedCifar()
const dir = path.join(os.tmpdir(), `convkit-bench-mosaics-${nTrain}-${nValid}-${nTest}-${seed}`)
const csv = fs.existsSync(path.join(dir, 'labels.csv'))
  ? path.join(dir, 'labels.csv')
  : await writeMosaics(
      dir,
      [
        // Validation mosaics from training images, test mosaics from the test images only.
        { from: path.join(cifar, 'train'), count: nTrain, split: 'train' },
        { from: path.join(cifar, 'train'), count: nValid, split: 'valid' },
        { from: path.join(cifar, 'test'), count: nTest, split: 'test' },
      ],
      seed + 1,
    )
console.log(
  `${nTrain} train / ${nValid} valid / ${nTest} test mosaics in ${csv}; resnet18, ${epochs} epochs; ${os.cpus().length} cores; ${new Date().toISOString()}`,
)

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-bench-multi-label-'))
const sameStart = values['same-start'] ? path.join(out, 'same-start') : undefined
const stepLosses: number[] = []
if (sameStart) {
  fs.mkdirSync(sameStart)
  // The order train() takes each epoch (epochs count from 1): the training rows in file order, shuffled.
  const rows = Int32Array.from({ length: nTrain }, (_, i) => i)
  const orders = Array.from({ length: epochs }, (_, e) => Array.from(epochOrder('shuffle', rows, new Int32Array(nTrain), seed, e + 1)))
  fs.writeFileSync(path.join(sameStart, 'order.json'), JSON.stringify(orders))
}
let start = performance.now()
const { history } = await train({
  data: csv,
  model: zooModel('resnet18', { classes: 10, inputSize: [64, 64] }),
  size: [64, 64],
  epochs,
  ...recipe,
  optimizer: 'adam',
  precision: 'fp32',
  // The whole run, as PyTorch's loop has it: no early stop, and the last epoch scored.
  patience: epochs,
  seed,
  quiet: true,
  report: false,
  out,
  ...(sameStart
    ? {
        callbacks: [{ onTrainBegin: (ctx) => ctx.model.save(path.join(sameStart, 'init.safetensors'), { withOptimizer: false }) }],
        onBatchEnd: (_batch, step) => {
          stepLosses.push(step.loss)
        },
      }
    : {}),
})
const last = history.epochs.at(-1)!.test!
const ours = {
  mAP: last.multiLabel!.mAP,
  macroF1: last.macroF1!,
  microF1: last.multiLabel!.microF1,
  exactMatch: last.multiLabel!.exactMatch,
  seconds: (performance.now() - start) / 1000,
}
console.log(`convkit: ${JSON.stringify(ours)}`)

if (!values['skip-torch']) {
  const python = process.env.CONVKIT_PYTHON ?? path.join(os.homedir(), '.cache', 'convkit', 'pytorch-venv', 'bin', 'python')
  start = performance.now()
  const run = spawnSync(
    python,
    [
      path.join(repo, 'bench', 'multi_label_torch.py'),
      csv,
      String(epochs),
      String(recipe.batchSize),
      String(recipe.lr),
      String(seed),
      ...(sameStart ? [sameStart] : []),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  )
  if (run.status !== 0) throw new Error(`multi_label_torch.py exited with ${run.status}`)
  const { stepLosses: torchLosses, ...torch } = JSON.parse(run.stdout) as typeof ours & { stepLosses?: number[] }
  console.log(`pytorch: ${JSON.stringify({ ...torch, wholeProcess: (performance.now() - start) / 1000 })}`)
  if (torchLosses) printStepLosses(stepLosses, torchLosses)
  const f = (v: number) => v.toFixed(2)
  console.log('\n| | mAP | macro-F1 | micro-F1 | exact match | seconds |\n|---|---|---|---|---|---|')
  for (const [name, r] of [
    ['ConvKit', ours],
    ['PyTorch BCEWithLogitsLoss', torch],
  ] as const)
    console.log(`| ${name} | ${f(r.mAP)} | ${f(r.macroF1)} | ${f(r.microF1)} | ${f(r.exactMatch)} | ${r.seconds.toFixed(0)} |`)
  console.log(`\nConvKit's mAP minus PyTorch's: ${(ours.mAP - torch.mAP).toFixed(2)} points (target: at least 0)`)
}

/** The two runs' step losses at a few steps, and where they first part by more than 1 % of PyTorch's. */
function printStepLosses(ours: number[], torch: number[]): void {
  if (ours.length !== torch.length) throw new Error(`ConvKit took ${ours.length} steps, PyTorch ${torch.length}`)
  console.log('\n| step | ConvKit loss | PyTorch loss | relative difference |\n|---:|---:|---:|---:|')
  const shown = [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, ours.length].filter((s, i, all) => s <= ours.length && all.indexOf(s) === i)
  for (const step of shown) {
    const [a, b] = [ours[step - 1]!, torch[step - 1]!]
    console.log(`| ${step} | ${a.toFixed(6)} | ${b.toFixed(6)} | ${((a - b) / b).toExponential(2)} |`)
  }
  const parted = ours.findIndex((a, i) => Math.abs(a - torch[i]!) > 0.01 * torch[i]!)
  console.log(
    parted < 0 ? 'The step losses stay within 1 % throughout.' : `The step losses first part by more than 1 % at step ${parted + 1}.`,
  )
}
