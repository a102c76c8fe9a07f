// train()'s first phase: everything decided before the first step. The options resolved (or a resumed run's
// restored), the data read and split, the model built (fresh, pretrained or resumed), its precision chosen, and
// the epochs planned. Nothing here trains.
import fs from 'node:fs'
import path from 'node:path'
import { LAST_CHECKPOINT } from '../callbacks/last-checkpoint.ts'
import type { HistoryFile } from '../callbacks/callback.ts'
import { classifierOf, setTrainableAt } from '../callbacks/trainable-schedule.ts'
import type { ImageSet } from '../data/image-set.ts'
import { epochBatches } from '../data/shards/shard-stream.ts'
import { deriveSeed, shuffle } from '../data/split.ts'
import { TensorDataset } from '../data/tensor-dataset.ts'
import { TrainSync } from '../distributed/train-sync.ts'
import { DataError, InputError } from '../errors.ts'
import { Model, type AugmentOptions, type ModelOptions, type OptimizerOptions, type Precision } from '../model/model.ts'
import { specForData } from '../model/spec.ts'
import { planPretrained } from '../zoo/pretrained.ts'
import { pretrainedWeights } from '../zoo/weights.ts'
import { finetuneEpochs } from '../recipes/finetune.ts'
import { runStamp } from '../util/run-stamp.ts'
import { choosePrecision, type Workload } from './precision.ts'
import { probeMemoFile } from './precision-memo.ts'
import { checkMemory, prepareData, validationCount, type TrainData } from './train-data.ts'
import { resolveConfig, resumeConfig } from './resolve-config.ts'
import type { ResolvedTrainOptions, TrainOptions } from './train-options.ts'

/** A run's options once its data is read: `epochs: 'auto'` is a number by then. */
export type RunConfig = ResolvedTrainOptions & { epochs: number }

/**
 * Puts `model` (the run's, or a throwaway copy that stands for it: the learning-rate sweep's, the precision probe's)
 * in the state the run trains in: batch-norm statistics and gradient clipping, and, given `epoch`, what trains in
 * that epoch (as TrainableSchedule sets it then).
 */
export function applyRunState(model: Model, config: ResolvedTrainOptions, epoch?: number): void {
  model.setFrozenBatchNormStatistics(config.batchNormStatistics === 'frozen')
  model.setGradClipNorm(config.gradClipNorm)
  if (epoch !== undefined) setTrainableAt(model, epoch, { freezeEpochs: config.freezeEpochs, spans: config.trainableSpans })
}

/**
 * {@link applyRunState} as the run's last epoch trains, the state most of its epochs take: with the body frozen for
 * epoch 1 alone, the rest train the whole network. The precision probe times this state and the learning-rate sweep
 * trains in it.
 */
export function applyLastEpochState(model: Model, config: RunConfig): void {
  applyRunState(model, config, Math.ceil(config.epochs))
}

/** A run ready to train: what the epochs need, decided once. */
export interface PreparedRun {
  config: RunConfig
  runDir: string
  /** The run this one continues (`resume`), as its history.json left it. */
  previous?: HistoryFile
  sync: TrainSync
  data: TrainData
  model: Model
  /** The native copies of the training, validation and test images (one per distinct image set). */
  trainData: TensorDataset
  valData: TensorDataset
  testData: TensorDataset
  chosen: NonNullable<HistoryFile['chosen']>
  /** Batches of each epoch, in order. */
  plan: number[]
  augment: AugmentOptions | undefined
  print: (line: string) => void
}

function readHistory(runDir: string): HistoryFile {
  const file = path.join(runDir, 'history.json')
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as HistoryFile
  } catch (err) {
    throw new InputError(
      'INVALID_OPTION',
      `option resume: ${file} is missing or not valid JSON; expected a run directory written by train()`,
      { cause: err },
    )
  }
}

function optimizerOptions(config: ResolvedTrainOptions): OptimizerOptions {
  // `lr: 'find'`: the sweep sets the rate before the first step (runLearningRate); until then any rate will do.
  const lr = config.lr === 'find' ? 1e-3 : config.lr
  if (config.optimizer === 'sgd') {
    return { type: 'sgd', lr, momentum: config.momentum, nesterov: config.nesterov, weightDecay: config.weightDecay }
  }
  return { type: config.optimizer, lr, weightDecay: config.weightDecay }
}

