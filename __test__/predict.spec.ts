// loadModel(), model.predict(), predict() and the predict CLI on real images in several formats and sizes.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import sharp from 'sharp'
import { CheckpointError, DataError, FileError, InputError, loadModel, predict, readImageFolder, train } from '../ts/index.ts'
import type { ConvkitError, Prediction } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const tmpdir = tempDirs('predict')
const dirs = cifarSubset()
const work = tmpdir()

/** A short real run, then test images re-encoded as PNG and WebP at odd sizes. */
const setup = (async () => {
  const [trainSet, testSet] = await Promise.all([readImageFolder(dirs.train), readImageFolder(dirs.test)])
  const run = await train({
    data: { train: trainSet, test: testSet },
    epochs: 2,
    device: 'cpu',
    quiet: true,
    out: path.join(work, 'run'),
    seed: 5,
  })
  const jpgs = [
    path.join(dirs.test, 'cat', '0000.jpg'),
    path.join(dirs.test, 'ship', '0001.jpg'),
    path.join(dirs.test, 'truck', '0002.jpg'),
  ]
  const png = path.join(work, 'cat-odd.png')
  const webp = path.join(work, 'ship-odd.webp')
  await sharp(jpgs[0]).resize(45, 37, { fit: 'fill' }).png().toFile(png)
  await sharp(jpgs[1]).resize(61, 29, { fit: 'fill' }).webp().toFile(webp)
  return { run, jpgs, png, webp, checkpoint: run.bestCheckpoint! }
})()

test('train → save → load predicts exactly as the trained model did', async (t) => {
  const { run, jpgs, png, webp, checkpoint } = await setup
  const images = [...jpgs, png, webp]
  const loaded = await loadModel(path.join(run.runDir, 'last.safetensors'), { device: 'cpu' })
  t.deepEqual(loaded.classNames, run.history.classes)
  t.deepEqual(loaded.normalization, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] })
  const before = await run.model.predict(images)
  const after = await loaded.predict(images)
  t.deepEqual(after, before)
  t.true(fs.existsSync(checkpoint))
})

test('a prediction names the class, its probability and the top k, best first', async (t) => {
  const { jpgs, checkpoint } = await setup
  const one = await predict(jpgs[0]!, checkpoint, { topK: 3 })
  t.true(one.probability > 0 && one.probability <= 1)
  t.is(one.topK.length, 3)
  t.is(one.topK[0]!.label, one.label)
  t.true(one.topK[0]!.probability >= one.topK[1]!.probability && one.topK[1]!.probability >= one.topK[2]!.probability)
  const all = await predict(jpgs, checkpoint)
  t.is(all.length, 3)
  t.is(all[0]!.topK.length, 5)
  t.deepEqual(all[0]!.label, one.label)
})

test('a path, encoded bytes and raw pixels of one image give one prediction; arrays batch', async (t) => {
  const { png, checkpoint } = await setup
  const model = await loadModel(checkpoint, { device: 'cpu' })
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true })
  const raw = { data, width: info.width, height: info.height, channels: info.channels as 3 }
  const [fromPath, fromBytes, fromRaw] = await model.predict([png, fs.readFileSync(png), raw], { batchSize: 2 })
  t.deepEqual(fromBytes, fromPath)
  t.is(fromRaw!.label, fromPath!.label)
  t.true(Math.abs(fromRaw!.probability - fromPath!.probability) < 1e-3)
})

test('bad inputs are named errors: missing or corrupt checkpoints, unreadable images, wrong channel counts', async (t) => {
  const { checkpoint } = await setup
  await t.throwsAsync(loadModel(path.join(work, 'none.safetensors')), { instanceOf: FileError, message: /none\.safetensors/ })
  const corrupt = path.join(work, 'corrupt.safetensors')
  fs.writeFileSync(corrupt, fs.readFileSync(checkpoint).subarray(0, 1000))
  await t.throwsAsync(loadModel(corrupt), { instanceOf: CheckpointError, message: /corrupt\.safetensors/ })
  const model = await loadModel(checkpoint, { device: 'cpu' })
  const notImage = path.join(work, 'notes.png')
  fs.writeFileSync(notImage, 'this is text')
  const err = (await t.throwsAsync(model.predict([notImage]), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_BAD_IMAGE')
  t.regex(err.message, /notes\.png/)
  await t.throwsAsync(model.predict([path.join(work, 'missing.jpg')]), { instanceOf: DataError, message: /missing\.jpg/ })
  const wrong = (await t.throwsAsync(model.predict([{ data: new Uint8Array(4 * 4 * 5), width: 4, height: 4, channels: 5 as 3 }]), {
    instanceOf: InputError,
  })) as ConvkitError
  t.is(wrong.code, 'BAD_SHAPE')
  t.regex(wrong.message, /channels must be 1, 2, 3 or 4, got 5/)
  await t.throwsAsync(model.predict([{ data: new Uint8Array(10), width: 4, height: 4, channels: 3 }]), {
    instanceOf: InputError,
    message: /48 bytes, got 10/,
  })
})

test('the CLI prints a table, or one JSON object per line with --json', async (t) => {
  const { png, webp, checkpoint } = await setup
  const cli = (args: string[]) =>
    execFileSync(
      process.execPath,
      ['--import=tsx', path.join(repo, 'scripts', 'predict.ts'), '--model', checkpoint, '--device', 'cpu', ...args],
      { encoding: 'utf8' },
    )
  const lines = cli(['--json', png, webp])
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Prediction & { file: string })
  t.deepEqual(
    lines.map((l) => l.file),
    [png, webp],
  )
  for (const l of lines) {
    t.deepEqual(Object.keys(l).sort(), ['file', 'index', 'label', 'probability', 'topK'])
    t.is(l.topK.length, 5)
  }
  const table = cli([png]).trim().split('\n')
  t.regex(table[0]!, /^file\s+label\s+prob\s+top-3$/)
  t.true(table[1]!.startsWith(png))

  // --explain: a Grad-CAM overlay per image, named after it, listed in the JSON; the 32×32 images drawn 6× larger.
  const heatmapDir = path.join(work, 'heatmaps')
  const explained = cli(['--json', '--explain', heatmapDir, png, webp])
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { file: string; heatmap: string })
  t.deepEqual(
    explained.map((l) => path.basename(l.heatmap)),
    [png, webp].map((f) => `${path.parse(f).name}.gradcam.png`),
  )
  for (const { heatmap } of explained) {
    const meta = await sharp(heatmap).metadata()
    t.deepEqual([meta.format, meta.width, meta.height], ['png', 192, 192])
  }
  t.regex(cli(['--explain', heatmapDir, png]), /Grad-CAM heatmaps: 1 in /)
})
