// Reading `root/<class>/*`: any format and size, channel conversion, and named errors for bad folders.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import sharp from 'sharp'
import { DataError, decodeImage, readImageFolder } from '../ts/index.ts'
import type { ConvkitError } from '../ts/index.ts'
import { decodeJpegsNatively } from '../ts/data/native-jpeg.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('folder')

/** A solid image of one colour, encoded as `format`. */
async function solid(
  file: string,
  width: number,
  height: number,
  channels: 1 | 3 | 4,
  value: number[],
  format: 'png' | 'jpeg' | 'webp' | 'tiff' | 'gif',
) {
  const raw = Buffer.alloc(width * height * channels)
  for (let i = 0; i < raw.length; i++) raw[i] = value[i % channels]!
  fs.mkdirSync(path.dirname(file), { recursive: true })
  await sharp(raw, { raw: { width, height, channels } }).toFormat(format).toFile(file)
}

test('mixed formats, sizes and channel counts decode to C×H×W, classes sorted by folder name', async (t) => {
  const root = tmpdir()
  await solid(path.join(root, 'red', 'a.png'), 50, 20, 3, [255, 0, 0], 'png')
  await solid(path.join(root, 'red', 'b.webp'), 7, 90, 4, [255, 0, 0, 128], 'webp')
  await solid(path.join(root, 'blue', 'c.jpg'), 32, 32, 3, [0, 0, 255], 'jpeg')
  await solid(path.join(root, 'blue', 'd.tiff'), 64, 64, 3, [0, 0, 255], 'tiff')
  await solid(path.join(root, 'gray', 'e.png'), 10, 10, 1, [100], 'png')
  await solid(path.join(root, 'gray', 'f.gif'), 12, 9, 3, [100, 100, 100], 'gif')
  fs.writeFileSync(path.join(root, 'gray', 'notes.txt'), 'not an image, ignored')

  const set = await readImageFolder(root, { size: [16, 24] })
  t.deepEqual(set.classes, ['blue', 'gray', 'red'])
  t.deepEqual(set.shape, [3, 16, 24])
  t.is(set.labels.length, 6)
  t.is(set.pixels.length, 6 * 3 * 16 * 24)
  t.deepEqual([...set.labels], [0, 0, 1, 1, 2, 2])
  const plane = 16 * 24
  const channelMeans = (i: number) =>
    [0, 1, 2].map((c) => set.pixels.subarray((i * 3 + c) * plane, (i * 3 + c + 1) * plane).reduce((a, b) => a + b, 0) / plane)
  const [r, g, b] = channelMeans(set.files.findIndex((f) => f.endsWith('a.png')))
  t.true(r! > 240 && g! < 15 && b! < 15, `red image decoded as ${r}, ${g}, ${b}`)
  const gray = channelMeans(set.files.findIndex((f) => f.endsWith('e.png')))
  // Grayscale becomes three equal channels.
  t.true(
    gray.every((v) => Math.abs(v - 100) < 3),
    `gray image decoded as ${gray}`,
  )

  const mono = await readImageFolder(root, { size: [8, 8], channels: 1 })
  t.deepEqual(mono.shape, [1, 8, 8])
  t.is(mono.pixels.length, 6 * 64)
})

test('JPEGs at the wanted size decode natively to exactly the bytes sharp gives; the rest go through sharp', async (t) => {
  const root = tmpdir()
  const cifar = cifarSubset().train
  const photos: string[] = []
  for (const name of ['cat', 'ship']) {
    fs.mkdirSync(path.join(root, name))
    for (let i = 0; i < 30; i++) {
      const file = `${String(i).padStart(4, '0')}.jpg`
      fs.copyFileSync(path.join(cifar, name, file), path.join(root, name, file))
      photos.push(path.join(root, name, file))
    }
  }
  // The same photo re-encoded in the JPEG variants the fast path takes, and in those it must leave to sharp.
  const photo = sharp(photos[0]!)
  const variants = {
    'p-progressive.jpg': photo.clone().jpeg({ progressive: true, quality: 80 }),
    'p-444.jpg': photo.clone().jpeg({ chromaSubsampling: '4:4:4', quality: 95 }),
    'p-gray.jpg': photo.clone().toColourspace('b-w').jpeg(),
    'p-restarts.jpg': photo.clone().jpeg({ quality: 60, optimiseCoding: false }),
    'q-icc.jpg': photo.clone().withIccProfile('p3').jpeg(),
    'q-cmyk.jpg': photo.clone().toColourspace('cmyk').jpeg(),
    'q-larger.jpg': photo.clone().resize(40, 30).jpeg(),
    'q-png.png': photo.clone().png(),
  }
  fs.mkdirSync(path.join(root, 'variants'))
  for (const [name, image] of Object.entries(variants)) await image.toFile(path.join(root, 'variants', name))

  for (const channels of [3, 1] as const) {
    const set = await readImageFolder(root, { channels })
    const per = channels * 32 * 32
    for (const [i, file] of set.files.entries()) {
      const bySharp = await decodeImage(file, { size: [32, 32], channels })
      t.true(
        Buffer.from(bySharp).equals(Buffer.from(set.pixels.subarray(i * per, (i + 1) * per))),
        `${path.basename(file)}, ${channels} channel(s)`,
      )
    }
    const { rest } = await decodeJpegsNatively(set.files, { size: [32, 32], channels })
    const leftToSharp = rest.map((i) => path.basename(set.files[i]!))
    if (channels === 3) {
      // A grayscale JPEG into RGB is sharp's colourspace conversion, so it goes there too.
      t.deepEqual(leftToSharp, ['p-gray.jpg', 'q-cmyk.jpg', 'q-icc.jpg', 'q-larger.jpg', 'q-png.png'])
    } else {
      // To one channel, only the one-component JPEG: sharp's luminance of colour is its own arithmetic.
      t.false(leftToSharp.includes('p-gray.jpg'))
      t.is(leftToSharp.length, set.files.length - 1)
    }
  }
})

