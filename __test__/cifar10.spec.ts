// loadCifar10(): a small binary archive served from 127.0.0.1 with its MD5, the cached copy, torchvision's pickles, bad files.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { CIFAR10_CLASSES, cifar10Url, loadCifar10 } from '../ts/data/cifar10.ts'
import { listCache } from '../ts/data/cache-index.ts'
import { DataError } from '../ts/errors.ts'
import type { ConvkitError } from '../ts/errors.ts'
import { serve } from './helpers/serve.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const PIXELS = 3072
const BATCHES = ['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch']

const tmpdir = tempDirs('cifar')

/** Image `n`'s byte at channel `c`, position `p`: distinct per image and per plane, so order mix-ups show. */
function pixel(n: number, c: number, p: number): number {
  return (n * 31 + c * 101 + p) & 0xff
}

/** Two images per training batch (10 in all) and three test images; image `n` has label `n % 10`. */
const PER_BATCH = [2, 2, 2, 2, 2, 3]

function batchImages(batch: number): number[] {
  const first = PER_BATCH.slice(0, batch).reduce((a, b) => a + b, 0)
  return Array.from({ length: PER_BATCH[batch]! }, (_, i) => first + i)
}

/** Writes `cifar-10-batches-bin/` as the binary release lays it out, and returns its path. */
function writeBinaryRelease(root: string): string {
  const dir = path.join(root, 'cifar-10-batches-bin')
  fs.mkdirSync(dir, { recursive: true })
  BATCHES.forEach((name, b) => {
    const images = batchImages(b)
    const bytes = Buffer.alloc(images.length * (1 + PIXELS))
    images.forEach((n, i) => {
      const at = i * (1 + PIXELS)
      bytes[at] = n % 10
      for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) bytes[at + 1 + c * 1024 + p] = pixel(n, c, p)
    })
    fs.writeFileSync(path.join(dir, `${name}.bin`), bytes)
  })
  // The real file ends with a blank line.
  fs.writeFileSync(path.join(dir, 'batches.meta.txt'), `${CIFAR10_CLASSES.join('\n')}\n\n`)
  return dir
}

function makeArchive(): { archive: Buffer; md5: string } {
  const root = tmpdir()
  writeBinaryRelease(root)
  const file = path.join(root, 'cifar-10-binary.tar.gz')
  execFileSync('tar', ['-czf', file, '-C', root, 'cifar-10-batches-bin'])
  const archive = fs.readFileSync(file)
  return { archive, md5: createHash('md5').update(archive).digest('hex') }
}

