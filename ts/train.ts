// train(): the epoch loop. Data, splits, schedules and metrics are TypeScript's; each step and evaluation is one
// native call.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { flattenLogs, type Callback, type EpochRecord, type SplitMetrics, type TrainContext } from './callbacks/callback.ts'
import { EarlyStopping } from './callbacks/early-stopping.ts'
import { History, writeHistory, type HistoryFile } from './callbacks/history.ts'
import { ModelCheckpoint } from './callbacks/model-checkpoint.ts'
import { ReduceLROnPlateau } from './callbacks/reduce-lr-on-plateau.ts'
import { TensorBoard } from './callbacks/tensorboard.ts'
import type { ImageSet } from './data/image-set.ts'
import { epochBatches, openShards } from './data/shards/shard-stream.ts'
import { streamedSteps, type TrainedBatch } from './data/shards/stream-train.ts'
import { deriveSeed, shuffle } from './data/split.ts'
import { TensorDataset } from './data/tensor-dataset.ts'
import { setSeed } from './device.ts'
import { TrainSync, type DistributedSummary } from './distributed/train-sync.ts'
import { tableHeader, tableRow } from './epoch-table.ts'
import { DataError, InputError } from './errors.ts'
import { percent, type EvalMetrics } from './metrics.ts'
import { Model, type AugmentOptions, type ModelOptions, type OptimizerOptions, type Precision, type StepOptions } from './model.ts'
import { choosePrecision } from './precision.ts'
import { ProgressBar } from './progress.ts'
import { lrMultiplier } from './schedule.ts'
import { specForData } from './spec.ts'
import { createPretrained } from './pretrained.ts'
import { pretrainedWeights } from './zoo/weights.ts'
import { samplesPng, writeRunReport } from './report/run-report.ts'
import { writeFileAtomic } from './atomic-write.ts'
import { RunningMetrics } from './running-metrics.ts'
import { checkMemory, prepareData } from './train-data.ts'
import { resolveConfig, resumeConfig, runMetrics, storedConfig, type ResolvedTrainOptions, type TrainOptions } from './train-options.ts'

export interface TrainResult {
  runDir: string
  /** The model as training left it (with the averaged weights, or the best ones if EarlyStopping restored them). */
  model: Model
  history: HistoryFile
  /** The best checkpoint's path. */
  bestCheckpoint: string | null
  stoppedEarly: boolean
  stopReason: string | null
  /** True when the signal stopped the run; `--resume` continues it. */
  interrupted: boolean
  /** Files skipped as unreadable (with skipBadImages). */
  skipped: string[]
  /** A data-parallel run's rank, world size and all-reduce timings; null for one process. */
  distributed: DistributedSummary | null
}

const LAST = 'last.safetensors'

function timestamp(): string {
  return new Date().toISOString().replace(/[:T]/g, '-').replace(/\..*$/, '')
}

function optimizerOptions(config: ResolvedTrainOptions): OptimizerOptions {
  if (config.optimizer === 'sgd') {
    return { type: 'sgd', lr: config.lr, momentum: config.momentum, nesterov: config.nesterov, weightDecay: config.weightDecay }
  }
  return { type: config.optimizer, lr: config.lr, weightDecay: config.weightDecay }
}

function augmentOptions(config: ResolvedTrainOptions, stored: [number, number], input: [number, number]): AugmentOptions | undefined {
  const aug: AugmentOptions = { cropPadding: config.cropPadding, padMode: config.padMode, flip: config.flip, cutout: config.cutout }
  if (config.resizedCrop) aug.resizedCrop = { scale: config.resizedCrop, ratio: [3 / 4, 4 / 3] }
  // Images stored larger than the input are cropped at random while training (and centred when evaluating).
  const larger = stored[0] > input[0] || stored[1] > input[1]
  return larger || config.resizedCrop || config.cropPadding > 0 || config.flip !== 'none' || config.cutout > 0 ? aug : undefined
}

