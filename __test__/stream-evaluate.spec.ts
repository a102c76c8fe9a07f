// evaluateShards: a held-out set of a streamed run is evaluated a part at a time, and the counts of the parts add up
// to what evaluating the whole set at once gives.
import test from 'ava'
import path from 'node:path'
import {
  Model,
  TensorDataset,
  addEvalCounts,
  describeShards,
  evaluateShards,
  readShardImages,
  referenceCnn,
  writeShards,
} from '../ts/index.ts'
import type { ProcessGroup } from '../ts/distributed/process-group.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const dirs = cifarSubset()
const tmpdir = tempDirs('stream-evaluate')
const normalization = { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] }

test('evaluateShards over parts equals one evaluation of the whole set, with mirror TTA', async (t) => {
  // The 1 000 test images as 4 shards of 250, evaluated in parts of 96 (parts that straddle shards).
  const { pattern } = await writeShards(dirs.test, path.join(tmpdir(), 'test-%06d.tar'), { perShard: 250, seed: 3, quiet: true })
  const set = await describeShards(pattern)
  const model = Model.create(referenceCnn({ classes: 10, inputShape: [3, 32, 32] }), { device: 'cpu', seed: 7 })
  const streamed = await evaluateShards(model, set, {
    size: [32, 32],
    channels: 3,
    batchSize: 50,
    normalization,
    partSize: 96,
    tta: 'mirror',
  })
  const whole = await TensorDataset.create(await readShardImages(set, { size: [32, 32], channels: 3 }), { device: 'cpu', normalization })
  const resident = await model.evaluate(whole, { batchSize: 50, tta: 'mirror' })
  t.is(streamed.count, 1000)
  t.deepEqual(streamed.confusion, resident.confusion)
  t.is(streamed.top1, resident.top1)
  t.is(streamed.top5, resident.top5)
  t.true(Math.abs(streamed.loss - resident.loss) < 1e-5, `loss ${streamed.loss} against ${resident.loss}`)
  // An untrained network scores near chance: the comparison above is of real, varied predictions.
  t.true(new Set(streamed.confusion.flatMap((row) => row.map((n, j) => (n > 0 ? j : -1)))).size > 2)
})

test('addEvalCounts refuses counts of different class counts', (t) => {
  const counts = (classes: number) => ({
    count: 1,
    lossSum: 1,
    top1Correct: 1,
    top5Correct: 1,
    confusion: new Array(classes * classes).fill(0),
    classes,
  })
  t.is(addEvalCounts(counts(3), counts(3)).count, 2)
  t.throws(() => addEvalCounts(counts(3), counts(4)), { instanceOf: RangeError, message: /3 and 4 classes/ })
})

test('under data parallelism each rank evaluates its own shards, more ranks than shards included', async (t) => {
  const { pattern } = await writeShards(dirs.test, path.join(tmpdir(), 'ranks-%06d.tar'), { perShard: 250, seed: 4, quiet: true })
  const set = await describeShards(pattern)
  const model = Model.create(referenceCnn({ classes: 10, inputShape: [3, 32, 32] }), { device: 'cpu', seed: 7 })
  const options = { size: [32, 32] as [number, number], channels: 3 as const, batchSize: 100, normalization }
  const whole = await evaluateShards(model, set, options)
  // Six ranks over four shards, run one after another here: each one's sum stands in for the group's (the identity
  // all-reduce), and the six shares add up to the whole set.
  const shares = []
  for (let rank = 0; rank < 6; rank++) {
    const group = { rank, worldSize: 6, allreduceSum: async (v: readonly number[]) => Float64Array.from(v) } as unknown as ProcessGroup
    shares.push(await evaluateShards(model, set, { ...options, group }))
  }
  t.deepEqual(
    shares.map((s) => s.count),
    [250, 250, 250, 250, 0, 0],
  )
  const confusion = shares.reduce(
    (sum, s) => sum.map((row, i) => row.map((n, j) => n + s.confusion[i]![j]!)),
    whole.confusion.map((row) => row.map(() => 0)),
  )
  t.deepEqual(confusion, whole.confusion)
})
