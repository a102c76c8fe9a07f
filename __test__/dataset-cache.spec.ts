// The dataset cache: decoded data keyed by content (copies and archives share it), archives read without extracting,
// a size cap with least-recently-used eviction, `convkit cache ls|prune`, and an index that survives damage.
import test from 'ava'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import sharp from 'sharp'
import { native } from '../ts/binding.ts'
import { readImageArchiveCached } from '../ts/data/archive-images.ts'
import { cacheMaxBytes, listCache, parseSize, pruneCache, withPinned, INDEX_FILE } from '../ts/data/cache-index.ts'
import { readImageFolder } from '../ts/data/image-folder.ts'
import { loadData } from '../ts/data/load-data.ts'
import { DataError, InputError } from '../ts/errors.ts'
import type { ConvkitError } from '../ts/errors.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const tmpdir = tempDirs('dataset-cache')

/** `<work>/cifar10-jpg/{train,test}/<class>/`: a few of the shared CIFAR-10 JPEGs per class; returns the cifar10-jpg folder. */
function cifarFolder(trainPerClass = 4, testPerClass = 2): string {
  const subset = cifarSubset()
  const root = path.join(tmpdir(), 'cifar10-jpg')
  for (const [split, from, count] of [
    ['train', subset.train, trainPerClass],
    ['test', subset.test, testPerClass],
  ] as const) {
    for (const cls of fs.readdirSync(from)) {
      const dest = path.join(root, split, cls)
      fs.mkdirSync(dest, { recursive: true })
      for (const file of fs.readdirSync(path.join(from, cls)).sort().slice(0, count))
        fs.copyFileSync(path.join(from, cls, file), path.join(dest, file))
    }
  }
  return root
}

function tarGz(folder: string, name = 'data.tar.gz'): string {
  const archive = path.join(tmpdir(), name)
  execFileSync('tar', ['-czf', archive, '-C', path.dirname(folder), path.basename(folder)])
  return archive
}

/** A 6×6 image of one colour in `format`, at `file`. */
async function solid(file: string, rgb: [number, number, number], format: 'png' | 'jpeg' = 'png'): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const raw = Buffer.alloc(6 * 6 * 3)
  for (let i = 0; i < raw.length; i++) raw[i] = rgb[i % 3]!
  await sharp(raw, { raw: { width: 6, height: 6, channels: 3 } })
    [format]()
    .toFile(file)
}

/** A folder `<class>/<image>` of two tiny PNGs whose colours depend on `seed`, so each seed is other content. */
async function tinyFolder(seed: number): Promise<string> {
  const root = tmpdir()
  await solid(path.join(root, 'a', '1.png'), [seed, 0, 0])
  await solid(path.join(root, 'b', '1.png'), [0, seed, 0])
  return root
}

const decodedFiles = (cacheDir: string) => fs.readdirSync(path.join(cacheDir, 'decoded')).filter((n) => n.endsWith('.bin'))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test('the same images at two paths share one decoded file; a changed image changes the key', async (t) => {
  const a = cifarFolder()
  const b = path.join(tmpdir(), 'elsewhere')
  fs.cpSync(a, b, { recursive: true })
  const cacheDir = tmpdir()
  const fromA = await loadData(a, { cacheDir, quiet: true })
  t.is(decodedFiles(cacheDir).length, 2)
  const fromB = await loadData(b, { cacheDir, quiet: true })
  t.is(decodedFiles(cacheDir).length, 2, 'the copy is served from the same two decoded files')
  t.deepEqual(fromB.train.pixels, fromA.train.pixels)
  t.deepEqual(fromB.test?.labels, fromA.test?.labels)
  // Files are named where they were read this time.
  t.is(fromB.train.files![0], path.join(b, 'train', 'airplane', '0000.jpg'))

  // One image of the copy changed: its train set is other content, decoded on its own; the test set is still shared.
  const changed = path.join(b, 'train', 'bird', fs.readdirSync(path.join(b, 'train', 'bird')).sort()[0]!)
  fs.copyFileSync(path.join(b, 'train', 'cat', fs.readdirSync(path.join(b, 'train', 'cat')).sort()[0]!), changed)
  const after = await loadData(b, { cacheDir, quiet: true })
  t.is(decodedFiles(cacheDir).length, 3)
  const i = after.train.files!.indexOf(changed)
  t.notDeepEqual(after.train.pixels.subarray(i * 3072, (i + 1) * 3072), fromA.train.pixels.subarray(i * 3072, (i + 1) * 3072))
  t.deepEqual((await loadData(a, { cacheDir, quiet: true })).train.pixels, fromA.train.pixels)
  t.is(decodedFiles(cacheDir).length, 3)
})

