// Tar shards: pattern expansion, writing an image folder as shards, streaming them back (order, ranks, errors,
// cancellation), and training over them against the resident path.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {
  CancelledError,
  DataError,
  InputError,
  Model,
  TensorDataset,
  readImageFolder,
  referenceCnn,
  type ConvkitError,
} from '../ts/index.ts'
import { shardCommand } from '../ts/cli/shard-command.ts'
import { bracePatternFor, expandBraces, indexPathFor, parseNumberedPattern } from '../ts/data/shards/brace-pattern.ts'
import { assignShards, describeShards, openShards, type ShardBatch } from '../ts/data/shards/shard-stream.ts'
import { chooseDataPath, trainEpochOnShards } from '../ts/data/shards/stream-train.ts'
import { deriveSeed, range, shuffle } from '../ts/data/split.ts'
import { readTar } from '../ts/data/shards/tar-reader.ts'
import { TarShardWriter } from '../ts/data/shards/tar-shard-writer.ts'
import { writeShards } from '../ts/data/shards/write-shards.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const dirs = cifarSubset()
const tmpdir = tempDirs('shards')
const reference = readImageFolder(dirs.train)
/** The 2 000 training images as 7 shards of 300 (the last 200), written once for the reading tests. */
const written = (async () => {
  const dir = tmpdir()
  return writeShards(dirs.train, path.join(dir, 'train-%06d.tar'), { perShard: 300, seed: 3, quiet: true })
})()

/** `<class>/<file stem>`, the key the writer gives a file of the folder. */
const keyOf = (file: string) =>
  file
    .split('/')
    .slice(-2)
    .join('/')
    .replace(/\.jpg$/, '')

async function collect(stream: AsyncIterable<ShardBatch>): Promise<{ keys: string[]; batches: ShardBatch[] }> {
  const batches: ShardBatch[] = []
  for await (const b of stream) batches.push(b)
  return { keys: batches.flatMap((b) => b.keys), batches }
}

test('brace patterns: zero-padded and plain ranges, lists, several and nested groups, descending ranges', (t) => {
  t.deepEqual(expandBraces('shards/train-{000000..000002}.tar'), [
    'shards/train-000000.tar',
    'shards/train-000001.tar',
    'shards/train-000002.tar',
  ])
  t.deepEqual(expandBraces('a-{8..11}.tar'), ['a-8.tar', 'a-9.tar', 'a-10.tar', 'a-11.tar'])
  t.deepEqual(expandBraces('{train,val}-{0..1}.tar'), ['train-0.tar', 'train-1.tar', 'val-0.tar', 'val-1.tar'])
  t.deepEqual(expandBraces('x{a,b{08..10}}'), ['xa', 'xb08', 'xb09', 'xb10'])
  t.deepEqual(expandBraces('s-{03..01}'), ['s-03', 's-02', 's-01'])
  t.deepEqual(expandBraces('one.tar'), ['one.tar'])
  t.is(expandBraces('big-{000000..000099}.tar').length, 100)
  for (const [bad, words] of [
    ['a-{0..3.tar', /never closed/],
    ['a-0..3}.tar', /no matching "\{"/],
    ['a-{abc}.tar', /neither a numeric range .* nor a list/],
    ['a-{0..99999999}.tar', /too large/],
  ] as const) {
    const err = t.throws(() => expandBraces(bad), { instanceOf: InputError })
    t.true(err!.message.includes(JSON.stringify(bad)), `the error names the pattern: ${err!.message}`)
    t.regex(err!.message, words)
  }
})

test('output patterns take one %0Nd; the brace pattern and the index path follow from them', (t) => {
  const p = parseNumberedPattern('shards/train-%06d.tar')
  t.deepEqual(p, { before: 'shards/train-', after: '.tar', width: 6 })
  t.is(bracePatternFor(p, 5), 'shards/train-{000000..000004}.tar')
  t.is(bracePatternFor(p, 1), 'shards/train-000000.tar')
  t.is(bracePatternFor(parseNumberedPattern('s/%d.tar'), 12), 's/{0..11}.tar')
  t.is(indexPathFor('shards/train-%06d.tar'), 'shards/train.shards.json')
  t.is(indexPathFor('shards/train-{000000..000004}.tar'), 'shards/train.shards.json')
  t.is(indexPathFor('shards/{0..3}.tar'), 'shards/shards.shards.json')
  const err = t.throws(() => parseNumberedPattern('shards/train-{000000..000009}.tar'), { instanceOf: InputError })
  t.regex(err!.message, /shards\/train-%06d\.tar/, 'a brace pattern for writing is answered with the numbered one')
  t.throws(() => parseNumberedPattern('a-%d-%d.tar'), { message: /2 number placeholders/ })
})

