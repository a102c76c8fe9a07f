// The model zoo: every architecture's spec resolves with the reference's parameter count, and against the reference
// implementation (torchvision 0.26 / timm 1.0.31, __test__/fixtures/zoo_reference.py) it has the same tensor names and
// shapes, the same eval logits, and in one float64 training step the same loss, gradients and batch-norm statistics.
import test from 'ava'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { InputError } from '../ts/errors.ts'
import type { Layer } from '../ts/layers.ts'
import { Model } from '../ts/model.ts'
import { readSafetensors } from '../ts/weights/safetensors-file.ts'
import { torchTensorValues, type TorchTensor } from '../ts/weights/torch-checkpoint.ts'
import { ZOO, ZOO_NAMES, zooModel, type ZooName } from '../ts/zoo/architectures.ts'
import { IMAGENET_CLASSES } from '../ts/zoo/imagenet-classes.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWith } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const SCRIPT = path.join(HERE, 'fixtures', 'zoo_reference.py')
const SHARED = path.resolve(HERE, '..', '..', 'shared')
const LITE0_FILE = path.join(SHARED, 'models', 'efficientnet-lite0-57934424.pth')
const MODULES = ['torchvision', 'timm']
const withReference = needs(missingPython(MODULES))
const tempDir = tempDirs('zoo')

/** Parameters at 1000 classes, as torchvision's weights metadata and timm count them (buffers excluded). */
const PARAMS: Record<ZooName, number> = {
  resnet9: 7_080_000,
  resnet18: 11_689_512,
  resnet34: 21_797_672,
  resnet50: 25_557_032,
  mobilenet_v2: 3_504_872,
  mobilenet_v3_large: 5_483_032,
  efficientnet_b0: 5_288_548,
  efficientnet_lite0: 4_652_008,
}

/**
 * Input side of the parity runs. Float64 on both sides makes the check independent of input size (in float32,
 * 1×1 maps and train-mode batch norm over few values amplify rounding past 1e-4); small inputs keep it fast.
 */
const PARITY_SIZE: Record<ZooName, number> = {
  resnet9: 32,
  resnet18: 32,
  resnet34: 32,
  resnet50: 32,
  mobilenet_v2: 32,
  mobilenet_v3_large: 32,
  efficientnet_b0: 32,
  efficientnet_lite0: 32,
}
const CLASSES = 10
/** Images per batch: train-mode batch norm needs at least 2 values per channel at the last (1×1 at 32×32) map. */
const N = 4

function* walk(layers: readonly Layer[]): Generator<Layer> {
  for (const layer of layers) {
    yield layer
    if (layer.type === 'sequential') yield* walk(layer.layers)
    if (layer.type === 'residual') yield* walk([...layer.layers, ...(layer.shortcut ?? [])])
  }
}

for (const name of ZOO_NAMES) {
  const arch = ZOO[name]
  test(`${name}: resolves at its default size with ${PARAMS[name].toLocaleString('en')} parameters and a ${arch.head.join(', ')} head`, (t) => {
    const spec = zooModel(name, { classes: 1000 })
    t.deepEqual(spec.inputShape, [3, ...arch.defaultInputSize])
    const model = Model.create(spec, { device: 'cpu' })
    t.is(model.paramCount, PARAMS[name])
    t.is(model.classes, 1000)
    const layers = model.layers()
    for (const head of arch.head) {
      const layer = layers.find((l) => l.name === head)
      t.is(layer?.kind, 'linear', `${head} is a linear layer`)
    }
    t.deepEqual(layers.find((l) => l.name === arch.head.at(-1))?.outputShape, [1000])
  })
}

