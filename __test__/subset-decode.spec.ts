// limitTrain/limitTest on image folders and archives: only the images a run uses are decoded and cached (each subset
// its own entry), chosen exactly as selecting in the whole decoded set chose them; a set too large to hold fails
// before decoding; a decoded set larger than the whole cache is not cached, and that is said once.
import test from 'ava'
import { constants } from 'node:buffer'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { listCache } from '../ts/data/cache-index.ts'
import type { ImageSet } from '../ts/data/image-set.ts'
import { loadData } from '../ts/data/load-data.ts'
import { DataError } from '../ts/errors.ts'
import { train } from '../ts/index.ts'
import type { ConvkitError } from '../ts/errors.ts'
import { resolveConfig } from '../ts/train/resolve-config.ts'
import { prepareData, type TrainData } from '../ts/train/train-data.ts'
import type { TrainOptions } from '../ts/train/train-options.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'
import { decodedCounts } from './helpers/decoded-counts.ts'

const tmpdir = tempDirs('subset-decode')
const dirs = cifarSubset()
/** `train/<class>` (2 000 images) and `test/<class>` (1 000). */
const root = path.dirname(dirs.train)

/** What a run trains, validates and tests on: file and label of each image, in order. */
function chosen(data: TrainData) {
  const of = (set: ImageSet, indices: Int32Array) => Array.from(indices, (i) => `${set.files![i]} ${set.labels[i]}`)
  return { train: of(data.trainSet, data.train), val: of(data.valSet, data.val), test: of(data.testSet, data.test) }
}

/**
 * The images selected the way train() selected them before it picked them from the listing: everything decoded
 * (no limits, so nothing is picked), then the same run on that data in memory, where selection is unchanged.
 */
async function selectedAfterDecoding(options: TrainOptions, cacheDir: string) {
  const load = (source: string) => loadData(source, { cacheDir, quiet: true })
  const whole = await load(options.data as string)
  const given = options.testData ? await load(options.testData) : undefined
  const inMemory = { ...options, testData: undefined, data: { train: whole.train, test: given ? (given.test ?? given.train) : whole.test } }
  return chosen(await prepareData(inMemory, resolveConfig(inMemory)))
}

function tarGz(folder: string): string {
  const archive = path.join(tmpdir(), 'cifar.tar.gz')
  execFileSync('tar', ['-czf', archive, '-C', path.dirname(folder), path.basename(folder)])
  return archive
}

const cases: [string, () => Partial<TrainOptions>, number[]][] = [
  // Decoded files: 150 training and 60 test images.
  ['train/ and test/ folders', () => ({ data: root }), [60, 150]],
  // One file of 150 + 60: the test images are held out of the same folder, so they are decoded with it.
  ['one folder, test held out (testSplit)', () => ({ data: dirs.train, testSplit: 0.25 }), [210]],
  ['one folder with testData', () => ({ data: dirs.train, testData: dirs.test }), [60, 150]],
  ['an archive of train/ and test/', () => ({ data: tarGz(root) }), [60, 150]],
]

for (const [name, source, counts] of cases) {
  test(`${name}: only the limited images are decoded and cached, the same images a selection after decoding chose`, async (t) => {
    const cacheDir = tmpdir()
    const options = { ...source(), limitTrain: 150, limitTest: 60, seed: 5, valSplit: 0.1, cacheDir, quiet: true } as TrainOptions
    const data = await prepareData(options, resolveConfig(options))
    t.deepEqual(decodedCounts(cacheDir), counts)
    const now = chosen(data)
    t.is(now.train.length + now.val.length, 150)
    t.is(now.test.length, 60)
    t.deepEqual(now, await selectedAfterDecoding(options, tmpdir()))

    // Served from the cache the second time: no new entry.
    t.deepEqual(chosen(await prepareData(options, resolveConfig(options))), now)
    t.deepEqual(decodedCounts(cacheDir), counts)
    // Another seed is another subset, with its own entries.
    const reseeded = { ...options, seed: 6 }
    t.notDeepEqual(chosen(await prepareData(reseeded, resolveConfig(reseeded))).train, now.train)
    t.is(decodedCounts(cacheDir).length, 2 * counts.length)
  })
}

test('limits at least as large as the folder decode the whole folder, into the entry a run without limits uses', async (t) => {
  const cacheDir = tmpdir()
  const options = { data: root, limitTrain: 5000, limitTest: 1000, cacheDir, quiet: true } as TrainOptions
  const data = await prepareData(options, resolveConfig(options))
  t.is(data.train.length + data.val.length, 2000)
  t.deepEqual(decodedCounts(cacheDir), [1000, 2000])
  await loadData(root, { cacheDir, quiet: true })
  t.deepEqual(decodedCounts(cacheDir), [1000, 2000])
})

