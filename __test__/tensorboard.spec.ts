// The TensorBoard callback on fake epochs: TFRecord framing with CRC-32C, and event files read back by TensorBoard's own reader.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { crc32c } from '@node-rs/crc32'
import sharp from 'sharp'
import type { EpochRecord, SplitMetrics, TrainContext } from '../ts/callbacks/callback.ts'
import { TENSORBOARD_TAGS as TAGS, TensorBoard } from '../ts/callbacks/tensorboard.ts'
import { InputError } from '../ts/errors.ts'
import { decodeEvent, encodeEvent, FILE_VERSION, type TfEvent } from '../ts/tensorboard/event-proto.ts'
import { frameRecord, maskedCrc32c, readRecords } from '../ts/tensorboard/tf-record.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWith } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'
import { trainContext } from './helpers/train-context.ts'

const reader = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tensorboard_read.py')
const tmpdir = tempDirs('tensorboard')

const python = pythonWith(['tensorboard.backend.event_processing.event_accumulator'])
const withTensorboard = needs(missingPython(['tensorboard.backend.event_processing.event_accumulator']))

interface ReadScalar {
  tag: string
  step: number
  value: number
}
interface ReadImage {
  tag: string
  step: number
  width: number
  height: number
  size: number
}
interface ReadRun {
  files: string[]
  file_version: number
  scalars: ReadScalar[]
  images: ReadImage[]
}

/** What TensorBoard's EventAccumulator keeps of each run folder under `logDir`. */
function tensorboardRead(logDir: string): Record<string, ReadRun> {
  const out = spawnSync(python!, [reader, logDir], { encoding: 'utf8', timeout: 120_000 })
  if (out.status !== 0) throw new Error(`tensorboard_read.py failed: ${out.stderr}`)
  return JSON.parse(out.stdout) as Record<string, ReadRun>
}

const CLASSES = ['airplane', 'automobile', 'bird']

/** Values with long fractions, so that float32 rounding is visible; epoch 1's validation top-1 is 0 (proto3's default). */
function split(epoch: number, offset: number, withConfusion = false): SplitMetrics {
  const top1 = epoch === 1 && offset === 1 ? 0 : Math.min(100, (100 / 3) * epoch - offset)
  return {
    loss: 2.302585093 / epoch + offset / 7,
    lossSum: 0,
    top1,
    top5: Math.min(100, 97.123456 + epoch / 3),
    perClass: Object.fromEntries(CLASSES.map((c) => [c, top1])),
    ...(withConfusion ? { confusion: CLASSES.map((_, t) => CLASSES.map((_, p) => (t === p ? 10 * epoch : epoch + t + p))) } : {}),
  }
}

function record(epoch: number, options: { val?: boolean } = {}): EpochRecord {
  return {
    epoch,
    seconds: 1,
    lr: 1e-3 / 3 ** (epoch - 1),
    imagesPerSecond: 100,
    train: split(epoch, 0),
    ...(options.val === false ? {} : { val: split(epoch, 1) }),
    test: split(epoch, 2, true),
  }
}

async function samplesPng(): Promise<Buffer> {
  return sharp({ create: { width: 140, height: 90, channels: 3, background: '#4477aa' } })
    .png()
    .toBuffer()
}

function context(samples?: Uint8Array): TrainContext {
  return trainContext({ runDir: tmpdir('tb-run'), samplesPng: samples, classNames: CLASSES })
}

/** The scalars TensorBoard should hold for `records`, per run folder, as float32 (simple_value's type) widened back. */
function expectedScalars(records: EpochRecord[]): Record<string, ReadScalar[]> {
  const out: Record<string, ReadScalar[]> = {}
  for (const [key, run] of [
    ['train', 'train'],
    ['val', 'validation'],
    ['test', 'test'],
  ] as const) {
    const rows: ReadScalar[] = []
    for (const r of records) {
      const m = r[key]
      if (!m) continue
      rows.push({ tag: TAGS.loss, step: r.epoch, value: Math.fround(m.loss) })
      rows.push({ tag: TAGS.top1, step: r.epoch, value: Math.fround(m.top1 / 100) })
      rows.push({ tag: TAGS.top5, step: r.epoch, value: Math.fround(m.top5 / 100) })
      if (key === 'train') rows.push({ tag: TAGS.learningRate, step: r.epoch, value: Math.fround(r.lr) })
    }
    if (rows.length > 0) out[run] = sortScalars(rows)
  }
  return out
}