test('an archive is read without extracting its images; two copies and the extracted folder share its decoded files', async (t) => {
  const folder = cifarFolder()
  // A PNG and a JPEG of another size go through sharp from memory, not the native JPEG path.
  await solid(path.join(folder, 'train', 'cat', 'extra.png'), [200, 100, 50])
  await solid(path.join(folder, 'train', 'dog', 'big.jpg'), [20, 200, 90], 'jpeg')
  const archive = tarGz(folder)
  const cacheDir = tmpdir()
  const first = await loadData(archive, { cacheDir, quiet: true })
  t.false(fs.existsSync(path.join(cacheDir, 'extracted')), 'nothing was extracted')
  t.is(decodedFiles(cacheDir).length, 2)
  t.is(first.train.labels.length, 42)
  t.is(first.train.files![first.train.files!.length - 1], `${archive}/cifar10-jpg/train/truck/0003.jpg`)

  // The same pixels, labels and order as decoding the folder on disk.
  const plain = await readImageFolder(path.join(folder, 'train'))
  t.deepEqual(first.train.pixels, plain.pixels)
  t.deepEqual(first.train.labels, plain.labels)

  const copy = path.join(tmpdir(), 'renamed.tgz')
  fs.copyFileSync(archive, copy)
  const second = await loadData(copy, { cacheDir, quiet: true })
  t.deepEqual(second.train.pixels, first.train.pixels)
  t.is(second.train.files![0], `${copy}/cifar10-jpg/train/airplane/0000.jpg`)
  const third = await loadData(folder, { cacheDir, quiet: true })
  t.deepEqual(third.test?.pixels, first.test?.pixels)
  t.is(decodedFiles(cacheDir).length, 2, 'archive, copy and folder share two decoded files')
  t.false(fs.existsSync(path.join(cacheDir, 'extracted')))
})

test('plain .tar archives with long paths (GNU and pax) and large other files are read from the stream too', async (t) => {
  const work = tmpdir()
  const root = path.join(work, 'set')
  const long = `class-${'x'.repeat(120)}`
  await solid(path.join(root, long, `${'y'.repeat(110)}.png`), [10, 20, 30])
  await solid(path.join(root, 'short', '1.png'), [40, 50, 60])
  fs.writeFileSync(path.join(root, 'short', 'notes.bin'), Buffer.alloc(3 << 20, 7))
  const plain = await readImageFolder(root, { size: [4, 4] })
  for (const format of ['gnu', 'pax']) {
    const archive = path.join(work, `set-${format}.tar`)
    execFileSync('tar', ['-cf', archive, `--format=${format}`, '-C', work, 'set'])
    const cacheDir = tmpdir()
    const loaded = await loadData(archive, { cacheDir, size: [4, 4] })
    t.deepEqual(loaded.train.classes, [long, 'short'], format)
    t.deepEqual(loaded.train.pixels, plain.pixels, format)
    t.is(loaded.train.files![0], `${archive}/set/${long}/${'y'.repeat(110)}.png`)
    t.false(fs.existsSync(path.join(cacheDir, 'extracted')))
  }
  // The images sharp decodes go to child processes as bytes when asked (by default only from 2 000 on).
  const archive = path.join(work, 'set-gnu.tar')
  const inChildren = await readImageArchiveCached(archive, fs.statSync(archive), { cacheDir: tmpdir(), size: [4, 4], processes: 2 })
  t.deepEqual(inChildren?.train.pixels, plain.pixels)
})