test('writing shards: valid tar files of <key>.jpg + <key>.cls, mixed classes, an index, byte-identical for a seed', async (t) => {
  const result = await written
  const set = await reference
  t.is(result.files.length, 7)
  t.is(result.count, 2000)
  t.deepEqual(result.classes, set.classes)
  t.deepEqual(result.imageShape, [3, 32, 32])
  t.true(result.pattern.endsWith('train-{000000..000006}.tar'))
  t.deepEqual(expandBraces(result.pattern), result.files)
  const dir = path.dirname(result.files[0]!)
  t.deepEqual(
    fs.readdirSync(dir).filter((f) => f.includes('.tmp')),
    [],
    'no temporary files are left',
  )

  // GNU tar reads them: entries pair up as <key>.jpg, <key>.cls.
  const listing = execFileSync('tar', ['-tf', result.files[0]!], { encoding: 'utf8' }).trim().split('\n')
  t.is(listing.length, 600)
  t.regex(listing[0]!, /^[a-z]+\/\d{4}\.jpg$/)
  t.is(listing[1], listing[0]!.replace('.jpg', '.cls'))

  // Bytes are the files' own, not re-encoded; labels are the class index as text.
  const entries: { name: string; data: Buffer }[] = []
  for await (const e of readTar(result.files[0]!)) entries.push(e)
  const first = entries[0]!
  t.deepEqual(first.data, fs.readFileSync(path.join(dirs.train, first.name)))
  t.is(entries[1]!.data.toString(), String(set.classes.indexOf(first.name.split('/')[0]!)))
  // The seeded shuffle mixes classes: 300 samples of 10 classes drawn at random hold every class.
  const classesInShard = new Set(entries.filter((e) => e.name.endsWith('.cls')).map((e) => e.data.toString()))
  t.is(classesInShard.size, 10)

  const index = JSON.parse(fs.readFileSync(result.index, 'utf8'))
  t.is(index.count, 2000)
  t.deepEqual(
    index.shards.map((s: { count: number }) => s.count),
    [300, 300, 300, 300, 300, 300, 200],
  )
  t.deepEqual(index.formats, { jpg: 2000 })

  // The same folder and seed give the same bytes; another seed another order.
  const again = await writeShards(dirs.train, path.join(tmpdir(), 'train-%06d.tar'), { perShard: 300, seed: 3, quiet: true })
  t.deepEqual(fs.readFileSync(again.files[2]!), fs.readFileSync(result.files[2]!))
  const other = await writeShards(dirs.train, path.join(tmpdir(), 'train-%06d.tar'), { perShard: 300, seed: 4, quiet: true })
  t.notDeepEqual(fs.readFileSync(other.files[2]!), fs.readFileSync(result.files[2]!))
})

test('reading back: every sample once per epoch, labels right, pixels byte-identical to readImageFolder', async (t) => {
  const result = await written
  const set = await reference
  const byKey = new Map(set.files.map((f, i) => [keyOf(f), i]))
  const stream = await openShards(result.pattern, { size: [32, 32], batchSize: 128, seed: 1, epoch: 1, shuffleBuffer: 500 })
  t.is(stream.samples, 2000)
  t.is(stream.batches, 16)
  t.deepEqual(stream.set.classes, set.classes)
  t.truthy(stream.set.index, 'counts came from the index')
  const { keys, batches } = await collect(stream)
  t.is(keys.length, 2000)
  t.is(new Set(keys).size, 2000)
  t.deepEqual(
    batches.map((b) => b.count),
    [...Array(15).fill(128), 80],
  )
  const per = 3 * 32 * 32
  let mismatched = 0
  for (const b of batches) {
    t.deepEqual(b.shape, [3, 32, 32])
    t.is(b.pixels.length, b.count * per)
    b.keys.forEach((key, j) => {
      const i = byKey.get(key)!
      const same =
        Buffer.compare(Buffer.from(b.pixels.subarray(j * per, (j + 1) * per)), Buffer.from(set.pixels.subarray(i * per, (i + 1) * per))) ===
        0
      if (!same || b.labels[j] !== set.labels[i]) mismatched++
    })
  }
  t.is(mismatched, 0)

  // dropLast leaves out the partial batch; maxBatches stops early.
  t.is((await collect(await openShards(result.pattern, { batchSize: 128, dropLast: true }))).keys.length, 15 * 128)
  t.is((await collect(await openShards(result.pattern, { batchSize: 100, maxBatches: 3 }))).keys.length, 300)
})

