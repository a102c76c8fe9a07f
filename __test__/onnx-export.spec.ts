// ONNX export checked in onnxruntime: the exported file gives ConvKit's logits on real CIFAR-10 images in
// onnxruntime-node (batch 1 and 5: the batch size is dynamic) for the reference CNN, a spec with every layer type
// and each network of the zoo, and a page with onnxruntime-web in headless Chromium classifies an image as
// predict() does.
import test, { type ExecutionContext } from 'ava'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as ort from 'onnxruntime-node'
import sharp from 'sharp'
import { convkitCommand } from '../ts/cli/convkit.ts'
import { EXPORT_HELP, exportCommand } from '../ts/cli/export-command.ts'
import { InputError, Model, readImageFolder, referenceCnn, SpecError, TensorDataset, type ModelSpec } from '../ts/index.ts'
import type { ImageSet } from '../ts/data/image-set.ts'
import { readSafetensors } from '../ts/weights/safetensors-file.ts'
import { ZOO_NAMES, zooModel } from '../ts/zoo/architectures.ts'
import { CHROMIUM, openPage } from './helpers/chromium.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { needs } from './helpers/needs.ts'
import { metadataOf, readOnnx, type OnnxValue } from './helpers/onnx-file.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '..')
const tmpdir = tempDirs('onnx')

/** Every layer type, in the forms that need care: asymmetric padding, ceil-mode pools, Pad before AveragePool. */
const EVERY_LAYER = JSON.parse(fs.readFileSync(path.join(here, 'fixtures', 'onnx-every-layer.json'), 'utf8')) as ModelSpec
/** The adaptive pools' other forms: a fixed window (32 / 4) and GlobalMaxPool. */
const POOLS: ModelSpec = {
  inputShape: [3, 32, 32],
  layers: [
    { type: 'conv2d', outChannels: 8, kernelSize: 3, padding: 1 },
    { type: 'relu' },
    { type: 'adaptiveavgpool2d', outputSize: 4 },
    { type: 'adaptivemaxpool2d', outputSize: 1 },
    { type: 'flatten' },
    { type: 'linear', outFeatures: 10 },
  ],
}
/** Not the default 0.5, so the metadata and the page have to carry the real values. */
const NORMALIZATION = { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] }

const images = new Map<string, Promise<ImageSet>>()
/** The CIFAR-10 test subset at `size` (sharp resizes the 32×32 images for other sizes). */
function cifarTest(size: [number, number]): Promise<ImageSet> {
  const key = size.join('x')
  if (!images.has(key)) images.set(key, readImageFolder(cifarSubset().test, { size }))
  return images.get(key)!
}

/** A model of `spec` after a few training steps on real images, so batch-norm statistics and weights are not their initial values. */
async function trainedModel(spec: ModelSpec): Promise<{ model: Model; set: ImageSet }> {
  const [, h, w] = spec.inputShape
  const set = await cifarTest([h, w])
  const model = Model.create(spec, { device: 'cpu', seed: 7, classNames: set.classes, normalization: NORMALIZATION })
  const data = await TensorDataset.create(set, { device: 'cpu', normalization: NORMALIZATION })
  for (let step = 0; step < 3; step++) {
    // Spread over the classes: the subset is sorted by class.
    await model.trainBatch(
      data,
      Array.from({ length: 32 }, (_, i) => (i * 31 + step * 7) % set.labels.length),
    )
  }
  return { model, set }
}

/** Images at `indices`, normalized as ConvKit normalizes them: `(pixel / 255 - mean) / std` per channel. */
function normalized(set: ImageSet, indices: number[]): Float32Array {
  const [c, h, w] = set.shape
  const plane = h * w
  const out = new Float32Array(indices.length * c * plane)
  indices.forEach((image, n) => {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < plane; i++) {
        const at = (n * c + ch) * plane + i
        out[at] = (set.pixels[image * c * plane + ch * plane + i]! / 255 - NORMALIZATION.mean[ch]!) / NORMALIZATION.std[ch]!
      }
    }
  })
  return out
}

/**
 * The largest |ConvKit − onnxruntime| over the logits of images at `indices`, run as one batch in each, and the
 * largest |logit|, which says what that difference is relative to.
 */
