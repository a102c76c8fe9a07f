// Checkpoints cross to and from PyTorch: the seed's Network loads ConvKit's weights, and ConvKit loads PyTorch's.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Model, referenceCnn } from '../ts/index.ts'
import { pythonWithTorch } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'pytorch_interop.py')
const tmpdir = tempDirs('interop')
const python = pythonWithTorch()

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

test('a ConvKit checkpoint loads into the seed PyTorch Network with load_state_dict(strict=True)', async (t) => {
  if (!python) return t.log('skipped: no python with torch 2.11 and safetensors (set CONVKIT_PYTHON; .ci/run installs one)') ?? t.pass()
  const dir = tmpdir()
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 9 })
  const file = path.join(dir, 'convkit.safetensors')
  await model.save(file)
  const { x, file: xFile } = inputs(dir)
  const ours = await model.predictFloats(x, 8)
  const diff = maxDiff(ours, pythonProbs(file, xFile))
  t.true(diff < 1e-5, `probabilities differ by up to ${diff}`)
})

test('a state dict saved from the PyTorch Network loads into ConvKit', async (t) => {
  if (!python) return t.log('skipped: no python with torch 2.11 and safetensors (set CONVKIT_PYTHON; .ci/run installs one)') ?? t.pass()
  const dir = tmpdir()
  const state = path.join(dir, 'torch.safetensors')
  execFileSync(python, [script, 'export', state])
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu' })
  await model.loadWeights(state)
  const { x, file: xFile } = inputs(dir)
  const diff = maxDiff(await model.predictFloats(x, 8), pythonProbs(state, xFile))
  t.true(diff < 1e-5, `probabilities differ by up to ${diff}`)
  // A plain state dict has no spec in its header: Model.load says so and points to loadWeights.
  await t.throwsAsync(Model.load(state, { device: 'cpu' }), { message: /loadWeights|spec/ })
})