test('decodeJpegBuffers decodes JPEGs in memory exactly as decodeJpegFiles decodes them from disk, and lists the rest', async (t) => {
  const folder = path.join(cifarFolder(2, 0), 'train')
  await solid(path.join(folder, 'cat', 'extra.png'), [1, 2, 3])
  fs.writeFileSync(path.join(folder, 'dog', 'broken.jpg'), 'not a jpeg')
  const files = fs
    .readdirSync(folder)
    .sort()
    .flatMap((c) =>
      fs
        .readdirSync(path.join(folder, c))
        .sort()
        .map((f) => path.join(folder, c, f)),
    )
  const fromFiles = await native.decodeJpegFiles(files, 32, 32, 3, 2)
  const fromBuffers = await native.decodeJpegBuffers(
    files.map((f) => fs.readFileSync(f)),
    32,
    32,
    3,
    2,
  )
  t.deepEqual(Buffer.from(fromBuffers.pixels), Buffer.from(fromFiles.pixels))
  t.deepEqual(
    fromBuffers.fallback.map((i) => path.basename(files[i]!)),
    ['extra.png', 'broken.jpg'],
  )
  t.deepEqual(fromBuffers.fallback, fromFiles.fallback)
  const none = await native.decodeJpegBuffers([], 32, 32, 3, 2)
  t.is(none.pixels.length, 0)
})