async function logitDiff(
  model: Model,
  session: ort.InferenceSession,
  set: ImageSet,
  indices: number[],
): Promise<{ diff: number; scale: number }> {
  const x = normalized(set, indices)
  const ours = await model.predictFloats(x, indices.length, { logits: true })
  const { logits } = await session.run({ input: new ort.Tensor('float32', x, [indices.length, ...set.shape]) })
  if (!logits || logits.dims.join() !== [indices.length, model.classes].join()) throw new Error(`logits of shape ${logits?.dims}`)
  const theirs = logits.data as Float32Array
  let diff = 0
  let scale = 0
  ours.forEach((row, n) =>
    row.forEach((v, k) => {
      diff = Math.max(diff, Math.abs(v - theirs[n * model.classes + k]!))
      scale = Math.max(scale, Math.abs(v))
    }),
  )
  return { diff, scale }
}

/** Checks ConvKit's and onnxruntime's logits for one image and for a batch of five (of five classes: 100 per class). */
async function checkParity(t: ExecutionContext, model: Model, session: ort.InferenceSession, set: ImageSet): Promise<void> {
  for (const indices of [[3], [0, 150, 420, 777, 999]]) {
    const { diff, scale } = await logitDiff(model, session, set, indices)
    t.log(`batch ${indices.length}: max |logit difference| ${diff.toExponential(2)}, max |logit| ${scale.toPrecision(3)}`)
    t.true(diff < 1e-4, `batch ${indices.length}: ${diff}`)
    // Small logits (an untrained head) would make 1e-4 loose: relative to them it must hold too.
    t.true(diff < 1e-4 * scale, `batch ${indices.length}: ${diff} relative to ${scale}`)
  }
}

const PARITY: [string, () => ModelSpec][] = [
  ['the reference CNN', () => referenceCnn({ classes: 10 })],
  ['a spec with every layer type', () => EVERY_LAYER],
  ['global max and fixed-window adaptive pools', () => POOLS],
]

for (const [what, spec] of PARITY) {
  test(`${what}: onnxruntime-node gives ConvKit's logits on real images within 1e-4, batch 1 and batch 5`, async (t) => {
    const { model, set } = await trainedModel(spec())
    const file = path.join(tmpdir(), 'model.onnx')
    await model.exportOnnx(file)
    const session = await ort.InferenceSession.create(file)
    t.deepEqual(session.inputNames, ['input'])
    t.deepEqual(session.outputNames, ['logits'])
    await checkParity(t, model, session, set)
    await session.release()
  })
}

/**
 * Batch-norm statistics and layer scales drawn at random (seeded), so the batch norms of an untrained zoo network do
 * real work in both runtimes, and ConvNeXt's blocks (layer scale 1e-6 when new) count in its logits.
 */
async function randomStatistics(model: Model): Promise<void> {
  const file = path.join(tmpdir(), 'weights.safetensors')
  await model.save(file, { withOptimizer: false })
  let state = 12345
  // A linear congruential generator (glibc's constants): the same numbers on every run.
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff) / 2 ** 31
  const tensors = (await readSafetensors(file)).map((t) => {
    const kind = /\.(running_mean|running_var|layer_scale)$/.exec(t.name)?.[1]
    if (!kind) return t
    const count = t.shape.reduce((a, b) => a * b, 1)
    // Variances of at least 1 keep the activations of fifty layers (resnet50) in range, so logits stay near 1.
    const draw = { running_mean: () => 0.1 * (random() - 0.5), running_var: () => 1 + random(), layer_scale: () => 0.5 + random() }[kind]!
    const values = Float32Array.from({ length: count }, draw)
    return { ...t, dtype: 'float32' as const, data: new Uint8Array(values.buffer) }
  })
  await model.loadStateDict(tensors)
}

for (const name of ZOO_NAMES) {
  test(`zoo ${name} at 32×32: onnxruntime-node gives ConvKit's logits on real images within 1e-4, batch 1 and batch 5`, async (t) => {
    const set = await cifarTest([32, 32])
    const model = Model.create(zooModel(name, { classes: 10, inputSize: [32, 32] }), {
      device: 'cpu',
      seed: 7,
      normalization: NORMALIZATION,
    })
    await randomStatistics(model)
    const file = path.join(tmpdir(), `${name}.onnx`)
    await model.exportOnnx(file)
    const session = await ort.InferenceSession.create(file)
    await checkParity(t, model, session, set)
    await session.release()
  })
}

