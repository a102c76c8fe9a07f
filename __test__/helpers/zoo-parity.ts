// Zoo parity against the reference implementation (torchvision 0.26 / timm 1.0.31, __test__/fixtures/zoo_reference.py):
// the measurements __test__/zoo.spec.ts asserts on this machine's CPU and bench/zoo-parity.ts reports on a GPU.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Device } from '../../ts/util/device.ts'
import { Model } from '../../ts/model/model.ts'
import { readSafetensors } from '../../ts/weights/safetensors-file.ts'
import { torchTensorValues, type TorchTensor } from '../../ts/weights/torch-checkpoint.ts'
import { ZOO_NAMES, zooModel, type ZooName } from '../../ts/zoo/architectures.ts'

export const ZOO_REFERENCE_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'zoo_reference.py')

/**
 * Input side of the parity runs. Float64 on both sides makes the check independent of input size (in float32,
 * 1×1 maps and train-mode batch norm over few values amplify rounding past 1e-4); small inputs keep it fast.
 */
export const PARITY_SIZE: Record<ZooName, number> = {
  resnet9: 32,
  resnet18: 32,
  resnet34: 32,
  resnet50: 32,
  mobilenet_v2: 32,
  mobilenet_v3_large: 32,
  efficientnet_b0: 32,
  efficientnet_lite0: 32,
  efficientnet_v2_s: 32,
  regnet_y_800mf: 32,
  convnext_tiny: 32,
}
export const PARITY_CLASSES = 10
/** Images per batch: train-mode batch norm needs at least 2 values per channel at the last (1×1 at 32×32) map. */
export const PARITY_BATCH = 4
/** The largest difference, relative where it says so, that counts as the same. */
export const PARITY_TOLERANCE = 1e-4

/** Runs the reference for every architecture into `dir/<name>/` (weights, inputs, logits, gradients). */
export function runZooReference(python: string, dir: string): Promise<void> {
  const jobs = ZOO_NAMES.map((name) => `${name}@${PARITY_SIZE[name]}x${PARITY_SIZE[name]}`)
  return new Promise((resolve, reject) => {
    const child = spawn(python, [ZOO_REFERENCE_SCRIPT, 'all', dir, String(PARITY_CLASSES), String(PARITY_BATCH), ...jobs], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`zoo_reference.py all exited with ${code}: ${stderr}`))))
  })
}

/** A whole file as an ArrayBuffer of its own (small Buffers share a pool, at an offset). */
export function readBytes(file: string): ArrayBuffer {
  const bytes = fs.readFileSync(file)
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}

export function values(tensor: TorchTensor | undefined, what: string): Float64Array {
  if (!tensor) throw new Error(`${what}: missing`)
  const v = torchTensorValues(tensor)
  if (v instanceof Float64Array) return v
  if (v instanceof Float32Array) return Float64Array.from(v)
  throw new Error(`${what}: expected a float tensor, got ${tensor.dtype}`)
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!))
  return m
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

/** Whether `ratio` is further off than `worst`: NaN is the worst of all and stays so. */
const worse = (ratio: number, worst: number) => !Number.isNaN(worst) && (Number.isNaN(ratio) || ratio > worst)
const byName = (tensors: TorchTensor[]) => new Map(tensors.map((x) => [x.name, x]))
const shapes = (tensors: Iterable<TorchTensor>) => [...tensors].map((x) => `${x.name} [${x.shape.join(',')}]`).sort()

/** What one architecture's parity run measured; every figure must be within PARITY_TOLERANCE. */
export interface ZooParity {
  /** Largest |Δ| of the eval logits. */
  logitDiff: number
  /** |Δ loss| / |loss| of the training step. */
  lossDiff: number
  /** The gradient furthest off, relative to its largest reference value. */
  worstGrad: { ratio: number; name: string }
  /** The running statistic furthest off after the step, relative to its largest value. */
  worstStat: { ratio: number; name: string }
  /** Tensor names and shapes: ours after the step, and the reference state dict's. */
  shapes: { ours: string[]; reference: string[] }
  /** Names of the gradients compared: the parameters, and the reference's gradient keys. */
  gradNames: { ours: string[]; reference: string[] }
  /** Running statistics compared, and the step counters that differ from the reference's. */
  statsCounted: number
  counterMismatches: string[]
}

/** Whether every figure of a parity run is within the tolerance and the names line up. */
export function parityHolds(p: ZooParity): boolean {
  const same = (a: string[], b: string[]) => a.join('\n') === b.join('\n')
  return (
    p.logitDiff <= PARITY_TOLERANCE &&
    p.lossDiff <= PARITY_TOLERANCE &&
    p.worstGrad.ratio <= PARITY_TOLERANCE &&
    p.worstStat.ratio <= PARITY_TOLERANCE &&
    p.statsCounted > 0 &&
    p.counterMismatches.length === 0 &&
    same(p.shapes.ours, p.shapes.reference) &&
    same(p.gradNames.ours, p.gradNames.reference)
  )
}

