// Model.trainBatches queues step b + 1 before reading step b's report (what keeps a GPU busy between steps):
// the steps, reports and weights must be exactly those of trainBatch on each batch in turn, early stops and
// failures must leave nothing queued, and calls made together must reach libtorch in the order they were made.
import test from 'ava'
import { Model, TensorDataset, readImageFolder, referenceCnn, type StepOptions, type StepResult, type TrainBatch } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'

const loaded = (async () => {
  const [trainSet, testSet] = await Promise.all([readImageFolder(cifarSubset().train), readImageFolder(cifarSubset().test)])
  return { train: await TensorDataset.create(trainSet, { device: 'cpu' }), test: await TensorDataset.create(testSet, { device: 'cpu' }) }
})()

const BATCH = 32
/** Six batches over real images, each with its own learning rate and augmentation draws. */
const batches: TrainBatch[] = Array.from({ length: 6 }, (_, b) => {
  const options: StepOptions = { lr: 1e-3 * (1 + b), augment: { cropPadding: 2, flip: 'random' }, batchSeed: 100 + b, epoch: 1 }
  return { indices: Int32Array.from({ length: BATCH }, (_, i) => (b * 331 + i * 7) % 2000), options }
})

const fresh = () => Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 3, optimizer: { type: 'adamw', lr: 1e-3 } })
/** A report without its timing, which differs from run to run. */
const report = ({ seconds: _s, ...rest }: StepResult) => rest

async function oneByOne(model: Model, data: TensorDataset, list: TrainBatch[]) {
  const out = []
  for (const { indices, options } of list) out.push(report(await model.trainBatch(data, indices, options)))
  return out
}

async function pipelined(model: Model, data: TensorDataset, list: Iterable<TrainBatch>) {
  const out = []
  for await (const step of model.trainBatches(data, list)) out.push(report(step))
  return out
}

test('trainBatches gives the reports and weights of trainBatch on each batch in turn', async (t) => {
  const { train, test: testData } = await loaded
  const [a, b] = [fresh(), fresh()]
  const expected = await oneByOne(a, train, batches)
  t.deepEqual(await pipelined(b, train, batches), expected)
  t.is(b.optimizerStep, 6)
  const [ea, eb] = [await a.evaluate(testData), await b.evaluate(testData)]
  t.is(eb.loss, ea.loss)
  t.deepEqual(eb.confusion, ea.confusion)
  // Each report names its own step's rate, though the next step (with its own rate) was queued before it was read.
  t.deepEqual(
    expected.map((r) => r.lr),
    batches.map((b) => b.options!.lr),
  )
  // The weights moved: the reports are not those of an untrained network.
  t.not(expected[5]!.loss, expected[0]!.loss)
})

test('stopping early trains the one step already queued and leaves nothing queued', async (t) => {
  const { train, test: testData } = await loaded
  const [a, b] = [fresh(), fresh()]
  const expected = await oneByOne(a, train, batches)
  const seen: ReturnType<typeof report>[] = []
  for await (const step of b.trainBatches(train, batches)) {
    seen.push(report(step))
    if (seen.length === 2) break
  }
  t.deepEqual(seen, expected.slice(0, 2))
  t.is(b.optimizerStep, 3, 'step 3 was queued when the loop stopped, and trained')
  // The next call starts clean: its reports are those of steps 4–6.
  t.deepEqual(await pipelined(b, train, batches.slice(3)), expected.slice(3))
  t.is((await b.evaluate(testData)).loss, (await a.evaluate(testData)).loss)
})

test('a batch that fails rejects the loop, names the problem, and leaves nothing queued', async (t) => {
  const { train } = await loaded
  const model = fresh()
  const bad = [...batches.slice(0, 2), { indices: [0, 1, 5000] }, ...batches.slice(3)]
  const seen: StepResult[] = []
  const err = await t.throwsAsync(async () => {
    for await (const step of model.trainBatches(train, bad)) seen.push(step)
  })
  t.is((err as Error & { code?: string }).code, 'BAD_SHAPE')
  t.regex(err!.message, /indices\[2\].*0\.\.2000.*5000/)
  // Both steps before the bad batch trained and are reported, though the second one's report was read after the
  // bad batch had been refused.
  t.is(seen.length, 2)
  t.is(model.optimizerStep, 2)
  const after = await model.trainBatch(train, batches[3]!.indices, batches[3]!.options)
  t.is(after.count, BATCH)
  t.is(model.optimizerStep, 3)
})

test('training calls made together run in the order they were made', async (t) => {
  const { train } = await loaded
  const [a, b] = [fresh(), fresh()]
  // No await between the calls: each reaches the libtorch thread in call order, whatever libuv's pool does.
  // (Without that ordering this failed about one round in three.)
  for (let round = 0; round < 4; round++) {
    const expected = await oneByOne(a, train, batches)
    const together = await Promise.all(batches.map(({ indices, options }) => b.trainBatch(train, indices, options)))
    t.deepEqual(together.map(report), expected, `round ${round}`)
  }
})

test("two loops on one model at once each get their own steps' reports", async (t) => {
  const { train } = await loaded
  const model = fresh()
  const plan = (size: number, lr: number): TrainBatch[] =>
    Array.from({ length: 4 }, (_, b) => ({ indices: Int32Array.from({ length: size }, (_, i) => (b * size + i) % 2000), options: { lr } }))
  const consume = async (list: TrainBatch[]) => {
    const out: StepResult[] = []
    for await (const step of model.trainBatches(train, list)) out.push(step)
    return out
  }
  const [wide, narrow] = await Promise.all([consume(plan(32, 1e-3)), consume(plan(16, 2e-3))])
  t.deepEqual(
    wide.map((s) => [s.count, s.lr]),
    Array(4).fill([32, 1e-3]),
  )
  t.deepEqual(
    narrow.map((s) => [s.count, s.lr]),
    Array(4).fill([16, 2e-3]),
  )
  t.is(model.optimizerStep, 8)
})
