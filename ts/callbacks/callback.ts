// The callback interface the training loop calls, in the Keras shape. train()'s own freeze schedule, weight
// averaging, checkpoints, printing and report are callbacks of this interface too (ts/callbacks/), so a user's
// callback can do anything they do.
import type { ImageSet } from '../data/image-set.ts'
import type { Model } from '../model/model.ts'
import type { EvalMetrics } from '../model/metrics.ts'
import type { StepResult } from '../model/model.ts'
import type { Interpretation } from '../report/top-losses.ts'

/**
 * Metrics of one split in history.json. Accuracies are percentages. Runs written before balanced accuracy, macro-F1
 * and per-class metrics were recorded lack them.
 */
export type SplitMetrics = Omit<EvalMetrics, 'confusion' | 'count' | ClassScoreKeys> &
  Partial<Pick<EvalMetrics, ClassScoreKeys>> & { confusion?: number[][] }

type ClassScoreKeys = 'balancedAccuracy' | 'macroF1' | 'classMetrics'

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

/** history.json as a whole. */
export interface HistoryFile {
  classes: string[]
  config: Record<string, unknown>
  epochs: EpochRecord[]
  best: { epoch: number; monitor: string; value: number; checkpoint: string } | null
  stoppedEarly: boolean
  stopReason: string | null
  /** The built-in callbacks' state (early stopping, best checkpoint, plateau), for `--resume`; the epochs are above. */
  resume?: Record<string, unknown>
  /** The learning rate the next epoch would use, for `--resume`. */
  lr?: number
  /**
   * What the run chose where its options left a choice, each with why: the precision (with `precision: 'auto'`) and
   * the learning rate (with `lr: 'find'`).
   */
  chosen?: { precision: string; precisionReason: string; lr?: number; lrReason?: string }
  /**
   * Images of each class in each split, by class name. A streamed run's `train` counts a sample of its shards
   * (`trainSampled`).
   */
  classCounts?: {
    train: Record<string, number>
    val: Record<string, number>
    test: Record<string, number>
    trainSampled?: boolean
  }
  /** The training loss's weight of each class, by class name, when `classWeights` gave any. */
  classWeights?: Record<string, number>
  /** The test images the final model got most wrong and the classes it confuses most (runs with a report). */
  interpretation?: Interpretation
}

/**
 * An epoch's metrics flattened for monitors: `train_loss`, `val_top1`, `test_top5`, `val_balanced_accuracy`,
 * `val_macro_f1`, ...; multi-label runs add `val_map` and `val_micro_f1`.
 */
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
  /** Set by TopLosses when the run ends: the final model's top losses and confusions on the report's images. */
  interpretation?: Interpretation
  /** Class names, in label order. */
  classNames?: string[]
  /** The epoch running now (1-based); 0 before the first. */
  epoch: number
  /** Epochs the run plans in all (a resumed run counts the ones before it). */
  epochs: number
  /** Batches of the epoch running now. */
  batches: number
  /** Optimizer steps the whole run plans (schedules and weight averaging follow it). */
  totalSteps: number
  /** Processes training together (1 without data parallelism): images per second count all of them. */
  worldSize: number
  /** Whether this run continues a run directory (`resume`): its weights, history and callback state are restored. */
  resumed: boolean
  /** Set when the run's signal stopped it: the last epoch did not finish, and `--resume` continues it. */
  interrupted: boolean
  /** history.json as it stands now. */
  history(): HistoryFile
  /** The held-out images a report shows predictions of (test images, with their indices into `set`). */
  reportImages?: { set: ImageSet; indices: Int32Array }
}

export interface Callback {
  /** Clears state left by an earlier run; train() calls it before onTrainBegin, so one instance can serve several runs. */
  reset?(): void
  onTrainBegin?(ctx: TrainContext): void | Promise<void>
  /** Before the epoch's first step (`ctx.epoch` and `ctx.batches` say which and how long). */
  onEpochBegin?(epoch: number, ctx: TrainContext): void | Promise<void>
  onBatchEnd?(batch: number, step: StepResult, ctx: TrainContext): void | Promise<void>
  onEpochEnd?(record: EpochRecord, logs: EpochLogs, ctx: TrainContext): void | Promise<void>
  /**
   * Whether onEpochEnd with these logs (train and validation so far) would stop the run. Asked, without changing any
   * state, before an epoch decides whether to evaluate its test data: a run that stops early still tests once where
   * the test data waits for the last epoch (`testEvery: 0`).
   */
  willStop?(epoch: number, logs: EpochLogs): boolean
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
    if (m.balancedAccuracy !== undefined) logs[`${split}_balanced_accuracy`] = m.balancedAccuracy
    if (m.macroF1 !== undefined) logs[`${split}_macro_f1`] = m.macroF1
    if (m.multiLabel) {
      logs[`${split}_map`] = m.multiLabel.mAP
      logs[`${split}_micro_f1`] = m.multiLabel.microF1
    }
  }
  return logs
}
