// model.explain() (Grad-CAM) against pytorch-grad-cam 1.5.7's GradCAM on the same weights, images and target layer,
// and its options, errors and overlays through the public API.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import sharp from 'sharp'
import { heatmapOverlay, InputError, Model, type Explanation } from '../ts/index.ts'
import { zooModel, type ZooName } from '../ts/zoo/architectures.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWith } from './helpers/python-torch.ts'
import { maxAbsDiff } from './helpers/zoo-parity.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const REFERENCE = path.join(repo, '__test__', 'fixtures', 'gradcam_reference.py')
const PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg'].map((f) => path.join(repo, '..', 'shared', 'photos', f))
const CLASSES = 10
const SIZE = 64
const tmpdir = tempDirs('grad-cam')
const GRAD_CAM = ['pytorch_grad_cam']
const withGradCam = needs(missingPython(GRAD_CAM))

/** The tolerance: pytorch-grad-cam's maps are in [0, 1]. */
const TOLERANCE = 1e-4

interface Case {
  arch: ZooName
  /** The layer given to explain() and, as a module path, to GradCAM; undefined: ConvKit's default, `expectedLayer`. */
  layer?: string
  expectedLayer: string
  targets?: number[]
}

/** Both sides on one case: ConvKit in float64 with the reference's exported weights; the largest difference and the maps. */
async function compare(c: Case): Promise<{ diff: number; ours: Explanation[]; targets: number[] }> {
  const dir = tmpdir()
  const model = Model.create(zooModel(c.arch, { classes: CLASSES, inputSize: [SIZE, SIZE], dropout: 0, dropPath: 0 }), {
    device: 'cpu',
    dtype: 'float64',
  })
  // The photos as the model prepares them (resized to 64×64): the same bytes go to the reference.
  const prepared = await model.explain(PHOTOS)
  const pixels = Buffer.concat(prepared.map((e) => e.image))
  fs.writeFileSync(path.join(dir, 'pixels.u8'), pixels)
  const args = [REFERENCE, dir, c.arch, String(CLASSES), String(PHOTOS.length), String(SIZE), String(SIZE), c.layer ?? c.expectedLayer]
  if (c.targets) args.push(c.targets.join(','))
  const run = spawnSync(pythonWith(GRAD_CAM)!, args, { encoding: 'utf8', timeout: 300_000 })
  if (run.status !== 0) throw new Error(`gradcam_reference.py exited with ${run.status}: ${run.stderr}`)
  await model.loadWeights(path.join(dir, 'state.safetensors'))
  const ours = await model.explainPixels(new Uint8Array(pixels), PHOTOS.length, {
    ...(c.layer ? { layer: c.layer } : {}),
    targets: c.targets,
  })
  const reference = new Float32Array(new Uint8Array(fs.readFileSync(path.join(dir, 'cam.f32'))).buffer)
  const targets = Array.from(new BigInt64Array(new Uint8Array(fs.readFileSync(path.join(dir, 'targets.i64'))).buffer), Number)
  const flat = Float32Array.from(ours.flatMap((e) => [...e.heatmap]))
  return { diff: maxAbsDiff(flat, reference), ours, targets }
}

const CASES: Case[] = [
  { arch: 'resnet18', expectedLayer: 'layer4' },
  { arch: 'resnet18', layer: 'layer3.1', expectedLayer: 'layer3.1', targets: [3, 1, 4, 1] },
  { arch: 'mobilenet_v2', expectedLayer: 'features' },
]

for (const c of CASES) {
  const title = `${c.arch} at ${c.layer ?? 'the default layer'}${c.targets ? ', given targets' : ''}`
  withGradCam(`Grad-CAM equals pytorch-grad-cam's GradCAM within 1e-4: ${title}`, async (t) => {
    const { diff, ours, targets } = await compare(c)
    t.log(`${title}: largest |Δ| ${diff.toExponential(2)}`)
    t.true(diff <= TOLERANCE, `largest difference ${diff}`)
    t.deepEqual(
      ours.map((e) => e.target.index),
      targets,
    )
    t.true(ours.every((e) => e.layer === c.expectedLayer))
    // Maps that say something: each spans [0, 1] but for ones ReLU zeroes entirely, and at least two do.
    const spanning = ours.filter((e) => Math.max(...e.heatmap) > 0.99 && Math.min(...e.heatmap) < 0.01)
    t.true(spanning.length >= 2, `${spanning.length} maps span [0, 1]`)
    if (!c.targets)
      t.deepEqual(
        ours.map((e) => e.target.index),
        ours.map((e) => e.prediction.index),
      )
  })
}

test('explain() takes class names as targets, refuses unknown layers and classes by name, and draws overlays', async (t) => {
  const model = Model.create('resnet18', { classes: 3, inputSize: [48, 48], classNames: ['ant', 'bee', 'cat'], device: 'cpu' })
  const [byName] = await model.explain([PHOTOS[1]!], { targets: 'cat' })
  t.is(byName!.target.index, 2)
  t.is(byName!.target.label, 'cat')
  t.is(byName!.heatmap.length, 48 * 48)
  t.true(byName!.heatmap.every((v) => v >= 0 && v <= 1))
  const err = await t.throwsAsync(model.explain([PHOTOS[1]!], { layer: 'fc' }), { instanceOf: InputError })
  t.is((err as InputError).code, 'INVALID_OPTION')
  t.regex(err!.message, /option layer: .*layer4.*got fc, whose output \[3\] is not a feature map/)
  await t.throwsAsync(model.explain([PHOTOS[1]!], { layer: 'layer9' }), { instanceOf: InputError, message: /got layer9/ })
  await t.throwsAsync(model.explain([PHOTOS[1]!], { targets: 'dog' }), { instanceOf: InputError, message: /targets\[0\].*'dog'/ })
  await t.throwsAsync(model.explain(PHOTOS, { targets: [0, 1] }), { instanceOf: InputError, message: /one class per image \(4\), got 2/ })
  const png = await heatmapOverlay(byName!, { scale: 2 })
  const meta = await sharp(png).metadata()
  t.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 96, 96, 3])
})