function sortScalars(rows: ReadScalar[]): ReadScalar[] {
  return [...rows].sort((a, b) => a.tag.localeCompare(b.tag) || a.step - b.step)
}

/** Every event of one file, checked record by record with our own reader. */
function eventsOf(file: string): TfEvent[] {
  return readRecords(fs.readFileSync(file)).map((r) => decodeEvent(r.data))
}

test('CRC-32C is Castagnoli, not the CRC-32 of zip, and is masked as TFRecord masks it', (t) => {
  // The check value of CRC-32C; CRC-32/IEEE (zlib.crc32) gives 0xCBF43926 for the same bytes.
  t.is(crc32c('123456789'), 0xe3069283)
  // RFC 3720 (iSCSI) B.4 vectors: 32 zero bytes, 32 bytes 0xFF, bytes 0..31.
  t.is(crc32c(Buffer.alloc(32)), 0x8a9136aa)
  t.is(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43)
  t.is(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e)
  // TensorBoard's own masked_crc32c(b"123456789"), computed with its pure-Python reader.
  t.is(maskedCrc32c(Buffer.from('123456789')), 0xc78ab0e5)
  t.is(maskedCrc32c(Buffer.alloc(8)), 0x07980329)
})

test('a record is uint64 length, masked CRC of the length, data, masked CRC of the data', (t) => {
  const data = Buffer.from('hello, tensorboard')
  const framed = frameRecord(data)
  t.is(framed.length, 8 + 4 + data.length + 4)
  t.is(framed.readBigUInt64LE(0), BigInt(data.length))
  t.is(framed.readUInt32LE(8), maskedCrc32c(framed.subarray(0, 8)))
  t.deepEqual(framed.subarray(12, 12 + data.length), data)
  t.is(framed.readUInt32LE(12 + data.length), maskedCrc32c(data))
  const two = Buffer.concat([framed, frameRecord(Buffer.alloc(0))])
  t.deepEqual(
    readRecords(two).map((r) => Buffer.from(r.data).toString()),
    ['hello, tensorboard', ''],
  )
  const flipped = Buffer.from(two)
  flipped[14]! ^= 0x01
  t.throws(() => readRecords(flipped), { message: 'TFRecord at byte 0: data CRC mismatch' })
  t.throws(() => readRecords(two.subarray(0, two.length - 1)), { message: /truncated data/ })
})

test('events encode with the field numbers of event.proto and summary.proto', (t) => {
  const bytes = encodeEvent({ wall_time: 1.5, step: 7, summary: { value: [{ tag: 'x', simple_value: 0 }] } })
  // wall_time: field 1, wire type 1 (64-bit) = 0x09; step: field 2 varint = 0x10; summary: field 5 bytes = 0x2a.
  t.is(bytes[0], 0x09)
  t.is(bytes[9], 0x10)
  t.is(bytes[10], 7)
  t.is(bytes[11], 0x2a)
  // Summary.value: field 1 = 0x0a; Value.tag field 1 = 0x0a; simple_value field 2, 32-bit = 0x15, written though it is 0.
  t.deepEqual([...bytes.subarray(13)], [0x0a, 8, 0x0a, 1, 'x'.charCodeAt(0), 0x15, 0, 0, 0, 0])
  t.deepEqual(decodeEvent(encodeEvent({ wall_time: 2, file_version: FILE_VERSION })), {
    wall_time: 2,
    step: 0,
    file_version: 'brain.Event:2',
  })
})

test('options are checked where they enter', (t) => {
  t.throws(() => new TensorBoard({} as never), { instanceOf: InputError, message: /logDir: expected a folder path, got undefined/ })
  t.throws(() => new TensorBoard({ logDir: '' }), { instanceOf: InputError })
  t.throws(() => new TensorBoard({ logDir: 'x', images: 'yes' as never }), {
    instanceOf: InputError,
    message: /images: expected true or false/,
  })
  t.true(new TensorBoard({ logDir: 'x' }).images)
})

