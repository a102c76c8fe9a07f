// One training epoch over tar shards: batches stream from disk, each one native step on uint8 pixels; and the choice
// between that and the resident path, by the memory the resident path would take.
import os from 'node:os'
import type { SplitMetrics } from '../../callbacks/callback.ts'
import { CancelledError } from '../../errors.ts'
import type { Model, StepOptions, StepResult } from '../../model/model.ts'
import { formatBytes } from '../../util/progress.ts'
import { RunningMetrics } from '../../train/running-metrics.ts'
import type { Normalization } from '../image-set.ts'
import { openShards, type ShardSet, type ShardStream, type ShardStreamOptions, type SkippedSample } from './shard-stream.ts'

export interface StreamEpochOptions extends Omit<ShardStreamOptions, 'signal' | 'epoch'> {
  /** The epoch (train() counts from 1); with `seed` it fixes this epoch's shard order and shuffle. */
  epoch: number
  /** The learning rate of batch `b` (0-based within the epoch), e.g. a schedule; undefined keeps the current rate. */
  lr?: (batch: number) => number | undefined
  /** The other step options of batch `b`: augmentation, `batchSeed`, `runSeed`, `epoch`. */
  step?: (batch: number) => Omit<StepOptions, 'lr'>
  /** Normalization of the uint8 pixels. Defaults to the model's. */
  normalization?: Normalization
  /** Class names for per-class accuracy. Defaults to the shards' (their index's). */
  classes?: readonly string[]
  /** Called after each step and awaited (progress bars, callbacks' `onBatchEnd`). */
  onBatch?: (batch: number, step: StepResult, running: RunningMetrics) => void | Promise<void>
  /** Stops at the end of the current batch; the result then has `interrupted: true`. */
  signal?: AbortSignal
}

export interface StreamEpochResult {
  /** loss, lossSum, top1, top5, perClass of the epoch's training batches. */
  metrics: SplitMetrics
  /** Images trained on. */
  images: number
  batches: number
  /** Wall time of the epoch's training, from opening the shards. */
  seconds: number
  imagesPerSecond: number
  /** The rate of the last step (undefined when `lr` never set one). */
  lastLr: number | undefined
  /** True when the signal stopped the epoch early. */
  interrupted: boolean
  /** Samples skipped as undecodable (with `skipBadImages`). */
  skipped: SkippedSample[]
}

/**
 * Runs one epoch of `model.trainBatchPixels` over shards: reading and decoding of the next batches overlap each
 * step. Call it once per epoch with that epoch's number; `shards` is a pattern, or the `describeShards` result to
 * avoid looking the shards up again.
 *
 * @example
 * const set = await describeShards('shards/train-{000000..000019}.tar')
 * for (let epoch = 1; epoch <= 10; epoch++) {
 *   const { metrics } = await trainEpochOnShards(model, set, { epoch, batchSize: 128, seed: 1, lr: (b) => 1e-3 })
 *   console.log(epoch, metrics.loss)
 * }
 */
export async function trainEpochOnShards(
  model: Model,
  shards: string | readonly string[] | ShardSet,
  options: StreamEpochOptions,
): Promise<StreamEpochResult> {
  const started = performance.now()
  const { lr, step: stepOptions, normalization, classes, onBatch, signal, ...streamOptions } = options
  const [channels, height, width] = model.spec.inputShape
  const stream = await openShards(shards, {
    size: [height, width],
    channels: channels === 1 ? 1 : 3,
    ...streamOptions,
    signal,
  })
  const running = new RunningMetrics(classes ?? stream.set.classes)
  let interrupted = false
  let batches = 0
  let lastLr: number | undefined
  const optionsOf = (b: number) => {
    const rate = lr?.(b)
    if (rate !== undefined) lastLr = rate
    return { ...stepOptions?.(b), ...(rate !== undefined ? { lr: rate } : {}), ...(normalization ? { normalization } : {}) }
  }
  try {
    for await (const { step, labels } of streamedSteps(model, stream, optionsOf)) {
      running.add(step, labels)
      await onBatch?.(batches++, step, running)
      if (signal?.aborted) {
        interrupted = true
        break
      }
    }
  } catch (err) {
    // Aborted while waiting for data: the same clean stop as between steps.
    if (!(err instanceof CancelledError && signal?.aborted)) throw err
    interrupted = true
  }
  const seconds = (performance.now() - started) / 1000
  return {
    metrics: running.metrics(),
    images: running.count,
    batches,
    seconds,
    imagesPerSecond: running.count / seconds,
    lastLr,
    interrupted,
    skipped: [...stream.skipped],
  }
}

/** One training step and the labels of its batch. */
export interface TrainedBatch {
  step: StepResult
  labels: Int32Array
}

/**
 * The training steps of one opened epoch stream: batch `b` trains with `optionsOf(b)` while the stream decodes the
 * next ones. Leaving the loop early closes the stream.
 */
export async function* streamedSteps(
  model: Model,
  stream: ShardStream,
  optionsOf: (batch: number) => StepOptions & { normalization?: Normalization },
): AsyncGenerator<TrainedBatch> {
  try {
    for await (const batch of stream) {
      const step = await model.trainBatchPixels(batch.pixels, batch.labels, batch.shape, optionsOf(batch.index))
      yield { step, labels: batch.labels }
    }
  } finally {
    await stream.close()
  }
}

/**
 * Bytes the resident path holds for `count` images of `shape`: the uint8 pixels in JavaScript and their copy in the
 * native dataset, plus int32 and int64 labels.
 */
export function residentBytes(count: number, shape: readonly [number, number, number]): number {
  return count * (2 * shape[0] * shape[1] * shape[2] + 12)
}

export interface DataPathChoice {
  stream: boolean
  estimateBytes: number
  budgetBytes: number
  /** One line saying which path and why, for the run's log. */
  reason: string
}

/**
 * Resident or streaming: streams when the resident estimate of `count` images of `shape` exceeds `budgetBytes`
 * (default half the machine's memory), or when `stream` forces it either way.
 *
 * @example
 * const choice = chooseDataPath(200_000, [3, 224, 224]) // { stream: true, reason: 'streaming from shards: ...' }
 */
export function chooseDataPath(
  count: number,
  shape: readonly [number, number, number],
  options: { budgetBytes?: number; stream?: boolean } = {},
): DataPathChoice {
  const budgetBytes = options.budgetBytes ?? Math.floor(os.totalmem() / 2)
  const estimateBytes = residentBytes(count, shape)
  const sizes = `${count.toLocaleString('en-US')} images of ${shape.join('×')} would take ${formatBytes(estimateBytes)} resident; the memory budget is ${formatBytes(budgetBytes)}`
  if (options.stream !== undefined) {
    return {
      stream: options.stream,
      estimateBytes,
      budgetBytes,
      reason: `${options.stream ? 'streaming from shards' : 'loading into memory'}, as asked (${sizes})`,
    }
  }
  const stream = estimateBytes > budgetBytes
  return { stream, estimateBytes, budgetBytes, reason: `${stream ? 'streaming from shards' : 'loading into memory'}: ${sizes}` }
}