/**
 * ConvKit's `name` in float64 on `device` against the reference files in `dir`: eval logits with the exported
 * (randomized) running statistics, then one SGD step with lr 1 (the weights move by exactly their gradient) for the
 * loss, the gradients and the running statistics. `scratch` is a directory for the weights after the step.
 */
export async function zooParity(name: ZooName, dir: string, device: Device, scratch: string): Promise<ZooParity> {
  const size = PARITY_SIZE[name]
  const x = new Float32Array(readBytes(path.join(dir, 'x.f32')))
  const labels = Int32Array.from(new BigInt64Array(readBytes(path.join(dir, 'labels.i64'))), Number)
  const state = await readSafetensors(path.join(dir, 'state.safetensors'))
  const ref = byName(await readSafetensors(path.join(dir, 'grads.safetensors')))

  // Dropout and stochastic depth off, as the reference has them in its training step: their draws cannot agree.
  const spec = zooModel(name, { classes: PARITY_CLASSES, inputSize: [size, size], dropout: 0, dropPath: 0 })
  const model = Model.create(spec, { device, dtype: 'float64', optimizer: { type: 'sgd', lr: 1 } })
  await model.loadWeights(path.join(dir, 'state.safetensors'))

  const logits = await model.predictFloats(x, PARITY_BATCH, { logits: true })
  const logitDiff = maxAbsDiff(
    Float64Array.from(logits.flatMap((row) => [...row])),
    new Float64Array(readBytes(path.join(dir, 'logits.f64'))),
  )

  const step = await model.trainBatchFloats(x, labels)
  const refLoss = values(ref.get('__loss__'), '__loss__')[0]!
  const lossDiff = Math.abs(step.loss - refLoss) / Math.abs(refLoss)
  const file = path.join(scratch, `${name}-after.safetensors`)
  await model.save(file, { withOptimizer: false })
  const after = byName(await readSafetensors(file))

  // Gradients: each tensor within the tolerance of its largest reference value. Some have a true gradient of exactly
  // 0 (the last batch norm's bias of a block whose output only feeds 1×1 convs and train-mode batch norms, which
  // subtract any per-channel constant): their computed values are rounding noise, hence the floor at 1e-6 of the
  // largest gradient of the network.
  const grads = state.filter((s) => !/\.(running_mean|running_var|num_batches_tracked)$/.test(s.name))
  const largest = Math.max(...grads.map((s) => maxAbs(values(ref.get(s.name), s.name))))
  const worstGrad = { ratio: 0, name: '' }
  for (const s of grads) {
    const before = values(s, s.name)
    const now = values(after.get(s.name), s.name)
    const expected = values(ref.get(s.name), s.name)
    const ratio =
      maxAbsDiff(
        before.map((b, i) => b - now[i]!),
        expected,
      ) / Math.max(maxAbs(expected), 1e-6 * largest)
    if (worse(ratio, worstGrad.ratio)) Object.assign(worstGrad, { ratio, name: s.name })
  }

  // Running statistics after the step: momentum, unbiased variance and the step count as PyTorch updates them.
  const worstStat = { ratio: 0, name: '' }
  const counterMismatches: string[] = []
  let statsCounted = 0
  for (const [key, tensor] of ref) {
    if (!key.startsWith('__running__.')) continue
    const bufferName = key.slice('__running__.'.length)
    statsCounted++
    if (bufferName.endsWith('num_batches_tracked')) {
      const [ours, theirs] = [torchTensorValues(after.get(bufferName)!), torchTensorValues(tensor)]
      if (ours.constructor !== theirs.constructor || String(ours) !== String(theirs)) counterMismatches.push(bufferName)
      continue
    }
    const expected = values(tensor, key)
    const ratio = maxAbsDiff(values(after.get(bufferName), bufferName), expected) / maxAbs(expected)
    if (worse(ratio, worstStat.ratio)) Object.assign(worstStat, { ratio, name: bufferName })
  }
  return {
    logitDiff,
    lossDiff,
    worstGrad,
    worstStat,
    shapes: { ours: shapes(after.values()), reference: shapes(state) },
    gradNames: { ours: grads.map((s) => s.name).sort(), reference: [...ref.keys()].filter((k) => !k.startsWith('__')).sort() },
    statsCounted,
    counterMismatches,
  }
}

/** One line of figures for a parity run. */
export function describeParity(name: string, p: ZooParity): string {
  return `${name}: logits max |Δ| ${p.logitDiff.toExponential(1)}, loss rel ${p.lossDiff.toExponential(1)}, gradients ${p.worstGrad.ratio.toExponential(1)} (${p.worstGrad.name}), running stats ${p.worstStat.ratio.toExponential(1)} (${p.worstStat.name})`
}