test('the builders check their options where they enter', (t) => {
  const invalid = (f: () => unknown, pattern: RegExp) => {
    const err = t.throws(f)
    t.true(err instanceof InputError, String(err))
    t.regex(err!.message, pattern)
  }
  invalid(() => zooModel('mobilenet_v2', { classes: 0 }), /mobilenet_v2: option classes: expected an integer >= 1, got 0/)
  invalid(() => zooModel('efficientnet_b0', { classes: 10, inputSize: [224, 0] }), /option inputSize/)
  invalid(() => zooModel('efficientnet_b0', { classes: 10, dropout: 1 }), /option dropout: expected a probability in \[0, 1\)/)
  invalid(() => zooModel('mobilenet_v3_large', { classes: 10, dropPath: 0.1 }), /mobilenet_v3_large has no stochastic depth/)
  invalid(() => zooModel('resnet50', { classes: 10, dropout: 0.5 }), /option dropout: expected 0 \(resnet50 has no dropout\)/)
  invalid(() => zooModel('nope' as ZooName, { classes: 10 }), /unknown architecture "nope"; expected one of resnet9, resnet18, /)
})

test('dropout and stochastic depth default to the reference’s and turn off at 0', (t) => {
  const dropPaths = (name: ZooName, dropPath?: number) =>
    [...walk(zooModel(name, { classes: 10, dropPath }).layers)].flatMap((l) => (l.type === 'residual' ? [l.dropPath ?? 0] : []))
  const dropouts = (name: ZooName, dropout?: number) =>
    [...walk(zooModel(name, { classes: 10, dropout }).layers)].flatMap((l) => (l.type === 'dropout' ? [l.p] : []))
  // torchvision: StochasticDepth(0.2 · i / 16) on the residual blocks among B0's 16 (i = 0 … 15); the last that adds
  // its input is i = 14 (features.6.3).
  t.is(Math.max(...dropPaths('efficientnet_b0')), (0.2 * 14) / 16)
  t.deepEqual(new Set(dropPaths('efficientnet_b0', 0)), new Set([0]))
  t.deepEqual(dropouts('efficientnet_b0'), [0.2])
  t.deepEqual(dropouts('mobilenet_v3_large', 0), [0])
  // timm's tf_efficientnet_lite0 defaults to neither; TensorFlow trained with 0.2 and 0.2.
  t.deepEqual(new Set(dropPaths('efficientnet_lite0')), new Set([0]))
  t.is(Math.max(...dropPaths('efficientnet_lite0', 0.2)), (0.2 * 14) / 16)
})

needs(fs.existsSync(LITE0_FILE) ? null : `the shared weights file ${LITE0_FILE}`)(
  'efficientnet_lite0 takes the shared TensorFlow weights strictly and calls the coffee photo an espresso',
  async (t) => {
    const model = Model.create(zooModel('efficientnet_lite0', { classes: 1000 }), {
      device: 'cpu',
      classNames: [...IMAGENET_CLASSES],
      normalization: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
      preprocessing: { resizeShorter: 256 },
    })
    await model.loadWeights(LITE0_FILE)
    // timm with these weights: espresso 0.843, cup 0.079. Symmetric padding instead of SAME moves logits by up to 2.4.
    const [coffee] = await model.predict([path.join(SHARED, 'photos', 'coffee.png')])
    t.log(coffee!.topK.slice(0, 3).map((c) => `${c.label} ${c.probability.toFixed(3)}`).join(', '))
    t.is(coffee?.label, 'espresso')
    t.true(coffee!.probability > 0.6, `espresso ${coffee!.probability}`)
  },
)