test("with evalInputSize the graph takes that size: efficientnet_lite0's TF-SAME padding placed for 40×40, logits within 1e-4", async (t) => {
  // Trained (here: built) at 32×32, evaluated at 40×40: 40 → 20 → 10 → 5 → 3 needs other paddings than 32 → 16 → … does.
  const set = await cifarTest([40, 40])
  const model = Model.create(zooModel('efficientnet_lite0', { classes: 10, inputSize: [32, 32] }), {
    device: 'cpu',
    seed: 7,
    normalization: NORMALIZATION,
  })
  await randomStatistics(model)
  model.setEvalInputSize([40, 40])
  const file = path.join(tmpdir(), 'lite0-at-40.onnx')
  await model.exportOnnx(file)
  t.deepEqual(JSON.parse(metadataOf(file)['convkit.input_shape']!), [3, 40, 40])
  const input = readOnnx(file).graph.input[0]!.type.tensor_type.shape.dim.map((d) => d.dim_param ?? d.dim_value)
  t.deepEqual(input, ['N', 3, 40, 40])
  const session = await ort.InferenceSession.create(file)
  await checkParity(t, model, session, set)
  await session.release()
})

test('convkit export writes opset 17 with a dynamic batch and the preprocessing in metadata_props', async (t) => {
  const { model } = await trainedModel(referenceCnn({ classes: 10 }))
  const dir = tmpdir()
  const checkpoint = path.join(dir, 'model.safetensors')
  await model.save(checkpoint, { withOptimizer: false })
  const out = path.join(dir, 'exported', 'model.onnx')
  const log: string[] = []
  const print = console.log
  console.log = (line: string) => log.push(line)
  try {
    t.is(await convkitCommand(['export', '--model', checkpoint, '--out', out]), 0)
    t.is(await convkitCommand(['export', '--help']), 0)
  } finally {
    console.log = print
  }
  t.regex(log[0]!, /wrote .*model\.onnx .*opset 17, input \[N, 3, 32, 32\]/)
  t.is(log[1], EXPORT_HELP)
  t.regex(EXPORT_HELP, /--model <file>[\s\S]*--out <file\.onnx>/)

  const onnx = readOnnx(out)
  t.deepEqual(
    onnx.opset_import.map((o) => [o.domain ?? '', o.version]),
    [['', 17]],
  )
  const dims = (v: OnnxValue) => v.type.tensor_type.shape.dim.map((d) => d.dim_param ?? d.dim_value)
  t.deepEqual(
    onnx.graph.input.map((v) => [v.name, dims(v)]),
    [['input', ['N', 3, 32, 32]]],
  )
  t.deepEqual(
    onnx.graph.output.map((v) => [v.name, dims(v)]),
    [['logits', ['N', 10]]],
  )
  t.is(onnx.graph.input[0]!.type.tensor_type.elem_type, 1, 'float32')
  const meta = metadataOf(out)
  t.deepEqual(JSON.parse(meta['convkit.input_shape']!), [3, 32, 32])
  t.deepEqual(JSON.parse(meta['convkit.normalization']!), NORMALIZATION)
  t.deepEqual(JSON.parse(meta['convkit.classes']!), [
    'airplane',
    'automobile',
    'bird',
    'cat',
    'deer',
    'dog',
    'frog',
    'horse',
    'ship',
    'truck',
  ])
  t.regex(meta['convkit.version']!, /^\d+\.\d+\.\d+/)

  // A missing --out is answered before any work.
  await t.throwsAsync(exportCommand(['--model', checkpoint]), { instanceOf: InputError, message: /--out/ })
})

test('a layer with no ONNX form is a SpecError naming it, and nothing is written', async (t) => {
  const model = Model.create(
    {
      inputShape: [3, 8, 8],
      layers: [
        { type: 'conv2d', outChannels: 4, kernelSize: 3, stride: 2, padding: 1 },
        { type: 'adaptiveavgpool2d', outputSize: 3 },
        { type: 'flatten' },
        { type: 'linear', outFeatures: 2 },
      ],
    },
    { device: 'cpu' },
  )
  const dir = tmpdir()
  const file = path.join(dir, 'model.onnx')
  const error = await t.throwsAsync(model.exportOnnx(file), { instanceOf: SpecError })
  t.is(error?.code, 'NOT_EXPORTABLE')
  // The pool sits at layers[1], 4×4 after the stride-2 convolution; 3 windows do not divide 4 evenly.
  t.regex(error!.message, /layers\[1\] \(adaptiveavgpool2d\) has no ONNX form: outputSize \[3, 3\] does not divide its 4x4 input/)
  t.deepEqual(fs.readdirSync(dir), [])
  await t.throwsAsync(model.exportOnnx(file, { opset: 18 as 17 }), { instanceOf: InputError, message: /opset: expected 17, got 18/ })
  await t.throwsAsync(model.exportOnnx(file, { metadata: { 'convkit.classes': 'x' } }), { instanceOf: InputError, message: /reserved/ })
})