function augmentOptions(config: ResolvedTrainOptions, stored: [number, number], input: [number, number]): AugmentOptions | undefined {
  const aug: AugmentOptions = { cropPadding: config.cropPadding, padMode: config.padMode, flip: config.flip, cutout: config.cutout }
  if (config.resizedCrop) aug.resizedCrop = { scale: config.resizedCrop, ratio: [3 / 4, 4 / 3] }
  if (config.autoAugment !== 'none') {
    aug.autoAugment = { policy: config.autoAugment, numOps: config.randAugmentOps, magnitude: config.randAugmentMagnitude }
  }
  if (config.randomErasing > 0) aug.randomErasing = { probability: config.randomErasing }
  const mixed = config.mixup > 0 || config.cutmix > 0
  if (mixed) {
    aug.mix = {
      mixupAlpha: config.mixup,
      cutmixAlpha: config.cutmix,
      probability: config.mixProbability,
      switchProbability: config.mixSwitchProbability,
    }
  }
  // Images stored larger than the input are cropped at random while training (and centred when evaluating).
  const larger = stored[0] > input[0] || stored[1] > input[1]
  const any =
    config.resizedCrop ||
    config.cropPadding > 0 ||
    config.flip !== 'none' ||
    config.cutout > 0 ||
    config.autoAugment !== 'none' ||
    config.randomErasing > 0 ||
    mixed
  return larger || any ? aug : undefined
}

/**
 * The images a run trains on and evaluates, for the precision probe: every epoch's training images and validation
 * (and, with `trainMetrics: 'full'`, a pass over the training images), and the test images as often as `testEvery`
 * says, all evaluated with the run's test-time augmentation.
 */
function runWorkload(config: ResolvedTrainOptions, runEpochs: number, train: number, val: number, test: number): Workload {
  const epochs = Math.ceil(runEpochs)
  const tests = config.testEvery > 0 ? Math.ceil(epochs / config.testEvery) : 1
  const evalImages = epochs * (val + (config.trainMetrics === 'full' ? train : 0)) + tests * test
  return { trainImages: epochs * train, evalImages, tta: config.tta }
}

/** `evalInputSize`, checked against the stored images `[C, H, W]` it is a centre crop of. */
function checkEvalInputSize(size: [number, number], stored: readonly number[]): [number, number] {
  if (size[0] > stored[1]! || size[1] > stored[2]!) {
    throw new InputError(
      'INVALID_OPTION',
      `option evalInputSize: ${size[0]}x${size[1]} is larger than the stored images (${stored[1]}x${stored[2]}, size); store them at least that large`,
    )
  }
  return size
}

/**
 * How many batches each epoch runs: `batchesOf(epoch)` of this rank (streamed shards may give each epoch its own
 * count), capped by `limitTrain`; a fractional `epochs` ends the last one early (rounding up).
 */
function batchPlan(config: RunConfig, batchesOf: (epoch: number) => number, images: number): number[] {
  const epochs = Math.ceil(config.epochs - 1e-9)
  const plan = Array.from({ length: epochs }, (_, i) => batchesOf(i + 1))
  if (plan.some((n) => n === 0))
    throw new DataError('DATA_EMPTY', `${images} training images make no full batch of ${config.batchSize} (dropLast)`)
  const rest = config.epochs - Math.floor(config.epochs)
  if (rest > 1e-9) plan[epochs - 1] = Math.ceil(rest * plan[epochs - 1]!)
  return plan
}

/** The model a run trains: the resumed run's, pretrained weights fine-tuned, or a fresh one. */
async function buildModel(
  options: TrainOptions,
  config: ResolvedTrainOptions,
  data: TrainData,
  runDir: string,
  previous: HistoryFile | undefined,
): Promise<Model> {
  const shape = data.trainSet.shape
  const modelOptions: ModelOptions = {
    device: config.device,
    seed: config.seed,
    optimizer: optimizerOptions(config),
    paramGroups: config.paramGroups,
    labelSmoothing: config.labelSmoothing,
    lossReduction: config.lossReduction,
    classNames: data.classes,
    normalization: data.normalization,
    tta: config.tta,
    // What evaluation sees, so predict() repeats it: images stretched to the stored size, then the centre of the
    // model's input (pretrained weights' own preprocessing, e.g. ImageNet's resize to 256, is not what the data went
    // through).
    preprocessing: { resize: [shape[1], shape[2]] },
  }
  // A view the user asked for is a promise (a network that cannot take it, or images stored smaller, are errors); the
  // fine-tuning recipe's is an offer, withdrawn (and the config corrected) where it does not fit.
  const asked = options.evalInputSize !== undefined || previous !== undefined
  const offered = config.evalInputSize
  const evalInputSize =
    offered && (asked ? checkEvalInputSize(offered, shape) : offered[0] <= shape[1] && offered[1] <= shape[2] ? offered : null)
  if (!evalInputSize) config.evalInputSize = null
  if (evalInputSize && asked) modelOptions.evalInputSize = evalInputSize
  const model = await createModel(options, config, data, modelOptions, runDir, previous)
  if (evalInputSize && !asked) {
    try {
      model.setEvalInputSize(evalInputSize)
    } catch (err) {
      if (!(err instanceof InputError)) throw err
      config.evalInputSize = null
    }
  }
  return model
}

