// train(): the epoch loop. Data, splits and metrics are TypeScript's; each step and evaluation is one native call.
import fs from 'node:fs'
import path from 'node:path'
import { flattenLogs, type Callback, type EpochRecord, type SplitMetrics, type TrainContext } from './callbacks/callback.ts'
import { EarlyStopping } from './callbacks/early-stopping.ts'
import { History, writeHistory, type HistoryFile } from './callbacks/history.ts'
import { ModelCheckpoint } from './callbacks/model-checkpoint.ts'
import { ReduceLROnPlateau } from './callbacks/reduce-lr-on-plateau.ts'
import { halfNormalization, type ImageSet, type Normalization } from './data/image-set.ts'
import { loadData } from './data/load-data.ts'
import { datasetNormalization } from './data/normalization.ts'
import { deriveSeed, limitIndices, range, shuffle, splitIndices } from './data/split.ts'
import { TensorDataset } from './data/tensor-dataset.ts'
import { setSeed } from './device.ts'
import { tableHeader, tableRow } from './epoch-table.ts'
import { DataError, InputError } from './errors.ts'
import type { EvalMetrics } from './metrics.ts'
import { Model, type OptimizerOptions } from './model.ts'
import { ProgressBar } from './progress.ts'
import { specForData, type ModelSpec } from './spec.ts'
import { writeRunReport, writeSamples } from './report/run-report.ts'
import { IN_MEMORY, resolveConfig, runMetrics, type TrainConfig, type TrainOptions } from './train-options.ts'

export interface TrainResult {
  runDir: string
  /** The model as training left it (with the best weights, if EarlyStopping restored them). */
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
}

const LAST = 'last.safetensors'

function timestamp(): string {
  return new Date().toISOString().replace(/[:T]/g, '-').replace(/\..*$/, '')
}

function readSpec(model: TrainOptions['model']): ModelSpec | null {
  if (model === undefined) return null
  if (typeof model !== 'string') return model
  try {
    return JSON.parse(fs.readFileSync(model, 'utf8')) as ModelSpec
  } catch (err) {
    throw new InputError('INVALID_OPTION', `option model: ${model} is not a readable JSON model spec (${(err as Error).message})`, { cause: err })
  }
}

function optimizerOptions(config: TrainConfig): OptimizerOptions {
  if (config.optimizer === 'sgd') {
    return { type: 'sgd', lr: config.lr, momentum: config.momentum, nesterov: config.nesterov, weightDecay: config.weightDecay }
  }
  return { type: config.optimizer, lr: config.lr, weightDecay: config.weightDecay }
}

function splitMetrics(m: EvalMetrics, withConfusion: boolean): SplitMetrics {
  const { count: _count, confusion, ...rest } = m
  return withConfusion ? { ...rest, confusion } : rest
}

/** Prepared data: one resident dataset per source set, and the indices of each split. */
interface Splits {
  classes: string[]
  normalization: Normalization
  trainSet: ImageSet
  testSet: ImageSet
  train: Int32Array
  val: Int32Array
  test: Int32Array
  skipped: string[]
}

