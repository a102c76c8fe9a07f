// The fine-tuning recipe: the defaults with pretrained weights, named `recipe: 'finetune'` for any model; its two
// data-dependent rules (epochs by the training set's size, crops of 6/7 of the stored size evaluated whole).
import test from 'ava'
import path from 'node:path'
import { train } from '../ts/index.ts'
import { finetuneCrop, finetuneEpochs } from '../ts/recipes/finetune.ts'
import { resolveConfig } from '../ts/train/resolve-config.ts'
import { parseFlags } from '../ts/cli/flags.ts'
import { TRAIN_OPTIONS, type TrainOptions } from '../ts/train/train-options.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('finetune-recipe')
const fromCli = (argv: string[]) => resolveConfig({ ...(parseFlags(TRAIN_OPTIONS, argv).options as Partial<TrainOptions>), data: 'photos' })

test('pretrained weights start from the finetune recipe; every value of it stays an option', (t) => {
  const tuned = resolveConfig({ data: 'photos', pretrained: 'efficientnet_lite0' })
  t.like(tuned, {
    recipe: 'finetune',
    epochs: 'auto',
    batchSize: 32,
    optimizer: 'adamw',
    lr: 1e-3,
    weightDecay: 0.05,
    schedule: 'cosine',
    warmup: 0.1,
    labelSmoothing: 0.1,
    freezeEpochs: 1,
    backboneLrScale: 0.2,
    batchNormStatistics: 'frozen',
    resizedCrop: [0.5, 1],
    flip: 'random',
    tta: 'mirror',
    testEvery: 0,
    // Validation runs every epoch; the test data after the last only.
    monitor: 'val_loss',
  })
  // Given options win over the recipe's.
  t.like(resolveConfig({ data: 'photos', pretrained: 'efficientnet_lite0', epochs: 3, lr: 3e-4, tta: 'none' }), {
    epochs: 3,
    lr: 3e-4,
    tta: 'none',
    optimizer: 'adamw',
  })
  // No recipe: the plain defaults, pretrained or not.
  t.like(resolveConfig({ data: 'photos', pretrained: 'efficientnet_lite0', recipe: 'none' }), {
    epochs: 40,
    optimizer: 'adam',
    freezeEpochs: 0,
    testEvery: 1,
    inputSize: null,
    evalInputSize: null,
  })
  t.like(resolveConfig({ data: 'photos' }), { recipe: 'none', epochs: 40, batchSize: 128, tta: 'none' })
  // Without validation data nor a test every epoch, the monitor falls back to the training loss.
  t.like(resolveConfig({ data: 'photos', pretrained: 'efficientnet_lite0', valSplit: 0 }), { monitor: 'train_loss' })
})

test('the CLI takes --recipe finetune for any model and --epochs auto', (t) => {
  t.like(fromCli(['--recipe', 'finetune', '--epochs', 'auto']), {
    recipe: 'finetune',
    epochs: 'auto',
    optimizer: 'adamw',
    size: [32, 32],
    inputSize: null,
  })
  t.like(fromCli(['--epochs', '2.5']), { epochs: 2.5 })
  for (const bad of ['0', '-1', 'NaN', 'soon'])
    t.throws(() => fromCli([`--epochs=${bad}`]), {
      code: 'INVALID_OPTION',
      message: /epochs: expected a number > 0/,
    })
})

test('epochs follow the training set: about 8 000·√(n/1 000) images seen, 2 to 30 epochs', (t) => {
  t.is(finetuneEpochs(1000), 8)
  t.is(finetuneEpochs(900), 8)
  t.is(finetuneEpochs(100), 25)
  t.is(finetuneEpochs(10_000), 3)
  t.is(finetuneEpochs(1_000_000), 2)
  t.is(finetuneEpochs(10), 30)
  // Fewer images never get fewer epochs.
  for (let n = 1; n < 20_000; n += 97) t.true(finetuneEpochs(n) >= finetuneEpochs(n + 97), `n = ${n}`)
})

test('training crops are 6/7 of the stored size on multiples of 8; small images are not cropped', (t) => {
  t.deepEqual(finetuneCrop([224, 224]), [192, 192])
  t.deepEqual(finetuneCrop([256, 320]), [216, 272])
  t.deepEqual(finetuneCrop([32, 32]), [32, 32])
})

test('train() with the finetune recipe plans epochs from the data, and a network that takes one input size evaluates at it', async (t) => {
  const root = path.dirname(cifarSubset().train)
  const out = tmpdir()
  // The reference CNN (the default model, built for the input size) flattens its last feature map into a linear layer: it cannot take the whole 72-pixel image
  // after training on 56-pixel crops, so the recipe's larger evaluation view is withdrawn, not an error.
  const result = await train({
    data: root,
    recipe: 'finetune',
    size: [72, 72],
    limitTrain: 200,
    limitTest: 100,
    valSplit: 0,
    precision: 'fp32',
    device: 'cpu',
    quiet: true,
    report: false,
    out,
  })
  t.is(result.history.epochs.length, finetuneEpochs(200))
  t.like(result.history.config, { epochs: finetuneEpochs(200), inputSize: [56, 56], evalInputSize: null, monitor: 'train_loss' })
  t.deepEqual(result.model.evalInputSize, [56, 56])
  // The test data is evaluated once, after the last epoch.
  t.deepEqual(
    result.history.epochs.map((e) => e.test !== undefined),
    result.history.epochs.map((_, i, all) => i === all.length - 1),
  )
})

test('without pretrained weights the recipe leaves the body alone: no frozen epoch, full rate, batch norm updating', (t) => {
  t.like(resolveConfig({ data: 'photos', recipe: 'finetune' }), {
    optimizer: 'adamw',
    freezeEpochs: 0,
    backboneLrScale: 1,
    batchNormStatistics: 'update',
  })
})

test('a run that stops early tests on its last epoch where the test data waits for the last one', async (t) => {
  const root = path.dirname(cifarSubset().train)
  // No improvement counts (minDelta 100): epoch 1 sets the best, epoch 2 stops the run, 3 epochs before the planned end.
  const result = await train({
    data: root,
    epochs: 5,
    testEvery: 0,
    patience: 1,
    minDelta: 100,
    limitTrain: 300,
    limitTest: 100,
    device: 'cpu',
    quiet: true,
    report: false,
    out: tmpdir(),
  })
  t.true(result.history.stoppedEarly)
  t.deepEqual(
    result.history.epochs.map((e) => e.test !== undefined),
    [false, true],
  )
})
