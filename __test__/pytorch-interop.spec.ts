// Checkpoints cross to and from PyTorch, and the optimizers step as PyTorch 2.11's do, checked against torch itself.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Model, referenceCnn, type OptimizerOptions } from '../ts/index.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWithTorch } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'pytorch_interop.py')
const tmpdir = tempDirs('interop')
const python = pythonWithTorch()
const withTorch = needs(missingPython())

/** Eight fixed pseudo-random inputs in the normalized range. */
function inputs(dir: string): { x: Float32Array; file: string } {
  const x = Float32Array.from({ length: 8 * 3 * 32 * 32 }, (_, i) => Math.sin(i * 12.9898) * 0.999)
  const file = path.join(dir, 'x.f32')
  fs.writeFileSync(file, Buffer.from(x.buffer))
  return { x, file }
}

function pythonProbs(state: string, xFile: string): number[][] {
  return JSON.parse(execFileSync(python!, [script, 'probs', state, xFile, '8'], { encoding: 'utf8' })) as number[][]
}

function maxDiff(ours: Float32Array[], theirs: number[][]): number {
  return Math.max(...ours.flatMap((row, i) => Array.from(row, (v, j) => Math.abs(v - theirs[i]![j]!))))
}

withTorch('a ConvKit checkpoint loads into the seed PyTorch Network with load_state_dict(strict=True)', async (t) => {
  const dir = tmpdir()
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 9 })
  const file = path.join(dir, 'convkit.safetensors')
  await model.save(file)
  const { x, file: xFile } = inputs(dir)
  const ours = await model.predictFloats(x, 8)
  const diff = maxDiff(ours, pythonProbs(file, xFile))
  t.true(diff < 1e-5, `probabilities differ by up to ${diff}`)
})

withTorch('a state dict saved from the PyTorch Network loads into ConvKit', async (t) => {
  const dir = tmpdir()
  const state = path.join(dir, 'torch.safetensors')
  execFileSync(python!, [script, 'export', state])
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu' })
  await model.loadWeights(state)
  const { x, file: xFile } = inputs(dir)
  const diff = maxDiff(await model.predictFloats(x, 8), pythonProbs(state, xFile))
  t.true(diff < 1e-5, `probabilities differ by up to ${diff}`)
  // A plain state dict has no spec in its header: Model.load says so and points to loadWeights.
  await t.throwsAsync(Model.load(state, { device: 'cpu' }), { message: /loadWeights|spec/ })
})

/** The largest |a - b| / max(|b|, 1e-3) over every parameter of two safetensors files read through ConvKit. */
async function relativeDiff(ours: string, theirs: string): Promise<number> {
  const { readSafetensors } = await import('../ts/weights/safetensors-file.ts')
  const a = new Map((await readSafetensors(ours)).map((t) => [t.name, t]))
  let worst = 0
  for (const b of await readSafetensors(theirs)) {
    const av = new Float32Array(a.get(b.name)!.data.slice().buffer)
    const bv = new Float32Array(b.data.slice().buffer)
    for (let i = 0; i < bv.length; i++) worst = Math.max(worst, Math.abs(av[i]! - bv[i]!) / Math.max(Math.abs(bv[i]!), 1e-3))
  }
  return worst
}

const optimizers: [string, OptimizerOptions][] = [
  ['AdamW with weight decay', { type: 'adamw', lr: 2e-3, weightDecay: 0.05, beta2: 0.99 }],
  ['Nesterov SGD with momentum and weight decay', { type: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }],
  ['Adam with an L2 penalty', { type: 'adam', lr: 1e-3, weightDecay: 1e-4 }],
  [
    'Nesterov SGD with decoupled weight decay',
    { type: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.05, decoupledWeightDecay: true },
  ],
]

for (const [name, optimizer] of optimizers) {
  withTorch(`${name} steps as torch.optim with fused=True does: the same weights after 5 steps within 1e-6 relative`, async (t) => {
    const dir = tmpdir()
    const start = path.join(dir, 'start.safetensors')
    execFileSync(python!, [script, 'export', start])
    // Contiguous layout, as PyTorch runs by default, so both sides call the same kernels.
    const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', optimizer, channelsLast: false })
    await model.loadWeights(start)
    const { x, file: xFile } = inputs(dir)
    const y = BigInt64Array.from({ length: 8 }, (_, i) => BigInt((i * 7) % 10))
    const yFile = path.join(dir, 'y.i64')
    fs.writeFileSync(yFile, Buffer.from(y.buffer))
    const steps = 5
    for (let i = 0; i < steps; i++) await model.trainBatchFloats(x, Array.from(y, Number))
    const ours = path.join(dir, 'ours.safetensors')
    await model.save(ours, { withOptimizer: false })
    const theirs = path.join(dir, 'theirs.safetensors')
    execFileSync(python!, [script, 'optimize', start, xFile, yFile, '8', String(steps), JSON.stringify(optimizer), theirs])
    const diff = await relativeDiff(ours, theirs)
    t.log(`largest relative difference ${diff.toExponential(2)}`)
    t.true(diff < 1e-6, `weights differ by up to ${diff} relative`)
    // The step really moved the weights: the same comparison against the start fails.
    t.true((await relativeDiff(ours, start)) > 1e-3)
  })
}
