// An image folder whose decoded training images do not fit (the memory budget, or one typed array) trains anyway:
// it is written once into the dataset cache as shards of its original bytes and streamed, as shards from
// `convkit shard` are; a second run reuses the shards.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { train, type ModelSpec } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'
import { logged } from './helpers/logged.ts'

const root = path.dirname(cifarSubset().train)
const tmpdir = tempDirs('folder-streaming')

function shardFolders(cacheDir: string): string[] {
  const dir = path.join(cacheDir, 'shards')
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => !n.startsWith('.')) : []
}

test.serial(
  'a folder over the memory budget streams from shards written once into the cache, learns, and a second run reuses them',
  async (t) => {
    const cacheDir = tmpdir()
    const options = {
      data: root,
      cacheDir,
      memoryBudgetMb: 1,
      epochs: 2,
      batchSize: 64,
      limitTest: 300,
      device: 'cpu',
      seed: 1,
      report: false,
    } as const
    const first = await logged(() => train({ ...options, out: tmpdir() }))
    const why = first.lines.find((l) => l.includes('streaming'))
    t.log(why)
    t.regex(why ?? '', /2,000 images of 3×32×32 would take .* the memory budget is 1\.0 MB; written once into the dataset cache as shards/)
    t.regex(why ?? '', /\d+ training shard\(s\), \d+ validation shard\(s\) held out/)
    const [folder] = shardFolders(cacheDir)
    t.truthy(folder)
    const shardDir = path.join(cacheDir, 'shards', folder!)
    const tars = fs.readdirSync(shardDir).filter((n) => n.endsWith('.tar'))
    t.is(tars.length, 20)
    // Decoded at the run's size (9 MB, within the cache's limit): epochs copy pixels instead of decoding JPEGs.
    const index = JSON.parse(fs.readFileSync(path.join(shardDir, fs.readdirSync(shardDir).find((n) => n.endsWith('.json'))!), 'utf8'))
    t.deepEqual(index.formats, { chw: 2000 })
    t.deepEqual(index.imageShape, [3, 32, 32])
    const written = tars.map((n) => fs.statSync(path.join(shardDir, n)).mtimeMs)
    // Streamed, and learning: chance is 10 %.
    const last = first.result.history.epochs.at(-1)!
    t.true(last.test!.top1 > 20, `test top-1 ${last.test!.top1}`)
    t.true(first.result.history.epochs[1]!.train.loss < first.result.history.epochs[0]!.train.loss)

    const second = await logged(() => train({ ...options, epochs: 1, out: tmpdir() }))
    t.true(
      second.lines.some((l) => l.includes('from its shards of its images decoded at 3×32×32 in the dataset cache')),
      second.lines.join('\n'),
    )
    t.deepEqual(
      tars.map((n) => fs.statSync(path.join(shardDir, n)).mtimeMs),
      written,
    )
    t.deepEqual(shardFolders(cacheDir), [folder])
  },
)

test.serial('a decoded training set larger than one typed array holds streams instead of failing', async (t) => {
  // 2 000 images at 860×860: 4.4 GB decoded, over the 4 GB of one typed array (and under the default memory budget,
  // half the machine's memory); a few batches of them train.
  const net: ModelSpec = {
    inputShape: [3, 860, 860],
    layers: [
      { type: 'conv2d', outChannels: 8, kernelSize: 8, stride: 8 },
      { type: 'relu' },
      { type: 'adaptiveavgpool2d', outputSize: 1 },
      { type: 'flatten' },
      { type: 'linear', outFeatures: 10 },
    ],
  }
  const cacheDir = tmpdir()
  // A cache limit of 1 GB: decoded, the shards would take 4.4 GB, so they hold the JPEGs as they are.
  const saved = process.env.CONVKIT_CACHE_MAX
  process.env.CONVKIT_CACHE_MAX = '1G'
  t.teardown(() => {
    if (saved === undefined) delete process.env.CONVKIT_CACHE_MAX
    else process.env.CONVKIT_CACHE_MAX = saved
  })
  const { result, lines } = await logged(() =>
    train({
      data: root,
      model: net,
      size: [860, 860],
      cacheDir,
      // 250 batches in an epoch: 2 % of one, 5 batches.
      epochs: 0.02,
      batchSize: 8,
      limitTest: 16,
      valSplit: 0,
      device: 'cpu',
      report: false,
      out: tmpdir(),
    }),
  )
  const why = lines.find((l) => l.includes('streaming'))
  t.log(why)
  t.regex(why ?? '', /more than one typed array holds/)
  // Decoded, 2 000 images at 860×860 would take 4.4 GB, over the cache's limit: the shards keep the JPEGs.
  t.regex(why ?? '', /shards of the original bytes \(decoded they would take 4\.\d+ GB, over the dataset cache's limit/)
  t.is(result.history.epochs.length, 1)
  t.is(Math.round(result.history.epochs[0]!.test!.lossSum / result.history.epochs[0]!.test!.loss), 16)
  t.true(Number.isFinite(result.history.epochs[0]!.train.loss))
})