needs(missingPython(MODULES) ?? (fs.existsSync(LITE0_FILE) ? null : `the shared weights file ${LITE0_FILE}`))(
  "the ImageNet check: pretrained efficientnet_lite0 names every shared photo as timm does, and its logits on timm's tensor agree within 1e-3",
  async (t) => {
    const out = tempDir('imagenet')
    await new Promise<void>((resolve, reject) => {
      const child = spawn(pythonWith(MODULES)!, [SCRIPT, 'imagenet', out, '--photos', path.join(SHARED, 'photos')], { stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      child.on('error', reject)
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`zoo_reference.py imagenet exited with ${code}: ${stderr}`))))
    })
    const photos = JSON.parse(fs.readFileSync(path.join(out, 'top1.json'), 'utf8')) as { file: string; top1: number }[]
    t.true(photos.length >= 4, `${photos.length} photos`)

    // The named weights, as a user gets them: from the weights cache (here a copy of the shared file, checked by its
    // sha256 as a download is), with their preprocessing and ImageNet's class names.
    const cacheDir = tempDir('imagenet-weights')
    fs.copyFileSync(LITE0_FILE, path.join(cacheDir, path.basename(LITE0_FILE)))
    const model = await Model.create(null, { pretrained: 'efficientnet_lite0', cacheDir, quiet: true, device: 'cpu' })

    const predicted = await model.predict(photos.map((p) => path.join(SHARED, 'photos', p.file)))
    t.log(photos.map((p, i) => `${p.file}: ${predicted[i]!.label} ${predicted[i]!.probability.toFixed(3)} (timm ${IMAGENET_CLASSES[p.top1]})`).join('; '))
    t.deepEqual(
      predicted.map((p) => p.label),
      photos.map((p) => IMAGENET_CLASSES[p.top1]),
    )

    const x = new Float32Array(readBytes(path.join(out, 'x.f32')))
    const reference = new Float32Array(readBytes(path.join(out, 'logits.f32')))
    const logits = await model.predictFloats(x, photos.length, { logits: true })
    const diff = maxAbsDiff(
      logits.flatMap((row) => [...row]),
      reference,
    )
    t.log(`largest logit difference ${diff.toExponential(2)} (logits up to ${maxAbs(reference).toFixed(1)})`)
    t.true(diff <= 1e-3, `logits differ by ${diff}`)
  },
)

/** The reference's files for every architecture, made by one Python process the first time a test asks. */
let referenceRun: Promise<string> | undefined
function reference(): Promise<string> {
  referenceRun ??= new Promise((resolve, reject) => {
    const dir = tempDir()
    const jobs = ZOO_NAMES.map((name) => `${name}@${PARITY_SIZE[name]}x${PARITY_SIZE[name]}`)
    const child = spawn(pythonWith(MODULES)!, [SCRIPT, 'all', dir, String(CLASSES), String(N), ...jobs], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(dir) : reject(new Error(`zoo_reference.py all exited with ${code}: ${stderr}`))))
  })
  return referenceRun
}

/** A whole file as an ArrayBuffer of its own (small Buffers share a pool, at an offset). */
function readBytes(file: string): ArrayBuffer {
  const bytes = fs.readFileSync(file)
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}

function values(tensor: TorchTensor | undefined, what: string): Float64Array {
  if (!tensor) throw new Error(`${what}: missing`)
  const v = torchTensorValues(tensor)
  if (v instanceof Float64Array) return v
  if (v instanceof Float32Array) return Float64Array.from(v)
  throw new Error(`${what}: expected a float tensor, got ${tensor.dtype}`)
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!))
  return m
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

const byName = (tensors: TorchTensor[]) => new Map(tensors.map((x) => [x.name, x]))