async function createModel(
  options: TrainOptions,
  config: ResolvedTrainOptions,
  data: TrainData,
  modelOptions: ModelOptions,
  runDir: string,
  previous: HistoryFile | undefined,
): Promise<Model> {
  const shape = data.trainSet.shape
  if (previous) {
    const model = await Model.load(path.join(runDir, LAST_CHECKPOINT), { device: config.device, forTraining: true })
    // A run from before these were recorded predicts as its data is read now.
    model.preprocessing = modelOptions.preprocessing
    model.setEvalInputSize(modelOptions.evalInputSize ?? null)
    return model
  }
  const inputSize =
    config.inputSize ??
    (config.pretrained
      ? ([...(pretrainedWeights(config.pretrained)?.preprocessing.inputSize ?? shape.slice(1))] as [number, number])
      : null)
  if (!config.pretrained) return Model.create(specForData(config.model, shape, data.classes.length, inputSize), modelOptions)
  let architecture = typeof config.model === 'function' ? config.model({ classes: data.classes.length, shape }) : config.model
  // A spec of one's own takes the data's image shape, as a model trained from scratch does.
  if (architecture && typeof architecture === 'object' && !architecture.inputShape)
    architecture = { ...architecture, inputShape: [shape[0], ...(inputSize ?? [shape[1], shape[2]])] }
  const pretrained = {
    ...modelOptions,
    pretrained: config.pretrained,
    inputSize: inputSize ?? undefined,
    cacheDir: config.cacheDir ?? undefined,
    quiet: config.quiet,
    signal: options.signal,
  }
  // Checked against the data before any weights are fetched.
  specForData(planPretrained(architecture, pretrained).spec, shape, data.classes.length)
  return Model.fromPretrained(architecture, pretrained)
}

/** Discriminative rates: the body trains at backboneLrScale of the classifier's rate (after the user's groups). */
function applyBackboneScale(model: Model, config: ResolvedTrainOptions): void {
  const classifier = classifierOf(model, 'backboneLrScale', 'to train at the full rate')
  model.setParamGroups([...config.paramGroups, { names: `${classifier}.*`, lrScale: 1 }, { names: '*', lrScale: config.backboneLrScale }])
}

/** airbench's first layer: a convolution whitened from the patch covariance of a sample of the training images. */
async function initWhitening(model: Model, trainData: TensorDataset, data: TrainData, config: ResolvedTrainOptions): Promise<void> {
  // A seeded, class-mixed sample: image folders list their files class by class.
  const sample = shuffle(data.train, deriveSeed(config.seed, 0x3417)).subarray(0, config.whiten)
  const first = model.layers().find((l) => l.depth === 0 && l.name !== undefined)
  if (first?.kind !== 'conv2d')
    throw new InputError('INVALID_OPTION', `option whiten: the first layer must be a conv2d to whiten, got ${first?.kind ?? 'none'}`)
  await model.initWhitening(trainData, sample, first.name!, config.whitenEps)
}

/** What multi-label training does not do yet, refused by name. */
function checkMultiLabel(config: RunConfig, worldSize: number): void {
  if (config.sampler === 'balanced')
    throw new InputError(
      'INVALID_OPTION',
      "option sampler: 'shuffle' for multi-label data (an image has several classes to balance); use classWeights",
    )
  if (worldSize > 1)
    throw new InputError(
      'INVALID_OPTION',
      'multi-label training runs in one process: its evaluation ranks every image of a split together (mAP), which ranks do not share yet',
    )
}

/**
 * Resolves the options, reads the data and builds the model. `joined` receives the data-parallel group as soon as
 * it exists, so that a failure after it leaves the group at once.
 */