test('ranks read disjoint shards that together cover everything; evenRanks gives every rank the same batches', async (t) => {
  const result = await written
  for (const epoch of [0, 1]) {
    const parts = assignShards(7, { seed: 5, epoch, worldSize: 3, rank: 0 }).concat(
      assignShards(7, { seed: 5, epoch, worldSize: 3, rank: 1 }),
      assignShards(7, { seed: 5, epoch, worldSize: 3, rank: 2 }),
    )
    t.deepEqual([...parts].sort(), [0, 1, 2, 3, 4, 5, 6])
  }
  const ranks = await Promise.all(
    [0, 1, 2].map(async (rank) => openShards(result.pattern, { batchSize: 50, seed: 5, epoch: 2, rank, worldSize: 3, evenRanks: false })),
  )
  const keys = await Promise.all(ranks.map(async (s) => (await collect(s)).keys))
  const all = keys.flat()
  t.is(all.length, 2000)
  t.is(new Set(all).size, 2000, 'no sample is read by two ranks')
  t.deepEqual(
    keys.map((k) => k.length),
    ranks.map((s) => s.samples),
  )

  const even = await Promise.all(
    [0, 1, 2].map((rank) => openShards(result.pattern, { batchSize: 50, seed: 5, epoch: 2, rank, worldSize: 3 })),
  )
  const counts = await Promise.all(even.map(async (s) => (await collect(s)).batches.length))
  t.is(new Set(counts).size, 1, `batches per rank ${counts}`)
  t.is(counts[0], Math.min(...ranks.map((s) => Math.ceil(s.samples / 50))))
  await t.throwsAsync(openShards(result.pattern, { worldSize: 8, rank: 0 }), {
    instanceOf: InputError,
    message: /8 ranks need at least 8 shards/,
  })
})

test('the order repeats for a seed and epoch, and changes with the epoch and the seed', async (t) => {
  const result = await written
  const order = async (seed: number, epoch: number) =>
    (await collect(await openShards(result.pattern, { batchSize: 256, seed, epoch, shuffleBuffer: 400 }))).keys
  const a = await order(1, 1)
  t.deepEqual(await order(1, 1), a)
  const b = await order(1, 2)
  const c = await order(2, 1)
  t.notDeepEqual(b, a)
  t.notDeepEqual(c, a)
  t.deepEqual([...b].sort(), [...a].sort())
  // Without a shuffle buffer the samples come in shard order: the writer's own order within each shard.
  const plain = await collect(await openShards(result.pattern, { batchSize: 256, seed: 1, epoch: 1, shuffleBuffer: 0 }))
  const firstShard = plain.keys.slice(0, 300)
  const names: string[] = []
  for await (const e of readTar((await openShards(result.pattern, { seed: 1, epoch: 1 })).shards[0]!))
    if (e.name.endsWith('.jpg')) names.push(e.name.replace('.jpg', ''))
  t.deepEqual(firstShard, names)
})

/** A shard of `samples`, each entry written as given, for the error tests. */
async function shardOf(file: string, entries: [string, Buffer][]): Promise<string> {
  const w = await TarShardWriter.create(file)
  for (const [name, data] of entries) await w.add(name, data)
  await w.finish()
  return file
}