test('train() on a folder with limits runs exactly as on the same images decoded whole and passed in memory', async (t) => {
  const [whole, given] = [await loadData(dirs.train, { cacheDir: tmpdir() }), await loadData(dirs.test, { cacheDir: tmpdir() })]
  const base = {
    model: {
      inputShape: [3, 32, 32] as [number, number, number],
      layers: [{ type: 'flatten' as const }, { type: 'linear' as const, outFeatures: 10 }],
    },
    device: 'cpu' as const,
    quiet: true,
    report: false,
    seed: 2,
    epochs: 2,
    batchSize: 32,
    limitTrain: 200,
    limitTest: 100,
    cacheDir: tmpdir(),
  }
  const fromFolder = await train({ ...base, data: root, out: tmpdir() })
  const inMemory = await train({ ...base, data: { train: whole.train, test: given.train }, out: tmpdir() })
  t.deepEqual(decodedCounts(base.cacheDir), [100, 200])
  const summary = (h: typeof fromFolder.history) => h.epochs.map((e) => [e.train.lossSum, e.val?.lossSum, e.test?.lossSum])
  t.deepEqual(summary(fromFolder.history), summary(inMemory.history))
})

test('a set too large for one typed array fails before decoding, naming both sizes', async (t) => {
  const limit = `${(constants.MAX_LENGTH / 2 ** 30).toFixed(1)} GB`
  // 2 000 training images at 4000×4000 are 89.4 GB and 1 000 test images 44.7 GB: decoding them would take minutes and
  // more memory than the machine has. A folder's training images would stream (folder-streaming.spec.ts), but its
  // test images stay resident, so they fail; an archive's training images fail first.
  for (const [data, too] of [
    [root, '1000 images × 3×4000×4000 bytes decode to 44.7 GB'],
    [tarGz(root), '2000 images × 3×4000×4000 bytes decode to 89.4 GB'],
  ] as const) {
    const cacheDir = tmpdir()
    const err = (await t.throwsAsync(
      train({ data, size: [4000, 4000], device: 'cpu', quiet: true, report: false, out: tmpdir(), cacheDir }),
      { instanceOf: DataError },
    )) as ConvkitError
    t.is(err.code, 'DATA_TOO_LARGE')
    t.true(err.message.includes(too), err.message)
    t.true(err.message.includes(`more than the ${limit} one typed array can hold`), err.message)
    t.regex(err.message, /--limit-train.*--size.*shards/)
    t.deepEqual(decodedCounts(cacheDir), [])
  }
})

test('a decoded set larger than the whole cache limit is not cached, said once; other entries stay', async (t) => {
  const cacheDir = tmpdir()
  const small = path.join(tmpdir(), 'small')
  const big = path.join(tmpdir(), 'big')
  for (const [dest, perClass] of [
    [small, 1],
    [big, 8],
  ] as const) {
    for (const cls of fs.readdirSync(dirs.train)) {
      fs.mkdirSync(path.join(dest, cls), { recursive: true })
      for (const f of fs.readdirSync(path.join(dirs.train, cls)).sort().slice(0, perClass))
        fs.copyFileSync(path.join(dirs.train, cls, f), path.join(dest, cls, f))
    }
  }
  const warnings: string[] = []
  const listen = (w: Error & { code?: string }) => {
    if (w.code === 'CONVKIT_CACHE_TOO_SMALL' && w.message.includes(big)) warnings.push(w.message)
  }
  process.on('warning', listen)
  t.teardown(() => process.off('warning', listen))

  // 10 images (30 KB decoded) are cached; 80 (246 KB) are over a 200 KB limit by themselves.
  const cacheMaxBytes = 200 * 1024
  await loadData(small, { cacheDir, cacheMaxBytes })
  for (let run = 0; run < 2; run++) {
    const loaded = await loadData(big, { cacheDir, cacheMaxBytes })
    t.is(loaded.train.labels.length, 80)
  }
  // Warnings are emitted on the next tick.
  await new Promise((resolve) => setImmediate(resolve))
  t.is(warnings.length, 1)
  t.regex(warnings[0]!, /\(80 images, 240 kB\) are larger than the dataset cache's limit of 200 kB, so they are not cached/)
  t.regex(warnings[0]!, /CONVKIT_CACHE_MAX=5G/)
  t.deepEqual(decodedCounts(cacheDir), [10])
  t.true((await listCache({ cacheDir })).entries.some((e) => e.source === small && e.kind === 'decoded'))

  // Under a limit it fits, it is cached as usual.
  await loadData(big, { cacheDir, cacheMaxBytes: Infinity })
  t.deepEqual(decodedCounts(cacheDir), [10, 80])
})
