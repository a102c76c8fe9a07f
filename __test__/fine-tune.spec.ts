// Fine-tuning through train(): EfficientNet-Lite0 from the shared ImageNet weights (with `model` naming the
// architecture and `pretrained` the file), its 1000-class classifier replaced by a 10-class one, the body frozen for
// the first epoch and trained at a lower rate after it, against the same network from scratch on the same images.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Model, referenceCnn, train, type TrainOptions } from '../ts/index.ts'
import { readSafetensors } from '../ts/weights/safetensors-file.ts'
import { resolveConfig } from '../ts/train/resolve-config.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { needs } from './helpers/needs.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const LITE0_FILE = path.resolve(repo, '..', 'shared', 'models', 'efficientnet-lite0-57934424.pth')
const withLite0 = needs(fs.existsSync(LITE0_FILE) ? null : `the shared weights file ${LITE0_FILE}`)
const tmpdir = tempDirs('fine-tune')
/** What every fine-tuning run here shares: no validation split, small batches on the CPU, one seed, no output. */
const SMALL_RUN = { valSplit: 0, batchSize: 32, device: 'cpu', seed: 1, quiet: true } as const satisfies Partial<TrainOptions>

withLite0('fine-tuning ImageNet weights beats the same network from scratch by a wide margin', async (t) => {
  const root = path.dirname(cifarSubset().train)
  // 400 CIFAR-10 images upscaled to 64×64 (small enough for a test on 2 cores), 500 test images.
  const common: TrainOptions = {
    data: root,
    model: 'efficientnet_lite0',
    size: [64, 64],
    inputSize: [64, 64],
    limitTrain: 400,
    limitTest: 500,
    epochs: 3,
    optimizer: 'adamw',
    report: false,
    ...SMALL_RUN,
  }
  const tuned = await train({ ...common, pretrained: LITE0_FILE, out: tmpdir() })
  const scratch = await train({ ...common, out: tmpdir() })
  const top1 = (r: typeof tuned) => r.history.epochs.at(-1)!.test!.top1
  t.log(`fine-tuned ${top1(tuned).toFixed(1)} %, from scratch ${top1(scratch).toFixed(1)} % (chance 10 %)`)
  // The pretrained defaults: ImageNet normalization (weights from a file are taken to be torchvision's) and the
  // fine-tuning recipe: one epoch with the body frozen, the body at a fifth of the rate after it, batch norm
  // statistics kept. From scratch, no recipe.
  t.deepEqual(tuned.model.normalization, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] })
  t.like(tuned.history.config, { recipe: 'finetune', freezeEpochs: 1, backboneLrScale: 0.2, batchNormStatistics: 'frozen' })
  t.like(scratch.history.config, { recipe: 'none', freezeEpochs: 0, backboneLrScale: 1, batchNormStatistics: 'update' })
  t.is(tuned.model.classes, 10)
  t.true(top1(tuned) > 40, `fine-tuned test top-1 ${top1(tuned)} %`)
  t.true(top1(tuned) > top1(scratch) + 15, `fine-tuned ${top1(tuned)} % vs scratch ${top1(scratch)} %`)
})

withLite0(
  "a fine-tuned model predicts on what its evaluation saw (the stored image at evalInputSize), not with the weights' ImageNet resize",
  async (t) => {
    const { test: testDir } = cifarSubset()
    // Named weights, as a user gets them: from the cache (a copy of the shared file, checked by its sha256).
    const cacheDir = tmpdir()
    fs.copyFileSync(LITE0_FILE, path.join(cacheDir, path.basename(LITE0_FILE)))
    const out = tmpdir()
    const result = await train({
      data: path.dirname(testDir),
      pretrained: 'efficientnet_lite0',
      cacheDir,
      size: [72, 72],
      inputSize: [64, 64],
      // FixRes: evaluate on the whole 72-pixel image, larger than the 64-pixel crops trained on.
      evalInputSize: [72, 72],
      limitTrain: 300,
      epochs: 1,
      precision: 'fp32',
      report: true,
      out,
      ...SMALL_RUN,
    })
    const saved = await Model.load(path.join(out, 'last.safetensors'), { device: 'cpu' })
    t.deepEqual(saved.preprocessing, { resize: [72, 72] })
    t.deepEqual(saved.evalInputSize, [72, 72])
    // The report's sample predictions feed the model at its evaluation size too.
    t.true(fs.existsSync(path.join(out, 'report.html')), 'report.html written')
    const classes = fs.readdirSync(testDir).sort()
    const files = classes.flatMap((c, k) =>
      fs
        .readdirSync(path.join(testDir, c))
        .sort()
        .map((f) => ({ file: path.join(testDir, c, f), label: k })),
    )
    const predicted = await saved.predict(files.map((f) => f.file))
    const top1 = (100 * predicted.filter((p, i) => p.index === files[i]!.label).length) / files.length
    const evaluated = result.history.epochs.at(-1)!.test!.top1
    t.log(`predict() on the ${files.length} test files ${top1.toFixed(2)} %, evaluation ${evaluated.toFixed(2)} %`)
    // ImageNet's resize to 256 then a 72-pixel centre crop would see a small part of each image.
    t.true(evaluated > 30, `test top-1 ${evaluated} %`)
    t.true(Math.abs(top1 - evaluated) <= 0.2, `predict() ${top1} % vs evaluation ${evaluated} %`)
  },
)

test('with pretrained weights the defaults follow them: input size, normalization, frozen epoch, rates, batch norm', (t) => {
  const tuned = resolveConfig({ data: 'photos', pretrained: 'efficientnet_lite0' })
  t.like(tuned, { size: [224, 224], normalize: 'weights', freezeEpochs: 1, backboneLrScale: 0.2, batchNormStatistics: 'frozen' })
  // Stored at the weights' size, trained on 6/7 crops of it, evaluated on the whole image.
  t.like(tuned, { inputSize: [192, 192], evalInputSize: [224, 224] })
  t.like(resolveConfig({ data: 'photos', pretrained: 'resnet18', inputSize: [160, 160] }), { size: [160, 160], evalInputSize: null })
  t.like(resolveConfig({ data: 'photos' }), {
    size: [32, 32],
    normalize: 'half',
    freezeEpochs: 0,
    backboneLrScale: 1,
    batchNormStatistics: 'update',
  })
})

test("a spec of one's own with a weights file: its last linear layer (named by the core, fc2) is replaced at zero, the rest loads", async (t) => {
  const source = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 5 })
  const file = path.join(tmpdir(), 'reference.safetensors')
  await source.save(file, { withOptimizer: false })
  const tuned = await Model.fromPretrained(referenceCnn({ classes: 10 }), {
    pretrained: file,
    classNames: ['cat', 'dog', 'ship'],
    device: 'cpu',
    quiet: true,
  })
  t.is(tuned.classes, 3)
  const saved = path.join(tmpdir(), 'tuned.safetensors')
  await tuned.save(saved, { withOptimizer: false })
  const before = new Map((await readSafetensors(file)).map((x) => [x.name, x]))
  const after = new Map((await readSafetensors(saved)).map((x) => [x.name, x]))
  t.deepEqual(after.get('fc2.weight')!.shape, [3, 512])
  t.true(after.get('fc2.weight')!.data.every((b) => b === 0))
  t.deepEqual(after.get('fc1.weight')!.data, before.get('fc1.weight')!.data)
  t.deepEqual(after.get('conv1.weight')!.data, before.get('conv1.weight')!.data)
})
