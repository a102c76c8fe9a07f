// Gradient accumulation through the public API: two half batches with `microBatches: 2` update the weights as the
// whole batch does; a step that does not update leaves them as they were; train() with `accumulate` updates once per
// that many batches.
import test from 'ava'
import path from 'node:path'
import { Model, readImageFolder, referenceCnn, TensorDataset, train } from '../ts/index.ts'
import { readSafetensors } from '../ts/weights/safetensors-file.ts'
import { torchTensorValues } from '../ts/weights/torch-checkpoint.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('accumulation')
const dirs = cifarSubset()

/**
 * A fresh reference CNN (no batch norm, no dropout: a batch's gradient is the mean of its images') with SGD, in
 * float64 so that summing in another order changes nothing visible.
 */
const fresh = () =>
  Model.create(referenceCnn({ classes: 10 }), {
    device: 'cpu',
    dtype: 'float64',
    seed: 4,
    optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 },
  })

/** Every saved tensor's values, by name. */
async function weights(model: Model): Promise<Map<string, Float64Array>> {
  const file = path.join(tmpdir(), 'w.safetensors')
  await model.save(file, { withOptimizer: false })
  return new Map((await readSafetensors(file)).map((t) => [t.name, Float64Array.from(torchTensorValues(t) as Float64Array)]))
}

test('two micro-batches of 16 update as one batch of 32; a step without update leaves the weights', async (t) => {
  const data = await TensorDataset.create(await readImageFolder(dirs.test), { device: 'cpu' })
  const all = Array.from({ length: 32 }, (_, i) => i * 29)
  const whole = fresh()
  await whole.trainBatch(data, all)
  const accumulated = fresh()
  const before = await weights(accumulated)
  await accumulated.trainBatch(data, all.slice(0, 16), { microBatches: 2, update: false })
  t.deepEqual(await weights(accumulated), before, 'no update yet')
  t.is(accumulated.optimizerStep, 0)
  await accumulated.trainBatch(data, all.slice(16), { microBatches: 2, update: true })
  t.is(accumulated.optimizerStep, 1)
  const [a, b] = [await weights(whole), await weights(accumulated)]
  let worst = 0
  for (const [name, values] of a) {
    const other = b.get(name)!
    const start = before.get(name)!
    let [moved, off] = [0, 0]
    values.forEach((v, i) => {
      moved = Math.max(moved, Math.abs(v - start[i]!))
      off = Math.max(off, Math.abs(v - other[i]!))
    })
    worst = Math.max(worst, off / moved)
  }
  t.log(`largest difference, relative to the update: ${worst.toExponential(2)}`)
  t.true(worst < 1e-9, `${worst}`)
  await t.throwsAsync(accumulated.trainBatch(data, all, { microBatches: 0 }), { message: /microBatches: expected an integer >= 1/ })
})

test('train() with accumulate updates once per that many batches, and the epoch ends with an update', async (t) => {
  const { model, history } = await train({
    data: dirs.train,
    testData: dirs.test,
    limitTrain: 200,
    limitTest: 100,
    valSplit: 0,
    batchSize: 32,
    accumulate: 3,
    epochs: 2,
    device: 'cpu',
    quiet: true,
    report: false,
    out: tmpdir(),
  })
  // 200 images in batches of 32: 7 batches an epoch, updates after batches 3, 6 and 7.
  t.is(model.optimizerStep, 2 * 3)
  t.is(history.config.accumulate, 3)
})
