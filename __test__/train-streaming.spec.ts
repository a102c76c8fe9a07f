// train() over tar shards through the public API and the CLI: streamed when asked or when the shards exceed the
// memory budget (with whole shards held out for validation and test), resident otherwise; resume replays a
// streamed run; --summary reads the index.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { DataError, InputError, train, writeShards, type HistoryFile } from '../ts/index.ts'
import { trainCommand } from '../ts/cli/train-command.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'
import { logged } from './helpers/logged.ts'

const dirs = cifarSubset()
const tmpdir = tempDirs('train-streaming')
/** The 2 000 training images as 8 shards of 250. */
const shards = writeShards(dirs.train, path.join(tmpdir(), 'train-%06d.tar'), { perShard: 250, seed: 1, quiet: true })
const base = { epochs: 3, batchSize: 64, device: 'cpu', seed: 1, report: false } as const

test.serial('streamed shards train and learn; validation and test are whole held-out shards; resume continues', async (t) => {
  const { pattern } = await shards
  const out = tmpdir()
  const { result, lines } = await logged(() => train({ ...base, data: pattern, stream: 'always', valSplit: 0.15, out }))
  t.true(
    lines.some((l) =>
      /streaming from shards, as asked .*; 5 training shard\(s\), 2 test shard\(s\) and 1 validation shard\(s\) held out/.test(l),
    ),
    lines.join('\n'),
  )
  t.true(
    lines.some((l) => /10 classes; 1250 train \(streamed\), 250 val \(streamed\), 500 test images/.test(l)),
    lines.join('\n'),
  )
  const epochs = result.history.epochs
  t.is(epochs.length, 3)
  t.true(epochs.every((e) => Object.values(e.train.perClass).length === 10))
  t.true(epochs[2]!.train.loss < epochs[0]!.train.loss * 0.85, `train loss ${epochs.map((e) => e.train.loss.toFixed(3)).join(' → ')}`)
  t.true(epochs[2]!.test!.top1 > 25, `test top-1 ${epochs[2]!.test!.top1}% (chance 10 %)`)
  t.is(result.history.config.stream, 'always')

  // Resume: the streamed run goes on from its last epoch.
  const resumed = await train({ data: pattern, resume: out, epochs: 4, quiet: true })
  t.deepEqual(
    resumed.history.epochs.map((e) => e.epoch),
    [1, 2, 3, 4],
  )
  t.deepEqual(resumed.history.epochs.slice(0, 3), epochs)
})

test.serial('auto: resident while the shards fit the memory budget, streamed beyond it, with the reason printed', async (t) => {
  const { pattern } = await shards
  const resident = await logged(() => train({ ...base, epochs: 1, data: pattern, testData: dirs.test, out: tmpdir(), limitTrain: 600 }))
  t.true(
    resident.lines.some((l) => /loading into memory: 2,000 images of 3×32×32 would take 11\.7 MB resident/.test(l)),
    resident.lines.join('\n'),
  )
  // Resident shards split like a folder: 10 % validation out of the (limited) training images.
  t.true(
    resident.lines.some((l) => /10 classes; 540 train, 60 val, 1000 test images/.test(l)),
    resident.lines.join('\n'),
  )

  const streamed = await logged(() =>
    train({ ...base, epochs: 1, data: pattern, testData: dirs.test, valSplit: 0, memoryBudgetMb: 1, out: tmpdir() }),
  )
  t.true(
    streamed.lines.some((l) =>
      /^convkit: streaming from shards: 2,000 images .* the memory budget is 1\.0 MB; 8 training shard\(s\)$/.test(l),
    ),
    streamed.lines.join('\n'),
  )
  t.true(
    streamed.lines.some((l) => /2000 train \(streamed\), 0 val, 1000 test images/.test(l)),
    streamed.lines.join('\n'),
  )
  t.is(streamed.result.history.epochs.length, 1)
})

test.serial('streaming errors: too few shards to hold any out, a full train-metrics pass, a balanced sampler', async (t) => {
  const dir = tmpdir()
  const two = await writeShards(dirs.train, path.join(dir, 'two-%06d.tar'), { perShard: 1000, quiet: true })
  await t.throwsAsync(train({ ...base, data: two.pattern, stream: 'always', out: tmpdir(), quiet: true }), {
    instanceOf: DataError,
    message: /2 shard\(s\) cannot give whole shards to test and validation and still train/,
  })
  const { pattern } = await shards
  await t.throwsAsync(train({ ...base, data: pattern, stream: 'always', trainMetrics: 'full', out: tmpdir(), quiet: true }), {
    instanceOf: InputError,
    message: /option trainMetrics: 'running' when the training shards are streamed/,
  })
  await t.throwsAsync(train({ ...base, data: pattern, stream: 'always', sampler: 'balanced', out: tmpdir(), quiet: true }), {
    instanceOf: InputError,
    message: /option sampler: 'shuffle' when the training shards are streamed/,
  })
  await t.throwsAsync(train({ ...base, data: path.join(dir, 'missing-{000000..000003}.tar'), out: tmpdir(), quiet: true }), {
    instanceOf: DataError,
    message: /4 of 4 shard file\(s\) do not exist/,
  })
})

test.serial('the CLI: --data takes a shard pattern or its index, --stream and --test-data, --summary reads the index', async (t) => {
  const { pattern, index } = await shards
  const out = tmpdir()
  const { result: code, lines } = await logged(() =>
    trainCommand([
      '--data',
      index,
      '--stream',
      'always',
      '--test-data',
      dirs.test,
      '--val-split',
      '0',
      '--epochs',
      '1',
      '--batch-size',
      '100',
      '--device',
      'cpu',
      '--no-report',
      '--out',
      out,
    ]),
  )
  t.is(code, 0)
  t.true(
    lines.some((l) => /2000 train \(streamed\), 0 val, 1000 test images/.test(l)),
    lines.join('\n'),
  )
  const history = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as HistoryFile
  t.is(history.epochs.length, 1)
  t.is(history.config.testData, dirs.test)
  const summary = await logged(() => trainCommand(['--data', pattern, '--summary', '--size', '24x24', '--device', 'cpu']))
  t.true(
    summary.lines.some((l) => /input\s+\[3, 24, 24\]/.test(l)),
    summary.lines.join('\n'),
  )
  t.true(
    summary.lines.some((l) => /fc2 \(linear\)\s+\[10\]/.test(l)),
    summary.lines.join('\n'),
  )
  // A folder's summary comes from its listing: nothing is decoded, so nothing lands in the decoded cache.
  const cacheDir = tmpdir()
  const folder = await logged(() =>
    trainCommand(['--data', path.dirname(dirs.train), '--summary', '--size', '24x24', '--cache-dir', cacheDir]),
  )
  t.true(
    folder.lines.some((l) => /input\s+\[3, 24, 24\]/.test(l)),
    folder.lines.join('\n'),
  )
  t.false(fs.existsSync(path.join(cacheDir, 'decoded')) && fs.readdirSync(path.join(cacheDir, 'decoded')).length > 0)
})
