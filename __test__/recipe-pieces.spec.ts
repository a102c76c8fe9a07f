// Recipe pieces through the public API: test-time augmentation computes the views it names, evaluation at a larger
// input than training (FixRes) runs the same weights on the larger view, and an exponential moving average of the
// weights evaluates better than the raw weights on a noisy run.
import test from 'ava'
import { Model, readImageFolder, referenceCnn, TensorDataset, train, type ModelSpec } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmp = tempDirs('recipe')
const [C, H, W] = [3, 32, 32]

/** Seeded values in [-1, 1), N×C×H×W. */
function batch(n: number, seed: number): Float32Array {
  const x = new Float32Array(n * C * H * W)
  let s = seed
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    x[i] = s / 2 ** 31 - 1
  }
  return x
}

/** `x` with each image mirrored left to right. */
function mirrored(x: Float32Array, n: number): Float32Array {
  const out = new Float32Array(x.length)
  for (let p = 0; p < n * C * H; p++) for (let j = 0; j < W; j++) out[p * W + j] = x[p * W + (W - 1 - j)]!
  return out
}

/** `x` shifted by (dy, dx) pixels with reflect padding: out[i][j] = x[reflect(i + dy)][reflect(j + dx)]. */
function shifted(x: Float32Array, n: number, dy: number, dx: number): Float32Array {
  const reflect = (i: number, size: number) => (i < 0 ? -i : i >= size ? 2 * size - 2 - i : i)
  const out = new Float32Array(x.length)
  for (let p = 0; p < n * C; p++) {
    for (let i = 0; i < H; i++)
      for (let j = 0; j < W; j++) out[(p * H + i) * W + j] = x[(p * H + reflect(i + dy, H)) * W + reflect(j + dx, W)]!
  }
  return out
}

const mix = (parts: [number, Float32Array[]][]) =>
  parts[0]![1].map((row, r) => row.map((_, k) => parts.reduce((sum, [w, rows]) => sum + w * rows[r]![k]!, 0)))

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0
  a.forEach((row, r) => row.forEach((v, k) => (m = Math.max(m, Math.abs(v - b[r]![k]!)))))
  return m
}

test('test-time augmentation averages the logits of the views it names', async (t) => {
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 3 })
  const n = 4
  const x = batch(n, 7)
  const logits = (v: Float32Array, tta: 'none' | 'mirror' | 'mirrorTranslate' = 'none') => model.predictFloats(v, n, { tta, logits: true })
  const plain = await logits(x)
  const mirror = await logits(x, 'mirror')
  const expectedMirror = mix([
    [0.5, plain],
    [0.5, await logits(mirrored(x, n))],
  ])
  t.true(maxDiff(mirror, expectedMirror) < 1e-5, `mirror off by ${maxDiff(mirror, expectedMirror)}`)
  t.true(maxDiff(mirror, plain) > 1e-3, 'mirroring changes the logits of random images')

  // airbench's: half the mirror average, and a quarter each of the mirror averages of the image shifted one pixel
  // up-left and down-right (reflect padding).
  const mirrorOf = async (v: Float32Array) =>
    mix([
      [0.5, await logits(v)],
      [0.5, await logits(mirrored(v, n))],
    ])
  const expectedTranslate = mix([
    [0.5, await mirrorOf(x)],
    [0.25, await mirrorOf(shifted(x, n, -1, -1))],
    [0.25, await mirrorOf(shifted(x, n, 1, 1))],
  ])
  const translate = await logits(x, 'mirrorTranslate')
  t.true(maxDiff(translate, expectedTranslate) < 1e-5, `mirrorTranslate off by ${maxDiff(translate, expectedTranslate)}`)
  t.true(maxDiff(translate, mirror) > 1e-3)
})

/** Conv → ReLU → conv → global average pool → linear: takes any input size with the same weights. */
const pooled = (size: number): ModelSpec => ({
  inputShape: [C, size, size],
  layers: [
    { type: 'conv2d', outChannels: 8, kernelSize: 3, padding: 1 },
    { type: 'relu' },
    { type: 'conv2d', outChannels: 8, kernelSize: 3, stride: 2, padding: 'tf-same' },
    { type: 'adaptiveavgpool2d' },
    { type: 'flatten' },
    { type: 'linear', outFeatures: 10 },
  ],
})