export async function prepareRun(options: TrainOptions, joined: { sync?: TrainSync }): Promise<PreparedRun> {
  const previous = options.resume ? readHistory(options.resume) : undefined
  const { config, filled } = previous
    ? resumeConfig(previous.config, options, options.resume!)
    : { config: resolveConfig(options), filled: [] as string[] }
  const runDir = path.resolve(options.resume ?? config.out ?? path.join('runs', runStamp()))
  // Data-parallel: from here every rank runs train() in step; rank 0 alone writes and prints.
  const sync = (joined.sync = await TrainSync.start(config.distributed))
  if (!sync.isWriter) config.quiet = true
  const print = config.quiet ? () => {} : (line: string) => console.log(line)
  if (filled.length > 0) print(`convkit: ${runDir} was written before ${filled.join(', ')} existed; resuming with their defaults`)

  const data = await sync.rankZeroFirst(() => prepareData(options, config))
  checkMemory(data)
  if (data.dataPath) print(`convkit: ${data.dataPath}`)
  if (config.exclude !== null) print(`convkit: left out ${data.excluded} image(s) that ${config.exclude} lists`)
  // The monitor's default was chosen from valSplit; a source that brought validation rows of its own (a label file's)
  // has them to follow even with valSplit 0.
  if (options.monitor === undefined && !previous && config.valSplit === 0 && validationCount(data) > 0) config.monitor = 'val_loss'
  if (config.epochs === 'auto') {
    config.epochs = finetuneEpochs(data.trainCount)
    print(`convkit: ${config.epochs} epochs for ${data.trainCount} training images (epochs auto: about 8 000·√(n/1 000) images seen)`)
  }
  const run = config as RunConfig
  if (sync.isWriter) fs.mkdirSync(runDir, { recursive: true })
  const model = await buildModel(options, config, data, runDir, previous)
  if (data.multiLabel) {
    checkMultiLabel(run, sync.worldSize)
    // A resumed model keeps the thresholds its checkpoint holds.
    if (!model.multiLabel) model.setMultiLabel()
  }
  applyRunState(model, run)
  if (config.backboneLrScale !== 1 && !previous) applyBackboneScale(model, config)

  const modelDevice = model.device as ResolvedTrainOptions['device']
  // One native copy per distinct image set (validation and test are often held out of the training set).
  const tensors = new Map<ImageSet, TensorDataset>()
  const tensorsOf = async (set: ImageSet) =>
    tensors.get(set) ??
    tensors.set(set, await TensorDataset.create(set, { device: modelDevice, normalization: data.normalization })).get(set)!
  const trainData = await tensorsOf(data.trainSet)
  const valData = await tensorsOf(data.valSet)
  const testData = await tensorsOf(data.testSet)

  let chosen: NonNullable<HistoryFile['chosen']>
  if (previous?.chosen) chosen = previous.chosen
  else if (config.precision === 'auto') {
    const c = await choosePrecision(model.spec, trainData, data.train, {
      batchSize: config.batchSize,
      device: modelDevice,
      memoFile: probeMemoFile(config.cacheDir),
      // The step most of the run's epochs take; a one-epoch run with its body frozen trains the head alone, which
      // needs neither the body's activations kept nor their gradients.
      prepare: (probe) => applyLastEpochState(probe, run),
      workload: runWorkload(config, run.epochs, data.train.length, data.val.length, data.test.length),
    })
    chosen = { precision: c.precision, precisionReason: c.reason }
  } else chosen = { precision: config.precision, precisionReason: `${config.precision}: as asked` }
  chosen = await sync.agreePrecision(chosen)
  if (config.precision === 'auto') print(`convkit: precision ${chosen.precisionReason}`)
  model.setPrecision(chosen.precision as Precision)

  const stream = data.stream
  const batchesOf = (n: number) => (config.dropLast ? Math.floor(n / config.batchSize) : Math.ceil(n / config.batchSize))
  const limitBatches = batchesOf(sync.shardLength(data.trainCount))
  const plan = batchPlan(
    run,
    stream
      ? (epoch) =>
          Math.min(
            limitBatches,
            epochBatches(stream, {
              batchSize: config.batchSize,
              dropLast: config.dropLast,
              seed: config.seed,
              epoch,
              worldSize: sync.worldSize,
            }),
          )
      : () => limitBatches,
    data.trainCount,
  )
  if (config.whiten > 0 && !previous) await initWhitening(model, trainData, data, config)
  const augment = augmentOptions(
    config,
    [data.trainSet.shape[1], data.trainSet.shape[2]],
    [model.spec.inputShape[1], model.spec.inputShape[2]],
  )
  return { config: run, runDir, previous, sync, data, model, trainData, valData, testData, chosen, plan, augment, print }
}
