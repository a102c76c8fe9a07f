// idx files: plain and gzipped, header checks (magic, sizes, counts), class names, and the real Fashion-MNIST when installed.
import test from 'ava'
import { needs } from './helpers/needs.ts'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { FASHION_MNIST_CLASSES, loadIdxDir, readIdxPair } from '../ts/data/idx.ts'
import { DataError } from '../ts/errors.ts'
import type { ConvkitError } from '../ts/errors.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const FASHION = '/usr/share/datasets/fashion-mnist'

const tmpdir = tempDirs('idx')

/** An idx3 images file: magic 0x00000803, count, rows, cols (big-endian), then the pixels. */
function imagesFile(count: number, rows: number, cols: number, pixel = (n: number, i: number) => (n * 17 + i) & 0xff): Buffer {
  const b = Buffer.alloc(16 + count * rows * cols)
  b.writeUInt32BE(0x803, 0)
  b.writeUInt32BE(count, 4)
  b.writeUInt32BE(rows, 8)
  b.writeUInt32BE(cols, 12)
  for (let n = 0; n < count; n++) for (let i = 0; i < rows * cols; i++) b[16 + n * rows * cols + i] = pixel(n, i)
  return b
}

function labelsFile(labels: number[]): Buffer {
  const b = Buffer.alloc(8 + labels.length)
  b.writeUInt32BE(0x801, 0)
  b.writeUInt32BE(labels.length, 4)
  labels.forEach((l, i) => (b[8 + i] = l))
  return b
}

/** The four MNIST-style files in `dir`, gzipped or not. */
function writeIdxDir(dir: string, gz: boolean): void {
  const write = (name: string, data: Buffer) => fs.writeFileSync(path.join(dir, gz ? `${name}.gz` : name), gz ? zlib.gzipSync(data) : data)
  write('train-images-idx3-ubyte', imagesFile(5, 4, 3))
  write('train-labels-idx1-ubyte', labelsFile([9, 0, 1, 2, 3]))
  write('t10k-images-idx3-ubyte', imagesFile(2, 4, 3))
  write('t10k-labels-idx1-ubyte', labelsFile([4, 5]))
}

test('a plain images/labels pair reads as [1, rows, cols] with its labels', async (t) => {
  const dir = tmpdir()
  fs.writeFileSync(path.join(dir, 'imgs'), imagesFile(3, 4, 5))
  fs.writeFileSync(path.join(dir, 'lbls'), labelsFile([7, 0, 3]))
  const set = await readIdxPair(path.join(dir, 'imgs'), path.join(dir, 'lbls'))
  t.deepEqual(set.shape, [1, 4, 5])
  t.deepEqual([...set.labels], [7, 0, 3])
  t.is(set.pixels.length, 3 * 20)
  t.is(set.pixels[2 * 20 + 13], (2 * 17 + 13) & 0xff)
  t.deepEqual(set.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
})

test('loadIdxDir reads gzipped files and both splits; "fashion" in the path gives Fashion-MNIST names', async (t) => {
  const digits = tmpdir()
  writeIdxDir(digits, true)
  const { train, test: held } = await loadIdxDir(digits)
  t.is(train.labels.length, 5)
  t.is(held.labels.length, 2)
  t.deepEqual([...held.labels], [4, 5])
  t.is(train.classes[9], '9')

  const fashion = tmpdir('fashion-mnist')
  writeIdxDir(fashion, false)
  const named = await loadIdxDir(fashion)
  t.deepEqual(named.train.classes, FASHION_MNIST_CLASSES)
  t.deepEqual(named.test.classes, FASHION_MNIST_CLASSES)
})

test('a truncated images file is DATA_CORRUPT naming the file, the bytes expected and the bytes found', async (t) => {
  const dir = tmpdir()
  const images = path.join(dir, 'train-images-idx3-ubyte')
  fs.writeFileSync(images, imagesFile(5, 4, 3).subarray(0, 16 + 5 * 12 - 7))
  fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), labelsFile([0, 1, 2, 3, 4]))
  const err = (await t.throwsAsync(readIdxPair(images, path.join(dir, 'train-labels-idx1-ubyte')), {
    instanceOf: DataError,
  })) as ConvkitError
  t.is(err.code, 'DATA_CORRUPT')
  t.is(err.message, `idx file ${images} is 69 bytes; its header (5 images of 4×3) needs 76, so it is truncated`)
})