test('evalInputSize evaluates and predicts on the larger view with the same weights, and is saved', async (t) => {
  const small = Model.create(pooled(24), { device: 'cpu', seed: 5 })
  const file = `${tmp()}/small.safetensors`
  await small.save(file, { withOptimizer: false })
  // The reference: the same weights in a network built for 32×32.
  const large = Model.create(pooled(32), { device: 'cpu' })
  await large.loadWeights(file)
  t.deepEqual(small.evalInputSize, [24, 24])
  small.setEvalInputSize([32, 32])
  t.deepEqual(small.evalInputSize, [32, 32])

  const n = 4
  const x = batch(n, 11)
  const diff = maxDiff(await small.predictFloats(x, n, { logits: true }), await large.predictFloats(x, n, { logits: true }))
  t.true(diff < 1e-5, `logits differ by ${diff}`)
  await t.throwsAsync(small.predictFloats(new Float32Array(n * C * 24 * 24), n), { code: 'BAD_SHAPE' })

  // evaluate() takes the whole 32×32 image, not its 24×24 centre.
  const images = 40
  const pixels = new Uint8Array(images * C * H * W).map((_, i) => (i * 2654435761) >>> 24)
  const set = {
    pixels,
    labels: Int32Array.from({ length: images }, (_, i) => i % 10),
    shape: [C, H, W] as [number, number, number],
    classes: [...'abcdefghij'],
  }
  const data = await TensorDataset.create(set)
  const [atLarge, reference] = [await small.evaluate(data), await large.evaluate(data)]
  t.true(Math.abs(atLarge.loss - reference.loss) < 1e-5, `loss ${atLarge.loss} vs ${reference.loss}`)
  small.setEvalInputSize(null)
  t.true(Math.abs((await small.evaluate(data)).loss - reference.loss) > 1e-4, 'the 24×24 centre crop scores differently')
  small.setEvalInputSize([32, 32])

  // Saved in the checkpoint; a size the layers cannot take is refused, naming the option.
  await small.save(file, { withOptimizer: false })
  t.deepEqual((await Model.load(file, { device: 'cpu' })).evalInputSize, [32, 32])
  const flat = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu' })
  const refused = t.throws(() => flat.setEvalInputSize([40, 40]))
  t.is((refused as Error & { code?: string }).code, 'INVALID_OPTION')
  t.regex(refused!.message, /evalInputSize.*40x40/)
  t.deepEqual(flat.evalInputSize, [32, 32])

  // A smaller view works on data stored only that large.
  small.setEvalInputSize([16, 16])
  const tiny = await TensorDataset.create({ ...set, pixels: pixels.subarray(0, images * C * 16 * 16), shape: [C, 16, 16] })
  t.is((await small.evaluate(tiny)).count, images)
})

test('an exponential moving average of the weights differs from them and evaluates better on a noisy run', async (t) => {
  const dirs = cifarSubset()
  const [trainSet, testSet] = await Promise.all([readImageFolder(dirs.train), readImageFolder(dirs.test)])
  // Softmax regression (a convex loss) at a rate high enough that the raw weights jump around the minimum, where
  // averaging the iterates reliably helps: averaged test loss 0.6–0.9 lower and top-1 4–7 points higher on seeds
  // 5, 6 and 7. The same seed gives both runs the same steps.
  const run = (averaging: 'none' | 'ema') =>
    train({
      data: { train: trainSet, test: testSet },
      model: { inputShape: [3, 32, 32], layers: [{ type: 'flatten' }, { type: 'linear', outFeatures: 10 }] },
      device: 'cpu',
      quiet: true,
      report: false,
      out: tmp(),
      seed: 6,
      limitTrain: 1000,
      limitTest: 500,
      valSplit: 0,
      monitor: 'train_loss',
      batchSize: 32,
      epochs: 3,
      optimizer: 'sgd',
      lr: 0.02,
      momentum: 0.9,
      averaging,
      averagingDecay: 0.95,
    })
  const raw = await run('none')
  const ema = await run('ema')
  const rawTest = raw.history.epochs.at(-1)!.test!
  const emaTest = ema.history.epochs.at(-1)!.test!
  t.log(
    `test loss: raw ${rawTest.loss.toFixed(4)} (top-1 ${rawTest.top1} %), averaged ${emaTest.loss.toFixed(4)} (top-1 ${emaTest.top1} %)`,
  )
  // Training itself is the same: the average only changes what is evaluated and kept.
  t.deepEqual(
    ema.history.epochs.map((e) => e.train.loss),
    raw.history.epochs.map((e) => e.train.loss),
  )
  t.not(emaTest.loss, rawTest.loss)
  t.true(emaTest.loss < rawTest.loss - 0.2, `loss: averaged ${emaTest.loss} vs raw ${rawTest.loss}`)
  t.true(emaTest.top1 > rawTest.top1 + 3, `top-1: averaged ${emaTest.top1} vs raw ${rawTest.top1}`)
})