test('the file is written atomically: replaced whole, no temporary file left, untouched when export fails', async (t) => {
  const dir = tmpdir()
  const file = path.join(dir, 'model.onnx')
  fs.writeFileSync(file, 'an older export')
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 1 })
  await model.exportOnnx(file, { metadata: { run: { epochs: 3 } } })
  t.deepEqual(fs.readdirSync(dir), ['model.onnx'])
  t.is(metadataOf(file).run, '{"epochs":3}')
  const size = fs.statSync(file).size

  const unexportable = Model.create(
    {
      inputShape: [3, 5, 5],
      layers: [{ type: 'adaptivemaxpool2d', outputSize: 2 }, { type: 'flatten' }, { type: 'linear', outFeatures: 2 }],
    },
    { device: 'cpu' },
  )
  await t.throwsAsync(unexportable.exportOnnx(file), { code: 'NOT_EXPORTABLE' })
  t.is(fs.statSync(file).size, size, 'the previous file is still whole')
  t.deepEqual(fs.readdirSync(dir), ['model.onnx'])
})

/** Serves the page, onnxruntime-web's files, the model, its metadata and the image on 127.0.0.1. */
async function servePage(files: Record<string, Buffer>): Promise<{ url: string; close: () => Promise<void> }> {
  const ortDist = path.join(repo, 'node_modules', 'onnxruntime-web', 'dist')
  const types: Record<string, string> = {
    '.html': 'text/html',
    '.js': 'text/javascript',
    '.mjs': 'text/javascript',
    '.wasm': 'application/wasm',
    '.json': 'application/json',
    '.png': 'image/png',
  }
  const server = http.createServer((req, res) => {
    const name = new URL(req.url ?? '/', 'http://x').pathname
    const body = name.startsWith('/ort/') ? readIfThere(path.join(ortDist, path.basename(name))) : files[name]
    if (!body) {
      res.writeHead(404).end()
      return
    }
    const type = name === '/' ? 'text/html' : (types[path.extname(name)] ?? 'application/octet-stream')
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length }).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

function readIfThere(file: string): Buffer | undefined {
  return fs.existsSync(file) ? fs.readFileSync(file) : undefined
}

needs(CHROMIUM ? null : 'chromium (apt-get install chromium)')(
  'a page with onnxruntime-web in headless Chromium classifies a real image with the label and probability of predict()',
  async (t) => {
    const { model, set } = await trainedModel(referenceCnn({ classes: 10 }))
    const file = path.join(tmpdir(), 'model.onnx')
    await model.exportOnnx(file)
    // A real CIFAR-10 test image, as PNG: lossless, so the browser's decoder and sharp's see the same pixels (two JPEG
    // decoders may round differently).
    const png = await sharp(set.files![42]!).png().toBuffer()
    const [expected] = await model.predict([png], { topK: 10 })

    const served = await servePage({
      '/': fs.readFileSync(path.join(here, 'fixtures', 'onnx-web.html')),
      '/model.onnx': fs.readFileSync(file),
      '/model.meta.json': Buffer.from(JSON.stringify(metadataOf(file))),
      '/image.png': png,
    })
    const { page, problems, close } = await openPage(served.url, { consoleErrors: false })
    try {
      // Evaluated in the page, so written as a string: this project's TypeScript has no DOM types.
      const answer = (await page.evaluate('window.result')) as {
        label: string
        index: number
        probability: number
        probabilities: number[]
        error?: string
      }
      t.is(answer.error, undefined)
      t.deepEqual(problems, [])
      t.log(`predict(): ${expected!.label} ${expected!.probability}; onnxruntime-web: ${answer.label} ${answer.probability}`)
      t.is(answer.label, expected!.label)
      t.true(Math.abs(answer.probability - expected!.probability) < 1e-4, `${answer.probability} vs ${expected!.probability}`)
      const worst = Math.max(...expected!.topK.map((s) => Math.abs(answer.probabilities[s.index]! - s.probability)))
      t.log(`max |probability difference| over the 10 classes: ${worst.toExponential(2)}`)
      t.true(worst < 1e-4)
    } finally {
      await close()
      await served.close()
    }
  },
)
