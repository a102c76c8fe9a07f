// loadData(): every kind of source, the decoded-image cache, and named errors for missing or unusable input.
import test from 'ava'
import { needs } from './helpers/needs.ts'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import sharp from 'sharp'
import { decodeImage } from '../ts/data/decode-image.ts'
import { listCache } from '../ts/data/cache-index.ts'
import { readImageFolderCached } from '../ts/data/decoded-cache.ts'
import { readImageFolder } from '../ts/data/image-folder.ts'
import { loadData } from '../ts/data/load-data.ts'
import { DataError, InputError } from '../ts/errors.ts'
import type { ConvkitError } from '../ts/errors.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const FASHION = '/usr/share/datasets/fashion-mnist'

const tmpdir = tempDirs('load')

/** A solid image of one colour; uncompressed TIFF, so its byte size depends only on its dimensions. */
async function solid(file: string, rgb: [number, number, number], size = 12): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const raw = Buffer.alloc(size * size * 3)
  for (let i = 0; i < raw.length; i++) raw[i] = rgb[i % 3]!
  await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
    .tiff({ compression: 'none' })
    .toFile(file)
}

/** A few of the shared CIFAR-10 JPEGs per class, as `<work>/cifar10-jpg/{train,test}/<class>/`; returns `<work>`. */
function cifarJpegFolder(trainPerClass: number, testPerClass: number): string {
  const subset = cifarSubset()
  const work = tmpdir()
  for (const [split, from, count] of [
    ['train', subset.train, trainPerClass],
    ['test', subset.test, testPerClass],
  ] as const) {
    for (const cls of fs.readdirSync(from)) {
      const dest = path.join(work, 'cifar10-jpg', split, cls)
      fs.mkdirSync(dest, { recursive: true })
      for (const file of fs.readdirSync(path.join(from, cls)).sort().slice(0, count))
        fs.copyFileSync(path.join(from, cls, file), path.join(dest, file))
    }
  }
  return work
}

/** A tar.gz of the shared CIFAR-10 JPEGs: `cifar10-jpg/{train,test}/<class>/`, 10 training and 5 test images per class. */
function cifarJpegArchive(): string {
  const work = cifarJpegFolder(10, 5)
  const archive = path.join(work, 'cifar10-jpg.tar.gz')
  execFileSync('tar', ['-czf', archive, '-C', work, 'cifar10-jpg'])
  return archive
}