function checkSets(t: import('ava').ExecutionContext, sets: Awaited<ReturnType<typeof loadCifar10>>) {
  t.deepEqual(sets.train.shape, [3, 32, 32])
  t.is(sets.train.labels.length, 10)
  t.is(sets.test.labels.length, 3)
  t.deepEqual(sets.train.classes, CIFAR10_CLASSES)
  t.deepEqual([...sets.train.labels], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  t.deepEqual([...sets.test.labels], [0, 1, 2])
  // Records are already channel-first: image 7's green plane starts 1024 bytes into its pixels.
  t.is(sets.train.pixels[7 * PIXELS + 1024 + 5], pixel(7, 1, 5))
  t.is(sets.test.pixels[2 * PIXELS + 2048 + 1023], pixel(12, 2, 1023))
  t.is(sets.train.pixels.length, 10 * PIXELS)
}

test('downloads the archive from 127.0.0.1, checks its MD5, extracts it once and then reuses it', async (t) => {
  const { archive, md5 } = makeArchive()
  const server = await serve({ 'cifar-10-binary.tar.gz': archive })
  t.teardown(() => server.close())
  const cacheDir = tmpdir()
  checkSets(t, await loadCifar10({ cacheDir, baseUrl: server.url, md5, quiet: true }))
  t.deepEqual(fs.readdirSync(cacheDir).sort(), ['cache-index.json', 'cifar-10-batches-bin', 'cifar-10-binary.tar.gz'])
  checkSets(t, await loadCifar10({ cacheDir, baseUrl: server.url, md5, quiet: true }))
  t.is(server.requests.length, 1, 'the second load reads the extracted copy')
  // Both are the cache's own, so they count against its size limit.
  const { entries } = await listCache({ cacheDir })
  t.deepEqual(entries.map((e) => [e.path, e.kind]).sort(), [
    ['cifar-10-batches-bin', 'extracted'],
    ['cifar-10-binary.tar.gz', 'download'],
  ])
})

test('a copy already in the standard layout is read without any download', async (t) => {
  const cacheDir = tmpdir()
  writeBinaryRelease(cacheDir)
  // Port 9 (discard) on 127.0.0.1: any download attempt would fail loudly.
  checkSets(t, await loadCifar10({ cacheDir, baseUrl: 'http://127.0.0.1:9/', quiet: true }))
})

test('the published MD5 is checked by default: other bytes are deleted and CHECKSUM_MISMATCH is thrown', async (t) => {
  const { archive } = makeArchive()
  const server = await serve({ 'cifar-10-binary.tar.gz': archive })
  t.teardown(() => server.close())
  const cacheDir = tmpdir()
  const err = (await t.throwsAsync(loadCifar10({ cacheDir, baseUrl: server.url, quiet: true }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'CHECKSUM_MISMATCH')
  t.regex(err.message, /expected c32a1d4ab5d03f1284b67883e8d87530/)
  t.deepEqual(fs.readdirSync(cacheDir), [])
})

test('an archive URL can come from CONVKIT_CIFAR10_URL, as a base or as the full URL', (t) => {
  const saved = process.env.CONVKIT_CIFAR10_URL
  t.teardown(() => {
    if (saved === undefined) delete process.env.CONVKIT_CIFAR10_URL
    else process.env.CONVKIT_CIFAR10_URL = saved
  })
  delete process.env.CONVKIT_CIFAR10_URL
  t.is(cifar10Url(), 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz')
  process.env.CONVKIT_CIFAR10_URL = 'http://127.0.0.1:8000/mirror'
  t.is(cifar10Url(), 'http://127.0.0.1:8000/mirror/cifar-10-binary.tar.gz')
  t.is(cifar10Url('http://127.0.0.1:1/x/'), 'http://127.0.0.1:1/x/cifar-10-binary.tar.gz', 'the option wins over the variable')
  process.env.CONVKIT_CIFAR10_URL = 'http://127.0.0.1:8000/c10.tgz'
  t.is(cifar10Url(), 'http://127.0.0.1:8000/c10.tgz')
})

test('a truncated batch is DATA_CORRUPT naming the file and the record size', async (t) => {
  const cacheDir = tmpdir()
  const dir = writeBinaryRelease(cacheDir)
  const file = path.join(dir, 'data_batch_3.bin')
  fs.truncateSync(file, 2 * 3073 - 100)
  const err = (await t.throwsAsync(loadCifar10({ cacheDir, quiet: true }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_CORRUPT')
  t.true(err.message.includes(file))
  t.regex(err.message, /6046 bytes, not a whole number of 3073-byte records/)
  t.deepEqual((err as DataError).files, [file])
})

test('an empty or missing batch, and a label beyond the class list, are named errors', async (t) => {
  const cacheDir = tmpdir()
  const dir = writeBinaryRelease(cacheDir)
  fs.writeFileSync(path.join(dir, 'test_batch.bin'), '')
  t.is(((await t.throwsAsync(loadCifar10({ cacheDir }))) as ConvkitError).code, 'DATA_CORRUPT')
  fs.rmSync(path.join(dir, 'test_batch.bin'))
  const missing = (await t.throwsAsync(loadCifar10({ cacheDir }), { instanceOf: DataError })) as ConvkitError
  t.is(missing.code, 'DATA_NOT_FOUND')
  t.regex(missing.message, /test_batch\.bin is missing/)

  const bad = writeBinaryRelease(tmpdir())
  const batch = fs.readFileSync(path.join(bad, 'data_batch_2.bin'))
  batch[3073] = 42
  fs.writeFileSync(path.join(bad, 'data_batch_2.bin'), batch)
  const label = (await t.throwsAsync(loadCifar10({ cacheDir: path.dirname(bad) }))) as ConvkitError
  t.is(label.code, 'DATA_CORRUPT')
  t.regex(label.message, /data_batch_2\.bin: record 1 has label 42; expected 0\.\.9/)
})

/** Python 2 cPickle, protocol 2, as torchvision's `cifar-10-python.tar.gz` was written: `str` is SHORT_BINSTRING/BINSTRING. */
class Py2Pickle {
  private parts: Buffer[] = [Buffer.from([0x80, 2])]
  private op(...bytes: number[]) {
    this.parts.push(Buffer.from(bytes))
    return this
  }
  str(s: string | Uint8Array) {
    const b = Buffer.from(s)
    if (b.length < 256) return this.op(0x55, b.length).raw(b)
    const len = Buffer.alloc(4)
    len.writeInt32LE(b.length)
    return this.op(0x54).raw(len).raw(b)
  }
  int(n: number) {
    return n < 256 ? this.op(0x4b, n) : this.op(0x4d, n & 0xff, n >> 8)
  }
  raw(b: Uint8Array) {
    this.parts.push(Buffer.from(b))
    return this
  }
  global(module: string, name: string) {
    return this.op(0x63).raw(Buffer.from(`${module}\n${name}\n`))
  }
  /** numpy's `ndarray.__reduce__`: `_reconstruct(ndarray, (0,), 'b')`, then BUILD with (1, shape, dtype, False, bytes). */
  ndarray(rows: number, cols: number, data: Uint8Array) {
    this.global('numpy.core.multiarray', '_reconstruct').global('numpy', 'ndarray').int(0).op(0x85).str('b').op(0x87, 0x52)
    this.op(0x28).int(1).int(rows).int(cols).op(0x86)
    this.global('numpy', 'dtype').str('u1').int(0).int(1).op(0x87, 0x52)
    this.op(0x28).int(3).str('|').op(0x4e, 0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff).int(0).op(0x74, 0x62)
    return this.op(0x89).str(data).op(0x74, 0x62)
  }
  dict(entries: [string, (p: Py2Pickle) => void][]) {
    this.op(0x7d, 0x28)
    for (const [key, value] of entries) {
      this.str(key)
      value(this)
    }
    return this.op(0x75)
  }
  list(items: (p: Py2Pickle) => void) {
    this.op(0x5d, 0x28)
    items(this)
    return this.op(0x65)
  }
  bytes(): Buffer {
    return Buffer.concat([...this.parts, Buffer.from('.')])
  }
}

/** Writes `cifar-10-batches-py/` with the same images as `writeBinaryRelease`. */
function writePythonRelease(root: string): string {
  const dir = path.join(root, 'cifar-10-batches-py')
  fs.mkdirSync(dir, { recursive: true })
  BATCHES.forEach((name, b) => {
    const images = batchImages(b)
    const data = new Uint8Array(images.length * PIXELS)
    images.forEach((n, i) => {
      for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) data[i * PIXELS + c * 1024 + p] = pixel(n, c, p)
    })
    const pickle = new Py2Pickle().dict([
      ['batch_label', (p) => p.str(`batch ${b}`)],
      ['labels', (p) => p.list((l) => images.forEach((n) => l.int(n % 10)))],
      ['data', (p) => p.ndarray(images.length, PIXELS, data)],
      ['filenames', (p) => p.list((l) => images.forEach((n) => l.str(`img_${n}.png`)))],
    ])
    fs.writeFileSync(path.join(dir, name), pickle.bytes())
  })
  const meta = new Py2Pickle().dict([
    ['num_cases_per_batch', (p) => p.int(10000)],
    ['label_names', (p) => p.list((l) => CIFAR10_CLASSES.forEach((c) => l.str(c)))],
    ['num_vis', (p) => p.int(3072)],
  ])
  fs.writeFileSync(path.join(dir, 'batches.meta'), meta.bytes())
  return dir
}

test("torchvision's cifar-10-batches-py is read from its pickles, matching the binary release", async (t) => {
  const cacheDir = tmpdir()
  writePythonRelease(cacheDir)
  checkSets(t, await loadCifar10({ cacheDir, baseUrl: 'http://127.0.0.1:9/' }))
})

test('a pickle that names any other global is refused without running it', async (t) => {
  const cacheDir = tmpdir()
  const dir = writePythonRelease(cacheDir)
  // The classic exploit: os.system('touch …') via GLOBAL + REDUCE.
  const marker = path.join(cacheDir, 'pwned')
  const evil = new Py2Pickle()
    .global('os', 'system')
    .str(`touch ${marker}`)
    .raw(Buffer.from([0x85, 0x52]))
    .bytes()
  fs.writeFileSync(path.join(dir, 'data_batch_1'), evil)
  const err = (await t.throwsAsync(loadCifar10({ cacheDir }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_CORRUPT')
  t.regex(err.message, /data_batch_1: .*names os\.system/)
  t.false(fs.existsSync(marker))
})

test('a truncated pickle is DATA_CORRUPT naming the file', async (t) => {
  const cacheDir = tmpdir()
  const dir = writePythonRelease(cacheDir)
  const file = path.join(dir, 'data_batch_4')
  fs.truncateSync(file, fs.statSync(file).size - 2000)
  const err = (await t.throwsAsync(loadCifar10({ cacheDir }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_CORRUPT')
  t.true(err.message.includes(file))
  t.regex(err.message, /ends early/)
})