test('a bad image inside an archive is named by its path in the archive, and skipped when asked', async (t) => {
  const folder = cifarFolder(1, 0)
  fs.rmSync(path.join(folder, 'test'), { recursive: true })
  fs.writeFileSync(path.join(folder, 'train', 'cat', 'broken.jpg'), 'not a jpeg')
  const archive = tarGz(folder)
  const cacheDir = tmpdir()
  const err = (await t.throwsAsync(loadData(archive, { cacheDir, quiet: true }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_BAD_IMAGE')
  t.deepEqual((err as DataError).files, [`${archive}/cifar10-jpg/train/cat/broken.jpg`])
  for (let run = 0; run < 2; run++) {
    const loaded = await loadData(archive, { cacheDir, quiet: true, skipBadImages: true })
    t.is(loaded.train.labels.length, 10)
    t.deepEqual(loaded.skipped, [`${archive}/cifar10-jpg/train/cat/broken.jpg`])
  }
})

test('over the limit, least recently used entries are evicted and the most recent kept', async (t) => {
  const cacheDir = tmpdir()
  const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map((seed) => tinyFolder(40 * seed)))
  for (const root of [a, b, c]) {
    await loadData(root!, { cacheDir, size: [4, 4], cacheMaxBytes: Infinity })
    await sleep(20)
  }
  // A is used again, so B is now the least recently used, then C.
  await loadData(a!, { cacheDir, size: [4, 4], cacheMaxBytes: Infinity })
  await sleep(20)
  const before = await listCache({ cacheDir })
  // Each folder made two entries: its decoded file and the memo of its files' hashes.
  t.is(before.entries.length, 6)
  const perFolder = (root: string) => before.entries.filter((e) => e.source === root).reduce((sum, e) => sum + e.bytes, 0)

  // Room for two folders: loading D evicts B and C, keeping A (recently used) and D (just written).
  await loadData(d!, { cacheDir, size: [4, 4], cacheMaxBytes: perFolder(a!) + perFolder(a!) })
  const after = await listCache({ cacheDir })
  t.deepEqual([...new Set(after.entries.map((e) => e.source))].sort(), [a!, d!].sort())
  t.is(decodedFiles(cacheDir).length, 2)
  t.true(after.totalBytes <= 2 * perFolder(a!))
  t.deepEqual(
    after.entries.map((e) => e.source),
    [d, d, a, a],
    'most recently used first',
  )

  // An entry in use by this process is never evicted, even by pruning everything.
  const aDecoded = path.join(cacheDir, after.entries.find((e) => e.source === a && e.kind === 'decoded')!.path)
  const pruned = await withPinned([aDecoded], () => pruneCache({ cacheDir, all: true }))
  t.is(pruned.removed.length, 3)
  t.deepEqual(
    pruned.kept.map((k) => k.why),
    ['in use by this process'],
  )
  t.deepEqual(
    (await listCache({ cacheDir })).entries.map((e) => path.join(cacheDir, e.path)),
    [aDecoded],
  )
})

test('an entry another running process is reading is kept; once that process has ended, it goes', async (t) => {
  const cacheDir = tmpdir()
  await loadData(await tinyFolder(99), { cacheDir, size: [4, 4] })
  // What withPinned(…, cacheDir) records while another process reads an extraction, with a process that is running.
  const reader = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => reader.kill())
  const index = path.join(cacheDir, INDEX_FILE)
  const parsed = JSON.parse(fs.readFileSync(index, 'utf8')) as { entries: Record<string, { kind: string; users?: number[] }> }
  const key = Object.keys(parsed.entries).find((k) => parsed.entries[k]!.kind === 'decoded')!
  parsed.entries[key]!.users = [reader.pid!]
  fs.writeFileSync(index, JSON.stringify(parsed))

  const kept = await pruneCache({ cacheDir, all: true })
  t.deepEqual(
    kept.kept.map((k) => [k.path, k.why]),
    [[key, `in use by running process ${reader.pid}`]],
  )
  reader.kill()
  await new Promise((resolve) => reader.once('exit', resolve))
  const gone = await pruneCache({ cacheDir, all: true })
  t.deepEqual(
    gone.removed.map((e) => e.path),
    [key],
  )
  t.deepEqual(decodedFiles(cacheDir), [])
})

test('the limit comes from cacheMaxBytes, else CONVKIT_CACHE_MAX, else 10 GB; sizes are read as people write them', (t) => {
  t.is(parseSize('2G'), 2 * 2 ** 30)
  t.is(parseSize('500M'), 500 * 2 ** 20)
  t.is(parseSize('1.5GB'), 1.5 * 2 ** 30)
  t.is(parseSize('750MiB'), 750 * 2 ** 20)
  t.is(parseSize('12345'), 12345)
  t.is(parseSize('none'), Infinity)
  t.is(parseSize('two gigs'), undefined)
  const saved = process.env.CONVKIT_CACHE_MAX
  t.teardown(() => {
    if (saved === undefined) delete process.env.CONVKIT_CACHE_MAX
    else process.env.CONVKIT_CACHE_MAX = saved
  })
  delete process.env.CONVKIT_CACHE_MAX
  t.is(cacheMaxBytes(), 10 * 2 ** 30)
  process.env.CONVKIT_CACHE_MAX = '5G'
  t.is(cacheMaxBytes(), 5 * 2 ** 30)
  t.is(cacheMaxBytes(1000), 1000)
  process.env.CONVKIT_CACHE_MAX = 'lots'
  const err = t.throws(() => cacheMaxBytes(), { instanceOf: InputError }) as ConvkitError
  t.is(err.code, 'INVALID_OPTION')
  t.regex(err.message, /CONVKIT_CACHE_MAX="lots": expected a size such as 2G/)
  t.regex((t.throws(() => cacheMaxBytes(-1)) as Error).message, /option cacheMaxBytes: expected a number of bytes >= 0/)
})

test('a truncated or garbled index, memo or archive record is rebuilt, not an error', async (t) => {
  const cacheDir = tmpdir()
  const folder = cifarFolder(2, 1)
  const archive = tarGz(folder)
  const first = await loadData(archive, { cacheDir, quiet: true })
  await loadData(folder, { cacheDir, quiet: true })
  const index = path.join(cacheDir, INDEX_FILE)
  const text = fs.readFileSync(index, 'utf8')
  fs.writeFileSync(index, text.slice(0, text.length / 2))
  for (const name of fs.readdirSync(path.join(cacheDir, 'hashes'))) {
    const file = path.join(cacheDir, 'hashes', name)
    fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 50))
  }

  // The decoded files on disk are found again; the hashes are computed again; the data is the same.
  const listed = await listCache({ cacheDir })
  t.is(listed.entries.filter((e) => e.kind === 'decoded').length, 2)
  const again = await loadData(archive, { cacheDir, quiet: true })
  t.deepEqual(again.train.pixels, first.train.pixels)
  t.deepEqual((await loadData(folder, { cacheDir, quiet: true })).train.pixels, first.train.pixels)
  t.notThrows(() => JSON.parse(fs.readFileSync(index, 'utf8')))
  t.is(decodedFiles(cacheDir).length, 2)

  fs.writeFileSync(index, '{"version": 1, "entries": {"decoded/x.bin": 42}}')
  t.is((await listCache({ cacheDir })).entries.filter((e) => e.kind === 'decoded').length, 2)

  // A half-written file of a process that died is not an entry, and pruning removes it; one still being written stays.
  const dead = spawnSync('true').pid
  const crashed = path.join(cacheDir, 'decoded', `abc.bin.tmp-${dead}-0123abcd`)
  const writing = path.join(cacheDir, 'decoded', `def.bin.tmp-${process.pid}-0123abcd`)
  for (const f of [crashed, writing]) fs.writeFileSync(f, 'partial')
  t.is((await listCache({ cacheDir })).entries.filter((e) => e.kind === 'decoded').length, 2)
  await pruneCache({ cacheDir })
  t.deepEqual([fs.existsSync(crashed), fs.existsSync(writing)], [false, true])
})