for (const name of ZOO_NAMES) {
  withReference.serial(`${name}: same tensors, eval logits and float64 training step as the reference`, async (t) => {
    const dir = path.join(await reference(), name)
    const size = PARITY_SIZE[name]
    const x = new Float32Array(readBytes(path.join(dir, 'x.f32')))
    const labels = Int32Array.from(new BigInt64Array(readBytes(path.join(dir, 'labels.i64'))), Number)
    const state = await readSafetensors(path.join(dir, 'state.safetensors'))
    const ref = byName(await readSafetensors(path.join(dir, 'grads.safetensors')))

    // Dropout and stochastic depth off, as the reference has them in its training step: their draws cannot agree.
    const spec = zooModel(name, { classes: CLASSES, inputSize: [size, size], dropout: 0, dropPath: 0 })
    const model = Model.create(spec, { device: 'cpu', dtype: 'float64', optimizer: { type: 'sgd', lr: 1 } })
    await model.loadWeights(path.join(dir, 'state.safetensors'))

    // Eval: batch norm with the exported running statistics (randomized, so eval differs from train).
    const logits = await model.predictFloats(x, N, { logits: true })
    const refLogits = new Float64Array(readBytes(path.join(dir, 'logits.f64')))
    const ours = Float64Array.from(logits.flatMap((row) => [...row]))
    const logitDiff = maxAbsDiff(ours, refLogits)
    t.true(logitDiff <= 1e-4, `eval logits differ by ${logitDiff}`)

    // One SGD step with lr 1, no momentum or decay: the weights move by exactly their gradient.
    const step = await model.trainBatchFloats(x, labels)
    const refLoss = values(ref.get('__loss__'), '__loss__')[0]!
    const lossDiff = Math.abs(step.loss - refLoss) / Math.abs(refLoss)
    t.true(lossDiff <= 1e-4, `loss ${step.loss}, reference ${refLoss}`)
    const file = path.join(tempDir(name), 'after.safetensors')
    await model.save(file, { withOptimizer: false })
    const after = byName(await readSafetensors(file))

    // The same names and shapes as the reference's state dict (parameters and buffers).
    const shapes = (tensors: Iterable<TorchTensor>) => [...tensors].map((x) => `${x.name} [${x.shape.join(',')}]`).sort()
    t.deepEqual(shapes(after.values()), shapes(state))

    // Gradients: each tensor within 1e-4 of its largest reference value. Some have a true gradient of exactly 0
    // (the last batch norm's bias of a block whose output only feeds 1×1 convs and train-mode batch norms, which
    // subtract any per-channel constant): their computed values are rounding noise, hence the floor at 1e-6 of the
    // largest gradient of the network.
    const grads = state.filter((s) => !/\.(running_mean|running_var|num_batches_tracked)$/.test(s.name))
    t.deepEqual(grads.map((s) => s.name).sort(), [...ref.keys()].filter((k) => !k.startsWith('__')).sort())
    const largest = Math.max(...grads.map((s) => maxAbs(values(ref.get(s.name), s.name))))
    let worstGrad = { ratio: 0, name: '' }
    for (const s of grads) {
      const before = values(s, s.name)
      const now = values(after.get(s.name), s.name)
      const expected = values(ref.get(s.name), s.name)
      const diff = maxAbsDiff(before.map((b, i) => b - now[i]!), expected)
      const ratio = diff / Math.max(maxAbs(expected), 1e-6 * largest)
      if (ratio > worstGrad.ratio) worstGrad = { ratio, name: s.name }
    }
    t.true(worstGrad.ratio <= 1e-4, `gradient of ${worstGrad.name} off by ${worstGrad.ratio} of its size`)

    // Running statistics after the step: momentum, unbiased variance and the step count as PyTorch updates them.
    let worstStat = { ratio: 0, name: '' }
    let counted = 0
    for (const [key, tensor] of ref) {
      if (!key.startsWith('__running__.')) continue
      const bufferName = key.slice('__running__.'.length)
      counted++
      if (bufferName.endsWith('num_batches_tracked')) {
        t.deepEqual(torchTensorValues(after.get(bufferName)!), torchTensorValues(tensor), bufferName)
        continue
      }
      const expected = values(tensor, key)
      const ratio = maxAbsDiff(values(after.get(bufferName), bufferName), expected) / maxAbs(expected)
      if (ratio > worstStat.ratio) worstStat = { ratio, name: bufferName }
    }
    t.true(counted > 0 && worstStat.ratio <= 1e-4, `${worstStat.name} off by ${worstStat.ratio} of its size`)
    t.log(`${name}: logits max |Δ| ${logitDiff.toExponential(1)}, loss rel ${lossDiff.toExponential(1)}, gradients ${worstGrad.ratio.toExponential(1)} (${worstGrad.name}), running stats ${worstStat.ratio.toExponential(1)} (${worstStat.name})`)
  })
}