test('a missing path is DATA_NOT_FOUND naming it; a non-archive file and bad options are INVALID_OPTION', async (t) => {
  const missing = path.join(tmpdir(), 'no-such-data')
  const err = (await t.throwsAsync(loadData(missing), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_NOT_FOUND')
  t.true(err.message.includes(missing))

  const file = path.join(tmpdir(), 'data.zip')
  fs.writeFileSync(file, 'x')
  const notArchive = (await t.throwsAsync(loadData(file), { instanceOf: InputError })) as ConvkitError
  t.is(notArchive.code, 'INVALID_OPTION')
  t.regex(notArchive.message, /data\.zip is a file but not a \.tar\.gz/)

  const size = (await t.throwsAsync(loadData(missing, { size: [32, 0] }), { instanceOf: InputError })) as ConvkitError
  t.regex(size.message, /option size: expected \[height, width\] of positive integers, got \[32,0\]/)
  const channels = (await t.throwsAsync(loadData(missing, { channels: 4 as 3 }), { instanceOf: InputError })) as ConvkitError
  t.regex(channels.message, /option channels: expected 1 or 3, got 4/)
})

test('a .tar.gz of real CIFAR-10 JPEGs: train/ and test/ decoded from the stream, nothing extracted, then served from the decoded cache', async (t) => {
  const archive = cifarJpegArchive()
  const cacheDir = tmpdir()
  const first = await loadData(archive, { cacheDir })
  t.is(first.source, archive)
  t.is(first.format, 'image-folder')
  t.deepEqual(first.train.classes, ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'])
  t.deepEqual(first.train.shape, [3, 32, 32])
  t.is(first.train.labels.length, 100)
  t.is(first.test?.labels.length, 50)
  t.deepEqual(first.skipped, [])
  // Images are named by the archive and their path inside it.
  const files = first.train.files!
  t.is(files[0], `${archive}/cifar10-jpg/train/airplane/0000.jpg`)
  const source = path.join(path.dirname(archive), 'cifar10-jpg', 'train', 'airplane', '0000.jpg')
  t.deepEqual(first.train.pixels.subarray(0, 3072), await decodeImage(source, { size: [32, 32], channels: 3 }))
  t.false(fs.existsSync(path.join(cacheDir, 'extracted')))
  t.is(fs.readdirSync(path.join(cacheDir, 'decoded')).length, 2)

  const second = await loadData(archive, { cacheDir })
  t.deepEqual(second.train.pixels, first.train.pixels)
  t.deepEqual(second.train.labels, first.train.labels)
  t.deepEqual(second.test?.pixels, first.test?.pixels)
  t.deepEqual(second.train.files, files)
})

test('the decoded cache is used while files are unchanged, sees a rewrite that keeps size and mtime, and is keyed by size and channels', async (t) => {
  const root = tmpdir()
  const red = path.join(root, 'red', 'a.tiff')
  await solid(red, [250, 0, 0])
  await solid(path.join(root, 'blue', 'b.tiff'), [0, 0, 250])
  // A whole-second mtime, so that restoring it below is exact.
  const mtime = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000)
  fs.utimesSync(red, mtime, mtime)
  const cacheDir = tmpdir()
  const first = await loadData(root, { cacheDir, size: [4, 4] })
  t.is(first.test, undefined, 'a single image folder leaves the split to the caller')
  const at = first.train.files!.indexOf(red) * 48
  t.is(first.train.pixels[at], 250)

  // Served from the decoded file: a byte changed in it (its length kept) comes back.
  const [decoded] = fs.readdirSync(path.join(cacheDir, 'decoded'))
  const file = path.join(cacheDir, 'decoded', decoded!)
  const bytes = fs.readFileSync(file)
  bytes[bytes.length - first.train.pixels.length + at] = 123
  fs.writeFileSync(file, bytes)
  t.is((await loadData(root, { cacheDir, size: [4, 4] })).train.pixels[at], 123)

  // Same size and mtime, different pixels: the rewrite still changed the file's ctime, so it is hashed again: green.
  const { size } = fs.statSync(red)
  await solid(red, [0, 250, 0])
  fs.utimesSync(red, mtime, mtime)
  t.is(fs.statSync(red).size, size)
  const fresh = await loadData(root, { cacheDir, size: [4, 4] })
  t.deepEqual([fresh.train.pixels[at], fresh.train.pixels[at + 16]], [0, 250])

  // Another size or channel count is another cache entry, decoded afresh.
  const gray = await loadData(root, { cacheDir, size: [4, 4], channels: 1 })
  t.deepEqual(gray.train.shape, [1, 4, 4])
  t.is((await loadData(root, { cacheDir, size: [2, 2] })).train.pixels[fresh.train.files!.indexOf(red) * 12 + 4], 250)
  t.is(fs.readdirSync(path.join(cacheDir, 'decoded')).length, 4)
})

test('decoding in child processes gives exactly what readImageFolder gives, bad images included', async (t) => {
  const root = path.join(cifarJpegFolder(20, 0), 'cifar10-jpg', 'train')
  const parallel = await readImageFolderCached(root, { cacheDir: tmpdir(), processes: 2, quiet: true })
  const plain = await readImageFolder(root)
  t.is(parallel.labels.length, 200)
  t.deepEqual(parallel.pixels, plain.pixels)
  t.deepEqual(parallel.labels, plain.labels)
  t.deepEqual(parallel.files, plain.files)
  t.deepEqual(parallel.classes, plain.classes)

  const small = tmpdir()
  await solid(path.join(small, 'a', '1.tiff'), [1, 2, 3])
  await solid(path.join(small, 'b', '2.tiff'), [1, 2, 3])
  fs.writeFileSync(path.join(small, 'b', 'bad.jpg'), 'not a jpeg')
  const err = (await t.throwsAsync(readImageFolderCached(small, { cacheDir: tmpdir(), processes: 2 }), {
    instanceOf: DataError,
  })) as ConvkitError
  t.is(err.code, 'DATA_BAD_IMAGE')
  t.deepEqual((err as DataError).files, [path.join(small, 'b', 'bad.jpg')])
})

test('bad images fail by name, are skipped with skipBadImages, and the cache does not hide them', async (t) => {
  const root = tmpdir()
  await solid(path.join(root, 'train', 'a', 'ok.tiff'), [10, 20, 30])
  await solid(path.join(root, 'train', 'b', 'ok.tiff'), [10, 20, 30])
  fs.writeFileSync(path.join(root, 'train', 'b', 'empty.jpg'), '')
  fs.writeFileSync(path.join(root, 'train', 'a', 'broken.png'), 'not a png')
  const cacheDir = tmpdir()
  const failed = (await t.throwsAsync(loadData(root, { cacheDir }), { instanceOf: DataError })) as ConvkitError
  t.is(failed.code, 'DATA_BAD_IMAGE')
  t.regex(failed.message, /broken\.png.*empty\.jpg/)

  for (let run = 0; run < 2; run++) {
    const loaded = await loadData(root, { cacheDir, skipBadImages: true })
    t.is(loaded.test, undefined)
    t.is(loaded.train.labels.length, 2)
    t.deepEqual(
      loaded.skipped.map((f) => path.relative(root, f)),
      ['train/a/broken.png', 'train/b/empty.jpg'],
    )
  }
  t.is(((await t.throwsAsync(loadData(root, { cacheDir }))) as ConvkitError).code, 'DATA_BAD_IMAGE')
})

test('test classes are matched to training classes by name; a class only in test/ is an error', async (t) => {
  const root = tmpdir()
  for (const cls of ['ant', 'bee', 'cat']) await solid(path.join(root, 'train', cls, '1.tiff'), [1, 2, 3])
  await solid(path.join(root, 'test', 'cat', '1.tiff'), [1, 2, 3])
  const loaded = await loadData(root, { cacheDir: tmpdir(), size: [4, 4] })
  t.deepEqual(loaded.test?.classes, ['ant', 'bee', 'cat'])
  t.deepEqual([...loaded.test!.labels], [2])

  await solid(path.join(root, 'test', 'dog', '1.tiff'), [1, 2, 3])
  const err = (await t.throwsAsync(loadData(root, { cacheDir: tmpdir(), size: [4, 4] }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_CORRUPT')
  t.regex(err.message, /class folder\(s\) dog that .*train lacks/)
})

test('an empty folder and an empty class folder are DATA_EMPTY', async (t) => {
  const root = tmpdir()
  t.is(((await t.throwsAsync(loadData(root, { cacheDir: tmpdir() }))) as ConvkitError).code, 'DATA_EMPTY')
  fs.mkdirSync(path.join(root, 'a'))
  await solid(path.join(root, 'b', '1.tiff'), [1, 2, 3])
  const err = (await t.throwsAsync(loadData(root, { cacheDir: tmpdir() }))) as ConvkitError
  t.is(err.code, 'DATA_EMPTY')
  t.true(err.message.includes(path.join(root, 'a')))
})

test('a .tgz of idx files (one top folder) and a folder holding cifar-10-batches-bin are recognised', async (t) => {
  const work = tmpdir()
  const mnist = path.join(work, 'mnist')
  fs.mkdirSync(mnist)
  const idx = (magic: number, dims: number[], data: number[]) => {
    const header = Buffer.alloc(4 + 4 * dims.length)
    header.writeUInt32BE(magic, 0)
    dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i))
    return zlib.gzipSync(Buffer.concat([header, Buffer.from(data)]))
  }
  fs.writeFileSync(path.join(mnist, 'train-images-idx3-ubyte.gz'), idx(0x803, [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]))
  fs.writeFileSync(path.join(mnist, 'train-labels-idx1-ubyte.gz'), idx(0x801, [2], [3, 4]))
  fs.writeFileSync(path.join(mnist, 't10k-images-idx3-ubyte.gz'), idx(0x803, [1, 2, 2], [9, 9, 9, 9]))
  fs.writeFileSync(path.join(mnist, 't10k-labels-idx1-ubyte.gz'), idx(0x801, [1], [5]))
  const archive = path.join(work, 'mnist.tgz')
  execFileSync('tar', ['-czf', archive, '-C', work, 'mnist'])
  const cacheDir = tmpdir()
  const fromArchive = await loadData(archive, { cacheDir })
  t.is(fromArchive.format, 'idx')
  // idx files are extracted; the extraction is a cache entry, no longer marked in use once read.
  const [extracted, ...others] = (await listCache({ cacheDir })).entries
  t.deepEqual([extracted?.kind, extracted?.source, extracted?.users, others], ['extracted', archive, undefined, []])
  t.deepEqual(fromArchive.train.shape, [1, 2, 2])
  t.deepEqual([...fromArchive.train.labels], [3, 4])
  t.deepEqual([...fromArchive.test!.pixels], [9, 9, 9, 9])

  const cifarRoot = path.join(work, 'cifar')
  const bin = path.join(cifarRoot, 'cifar-10-batches-bin')
  fs.mkdirSync(bin, { recursive: true })
  for (const name of ['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch']) {
    const record = Buffer.alloc(3073, 77)
    record[0] = 6
    fs.writeFileSync(path.join(bin, `${name}.bin`), record)
  }
  for (const source of [cifarRoot, bin]) {
    const cifar = await loadData(source, { cacheDir: tmpdir() })
    t.is(cifar.format, 'cifar10-binary')
    t.is(cifar.train.labels.length, 5)
    t.is(cifar.train.classes[6], 'frog')
    t.deepEqual(cifar.test?.shape, [3, 32, 32])
  }
  // 'cifar10' reads a copy already in the cache; port 9 on 127.0.0.1 would refuse any download.
  const named = await loadData('cifar10', { cacheDir: cifarRoot, baseUrl: 'http://127.0.0.1:9/' })
  t.is(named.source, 'cifar10')
  t.is(named.format, 'cifar10-binary')
  t.is(named.test?.labels[0], 6)
})

needs(fs.existsSync(FASHION) ? null : `${FASHION} (apt-get install -y dataset-fashion-mnist)`)(
  'Fashion-MNIST through loadData',
  async (t) => {
    const loaded = await loadData(FASHION, { cacheDir: tmpdir() })
    t.is(loaded.format, 'idx')
    t.deepEqual(loaded.train.shape, [1, 28, 28])
    t.is(loaded.train.classes[9], 'Ankle boot')
    t.is(loaded.test?.labels.length, 10_000)
  },
)