test('decodeImage reads encoded bytes as well as paths', async (t) => {
  const root = tmpdir()
  const file = path.join(root, 'x.png')
  await solid(file, 5, 5, 3, [0, 255, 0], 'png')
  const fromBytes = await decodeImage(fs.readFileSync(file), { size: [4, 4], channels: 3 })
  t.deepEqual(fromBytes, await decodeImage(file, { size: [4, 4], channels: 3 }))
  t.is(fromBytes[16], 255)
})

test('a missing folder, no class folders and an empty class folder are DataErrors naming the path', async (t) => {
  const root = tmpdir()
  const missing = (await t.throwsAsync(readImageFolder(path.join(root, 'nope')), { instanceOf: DataError })) as ConvkitError
  t.is(missing.code, 'DATA_NOT_FOUND')
  t.regex(missing.message, /nope/)
  t.is(((await t.throwsAsync(readImageFolder(root))) as ConvkitError).code, 'DATA_EMPTY')
  await solid(path.join(root, 'cat', 'a.png'), 4, 4, 3, [1, 2, 3], 'png')
  fs.mkdirSync(path.join(root, 'dog'))
  fs.writeFileSync(path.join(root, 'dog', 'readme.md'), '#')
  const empty = (await t.throwsAsync(readImageFolder(root))) as ConvkitError
  t.is(empty.code, 'DATA_EMPTY')
  t.regex(empty.message, /dog/)
})

test('corrupt and zero-byte images fail by name, or are skipped and listed when asked', async (t) => {
  const root = tmpdir()
  await solid(path.join(root, 'cat', 'good.png'), 4, 4, 3, [1, 2, 3], 'png')
  fs.writeFileSync(path.join(root, 'cat', 'empty.jpg'), '')
  fs.writeFileSync(path.join(root, 'cat', 'broken.png'), fs.readFileSync(path.join(root, 'cat', 'good.png')).subarray(0, 30))
  const err = (await t.throwsAsync(readImageFolder(root), { instanceOf: DataError })) as DataError
  t.is(err.code, 'DATA_BAD_IMAGE')
  t.regex(err.message, /2 image\(s\).*broken\.png.*empty\.jpg/)
  t.is(err.files.length, 2)

  const skipped = await readImageFolder(root, { skipBadImages: true, size: [4, 4] })
  t.is(skipped.labels.length, 1)
  t.is(skipped.pixels.length, 3 * 16)
  t.deepEqual(
    skipped.skipped.map((f) => path.basename(f)),
    ['broken.png', 'empty.jpg'],
  )
})

test('a folder of symbolic links reads as the files they point to, through the decoded cache too; broken links are left out', async (t) => {
  const { train } = cifarSubset()
  const classes = fs.readdirSync(train).sort().slice(0, 2)
  const links = tmpdir()
  for (const c of classes) {
    fs.mkdirSync(path.join(links, c))
    for (const f of fs.readdirSync(path.join(train, c)).sort().slice(0, 5)) fs.symlinkSync(path.join(train, c, f), path.join(links, c, f))
  }
  fs.symlinkSync(path.join(links, 'nowhere.jpg'), path.join(links, classes[0]!, 'broken.jpg'))
  // A class folder that is itself a link.
  const linkedClass = tmpdir()
  fs.symlinkSync(path.join(train, classes[0]!), path.join(linkedClass, classes[0]!))

  const direct = await readImageFolder(links)
  t.deepEqual(direct.classes, classes)
  t.is(direct.labels.length, 10)
  const original = await readImageFolder(train)
  const firstOriginal = original.labels.indexOf(0)
  t.deepEqual(direct.pixels.subarray(0, 3072), original.pixels.subarray(firstOriginal * 3072, (firstOriginal + 1) * 3072))
  t.is((await readImageFolder(linkedClass)).classes[0], classes[0])

  const { loadData } = await import('../ts/data/load-data.ts')
  const cached = await loadData(links, { cacheDir: tmpdir() })
  t.is(cached.train.labels.length, 10)
  t.deepEqual(cached.train.pixels, direct.pixels)
})