/** `evalInputSize`, checked against the stored images `[C, H, W]` it is a centre crop of. */
function checkEvalInputSize(size: [number, number], stored: readonly number[]): [number, number] {
  if (size[0] > stored[1]! || size[1] > stored[2]!) {
    throw new InputError('INVALID_OPTION', `option evalInputSize: ${size[0]}x${size[1]} is larger than the stored images (${stored[1]}x${stored[2]}, size); store them at least that large`)
  }
  return size
}

/** The tensor prefix of a spec's classifier: its last linear layer, wherever it sits. */
function classifierOf(model: Model): string {
  const head = model.layers().filter((l) => l.kind === 'linear').at(-1)?.name
  if (!head) throw new InputError('INVALID_OPTION', 'option freezeEpochs: the model has no linear layer to keep training while its body is frozen')
  return head
}

function splitMetrics(m: EvalMetrics, withConfusion: boolean): SplitMetrics {
  const { count: _count, confusion, ...rest } = m
  return withConfusion ? { ...rest, confusion } : rest
}

/**
 * The training steps of one resident epoch: batch `b` is `order`'s b-th slice, trained with `optionsOf(b)`,
 * pipelined (`Model.trainBatches`: the next step is queued on the device before this one's report is read).
 */
async function* residentSteps(model: Model, data: TensorDataset, order: Int32Array, batches: number, batchSize: number, optionsOf: (batch: number) => StepOptions): AsyncGenerator<TrainedBatch> {
  const slice = (b: number) => order.subarray(b * batchSize, (b + 1) * batchSize)
  function* plan() {
    for (let b = 0; b < batches; b++) yield { indices: slice(b), options: optionsOf(b) }
  }
  let b = 0
  for await (const step of model.trainBatches(data, plan())) {
    yield { step, labels: slice(b++).map((i) => data.labels[i]!) }
  }
}

/** The overall bar in front of each epoch's bar: how many epochs of the run are done. */
function epochGauge(done: number, total: number, width = 10): string {
  const filled = Math.round((done / total) * width)
  return `[${'='.repeat(filled)}${' '.repeat(width - filled)}]`
}

function readHistory(runDir: string): HistoryFile {
  const file = path.join(runDir, 'history.json')
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as HistoryFile
  } catch (err) {
    throw new InputError('INVALID_OPTION', `option resume: ${file} is missing or not valid JSON; expected a run directory written by train()`, { cause: err })
  }
}

/**
 * How many batches each epoch runs: `batchesOf(epoch)` of this rank (streamed shards may give each epoch its own
 * count), capped by `limitTrain`; a fractional `epochs` ends the last one early (rounding up).
 */
function batchPlan(config: ResolvedTrainOptions, batchesOf: (epoch: number) => number, images: number): number[] {
  const epochs = Math.ceil(config.epochs - 1e-9)
  const plan = Array.from({ length: epochs }, (_, i) => batchesOf(i + 1))
  if (plan.some((n) => n === 0)) throw new DataError('DATA_EMPTY', `${images} training images make no full batch of ${config.batchSize} (dropLast)`)
  const rest = config.epochs - Math.floor(config.epochs)
  if (rest > 1e-9) plan[epochs - 1] = Math.ceil(rest * plan[epochs - 1]!)
  return plan
}