test('damaged input is a DataError naming the shard and the sample', async (t) => {
  const dir = tmpdir()
  const jpg = fs.readFileSync(path.join(dirs.train, 'cat', '0000.jpg'))
  const good = await shardOf(path.join(dir, 'good.tar'), [
    ['a.jpg', jpg],
    ['a.cls', Buffer.from('1')],
    ['b.jpg', jpg],
    ['b.cls', Buffer.from('2')],
  ])

  const noCls = await shardOf(path.join(dir, 'nocls.tar'), [
    ['a.jpg', jpg],
    ['a.cls', Buffer.from('1')],
    ['cat/b.jpg', jpg],
    ['c.jpg', jpg],
    ['c.cls', Buffer.from('0')],
  ])
  let err = await t.throwsAsync(async () => collect(await openShards(noCls)), { instanceOf: DataError })
  t.is((err as ConvkitError).code, 'DATA_CORRUPT')
  t.true(err!.message.includes(noCls) && err!.message.includes('sample cat/b has no .cls'), err!.message)

  const badLabel = await shardOf(path.join(dir, 'label.tar'), [
    ['a.jpg', jpg],
    ['a.cls', Buffer.from('cat')],
  ])
  err = await t.throwsAsync(async () => collect(await openShards(badLabel)), { instanceOf: DataError })
  t.regex(err!.message, /label\.tar: sample a: a\.cls holds "cat", expected a class index/)

  // A header overwritten in the middle: the second entry's header starts at 512 + 1024 (the JPEG padded to blocks).
  const damaged = path.join(dir, 'damaged.tar')
  const bytes = fs.readFileSync(good)
  const second = 512 + Math.ceil(jpg.length / 512) * 512
  bytes.fill(0x41, second, second + 64)
  fs.writeFileSync(damaged, bytes)
  err = await t.throwsAsync(async () => collect(await openShards([damaged])), { instanceOf: DataError })
  t.true(
    err!.message.includes(damaged) && err!.message.includes(`byte ${second}`) && err!.message.includes('after entry a.jpg'),
    err!.message,
  )

  const truncated = path.join(dir, 'truncated.tar')
  fs.writeFileSync(truncated, fs.readFileSync(good).subarray(0, 512 + 300))
  err = await t.throwsAsync(async () => collect(await openShards([truncated])), { instanceOf: DataError })
  t.regex(err!.message, /truncated\.tar: ends inside entry a\.jpg .* truncated/)

  const broken = await shardOf(path.join(dir, 'broken.tar'), [
    ['a.jpg', jpg],
    ['a.cls', Buffer.from('1')],
    ['x/b.png', Buffer.from('not a png at all')],
    ['x/b.cls', Buffer.from('2')],
  ])
  err = await t.throwsAsync(async () => collect(await openShards(broken)), { instanceOf: DataError })
  t.is((err as ConvkitError).code, 'DATA_BAD_IMAGE')
  t.true(err!.message.includes(broken) && err!.message.includes('sample x/b (x/b.png)'), err!.message)
  const skipping = await openShards(broken, { skipBadImages: true })
  t.deepEqual((await collect(skipping)).keys, ['a'])
  t.deepEqual(
    skipping.skipped.map((s) => s.key),
    ['x/b'],
  )

  err = await t.throwsAsync(openShards(path.join(dir, 'missing-{0..2}.tar')), { instanceOf: DataError })
  t.is((err as ConvkitError).code, 'DATA_NOT_FOUND')
  t.regex(err!.message, /3 of 3 shard file\(s\) do not exist .*missing-0\.tar/)
})

test('shards made by GNU tar read too: pax and GNU long names, directory entries, other files ignored', async (t) => {
  const dir = tmpdir()
  const src = path.join(dir, 'src')
  const long = `${'deep/'.repeat(12)}${'x'.repeat(120)}`
  fs.mkdirSync(path.join(src, path.dirname(long)), { recursive: true })
  const jpg = fs.readFileSync(path.join(dirs.train, 'ship', '0001.jpg'))
  fs.writeFileSync(path.join(src, `${long}.jpg`), jpg)
  fs.writeFileSync(path.join(src, `${long}.cls`), '8\n')
  fs.writeFileSync(path.join(src, `${long}.json`), '{}')
  const set = await reference
  const i = set.files.findIndex((f) => f.endsWith('ship/0001.jpg'))
  for (const format of ['pax', 'gnu']) {
    const shard = path.join(dir, `${format}.tar`)
    execFileSync('tar', [`--format=${format}`, '-cf', shard, '-C', src, 'deep'])
    const { batches } = await collect(await openShards([shard]))
    t.deepEqual(batches[0]!.keys, [long], format)
    t.deepEqual([...batches[0]!.labels], [8])
    t.deepEqual(Buffer.from(batches[0]!.pixels), Buffer.from(set.pixels.subarray(i * 3072, (i + 1) * 3072)))
  }
})