withTensorboard('every scalar and image round-trips through TensorBoard’s EventAccumulator', async (t) => {
  const logDir = tmpdir()
  const tb = new TensorBoard({ logDir })
  const ctx = context(await samplesPng())
  const records = [1, 2, 3].map((e) => record(e))
  tb.onTrainBegin(ctx)
  for (const r of records) await tb.onEpochEnd(r, {}, ctx)
  await tb.onTrainEnd()

  const runs = tensorboardRead(logDir)
  t.deepEqual(Object.keys(runs), ['train', 'validation', 'test'])
  const expected = expectedScalars(records)
  for (const [run, read] of Object.entries(runs)) {
    t.is(read.files.length, 1, run)
    t.regex(
      read.files[0]!,
      new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${os.hostname().replace(/\./g, '\\.')}\\.${process.pid}\\.\\d+$`),
    )
    t.is(read.file_version, 2, run)
    // Exact equality: simple_value is a float32, and Math.fround is the same rounding.
    t.deepEqual(sortScalars(read.scalars), expected[run], run)
    // TensorBoard's reader checks every record's masked CRC-32C and kept them all (with CRC-32/IEEE it would keep
    // none); ours agrees, and the first record is the file version.
    const events = eventsOf(path.join(logDir, run, read.files[0]!))
    t.is(events[0]!.file_version, FILE_VERSION)
  }
  t.deepEqual(runs.train!.images, [{ tag: TAGS.samples, step: 0, width: 140, height: 90, size: (await samplesPng()).length }])
  t.deepEqual(runs.validation!.images, [])
  t.deepEqual(
    runs.test!.images.map(({ tag, step, width, height }) => ({ tag, step, width, height })),
    [1, 2, 3].map((step) => ({ tag: TAGS.confusion, step, width: 800, height: 500 })),
  )
  t.deepEqual(
    tb.files.map((f) => path.relative(logDir, path.dirname(f))),
    ['train', 'validation', 'test'],
  )
})

withTensorboard('each epoch is on disk when onEpochEnd returns; no images and no validation folder when asked for none', async (t) => {
  const logDir = tmpdir()
  const tb = new TensorBoard({ logDir, images: false })
  const ctx = context(await samplesPng())
  tb.onTrainBegin(ctx)
  const records: EpochRecord[] = []
  for (const epoch of [1, 2]) {
    records.push(record(epoch, { val: false }))
    await tb.onEpochEnd(records.at(-1)!, {}, ctx)
    // No onTrainEnd: a process that died here would leave exactly this.
    const runs = tensorboardRead(logDir)
    t.deepEqual(Object.keys(runs), ['train', 'test'])
    t.deepEqual(runs.train!.scalars.length, 4 * epoch)
    t.deepEqual(sortScalars(runs.test!.scalars), expectedScalars(records).test)
    t.deepEqual([...runs.train!.images, ...runs.test!.images], [])
  }
})

withTensorboard(
  'a resumed run appends new files that TensorBoard merges with the old ones, without logging the samples again',
  async (t) => {
    const logDir = tmpdir()
    const first = new TensorBoard({ logDir })
    const ctx = context(await samplesPng())
    first.onTrainBegin(ctx)
    for (const e of [1, 2]) await first.onEpochEnd(record(e), {}, ctx)
    // Interrupted: no onTrainEnd. The state goes through history.json as JSON.
    const saved = JSON.parse(JSON.stringify(first.state())) as unknown
    t.deepEqual(saved, { samplesLogged: true })
    const before = new Map(first.files.map((f) => [f, fs.readFileSync(f)]))

    const resumed = new TensorBoard({ logDir })
    // train() calls onTrainBegin, then loadState.
    resumed.onTrainBegin(ctx)
    resumed.loadState(saved)
    for (const e of [3, 4]) await resumed.onEpochEnd(record(e), {}, ctx)
    await resumed.onTrainEnd()

    for (const [file, bytes] of before) t.deepEqual(fs.readFileSync(file), bytes, `${file} was rewritten`)
    t.is(resumed.files.filter((f) => before.has(f)).length, 0)
    // TensorBoard reads files in name order: the resumed run's must sort after the first run's.
    for (const old of before.keys())
      for (const added of resumed.files) t.true(path.basename(old) < path.basename(added), `${added} sorts before ${old}`)
    const runs = tensorboardRead(logDir)
    for (const [run, read] of Object.entries(runs)) {
      t.is(read.files.length, 2, run)
      t.deepEqual(sortScalars(read.scalars), expectedScalars([1, 2, 3, 4].map((e) => record(e)))[run], run)
    }
    t.deepEqual(
      runs.train!.images.map((i) => [i.tag, i.step]),
      [[TAGS.samples, 0]],
    )
    t.deepEqual(
      runs.test!.images.map((i) => i.step),
      [1, 2, 3, 4],
    )
  },
)

test('loadState before onTrainBegin works the same; reset() starts a fresh run in new files', async (t) => {
  const logDir = tmpdir()
  const ctx = context(await samplesPng())
  const tb = new TensorBoard({ logDir, images: true })
  tb.loadState({ samplesLogged: true })
  tb.onTrainBegin(ctx)
  await tb.onEpochEnd(record(5, { val: false }), {}, ctx)
  await tb.onTrainEnd()
  const resumedFiles = tb.files
  const tags = (file: string) => eventsOf(file).flatMap((e) => e.summary?.value.map((v) => `${e.step}:${v.tag}`) ?? [])
  t.false(tags(resumedFiles[0]!).includes(`0:${TAGS.samples}`))

  tb.reset()
  t.deepEqual(tb.state(), { samplesLogged: false })
  t.deepEqual(tb.files, [])
  tb.onTrainBegin(ctx)
  await tb.onEpochEnd(record(1, { val: false }), {}, ctx)
  await tb.onTrainEnd()
  t.is(tb.files.length, 2)
  t.is(tb.files.filter((f) => resumedFiles.includes(f)).length, 0)
  const train = tb.files.find((f) => path.basename(path.dirname(f)) === 'train')!
  const events = eventsOf(train)
  t.is(events[0]!.file_version, FILE_VERSION)
  // The samples come first in the file (step 0), then epoch 1.
  t.deepEqual(tags(train), [`0:${TAGS.samples}`, `1:${TAGS.loss}`, `1:${TAGS.top1}`, `1:${TAGS.top5}`, `1:${TAGS.learningRate}`])
  const image = events[1]!.summary!.value[0]!
  t.true('image' in image && image.image.width === 140 && image.image.height === 90 && image.image.colorspace === 3)
})

withTensorboard(
  'a flipped byte fails the CRC-32C check: TensorBoard drops that record and what follows, keeps what precedes',
  async (t) => {
    const logDir = tmpdir()
    const tb = new TensorBoard({ logDir, images: false })
    const ctx = context()
    tb.onTrainBegin(ctx)
    for (const e of [1, 2, 3]) await tb.onEpochEnd(record(e), {}, ctx)
    await tb.onTrainEnd()
    const file = tb.files.find((f) => path.basename(path.dirname(f)) === 'test')!
    const bytes = fs.readFileSync(file)
    const last = readRecords(bytes).at(-1)!
    t.is(decodeEvent(last.data).step, 3)
    // One bit inside the last record's data, in the 8 bytes of wall_time (after its 0x09 key): the event would still
    // parse, so only the data CRC can reject it.
    bytes[last.offset + 12 + 5]! ^= 0x10
    fs.writeFileSync(file, bytes)
    t.throws(() => readRecords(bytes), { message: `TFRecord at byte ${last.offset}: data CRC mismatch` })

    const runs = tensorboardRead(logDir)
    t.deepEqual([...new Set(runs.test!.scalars.map((s) => s.step))], [1, 2])
    t.deepEqual(sortScalars(runs.test!.scalars), expectedScalars([1, 2].map((e) => record(e))).test)
    // The other folders are untouched and complete.
    t.deepEqual([...new Set(runs.train!.scalars.map((s) => s.step))], [1, 2, 3])
  },
)