async function prepareData(options: TrainOptions, config: TrainConfig, cacheDir: string | undefined): Promise<Splits> {
  const loaded =
    typeof options.data === 'string'
      ? await loadData(options.data, { size: config.size, cacheDir, skipBadImages: config.skipBadImages, quiet: options.quiet ?? false, signal: options.signal })
      : { train: options.data.train, test: options.data.test, skipped: [] as string[] }
  const trainSet = loaded.train
  let testSet = loaded.test
  let trainPool = range(trainSet.labels.length)
  let test: Int32Array
  if (!testSet) {
    // No test set: hold one out of the training data, seeded so every run (and resume) agrees.
    const split = splitIndices(trainSet.labels.length, config.testSplit, deriveSeed(config.seed, 0x7e57))
    trainPool = split.kept
    test = split.held
    testSet = trainSet
  } else {
    test = range(testSet.labels.length)
  }
  if (trainSet.classes.join('\n') !== testSet.classes.join('\n')) {
    throw new DataError('DATA_CORRUPT', `the training classes (${trainSet.classes.join(', ')}) differ from the test classes (${testSet.classes.join(', ')})`)
  }
  trainPool = limitIndices(trainPool, config.limitTrain ?? undefined, deriveSeed(config.seed, 0x1))
  test = limitIndices(test, config.limitTest ?? undefined, deriveSeed(config.seed, 0x2))
  const { kept, held } = splitIndices(trainPool.length, config.valSplit, deriveSeed(config.seed, 0x3))
  const train = kept.map((i) => trainPool[i]!)
  const val = held.map((i) => trainPool[i]!)
  if (train.length === 0) throw new DataError('DATA_EMPTY', `no training images left after limits and splits (valSplit ${config.valSplit})`)
  const normalization = config.normalize === 'dataset' ? datasetNormalization(trainSet, train) : halfNormalization(trainSet.shape[0])
  return { classes: trainSet.classes, normalization, trainSet, testSet, train, val, test, skipped: loaded.skipped ?? [] }
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
 * Trains a classifier, evaluating train, validation and test data after every epoch, with early stopping,
 * the best checkpoint, `last.safetensors` for resuming, and history.json/csv in the run directory.
 *
 * @example
 * const result = await train({ data: 'cifar10', epochs: 10 })
 * console.log(result.history.best)
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const previous = options.resume ? readHistory(options.resume) : undefined
  // A resumed run keeps its configuration; only the epoch count may be raised.
  const config: TrainConfig = previous
    ? { ...(previous.config as unknown as TrainConfig), ...(options.epochs !== undefined ? { epochs: options.epochs } : {}) }
    : resolveConfig(options)
  // In-memory data cannot be read back from history.json: a resumed in-memory run passes it again.
  const source = previous && typeof options.data !== 'object' ? { ...options, data: config.data } : options
  if (typeof source.data === 'string' && source.data === IN_MEMORY) {
    throw new InputError('INVALID_OPTION', `option data: the run in ${options.resume} trained on images in memory; pass them again as data to resume it`)
  }
  const runDir = path.resolve(options.resume ?? options.out ?? path.join('runs', timestamp()))
  const print = options.quiet ? () => {} : (line: string) => console.log(line)
  const specFromOptions = previous ? config.model : readSpec(options.model)

  const data = await prepareData(source, { ...config, model: specFromOptions }, options.cacheDir)
  const spec = specForData(specFromOptions, data.trainSet.shape, data.classes.length)
  fs.mkdirSync(runDir, { recursive: true })

  const model = previous
    ? await Model.load(path.join(runDir, LAST), { device: config.device, precision: config.precision ?? 'fp32' })
    : Model.create(spec, {
        device: config.device,
        seed: config.seed,
        optimizer: optimizerOptions(config),
        classNames: data.classes,
        normalization: data.normalization,
        precision: config.precision,
      })
  const device = model.device as TrainConfig['device']
  const trainData = await TensorDataset.create(data.trainSet, { device, normalization: data.normalization })
  const testData = data.testSet === data.trainSet ? trainData : await TensorDataset.create(data.testSet, { device, normalization: data.normalization })

  const history = new History()
  const stopper = new EarlyStopping({ monitor: config.monitor, patience: config.patience, minDelta: config.minDelta })
  const checkpoint = new ModelCheckpoint({ monitor: config.monitor, minDelta: config.minDelta })
  const builtIn: Record<string, Callback> = { history, earlyStopping: stopper, checkpoint }
  // `!= null`: runs written before lrPatience existed have no such field.
  if (config.lrPatience != null) {
    builtIn.reduceLr = new ReduceLROnPlateau({ monitor: config.monitor, patience: config.lrPatience, factor: config.lrFactor, minDelta: config.minDelta })
  }
  const callbacks: Callback[] = [...Object.values(builtIn), ...(options.callbacks ?? [])]
  const metrics = runMetrics(data.val.length > 0)
  // A resumed run continues at the rate its last epoch ended with.
  const ctx: TrainContext = { model, runDir, metrics, stopTraining: false, lr: previous?.lr ?? config.lr }
  const savedConfig = { ...config, model: spec, device }

  const historyFile = (): HistoryFile => ({
    classes: data.classes,
    config: savedConfig as unknown as Record<string, unknown>,
    epochs: history.epochs,
    best: checkpoint.bestFile ? { epoch: checkpoint.bestEpoch!, monitor: config.monitor, value: checkpoint.best!, checkpoint: checkpoint.bestFile } : null,
    stoppedEarly: ctx.stopTraining,
    stopReason: ctx.stopReason ?? null,
    resume: Object.fromEntries(Object.entries(builtIn).map(([k, cb]) => [k, cb.state?.()])),
    lr: ctx.lr,
  })

  for (const cb of callbacks) await cb.onTrainBegin?.(ctx)
  if (previous?.resume) {
    for (const [k, cb] of Object.entries(builtIn)) if (previous.resume[k] !== undefined) cb.loadState?.(previous.resume[k])
  } else {
    // Epoch 0's weights, so an interrupt before the first epoch ends still leaves a consistent `last`.
    await model.save(path.join(runDir, LAST), { metadata: { epoch: 0 } })
  }
  const firstEpoch = history.epochs.length + 1
  if (firstEpoch > config.epochs) print(`convkit: ${runDir} already has ${history.epochs.length} epochs; pass a larger epochs to continue`)

  let interrupted = false
  const onAbort = () => {
    interrupted = true
  }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  if (options.signal?.aborted) interrupted = true
  const summaryLine = `convkit: ${data.classes.length} classes; ${data.train.length} train, ${data.val.length} val, ${data.test.length} test images; ${model.paramCount.toLocaleString('en-US')} parameters on ${device}; run in ${runDir}`
  print(summaryLine)
  print(model.summary())
  if (options.report !== false && !previous) await writeSamples(runDir, data.trainSet, data.train)
  let headerShown = false

  try {
    for (let epoch = firstEpoch; epoch <= config.epochs && !interrupted && !ctx.stopTraining; epoch++) {
      const started = performance.now()
      const lr = ctx.lr
      model.setLearningRate(lr)
      // Per-epoch seeds make each epoch's shuffle, augmentation and dropout the same whether or not the run was resumed.
      setSeed(deriveSeed(config.seed, epoch, 0xd0))
      const order = shuffle(data.train, deriveSeed(config.seed, epoch))
      const batches = Math.ceil(order.length / config.batchSize)
      const bar = new ProgressBar(`${epochGauge(epoch - 1, config.epochs)} epoch ${epoch}/${config.epochs}`, {
        total: batches,
        quiet: options.quiet ?? false,
        format: (n) => n.toFixed(0),
        rateUnit: ' batch/s',
      })
      let seen = 0
      let lossSum = 0
      for (let b = 0; b < batches; b++) {
        const indices = order.subarray(b * config.batchSize, (b + 1) * config.batchSize)
        const step = await model.trainBatch(trainData, indices, config.augment ? { augmentSeed: deriveSeed(config.seed, epoch, b, 0xa9) } : {})
        seen += step.count
        lossSum += step.loss * step.count
        const elapsed = (performance.now() - started) / 1000
        bar.update(b + 1, { loss: lossSum / seen, 'img/s': (seen / elapsed).toFixed(0) })
        for (const cb of callbacks) await cb.onBatchEnd?.(b, step, ctx)
        await options.onBatchEnd?.(b, step, ctx)
        if (interrupted) break
      }
      bar.done()
      if (interrupted) break
      const trainSeconds = (performance.now() - started) / 1000
      const evalBatch = 1000
      const trainM = await model.evaluate(trainData, { indices: data.train, batchSize: evalBatch })
      const valM = data.val.length > 0 ? await model.evaluate(trainData, { indices: data.val, batchSize: evalBatch }) : undefined
      const testM = await model.evaluate(testData, { indices: data.test, batchSize: evalBatch })
      const record: EpochRecord = {
        epoch,
        seconds: (performance.now() - started) / 1000,
        lr,
        imagesPerSecond: seen / trainSeconds,
        train: splitMetrics(trainM, false),
        ...(valM ? { val: splitMetrics(valM, false) } : {}),
        test: splitMetrics(testM, true),
      }
      const logs = flattenLogs(record)
      for (const cb of callbacks) await cb.onEpochEnd?.(record, logs, ctx)
      await options.onEpochEnd?.(record, ctx)
      if (!headerShown) {
        print(tableHeader(record))
        headerShown = true
      }
      print(tableRow(record, checkpoint.bestEpoch === epoch))
      await model.save(path.join(runDir, LAST), { metadata: { epoch, ...logs } })
      await writeHistory(runDir, historyFile())
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
  }

  for (const cb of callbacks) await cb.onTrainEnd?.(ctx)
  const final = historyFile()
  if (interrupted) final.stopReason = null
  await writeHistory(runDir, final)
  if (options.report !== false && final.epochs.length > 0) {
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
  }
}
