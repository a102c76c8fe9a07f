// The model zoo: every architecture's spec resolves with the reference's parameter count, and against the reference
// implementation (torchvision 0.26 / timm 1.0.31, __test__/fixtures/zoo_reference.py) it has the same tensor names and
// shapes, the same eval logits, and in one float64 training step the same loss, gradients and batch-norm statistics.
import test from 'ava'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { InputError } from '../ts/errors.ts'
import type { Layer } from '../ts/model/layers.ts'
import { Model } from '../ts/model/model.ts'
import { ZOO, ZOO_NAMES, zooModel, type ZooName } from '../ts/zoo/architectures.ts'
import { IMAGENET_CLASSES } from '../ts/zoo/imagenet-classes.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWith } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'
import {
  describeParity,
  maxAbs,
  maxAbsDiff,
  PARITY_TOLERANCE,
  readBytes,
  runZooReference,
  ZOO_REFERENCE_SCRIPT,
  zooParity,
} from './helpers/zoo-parity.ts'

const HERE = path.dirname(fileURLToPath(import.meta.url))
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
  efficientnet_v2_s: 21_458_488,
  regnet_y_800mf: 6_432_512,
  convnext_tiny: 28_589_128,
}

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
    t.log(
      coffee!.topK
        .slice(0, 3)
        .map((c) => `${c.label} ${c.probability.toFixed(3)}`)
        .join(', '),
    )
    t.is(coffee?.label, 'espresso')
    t.true(coffee!.probability > 0.6, `espresso ${coffee!.probability}`)
  },
)

needs(missingPython(MODULES) ?? (fs.existsSync(LITE0_FILE) ? null : `the shared weights file ${LITE0_FILE}`))(
  "the ImageNet check: pretrained efficientnet_lite0 names every shared photo as timm does, and its logits on timm's tensor agree within 1e-3",
  async (t) => {
    const out = tempDir('imagenet')
    await new Promise<void>((resolve, reject) => {
      const child = spawn(pythonWith(MODULES)!, [ZOO_REFERENCE_SCRIPT, 'imagenet', out, '--photos', path.join(SHARED, 'photos')], {
        stdio: ['ignore', 'ignore', 'pipe'],
      })
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
    t.log(
      photos
        .map((p, i) => `${p.file}: ${predicted[i]!.label} ${predicted[i]!.probability.toFixed(3)} (timm ${IMAGENET_CLASSES[p.top1]})`)
        .join('; '),
    )
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
  referenceRun ??= (async () => {
    const dir = tempDir()
    await runZooReference(pythonWith(MODULES)!, dir)
    return dir
  })()
  return referenceRun
}

for (const name of ZOO_NAMES) {
  withReference.serial(`${name}: same tensors, eval logits and float64 training step as the reference`, async (t) => {
    const p = await zooParity(name, path.join(await reference(), name), 'cpu', tempDir(name))
    t.deepEqual(p.shapes.ours, p.shapes.reference, 'the same names and shapes as the reference state dict (parameters and buffers)')
    t.deepEqual(p.gradNames.ours, p.gradNames.reference)
    t.true(p.logitDiff <= PARITY_TOLERANCE, `eval logits differ by ${p.logitDiff}`)
    t.true(p.lossDiff <= PARITY_TOLERANCE, `loss off by ${p.lossDiff} of its size`)
    t.true(p.worstGrad.ratio <= PARITY_TOLERANCE, `gradient of ${p.worstGrad.name} off by ${p.worstGrad.ratio} of its size`)
    t.deepEqual(p.counterMismatches, [], 'num_batches_tracked as PyTorch counts')
    // Every network with batch norm has running statistics to compare (ConvNeXt has layer norms only).
    const batchNorms = [...walk(zooModel(name, { classes: 10 }).layers)].some((l) => l.type === 'batchnorm2d')
    t.is(p.statsCounted > 0, batchNorms, `${p.statsCounted} running statistics compared`)
    t.true(p.worstStat.ratio <= PARITY_TOLERANCE, `${p.worstStat.name} off by ${p.worstStat.ratio} of its size`)
    t.log(describeParity(name, p))
  })
}