test('truncated labels, a cut-off .gz, a wrong magic number and mismatched counts are all DATA_CORRUPT', async (t) => {
  const dir = tmpdir()
  const images = path.join(dir, 'i')
  const labels = path.join(dir, 'l')
  fs.writeFileSync(images, imagesFile(5, 4, 3))

  fs.writeFileSync(labels, labelsFile([0, 1, 2, 3, 4]).subarray(0, 10))
  const short = (await t.throwsAsync(readIdxPair(images, labels))) as ConvkitError
  t.is(short.code, 'DATA_CORRUPT')
  t.regex(short.message, /idx file .*\/l is 10 bytes; its header \(5 labels\) needs 13, so it is truncated/)

  const gz = path.join(dir, 'i.gz')
  const zipped = zlib.gzipSync(imagesFile(5, 4, 3))
  fs.writeFileSync(gz, zipped.subarray(0, zipped.length - 12))
  fs.writeFileSync(labels, labelsFile([0, 1, 2, 3, 4]))
  const cut = (await t.throwsAsync(readIdxPair(gz, labels))) as ConvkitError
  t.is(cut.code, 'DATA_CORRUPT')
  t.regex(cut.message, /i\.gz is not a readable gzip file/)

  // Labels where images belong: the magic number tells them apart.
  const swapped = (await t.throwsAsync(readIdxPair(labels, images))) as ConvkitError
  t.is(swapped.code, 'DATA_CORRUPT')
  t.regex(swapped.message, /magic number 0x00000801; expected 0x00000803/)

  fs.writeFileSync(labels, labelsFile([0, 1, 2]))
  const counts = (await t.throwsAsync(readIdxPair(images, labels))) as ConvkitError
  t.is(counts.code, 'DATA_CORRUPT')
  t.regex(counts.message, /holds 5 images but .* holds 3 labels/)

  fs.writeFileSync(labels, '')
  t.regex(((await t.throwsAsync(readIdxPair(images, labels))) as ConvkitError).message, /is 0 bytes, too short for a header/)
})

test('a folder missing one of the four files is DATA_NOT_FOUND naming it', async (t) => {
  const dir = tmpdir()
  writeIdxDir(dir, true)
  fs.rmSync(path.join(dir, 't10k-labels-idx1-ubyte.gz'))
  const err = (await t.throwsAsync(loadIdxDir(dir), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_NOT_FOUND')
  t.regex(err.message, /has no t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte\.gz\)/)
})

needs(fs.existsSync(FASHION) ? null : `${FASHION} (apt-get install -y dataset-fashion-mnist)`)(
  "Fashion-MNIST from Debian's dataset-fashion-mnist package",
  async (t) => {
    const { train, test: held } = await loadIdxDir(FASHION)
    t.deepEqual(train.shape, [1, 28, 28])
    t.is(train.labels.length, 60_000)
    t.is(held.labels.length, 10_000)
    t.is(train.pixels.length, 60_000 * 784)
    t.deepEqual(train.classes, FASHION_MNIST_CLASSES)
    // Fashion-MNIST is balanced: 6 000 training and 1 000 test images per class.
    const counts = (labels: Int32Array) => labels.reduce((acc, l) => (acc[l]!++, acc), Array(10).fill(0) as number[])
    t.deepEqual(counts(train.labels), Array(10).fill(6000))
    t.deepEqual(counts(held.labels), Array(10).fill(1000))
    // Clothes on a black background: most border pixels are 0, the centre is not.
    const mean = train.pixels.reduce((a, b) => a + b, 0) / train.pixels.length
    t.true(mean > 60 && mean < 80, `mean pixel ${mean}`)
  },
)