test('loads running at once into one cache all succeed and leave a readable index', async (t) => {
  const cacheDir = tmpdir()
  const roots = await Promise.all([5, 6, 7].map((seed) => tinyFolder(30 * seed)))
  const loaded = await Promise.all([...roots, ...roots].map((root) => loadData(root, { cacheDir, size: [4, 4] })))
  t.is(loaded.length, 6)
  t.is(decodedFiles(cacheDir).length, 3)
  // A lost update between two writers costs at most a last-use time; what is on disk is listed either way.
  t.is((await listCache({ cacheDir })).entries.filter((e) => e.kind === 'decoded').length, 3)
})

test('convkit cache ls lists entries with kind, size, last use and source; prune --max and --all remove them', async (t) => {
  const cacheDir = tmpdir()
  const archive = tarGz(cifarFolder(2, 1))
  await loadData(archive, { cacheDir, quiet: true })
  const cli = (...args: string[]) =>
    execFileSync(process.execPath, ['--import=tsx', 'scripts/cache.ts', ...args, '--cache-dir', cacheDir], { cwd: repo, encoding: 'utf8' })

  const ls = cli('ls')
  t.regex(ls, new RegExp(`^${cacheDir}: [\\d.]+ kB in 2 entries \\(limit [\\d.]+ GB\\)\\n`))
  t.regex(ls, /kind +size +last used +entry +source/)
  t.regex(
    ls,
    new RegExp(`decoded +[\\d.]+ kB +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d +decoded/[0-9a-f]{32}\\.bin +${archive}/cifar10-jpg/train\\n`),
  )
  const json = JSON.parse(cli('ls', '--json')) as { entries: { kind: string }[]; totalBytes: number }
  t.deepEqual(
    json.entries.map((e) => e.kind),
    ['decoded', 'decoded'],
  )

  const prune = cli('prune', '--max', '1k')
  t.regex(prune, /removed 2 entries \([\d.]+ kB\); the cache holds 0 B/)
  t.is(decodedFiles(cacheDir).length, 0)
  t.regex(cli('ls'), /: 0 B in 0 entries/)
  await loadData(archive, { cacheDir, quiet: true })
  t.regex(cli('prune', '--all'), /removed 2 entries/)

  const bad = t.throws(() =>
    execFileSync(process.execPath, ['--import=tsx', 'scripts/cache.ts', 'prune', '--max', 'lots', '--cache-dir', cacheDir], {
      cwd: repo,
      encoding: 'utf8',
      stdio: 'pipe',
    }),
  ) as Error & {
    status: number
    stderr: string
  }
  t.is(bad.status, 2)
  t.regex(bad.stderr, /option max: expected a size such as 2G, 500M or 1073741824, got "lots"/)
})
