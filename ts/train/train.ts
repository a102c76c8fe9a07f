// train(): prepare the run, run its epochs, finish it. Data, splits, schedules and metrics are TypeScript's; each
// step and evaluation is one native call. What happens around the epochs (the freeze schedule, weight averaging,
// checkpoints, printing, the report) is built-in callbacks on the public Callback API.
import path from 'node:path'
import type { Callback, HistoryFile, TrainContext } from '../callbacks/callback.ts'
import { EarlyStopping } from '../callbacks/early-stopping.ts'
import { History } from '../callbacks/history.ts'
import { LastCheckpoint } from '../callbacks/last-checkpoint.ts'
import { ModelCheckpoint } from '../callbacks/model-checkpoint.ts'
import { ProgressPrinter } from '../callbacks/progress-printer.ts'
import { ReduceLROnPlateau } from '../callbacks/reduce-lr-on-plateau.ts'
import { RunReport } from '../callbacks/run-report.ts'
import { TopLosses } from '../callbacks/top-losses.ts'
import { TensorBoard } from '../callbacks/tensorboard.ts'
import { TrainableSchedule } from '../callbacks/trainable-schedule.ts'
import { WeightAveraging } from '../callbacks/weight-averaging.ts'
import { deriveSeed } from '../data/split.ts'
import type { DistributedSummary, TrainSync } from '../distributed/train-sync.ts'
import type { Model } from '../model/model.ts'
import { classBalanceLines, classCounts, countsByName, runLoss } from './class-balance.ts'
import { runEpoch } from './epoch.ts'
import { runLearningRate } from './find-learning-rate.ts'
import { prepareRun, type PreparedRun } from './prepare.ts'
import { runMetrics, storedConfig, type TrainOptions } from './train-options.ts'
import { validationCount } from './train-data.ts'

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

/** The callbacks a run's options ask for, in the order they run. */
interface RunCallbacks {
  all: Callback[]
  /** Those whose state history.json keeps for `--resume`, by the key it is kept under. */
  resumable: Record<string, Callback>
  checkpoint: ModelCheckpoint
}

/**
 * The built-in callbacks, around the user's: the history and the ones that steer (averaging and the freeze
 * schedule first, so evaluation sees them), then the user's, then the ones that write and print what the others
 * decided. Only rank 0 writes; the other ranks keep the deciding ones, whose state drives them too.
 */
function runCallbacks(run: PreparedRun, options: TrainOptions, history: History): RunCallbacks {
  const { config, sync, data, print } = run
  const checkpoint = new ModelCheckpoint({ monitor: config.monitor, minDelta: config.minDelta })
  const resumable: Record<string, Callback> = {
    earlyStopping: new EarlyStopping({ monitor: config.monitor, patience: config.patience, minDelta: config.minDelta }),
    ...(sync.isWriter ? { checkpoint } : {}),
    ...(config.lrPatience !== null
      ? {
          reduceLr: new ReduceLROnPlateau({
            monitor: config.monitor,
            patience: config.lrPatience,
            factor: config.lrFactor,
            minDelta: config.minDelta,
          }),
        }
      : {}),
  }
  const report =
    options.report !== false && config.report && sync.isWriter
      ? new RunReport({ trainImages: { set: data.trainSet, indices: data.train }, print })
      : null
  const tensorboard = config.tensorboard !== null && sync.isWriter ? new TensorBoard({ logDir: config.tensorboard }) : null
  if (tensorboard) resumable.tensorboard = tensorboard
  const steering: Callback[] = [
    ...(config.averaging !== 'none'
      ? [
          new WeightAveraging({
            mode: config.averaging,
            decay: config.averagingDecay,
            every: config.averagingEvery,
            warmup: config.averagingWarmup,
          }),
        ]
      : []),
    ...(config.freezeEpochs > 0 || config.trainableSpans.length > 0
      ? [new TrainableSchedule({ freezeEpochs: config.freezeEpochs, spans: config.trainableSpans })]
      : []),
  ]
  const all: Callback[] = [history, ...steering, ...Object.values(resumable), ...(options.callbacks ?? [])]
  // Last, so that they write and print the weights and state the others leave (EarlyStopping's restored best).
  if (sync.isWriter)
    all.push(
      // Before LastCheckpoint, which writes history.json with what it finds.
      ...(report && !run.data.multiLabel ? [new TopLosses()] : []),
      new LastCheckpoint(),
      ...(report ? [report] : []),
      new ProgressPrinter({ print, quiet: config.quiet, bestEpoch: () => checkpoint.bestEpoch }),
    )
  return { all, resumable, checkpoint }
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
    return await trainPrepared(await prepareRun(options, joined), options)
  } catch (err) {
    // A rank that fails leaves its group at once, so the others fail fast naming it instead of waiting.
    joined.sync?.finish()
    throw err
  }
}

/**
 * The class counts of each split and the class weights `classWeights` gives, for history.json and the console; sets
 * the model's whole training loss, a resumed model's too (its checkpoint does not keep the loss).
 */
