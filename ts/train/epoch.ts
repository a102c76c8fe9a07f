// train()'s second phase, one epoch at a time: the training steps (resident or streamed), then evaluation of the
// splits the epoch scores, as one EpochRecord. Callbacks see every step and the record.
import type { Callback, EpochRecord, SplitMetrics, TrainContext } from '../callbacks/callback.ts'
import { flattenLogs } from '../callbacks/callback.ts'
import { evaluateShards } from '../data/shards/stream-evaluate.ts'
import { openShards, type ShardSet } from '../data/shards/shard-stream.ts'
import { streamedSteps, type TrainedBatch } from '../data/shards/stream-train.ts'
import { deriveSeed } from '../data/split.ts'
import type { TensorDataset } from '../data/tensor-dataset.ts'
import type { EvalMetrics } from '../model/metrics.ts'
import type { Model, StepOptions } from '../model/model.ts'
import { setSeed } from '../util/device.ts'
import { releaseCachedBlocks } from '../util/memory.ts'
import type { PreparedRun } from './prepare.ts'
import { epochOrder } from './class-balance.ts'
import { RunningMetrics } from './running-metrics.ts'
import { lrMultiplier } from './schedule.ts'
import type { TrainOptions } from './train-options.ts'

/** What runs each epoch, fixed for the whole run. */
export interface EpochLoop {
  run: PreparedRun
  ctx: TrainContext
  callbacks: readonly Callback[]
  options: Pick<TrainOptions, 'onBatchEnd' | 'onEpochEnd'>
  /** Seeds each image's alternating flip for the whole run. */
  runSeed: number
  /** Set by an interrupt: the epoch stops after the step running now. */
  interrupted: () => boolean
}

function splitMetrics(m: EvalMetrics, withConfusion: boolean): SplitMetrics {
  const { count: _count, confusion, ...rest } = m
  return withConfusion ? { ...rest, confusion } : rest
}

/**
 * The training steps of one resident epoch: batch `b` is `order`'s b-th slice, trained with `optionsOf(b)`,
 * pipelined (`Model.trainBatches`: the next step is queued on the device before this one's report is read).
 */
async function* residentSteps(
  model: Model,
  data: TensorDataset,
  order: Int32Array,
  batches: number,
  batchSize: number,
  optionsOf: (batch: number) => StepOptions,
): AsyncGenerator<TrainedBatch> {
  const slice = (b: number) => order.subarray(b * batchSize, (b + 1) * batchSize)
  function* plan() {
    for (let b = 0; b < batches; b++) yield { indices: slice(b), options: optionsOf(b) }
  }
  let b = 0
  for await (const step of model.trainBatches(data, plan())) {
    yield { step, labels: slice(b++).map((i) => data.labels[i]!) }
  }
}

/**
 * Evaluation batches of about 1 M input pixels: 1000 CIFAR images, 20 at 224×224. Larger batches were no faster and
 * held far more (600 Lite0 images at 224 with mirror TTA on 2 cores: 3.9 s and a 2.6 GB peak at 83 a batch, 3.3 s and
 * 1.5 GB at 20).
 */
function evaluationBatch(model: Model): number {
  const [inH, inW] = model.evalInputSize
  return Math.max(16, Math.min(1000, Math.floor(2 ** 20 / (inH * inW))))
}

/**
 * Trains epoch `epoch` and evaluates it. Returns its record, or null when an interrupt cut it short (a resumed run
 * runs it again from its start).
 */