/**
 * Trains a classifier, evaluating validation and test data after every epoch, with early stopping, the best
 * checkpoint, `last.safetensors` for resuming, and history.json/csv in the run directory.
 *
 * @example
 * const result = await train({ data: 'cifar10', epochs: 10 })
 * console.log(result.history.best)
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const joined: { sync?: TrainSync } = {}
  try {
    return await run(options, joined)
  } catch (err) {
    // A rank that fails leaves its group at once, so the others fail fast naming it instead of waiting.
    joined.sync?.finish()
    throw err
  }
}

async function run(options: TrainOptions, joined: { sync?: TrainSync }): Promise<TrainResult> {
  const previous = options.resume ? readHistory(options.resume) : undefined
  const { config, filled } = previous ? resumeConfig(previous.config, options, options.resume!) : { config: resolveConfig(options), filled: [] as string[] }
  const runDir = path.resolve(options.resume ?? config.out ?? path.join('runs', timestamp()))
  // Data-parallel: from here every rank runs this function in step; rank 0 alone writes and prints.
  const sync = (joined.sync = await TrainSync.start(config.distributed))
  if (!sync.isWriter) config.quiet = true
  const print = config.quiet ? () => {} : (line: string) => console.log(line)
  if (filled.length > 0) print(`convkit: ${runDir} was written before ${filled.join(', ')} existed; resuming with their defaults`)

  const data = await sync.rankZeroFirst(() => prepareData(options, config))
  checkMemory(data)
  if (data.dataPath) print(`convkit: ${data.dataPath}`)
  if (sync.isWriter) fs.mkdirSync(runDir, { recursive: true })
  const device = config.device
  const modelOptions: ModelOptions = {
    device,
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
    preprocessing: { resize: [data.trainSet.shape[1], data.trainSet.shape[2]] },
    ...(config.evalInputSize ? { evalInputSize: checkEvalInputSize(config.evalInputSize, data.trainSet.shape) } : {}),
  }
  const inputSize = config.inputSize ?? (config.pretrained ? [...(pretrainedWeights(config.pretrained)?.preprocessing.inputSize ?? data.trainSet.shape.slice(1))] as [number, number] : null)
  let model: Model
  if (previous) {
    model = await Model.load(path.join(runDir, LAST), { device, forTraining: true })
    // A run from before these were recorded predicts as its data is read now.
    model.preprocessing = modelOptions.preprocessing
    model.setEvalInputSize(modelOptions.evalInputSize ?? null)
  } else if (config.pretrained) {
    const architecture = typeof config.model === 'function' ? config.model({ classes: data.classes.length, shape: data.trainSet.shape }) : config.model
    const created = await createPretrained(architecture, { ...modelOptions, pretrained: config.pretrained, inputSize: inputSize ?? undefined, cacheDir: config.cacheDir ?? undefined, quiet: config.quiet, signal: options.signal }, (s, o) =>
      Model.create(specForData(s, data.trainSet.shape, data.classes.length), o),
    )
    model = created.model
  } else {
    const spec = specForData(config.model, data.trainSet.shape, data.classes.length, inputSize)
    model = Model.create(spec, modelOptions)
  }
  model.setFrozenBatchNormStatistics(config.batchNormStatistics === 'frozen')
  // Discriminative rates: the body trains at backboneLrScale of the classifier's rate (after the user's groups).
  if (config.backboneLrScale !== 1 && !previous) {
    const classifier = classifierOf(model)
    model.setParamGroups([...config.paramGroups, { names: `${classifier}.*`, lrScale: 1 }, { names: '*', lrScale: config.backboneLrScale }])
  }
  const modelDevice = model.device as ResolvedTrainOptions['device']
  // One native copy per distinct image set (validation and test are often held out of the training set).
  const tensors = new Map<ImageSet, TensorDataset>()
  const tensorsOf = async (set: ImageSet) => tensors.get(set) ?? tensors.set(set, await TensorDataset.create(set, { device: modelDevice, normalization: data.normalization })).get(set)!
  const trainData = await tensorsOf(data.trainSet)
  const valData = await tensorsOf(data.valSet)
  const testData = await tensorsOf(data.testSet)

  let chosen: { precision: string; precisionReason: string }
  if (previous?.chosen) chosen = previous.chosen
  else if (config.precision === 'auto') {
    const c = await choosePrecision(model.spec, trainData, data.train, config.batchSize, modelDevice)
    chosen = { precision: c.precision, precisionReason: c.reason }
  } else chosen = { precision: config.precision, precisionReason: `${config.precision}: as asked` }
  chosen = await sync.agreePrecision(chosen)
  if (config.precision === 'auto') print(`convkit: precision ${chosen.precisionReason}`)
  model.setPrecision(chosen.precision as Precision)

  const history = new History()
  const stopper = new EarlyStopping({ monitor: config.monitor, patience: config.patience, minDelta: config.minDelta })
  const checkpoint = new ModelCheckpoint({ monitor: config.monitor, minDelta: config.minDelta })
  const builtIn: Record<string, Callback> = { earlyStopping: stopper, checkpoint }
  if (config.lrPatience !== null) {
    builtIn.reduceLr = new ReduceLROnPlateau({ monitor: config.monitor, patience: config.lrPatience, factor: config.lrFactor, minDelta: config.minDelta })
  }
  if (config.tensorboard !== null && sync.isWriter) builtIn.tensorboard = new TensorBoard({ logDir: config.tensorboard })
  // Only rank 0 writes checkpoints; the other ranks keep the rest, whose state drives their decisions.
  const callbacks: Callback[] = [history, ...Object.values(builtIn).filter((cb) => sync.isWriter || cb !== checkpoint), ...(options.callbacks ?? [])]
  const metrics = runMetrics(data.val.length > 0)
  const stream = data.stream
  const batchesOf = (n: number) => (config.dropLast ? Math.floor(n / config.batchSize) : Math.ceil(n / config.batchSize))
  const limitBatches = batchesOf(sync.shardLength(data.trainCount))
  const plan = batchPlan(
    config,
    stream ? (epoch) => Math.min(limitBatches, epochBatches(stream, { batchSize: config.batchSize, dropLast: config.dropLast, seed: config.seed, epoch, worldSize: sync.worldSize })) : () => limitBatches,
    data.trainCount,
  )
  const totalSteps = plan.reduce((a, b) => a + b, 0)
  // A resumed run continues at the rate its last epoch ended with.
  const ctx: TrainContext = { model, runDir, metrics, stopTraining: false, lr: previous?.lr ?? config.lr, classNames: data.classes }
  const savedConfig = { ...storedConfig(config), model: model.spec, device: modelDevice }
  const augment = augmentOptions(config, [data.trainSet.shape[1], data.trainSet.shape[2]], [model.spec.inputShape[1], model.spec.inputShape[2]])
  const head = config.freezeEpochs > 0 ? classifierOf(model) : null
  const runSeed = deriveSeed(config.seed, 0xf1)
  if (config.whiten > 0 && !previous) {
    // A seeded, class-mixed sample: image folders list their files class by class.
    const sample = shuffle(data.train, deriveSeed(config.seed, 0x3417)).subarray(0, config.whiten)
    const first = model.layers().find((l) => l.depth === 0 && l.name !== undefined)
    if (first?.kind !== 'conv2d') throw new InputError('INVALID_OPTION', `option whiten: the first layer must be a conv2d to whiten, got ${first?.kind ?? 'none'}`)
    await model.initWhitening(trainData, sample, first.name!, config.whitenEps)
  }
  const applySpans = (epoch: number) => {
    // Fine-tuning: the body stays frozen (batch norm statistics too) for the first epochs while the classifier trains.
    if (head !== null && epoch <= config.freezeEpochs + 1) {
      model.setTrainable(['*'], epoch > config.freezeEpochs)
      model.setTrainable([`${head}.*`], true)
    }
    for (const span of config.trainableSpans) {
      model.setTrainable([span.names], epoch >= (span.from ?? 1) && epoch <= (span.until ?? Infinity))
    }
  }
  if (config.averaging !== 'none') {
    model.setAveraging({ mode: config.averaging, decay: config.averagingDecay, every: config.averagingEvery, warmup: config.averagingWarmup, totalSteps })
  }

  const historyFile = (): HistoryFile => ({
    classes: data.classes,
    config: savedConfig as unknown as Record<string, unknown>,
    epochs: history.epochs,
    best: checkpoint.bestFile ? { epoch: checkpoint.bestEpoch!, monitor: config.monitor, value: checkpoint.best!, checkpoint: checkpoint.bestFile } : null,
    stoppedEarly: ctx.stopTraining,
    stopReason: ctx.stopReason ?? null,
    resume: Object.fromEntries(Object.entries(builtIn).map(([k, cb]) => [k, cb.state?.()])),
    lr: ctx.lr,
    chosen,
  })

  await sync.attach(model, { bucketMb: config.bucketMb, syncBatchNorm: config.syncBatchNorm })
  if (options.report !== false && config.report && !previous && sync.isWriter) {
    ctx.samplesPng = await samplesPng(data.trainSet, data.train)
    await writeFileAtomic(path.join(runDir, 'samples.png'), ctx.samplesPng)
  }
  for (const cb of callbacks) cb.reset?.()
  for (const cb of callbacks) await cb.onTrainBegin?.(ctx)
  if (previous) {
    history.loadState(previous.epochs)
    for (const [k, cb] of Object.entries(builtIn)) if (previous.resume?.[k] !== undefined) cb.loadState?.(previous.resume[k])
  } else if (sync.isWriter) {
    // Epoch 0's weights, so an interrupt before the first epoch ends still leaves a consistent `last`.
    await model.save(path.join(runDir, LAST), { metadata: { epoch: 0 } })
  }
  const firstEpoch = history.epochs.length + 1
  if (firstEpoch > plan.length) print(`convkit: ${runDir} already has ${history.epochs.length} epochs; pass a larger epochs to continue`)

  let interrupted = false
  // With a group, an interrupt is only this rank's vote: the ranks stop together at the next step or epoch end.
  const onAbort = () => {
    if (sync.ask()) interrupted = true
  }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  if (options.signal?.aborted) onAbort()
  print(
    `convkit: ${data.classes.length} classes; ${data.trainCount} train${stream ? ' (streamed)' : ''}, ${data.val.length} val, ${data.test.length} test images; ` +
      `${model.paramCount.toLocaleString('en-US')} parameters on ${modelDevice} (${chosen.precision}); run in ${runDir}`,
  )
  print(model.summary())
  let headerShown = ''
  // Evaluation batches of about 4 M input pixels: 1000 CIFAR images, 83 at 224×224, whose activations then stay
  // within a few hundred MB instead of several GB.
  const [inH, inW] = model.evalInputSize
  const evalBatch = Math.max(16, Math.min(1000, Math.floor(2 ** 22 / (inH * inW))))
  const evaluate = (set: TensorDataset, indices: Int32Array) => model.evaluate(set, { ...sync.evaluation(indices), batchSize: evalBatch, tta: config.tta, averaged: config.averaging === 'ema' })

  try {
    for (let epoch = firstEpoch; epoch <= plan.length && !interrupted && !ctx.stopTraining; epoch++) {
      const started = performance.now()
      const baseLr = ctx.lr
      applySpans(epoch)
      // Per-epoch seeds make each epoch's shuffle, augmentation and dropout the same whether or not the run was resumed.
      setSeed(sync.seed(deriveSeed(config.seed, epoch, 0xd0)))
      const batches = plan[epoch - 1]!
      const stepsBefore = plan.slice(0, epoch - 1).reduce((a, b) => a + b, 0)
      const bar = new ProgressBar(`${epochGauge(epoch - 1, plan.length)} epoch ${epoch}/${plan.length}`, { total: batches, quiet: config.quiet, format: (n) => n.toFixed(0), rateUnit: ' batch/s' })
      const running = new RunningMetrics(data.classes)
      let seen = 0
      let lastLr = baseLr
      const stepOptions = (b: number): StepOptions => {
        lastLr = baseLr * lrMultiplier(config, stepsBefore + b, totalSteps)
        return { lr: lastLr, augment, batchSeed: sync.seed(deriveSeed(config.seed, epoch, b, 0xa9)), runSeed, epoch, stop: sync.asked }
      }
      const steps = stream
        ? streamedSteps(model, await openShards(stream, {
            size: config.size,
            channels: data.trainSet.shape[0] === 1 ? 1 : 3,
            batchSize: config.batchSize,
            seed: config.seed,
            epoch,
            rank: sync.rank,
            worldSize: sync.worldSize,
            dropLast: config.dropLast,
            maxBatches: batches,
            skipBadImages: config.skipBadImages,
          }), stepOptions)
        : residentSteps(model, trainData, sync.shard(shuffle(data.train, deriveSeed(config.seed, epoch))), batches, config.batchSize, stepOptions)
      let b = 0
      for await (const { step, labels } of steps) {
        running.add(step, labels)
        seen += step.count
        const elapsed = (performance.now() - started) / 1000
        bar.update(b + 1, { loss: running.metrics().loss, 'img/s': ((seen * sync.worldSize) / elapsed).toFixed(0) })
        for (const cb of callbacks) await cb.onBatchEnd?.(b, step, ctx)
        await options.onBatchEnd?.(b, step, ctx)
        interrupted = sync.afterStep(step, interrupted)
        b++
        if (interrupted) break
      }
      bar.done()
      if (interrupted) break
      const trainSeconds = (performance.now() - started) / 1000
      await sync.beforeEvaluation(model)
      const trainM = config.trainMetrics === 'full' ? splitMetrics(await evaluate(trainData, data.train), false) : (await sync.sumRunning(running)).metrics()
      const valM = data.val.length > 0 ? await evaluate(valData, data.val) : undefined
      const lastEpoch = epoch === plan.length
      const testNow = config.testEvery > 0 ? epoch % config.testEvery === 0 || lastEpoch : lastEpoch
      const testM = testNow ? await evaluate(testData, data.test) : undefined
      const record: EpochRecord = {
        epoch,
        seconds: (performance.now() - started) / 1000,
        lr: config.schedule === 'constant' && config.warmup === 0 ? baseLr : lastLr,
        imagesPerSecond: (seen * sync.worldSize) / trainSeconds,
        train: trainM,
        ...(valM ? { val: splitMetrics(valM, false) } : {}),
        ...(testM ? { test: splitMetrics(testM, true) } : {}),
      }
      const logs = flattenLogs(record)
      for (const cb of callbacks) await cb.onEpochEnd?.(record, logs, ctx)
      await options.onEpochEnd?.(record, ctx)
      interrupted = await sync.endEpoch(ctx, interrupted)
      const header = tableHeader(record)
      if (header !== headerShown) {
        print(header)
        headerShown = header
      }
      print(tableRow(record, checkpoint.bestEpoch === epoch))
      if (sync.isWriter) {
        await model.save(path.join(runDir, LAST), { metadata: { epoch, ...logs } })
        await writeHistory(runDir, historyFile())
      }
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    sync.finish(model)
  }

  // The averaged weights are the ones evaluated each epoch: the run ends with them (last.safetensors keeps the raw
  // weights and the average beside them, for --resume).
  if (config.averaging !== 'none' && !interrupted) await model.finishAveraging()
  for (const cb of callbacks) await cb.onTrainEnd?.(ctx)
  model = ctx.model
  const final = historyFile()
  if (interrupted) final.stopReason = null
  if (sync.isWriter) await writeHistory(runDir, final)
  const distributed = sync.summary()
  if (distributed) {
    const { worldSize, allreduceSecondsPerStep: ar, stepSecondsPerStep: step } = distributed
    print(`convkit: ${worldSize} ranks; averaging the gradients took ${(1000 * ar).toFixed(1)} ms per step, ${((100 * ar) / step).toFixed(1)} % of the step's ${(1000 * step).toFixed(1)} ms`)
  }
  if (options.report !== false && config.report && final.epochs.length > 0 && sync.isWriter) {
    try {
      await writeRunReport(runDir, final, model, data.testSet, data.test)
      print(`convkit: plots in ${path.join(runDir, 'plots')}, report in ${path.join(runDir, 'report.html')}`)
    } catch (err) {
      // The run itself is on disk already; a report that cannot be drawn must not hide it.
      console.error(`convkit: could not write the plots or report: ${(err as Error).message}`)
    }
  }
  if (ctx.stopTraining) print(`convkit: stopped early: ${ctx.stopReason}`)
  if (final.best) print(`convkit: best epoch ${final.best.epoch} (${final.best.monitor} ${final.best.value.toFixed(4)}): ${path.join(runDir, final.best.checkpoint)}`)
  return {
    runDir,
    model,
    history: final,
    bestCheckpoint: final.best ? path.join(runDir, final.best.checkpoint) : null,
    stoppedEarly: ctx.stopTraining,
    stopReason: ctx.stopReason ?? null,
    interrupted,
    skipped: data.skipped,
    distributed,
  }
}