test('shards without an index are scanned: counts right, classes numbered', async (t) => {
  const result = await written
  const dir = tmpdir()
  for (const f of result.files) fs.copyFileSync(f, path.join(dir, path.basename(f)))
  const set = await describeShards(path.join(dir, path.basename(result.pattern)))
  t.is(set.index, null)
  t.is(set.total, 2000)
  t.deepEqual(set.counts, [300, 300, 300, 300, 300, 300, 200])
  t.deepEqual(
    set.classes,
    Array.from({ length: 10 }, (_, k) => `class ${k}`),
  )
})

test('cancelling: an AbortSignal fails the iteration with a CancelledError; breaking out closes the stream', async (t) => {
  const result = await written
  const controller = new AbortController()
  const stream = await openShards(result.pattern, { batchSize: 64, signal: controller.signal })
  let seen = 0
  const err = await t.throwsAsync(async () => {
    for await (const b of stream) {
      seen += b.count
      if (seen >= 128) controller.abort()
    }
  })
  t.true(err instanceof CancelledError, String(err))
  t.true(seen < 2000)
  const aborted = new AbortController()
  aborted.abort()
  await t.throwsAsync(openShards(result.pattern, { signal: aborted.signal }), { instanceOf: CancelledError })

  const early = await openShards(result.pattern, { batchSize: 64 })
  for await (const _ of early) break
  await early.close() // a second close is harmless
  t.throws(() => early[Symbol.asyncIterator](), { instanceOf: InputError })

  // Writing stops too, leaving no partial shard behind.
  const dir = tmpdir()
  const stop = new AbortController()
  stop.abort()
  await t.throwsAsync(writeShards(dirs.train, path.join(dir, 'x-%03d.tar'), { signal: stop.signal }), { instanceOf: CancelledError })
  t.deepEqual(fs.readdirSync(dir), [])
})

test('the shard command writes shards and says how to read them; bad arguments are usage errors', async (t) => {
  const dir = tmpdir()
  const lines: string[] = []
  const log = console.log
  console.log = (line: string) => lines.push(line)
  try {
    t.is(await shardCommand(['--per-shard', '1000', '--quiet', dirs.train, path.join(dir, 'cifar-%04d.tar')]), 0)
    t.is(await shardCommand(['--help']), 0)
  } finally {
    console.log = log
  }
  t.deepEqual(fs.readdirSync(dir).sort(), ['cifar-0000.tar', 'cifar-0001.tar', 'cifar.shards.json'])
  t.true(
    lines.some((l) => l.includes(`'${path.join(dir, 'cifar-{0000..0001}.tar')}'`)),
    lines.join('\n'),
  )
  t.true(lines.some((l) => l.includes('usage: convkit shard')))
  await t.throwsAsync(shardCommand([dirs.train]), { instanceOf: InputError, message: /expected <folder> <out-pattern>/ })
  await t.throwsAsync(shardCommand([dirs.train, path.join(dir, 'a-{0..3}.tar')]), { instanceOf: InputError, message: /%06d/ })
  await t.throwsAsync(shardCommand([path.dirname(dirs.train), path.join(dir, 'b-%d.tar')]), {
    instanceOf: DataError,
    message: /train\/ and test\//,
  })
})

test('the resident path is chosen while it fits the memory budget, streaming beyond it', (t) => {
  const small = chooseDataPath(50_000, [3, 32, 32], { budgetBytes: 2 ** 30 })
  t.false(small.stream)
  t.regex(small.reason, /loading into memory: 50,000 images of 3×32×32 would take 293\.5 MB resident; the memory budget is 1\.00 GB/)
  const big = chooseDataPath(200_000, [3, 224, 224], { budgetBytes: 2 ** 30 })
  t.true(big.stream)
  t.regex(big.reason, /^streaming from shards/)
  t.true(chooseDataPath(10, [3, 32, 32], { stream: true }).stream)
})