function applyClassBalance(run: PreparedRun): { recorded: Pick<HistoryFile, 'classCounts' | 'classWeights'>; lines: string[] } {
  const { config, data, model } = run
  const k = data.classes.length
  const { loss, trainCounts, weights } = runLoss(config, data)
  const counts = { train: trainCounts, val: classCounts(data.valSet, data.val, k), test: classCounts(data.testSet, data.test, k) }
  // Streamed, the training images in memory are a sample of the shards: its frequencies stand for theirs.
  const trainSampled = data.stream !== null
  model.setLoss(loss)
  const byName = (c: number[]) => countsByName(c, data.classes)
  return {
    recorded: {
      classCounts: {
        train: byName(counts.train),
        val: byName(counts.val),
        test: byName(counts.test),
        ...(trainSampled ? { trainSampled } : {}),
      },
      ...(weights ? { classWeights: byName(weights) } : {}),
    },
    lines: classBalanceLines(counts, data.classes, { trainSampled, weights, rule: config.classWeights }),
  }
}

async function trainPrepared(run: PreparedRun, options: TrainOptions): Promise<TrainResult> {
  const { config, runDir, previous, sync, data, model, plan, chosen, print } = run
  const balance = applyClassBalance(run)
  // With `lr: 'find'`, a sweep on a copy of the model, trained as the first epoch will train it, picks the rate.
  const lr = await runLearningRate(run, options.signal)
  const history = new History()
  const { all: callbacks, resumable, checkpoint } = runCallbacks(run, options, history)
  const savedConfig = { ...storedConfig(config), model: model.spec, device: model.device }
  const ctx: TrainContext = {
    model,
    runDir,
    metrics: runMetrics(validationCount(data) > 0, data.multiLabel),
    stopTraining: false,
    // A resumed run continues at the rate its last epoch ended with.
    lr,
    classNames: data.classes,
    epoch: 0,
    epochs: plan.length,
    batches: 0,
    totalSteps: plan.reduce((a, b) => a + b, 0),
    worldSize: sync.worldSize,
    resumed: previous !== undefined,
    interrupted: false,
    reportImages: { set: data.testSet, indices: data.test },
    history: () => ({
      classes: data.classes,
      config: savedConfig as unknown as Record<string, unknown>,
      epochs: history.epochs,
      best: checkpoint.bestFile
        ? { epoch: checkpoint.bestEpoch!, monitor: config.monitor, value: checkpoint.best!, checkpoint: checkpoint.bestFile }
        : null,
      stoppedEarly: ctx.stopTraining,
      // An interrupted run has not stopped for a reason of its own: `--resume` continues it.
      stopReason: ctx.interrupted ? null : (ctx.stopReason ?? null),
      resume: Object.fromEntries(Object.entries(resumable).map(([k, cb]) => [k, cb.state?.()])),
      lr: ctx.lr,
      chosen,
      ...balance.recorded,
      ...(ctx.interpretation ? { interpretation: ctx.interpretation } : {}),
    }),
  }

  await sync.attach(model, { bucketMb: config.bucketMb, syncBatchNorm: config.syncBatchNorm })
  print(
    `convkit: ${data.classes.length} classes; ${data.trainCount} train${data.stream ? ' (streamed)' : ''}, ${validationCount(data)} val${data.valStream ? ' (streamed)' : ''}, ${data.test.length} test images; ` +
      `${model.paramCount.toLocaleString('en-US')} parameters on ${model.device} (${chosen.precision}); run in ${runDir}`,
  )
  for (const line of balance.lines) print(line)
  for (const cb of callbacks) cb.reset?.()
  for (const cb of callbacks) await cb.onTrainBegin?.(ctx)
  if (previous) {
    history.loadState(previous.epochs)
    for (const [k, cb] of Object.entries(resumable)) if (previous.resume?.[k] !== undefined) cb.loadState?.(previous.resume[k])
  }
  const firstEpoch = history.epochs.length + 1
  if (firstEpoch > plan.length) print(`convkit: ${runDir} already has ${history.epochs.length} epochs; pass a larger epochs to continue`)

  // With a group, an interrupt is only this rank's vote: the ranks stop together at the next step or epoch end.
  let abortAsked = false
  const onAbort = () => {
    if (sync.ask()) abortAsked = true
  }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  if (options.signal?.aborted) onAbort()
  const loop = { run, ctx, callbacks, options, runSeed: deriveSeed(config.seed, 0xf1), interrupted: () => abortAsked }
  try {
    ctx.interrupted = abortAsked
    for (let epoch = firstEpoch; epoch <= plan.length && !ctx.interrupted && !ctx.stopTraining; epoch++) await runEpoch(loop, epoch)
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    sync.finish(model)
  }
  return finishRun(run, ctx, callbacks)
}

/** train()'s last phase: the callbacks' onTrainEnd (averaged weights copied in, history and report written), the outcome. */
async function finishRun(run: PreparedRun, ctx: TrainContext, callbacks: readonly Callback[]): Promise<TrainResult> {
  for (const cb of callbacks) await cb.onTrainEnd?.(ctx)
  const distributed = run.sync.summary()
  if (distributed) {
    const { worldSize, allreduceSecondsPerStep: ar, stepSecondsPerStep: step } = distributed
    run.print(
      `convkit: ${worldSize} ranks; averaging the gradients took ${(1000 * ar).toFixed(1)} ms per step, ${((100 * ar) / step).toFixed(1)} % of the step's ${(1000 * step).toFixed(1)} ms`,
    )
  }
  const final = ctx.history()
  return {
    runDir: run.runDir,
    model: ctx.model,
    history: final,
    bestCheckpoint: final.best ? path.join(run.runDir, final.best.checkpoint) : null,
    stoppedEarly: ctx.stopTraining,
    stopReason: ctx.stopReason ?? null,
    interrupted: ctx.interrupted,
    skipped: run.data.skipped,
    distributed,
  }
}
