// The callback interface the training loop calls, in the Keras shape.
import type { Model } from '../model.ts'
import type { EvalMetrics } from '../metrics.ts'
import type { StepResult } from '../model.ts'

/** Metrics of one split in history.json. Accuracies are percentages. */
export type SplitMetrics = Omit<EvalMetrics, 'confusion' | 'count'> & { confusion?: number[][] }

/** One epoch as history.json records it. */
export interface EpochRecord {
  epoch: number
  /** Wall time of the epoch, training and evaluation. */
  seconds: number
  lr: number
  /** Training images per second during the training pass. */
  imagesPerSecond: number
  train: SplitMetrics
  val?: SplitMetrics
  test?: SplitMetrics
}

/** An epoch's metrics flattened for monitors: `train_loss`, `val_top1`, `test_top5`, ... */
export type EpochLogs = Record<string, number>

/** What callbacks see and steer. Setting `stopTraining` ends the run after this epoch. */
export interface TrainContext {
  model: Model
  runDir: string
  /** Metric names a monitor may use in this run. */
  metrics: string[]
  stopTraining: boolean
  stopReason?: string
  /** The learning rate for the next epoch; callbacks may change it (ReduceLROnPlateau). */
  lr: number
  /** A PNG grid of training images with their class names (the run's samples.png), when the run drew one. */
  samplesPng?: Uint8Array
  /** Class names, in label order. */
  classNames?: string[]
}

export interface Callback {
  /** Clears state left by an earlier run; train() calls it before onTrainBegin, so one instance can serve several runs. */
  reset?(): void
  onTrainBegin?(ctx: TrainContext): void | Promise<void>
  onBatchEnd?(batch: number, step: StepResult, ctx: TrainContext): void | Promise<void>
  onEpochEnd?(record: EpochRecord, logs: EpochLogs, ctx: TrainContext): void | Promise<void>
  onTrainEnd?(ctx: TrainContext): void | Promise<void>
  /** A JSON-able snapshot of the callback's state, saved for `--resume`. */
  state?(): unknown
  loadState?(state: unknown): void
}

/** Flattens a record's splits into `<split>_<metric>` names. */
export function flattenLogs(record: EpochRecord): EpochLogs {
  const logs: EpochLogs = {}
  for (const split of ['train', 'val', 'test'] as const) {
    const m = record[split]
    if (!m) continue
    logs[`${split}_loss`] = m.loss
    logs[`${split}_top1`] = m.top1
    logs[`${split}_top5`] = m.top5
  }
  return logs
}
