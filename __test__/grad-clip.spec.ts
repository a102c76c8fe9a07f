// Gradient clipping by the global norm through the public API: Model.setGradClipNorm and train()'s gradClipNorm.
// (The core's own test checks the clipped update against PyTorch's formula, max_norm / (norm + 1e-6).)
import test from 'ava'
import path from 'node:path'
import { InputError, Model, TensorDataset, readImageFolder, referenceCnn, train } from '../ts/index.ts'
import { readSafetensors } from '../ts/weights/safetensors-file.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('grad-clip')

test('a tight clip keeps each update small; a loose one changes nothing', async (t) => {
  const images = await readImageFolder(cifarSubset().train)
  const data = await TensorDataset.create(images)
  const batch = Int32Array.from({ length: 64 }, (_, i) => i * 31)
  /** The largest weight change of five SGD steps from the same start, with `clip` set. */
  const change = async (clip: number | null): Promise<number> => {
    const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 4, optimizer: { type: 'sgd', lr: 0.1 } })
    model.setGradClipNorm(clip)
    const fc2 = async () => {
      const file = path.join(tmpdir(), 'weights.safetensors')
      await model.save(file, { withOptimizer: false })
      return (await readSafetensors(file)).find((x) => x.name === 'fc2.weight')!
    }
    const before = await fc2()
    for (let i = 0; i < 5; i++) await model.trainBatch(data, batch)
    const after = await fc2()
    const a = new Float32Array(before.data.buffer, before.data.byteOffset, before.data.byteLength / 4)
    const b = new Float32Array(after.data.buffer, after.data.byteOffset, after.data.byteLength / 4)
    return a.reduce((m, v, i) => Math.max(m, Math.abs(b[i]! - v)), 0)
  }
  const free = await change(null)
  const tight = await change(1e-4)
  const loose = await change(1e6)
  t.log(`largest fc2 change: unclipped ${free.toExponential(2)}, clipped to 1e-4 ${tight.toExponential(2)}`)
  // Five steps of at most lr × 1e-4 each, whatever the gradient.
  t.true(tight <= 5 * 0.1 * 1e-4 * 1.0001, `clipped change ${tight}`)
  t.true(free > 100 * tight, `unclipped ${free} vs clipped ${tight}`)
  t.is(loose, free)
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
    t.throws(() => Model.create(referenceCnn({ classes: 10 }), { device: 'cpu' }).setGradClipNorm(bad), { instanceOf: InputError })
})

test('train() applies gradClipNorm and records it; bad values are refused by name', async (t) => {
  const root = path.dirname(cifarSubset().train)
  // SGD: Adam divides each gradient by its own running scale, so a clip that only rescales it would hardly show.
  const common = {
    data: root,
    optimizer: 'sgd',
    lr: 0.05,
    epochs: 3,
    batchSize: 32,
    limitTrain: 256,
    limitTest: 64,
    valSplit: 0,
    device: 'cpu',
    quiet: true,
    report: false,
  } as const
  const clipped = await train({ ...common, gradClipNorm: 1e-6, out: tmpdir() })
  const free = await train({ ...common, out: tmpdir() })
  t.is(clipped.history.config.gradClipNorm, 1e-6)
  // Clipped to almost nothing, the network stays at its start: its training loss stays near ln 10.
  const loss = (r: typeof free) => r.history.epochs.at(-1)!.train.loss
  t.log(`train loss: clipped ${loss(clipped).toFixed(3)}, free ${loss(free).toFixed(3)}`)
  t.true(Math.abs(loss(clipped) - Math.log(10)) < 0.05, `clipped loss ${loss(clipped)}`)
  t.true(loss(free) < loss(clipped) - 0.05, `free ${loss(free)} vs clipped ${loss(clipped)}`)
  await t.throwsAsync(train({ ...common, gradClipNorm: 0, out: tmpdir() }), {
    instanceOf: InputError,
    message: /option gradClipNorm: expected a number > 0, got 0/,
  })
})