test('training over shards learns, as the resident path does on the same images', async (t) => {
  const result = await written
  const [trainSet, testSet] = await Promise.all([reference, readImageFolder(dirs.test)])
  const testData = await TensorDataset.create(testSet, { device: 'cpu' })
  const epochs = 4

  const streamed = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 7, classNames: trainSet.classes })
  const streamLosses: number[] = []
  let batchesSeen = 0
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const r = await trainEpochOnShards(streamed, result.pattern, {
      epoch,
      batchSize: 64,
      seed: 7,
      shuffleBuffer: 1000,
      lr: () => 1e-3,
      onBatch: () => void batchesSeen++,
    })
    t.is(r.images, 2000)
    t.false(r.interrupted)
    t.is(r.lastLr, 1e-3)
    t.is(Object.keys(r.metrics.perClass).length, 10)
    streamLosses.push(r.metrics.loss)
  }
  t.is(batchesSeen, epochs * 32)

  const resident = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 7, classNames: trainSet.classes })
  const data = await TensorDataset.create(trainSet, { device: 'cpu' })
  const residentLosses: number[] = []
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const order = shuffle(range(2000), deriveSeed(7, epoch))
    let sum = 0
    for (let b = 0; b < 2000; b += 64) {
      const step = await resident.trainBatch(data, order.subarray(b, b + 64))
      sum += step.loss * step.count
    }
    residentLosses.push(sum / 2000)
  }
  const [s, r] = [await streamed.evaluate(testData), await resident.evaluate(testData)]
  t.log(
    `streamed loss ${streamLosses.map((l) => l.toFixed(3)).join(' ')}, test top-1 ${s.top1.toFixed(1)}%; resident ${residentLosses.map((l) => l.toFixed(3)).join(' ')}, ${r.top1.toFixed(1)}%`,
  )
  t.true(streamLosses.at(-1)! < streamLosses[0]! * 0.8, 'the streamed training loss fell by at least 20%')
  // Same network, seed, batch size and images, only the order differs: both land within a few points of each other
  // (40-50 % here after four epochs; chance is 10 %).
  t.true(s.top1 > 30, `streamed test top-1 ${s.top1}%`)
  t.true(Math.abs(s.top1 - r.top1) < 10, `streamed ${s.top1}% vs resident ${r.top1}%`)
  t.true(Math.abs(streamLosses.at(-1)! - residentLosses.at(-1)!) < 0.3, 'final training losses agree within 0.3')

  // Aborting stops at the end of the current batch and says so.
  const controller = new AbortController()
  const cut = await trainEpochOnShards(streamed, result.pattern, {
    epoch: 9,
    batchSize: 64,
    signal: controller.signal,
    onBatch: (b) => (b === 2 ? controller.abort() : undefined),
  })
  t.true(cut.interrupted)
  t.is(cut.batches, 3)
})

test('decoded shards: .chw entries of the pixels readImageFolder gives at that size, read back without decoding', async (t) => {
  const out = path.join(tmpdir(), 'decoded-%06d.tar')
  const result = await writeShards(dirs.test, out, { perShard: 400, seed: 2, quiet: true, decode: { size: [48, 40], channels: 3 } })
  t.is(result.count, 1000)
  t.deepEqual(result.imageShape, [3, 48, 40])
  t.deepEqual(result.skipped, [])
  const names = []
  for await (const entry of readTar(result.files[0]!)) names.push(entry.name)
  t.true(
    names.every((n) => n.endsWith('.chw') || n.endsWith('.cls')),
    names.slice(0, 4).join(' '),
  )
  const set = await readImageFolder(dirs.test, { size: [48, 40] })
  const byKey = new Map(set.files.map((f, i) => [keyOf(f), i]))
  const { batches } = await collect(await openShards(result.pattern, { size: [48, 40], batchSize: 300, shuffleBuffer: 0 }))
  const per = 3 * 48 * 40
  let compared = 0
  for (const b of batches) {
    b.keys.forEach((key, j) => {
      const i = byKey.get(key)!
      t.is(b.labels[j], set.labels[i])
      if (
        Buffer.compare(Buffer.from(b.pixels.subarray(j * per, (j + 1) * per)), Buffer.from(set.pixels.subarray(i * per, (i + 1) * per))) ===
        0
      )
        compared++
    })
  }
  t.is(compared, 1000, 'every image byte-identical to the resident decode')
  // Read at another size, the stored pixels are refused by name rather than reinterpreted.
  const wrong = openShards(result.pattern, { size: [32, 32], batchSize: 300, shuffleBuffer: 0 })
  await t.throwsAsync(async () => collect(await wrong), {
    instanceOf: DataError,
    message: /holds 5760 bytes of decoded pixels, and 3×32×32 takes 3072/,
  })
})