export async function runEpoch(loop: EpochLoop, epoch: number): Promise<EpochRecord | null> {
  const { run, ctx, callbacks, options } = loop
  const { config, sync, data, model, plan } = run
  const started = performance.now()
  const baseLr = ctx.lr
  const batches = plan[epoch - 1]!
  ctx.epoch = epoch
  ctx.batches = batches
  for (const cb of callbacks) await cb.onEpochBegin?.(epoch, ctx)
  // Per-epoch seeds make each epoch's shuffle, augmentation and dropout the same whether or not the run was resumed.
  setSeed(sync.seed(deriveSeed(config.seed, epoch, 0xd0)))
  const stepsBefore = plan.slice(0, epoch - 1).reduce((a, b) => a + b, 0)
  const running = new RunningMetrics(data.classes)
  let seen = 0
  let lastLr = baseLr
  const stepOptions = (b: number): StepOptions => {
    lastLr = baseLr * lrMultiplier(config, stepsBefore + b, ctx.totalSteps)
    return {
      lr: lastLr,
      augment: run.augment,
      batchSeed: sync.seed(deriveSeed(config.seed, epoch, b, 0xa9)),
      runSeed: loop.runSeed,
      epoch,
      stop: sync.asked,
      // Accumulation: every `accumulate`-th batch updates, and the epoch's last one with whatever is left.
      ...(config.accumulate > 1 ? { microBatches: config.accumulate, update: (b + 1) % config.accumulate === 0 || b === batches - 1 } : {}),
    }
  }
  const stream = data.stream
  /** The channels shards decode to (streamed training and validation). */
  const channels = data.trainSet.shape[0] === 1 ? 1 : 3
  const steps = stream
    ? streamedSteps(
        model,
        await openShards(stream, {
          size: config.size,
          channels,
          batchSize: config.batchSize,
          seed: config.seed,
          epoch,
          rank: sync.rank,
          worldSize: sync.worldSize,
          dropLast: config.dropLast,
          maxBatches: batches,
          skipBadImages: config.skipBadImages,
        }),
        stepOptions,
      )
    : residentSteps(
        model,
        run.trainData,
        sync.shard(epochOrder(config.sampler, data.train, data.trainSet.labels, config.seed, epoch)),
        batches,
        config.batchSize,
        stepOptions,
      )
  let b = 0
  for await (const { step, labels } of steps) {
    running.add(step, labels)
    seen += step.count
    for (const cb of callbacks) await cb.onBatchEnd?.(b, step, ctx)
    await options.onBatchEnd?.(b, step, ctx)
    ctx.interrupted = sync.afterStep(step, ctx.interrupted || loop.interrupted())
    b++
    if (ctx.interrupted) return null
  }
  const trainSeconds = (performance.now() - started) / 1000

  await sync.beforeEvaluation(model)
  const evaluateOn = (set: TensorDataset, indices: Int32Array, thresholds?: 'fit') =>
    model.evaluate(set, {
      ...sync.evaluation(indices),
      batchSize: evaluationBatch(model),
      tta: config.tta,
      averaged: config.averaging === 'ema',
      ...(thresholds ? { thresholds } : {}),
    })
  // Evaluation allocates other sizes than the steps did: the steps' cached blocks go back first, and the evaluation's
  // after it (only where an evaluation runs, so runs that test only at the end keep their blocks from epoch to epoch).
  let evaluated = false
  const beginEvaluation = () => {
    if (!evaluated) releaseCachedBlocks()
    evaluated = true
  }
  const evaluate = async (set: TensorDataset, indices: Int32Array, thresholds?: 'fit') => {
    beginEvaluation()
    return evaluateOn(set, indices, thresholds)
  }
  const evaluateStreamed = (set: ShardSet) => {
    beginEvaluation()
    return evaluateShards(model, set, {
      size: config.size,
      channels,
      batchSize: evaluationBatch(model),
      normalization: data.normalization,
      tta: config.tta,
      averaged: config.averaging === 'ema',
      skipBadImages: config.skipBadImages,
      group: sync.group ?? undefined,
    })
  }
  const trainM =
    config.trainMetrics === 'full'
      ? splitMetrics(await evaluate(run.trainData, data.train), false)
      : (await sync.sumRunning(running)).metrics()
  const valM = data.valStream
    ? await evaluateStreamed(data.valStream)
    : data.val.length > 0
      ? await evaluate(run.valData, data.val, data.multiLabel ? 'fit' : undefined)
      : undefined
  // Multi-label: each class's F1-maximising threshold on the validation images becomes the model's, for the test
  // evaluation, the checkpoints and predict() (0.5 where nothing is held out).
  if (valM?.multiLabel) model.setMultiLabel(valM.multiLabel.thresholds)
  const lastEpoch = epoch === plan.length
  const scored: EpochRecord = {
    epoch,
    seconds: 0,
    lr: config.schedule === 'constant' && config.warmup === 0 ? baseLr : lastLr,
    imagesPerSecond: (seen * sync.worldSize) / trainSeconds,
    train: trainM,
    ...(valM ? { val: splitMetrics(valM, false) } : {}),
  }
  // An epoch that will stop the run early is its last: where the test data waits for the last epoch, it is tested.
  const testNow =
    (config.testEvery > 0 ? epoch % config.testEvery === 0 || lastEpoch : lastEpoch) ||
    (data.test.length > 0 && callbacks.some((cb) => cb.willStop?.(epoch, flattenLogs(scored)) === true))
  const testM = testNow ? await evaluate(run.testData, data.test) : undefined
  if (evaluated) releaseCachedBlocks()
  const record: EpochRecord = {
    ...scored,
    seconds: (performance.now() - started) / 1000,
    ...(testM ? { test: splitMetrics(testM, true) } : {}),
  }
  const logs = flattenLogs(record)
  for (const cb of callbacks) await cb.onEpochEnd?.(record, logs, ctx)
  await options.onEpochEnd?.(record, ctx)
  ctx.interrupted = await sync.endEpoch(ctx, ctx.interrupted || loop.interrupted())
  return record
}
