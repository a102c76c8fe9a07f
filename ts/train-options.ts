// The options of train(), their defaults (the seed's), and their checks, done before any work starts.
import fs from 'node:fs'
import path from 'node:path'
import type { Callback, EpochRecord, TrainContext } from './callbacks/callback.ts'
import type { ImageSet } from './data/image-set.ts'
import type { Device } from './device.ts'
import { checkMonitor } from './callbacks/monitor.ts'
import { InputError } from './errors.ts'
import type { Precision, StepResult } from './model.ts'
import type { ModelSpec } from './spec.ts'

export type OptimizerName = 'adam' | 'adamw' | 'sgd'

export interface TrainOptions {
  /**
   * What to train on: `'cifar10'` (downloaded and cached), a folder (`root/train/<class>`, `root/test/<class>`;
   * or `root/<class>` with `testSplit`), a folder of MNIST idx files, a `.tar.gz` of any of these, or images in memory.
   * @example 'cifar10'
   * @example '../shared/datasets/cifar10-jpg.tar.gz'
   */
  data: string | { train: ImageSet; test?: ImageSet }
  /** The network; a spec, or the path of a JSON file holding one. Defaults to the reference CNN. */
  model?: ModelSpec | string
  /** Defaults to 40. */
  epochs?: number
  /** Defaults to 128. */
  batchSize?: number
  /** Defaults to `'adam'`. */
  optimizer?: OptimizerName
  /** Defaults to 1e-3 (1e-2 for sgd). */
  lr?: number
  /** SGD momentum. Defaults to 0.9 with sgd. */
  momentum?: number
  /** Nesterov momentum for sgd. Defaults to false. */
  nesterov?: boolean
  /** Defaults to 0 (0.01 for adamw). */
  weightDecay?: number
  /** Multiply the learning rate by `lrFactor` after this many epochs without improvement of the monitor. Off by default. */
  lrPatience?: number
  /** The factor for `lrPatience`. Defaults to 0.1. */
  lrFactor?: number
  /** Early-stopping patience in epochs. Defaults to 5. */
  patience?: number
  /** The least change of the monitor that counts as an improvement. Defaults to 0. */
  minDelta?: number
  /** The metric early stopping and the best checkpoint follow. Defaults to `'val_loss'` (`'test_loss'` when valSplit is 0). */
  monitor?: string
  /** Fraction of the training data held out for validation. Defaults to 0.1. */
  valSplit?: number
  /** Fraction held out as the test set when the data has none. Defaults to 0.2. */
  testSplit?: number
  /** Random crop (4-pixel padding) and horizontal flip while training. Defaults to false. */
  augment?: boolean
  /** `'half'` (mean 0.5, std 0.5) or `'dataset'` (per-channel statistics of the training data). Defaults to `'half'`. */
  normalize?: 'half' | 'dataset'
  /**
   * `'bf16'` computes convolutions and linear layers in bfloat16 from fp32 weights, as PyTorch's autocast does;
   * see bench/RESULTS.md for its speed and accuracy. Defaults to `'fp32'`.
   */
  precision?: Precision
  /** Seeds weights, shuffling, splits and augmentation. Defaults to 0. */
  seed?: number
  /** Defaults to `'auto'`. */
  device?: Device
  /** The run directory. Defaults to `runs/<date-time>`. */
  out?: string
  /** Train on a seeded subset of this many images. */
  limitTrain?: number
  /** Test on a seeded subset of this many images. */
  limitTest?: number
  /** Images are resized to `[height, width]` when read from files. Defaults to `[32, 32]`. */
  size?: [number, number]
  /** Where downloads and decoded datasets are cached. Defaults to `~/.cache/convkit/datasets`. */
  cacheDir?: string
  /** Skip unreadable images instead of failing; they are counted in the run's report. Defaults to false. */
  skipBadImages?: boolean
  /** Continue the run in this directory at its next epoch, with its weights and optimizer state. */
  resume?: string
  /** Write samples.png at the start, and plots/ and report.html at the end. Defaults to true. */
  report?: boolean
  /** No table, no progress bars. Defaults to false. */
  quiet?: boolean
  /** Stops at the end of the current batch; the last checkpoint and history are on disk. */
  signal?: AbortSignal
  /** More callbacks, run after the built-in History, EarlyStopping and ModelCheckpoint. */
  callbacks?: Callback[]
  onEpochEnd?: (record: EpochRecord, ctx: TrainContext) => void | Promise<void>
  onBatchEnd?: (batch: number, step: StepResult, ctx: TrainContext) => void | Promise<void>
}

/** The options a run is reproduced from: what history.json stores as `config`. */
export interface TrainConfig {
  data: string
  model: ModelSpec | null
  epochs: number
  batchSize: number
  optimizer: OptimizerName
  lr: number
  momentum: number
  nesterov: boolean
  weightDecay: number
  patience: number
  lrPatience: number | null
  lrFactor: number
  minDelta: number
  monitor: string
  valSplit: number
  testSplit: number
  augment: boolean
  normalize: 'half' | 'dataset'
  precision: Precision
  seed: number
  device: Device
  limitTrain: number | null
  limitTest: number | null
  size: [number, number]
  skipBadImages: boolean
}

/** What history.json records as `data` for images passed in memory. */
export const IN_MEMORY = '<in-memory>'

/** The metric names a run reports: loss, top-1 and top-5 of train, val (when held out) and test. */
export function runMetrics(withVal: boolean): string[] {
  return ['train', ...(withVal ? ['val'] : []), 'test'].flatMap((s) => [`${s}_loss`, `${s}_top1`, `${s}_top5`])
}

function bad(field: string, expected: string, got: unknown): InputError {
  return new InputError('INVALID_OPTION', `option ${field}: expected ${expected}, got ${JSON.stringify(got)}`)
}

function int(field: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback
  if (!Number.isInteger(v) || v < min) throw bad(field, `an integer >= ${min}`, v)
  return v
}

function num(field: string, value: number | undefined, fallback: number, check: (v: number) => boolean, expected: string): number {
  const v = value ?? fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw bad(field, expected, v)
  return v
}

/** Applies defaults and checks every option; throws an InputError naming the first bad one. */
export function resolveConfig(options: TrainOptions): TrainConfig {
  const optimizer = options.optimizer ?? 'adam'
  if (!['adam', 'adamw', 'sgd'].includes(optimizer)) throw bad('optimizer', "'adam', 'adamw' or 'sgd'", optimizer)
  const valSplit = num('valSplit', options.valSplit, 0.1, (v) => v >= 0 && v < 1, 'a fraction in [0, 1)')
  const normalize = options.normalize ?? 'half'
  if (normalize !== 'half' && normalize !== 'dataset') throw bad('normalize', "'half' or 'dataset'", normalize)
  const precision = options.precision ?? 'fp32'
  if (precision !== 'fp32' && precision !== 'bf16') throw bad('precision', "'fp32' or 'bf16'", precision)
  const device = options.device ?? 'auto'
  if (!/^(auto|cpu|cuda(:\d+)?)$/.test(device)) throw bad('device', "'auto', 'cpu', 'cuda' or 'cuda:N'", device)
  const size = options.size ?? [32, 32]
  if (!Array.isArray(size) || size.length !== 2 || !size.every((d) => Number.isInteger(d) && d > 0)) throw bad('size', '[height, width] of positive integers', size)
  const limit = (field: string, v: number | undefined) => (v === undefined ? null : int(field, v, 0, 1))
  if (typeof options.data !== 'string' && !(options.data && 'train' in options.data)) throw bad('data', "a source such as 'cifar10' or a path, or { train, test }", options.data)
  const monitor = options.monitor ?? (valSplit > 0 ? 'val_loss' : 'test_loss')
  checkMonitor(monitor, runMetrics(valSplit > 0), 'option monitor')
  return {
    // A path is stored absolute so `--resume` works from any folder; names such as 'cifar10' stay as they are.
    data: typeof options.data === 'string' ? (fs.existsSync(options.data) ? path.resolve(options.data) : options.data) : IN_MEMORY,
    model: typeof options.model === 'object' ? options.model : null,
    epochs: int('epochs', options.epochs, 40, 1),
    batchSize: int('batchSize', options.batchSize, 128, 1),
    optimizer,
    lr: num('lr', options.lr, optimizer === 'sgd' ? 1e-2 : 1e-3, (v) => v > 0, 'a number > 0'),
    momentum: num('momentum', options.momentum, optimizer === 'sgd' ? 0.9 : 0, (v) => v >= 0 && v < 1, 'a number in [0, 1)'),
    nesterov: options.nesterov ?? false,
    weightDecay: num('weightDecay', options.weightDecay, optimizer === 'adamw' ? 0.01 : 0, (v) => v >= 0, 'a number >= 0'),
    patience: int('patience', options.patience, 5, 1),
    lrPatience: options.lrPatience === undefined ? null : int('lrPatience', options.lrPatience, 0, 1),
    lrFactor: num('lrFactor', options.lrFactor, 0.1, (v) => v > 0 && v < 1, 'a number in (0, 1)'),
    minDelta: num('minDelta', options.minDelta, 0, (v) => v >= 0, 'a number >= 0'),
    monitor,
    valSplit,
    testSplit: num('testSplit', options.testSplit, 0.2, (v) => v > 0 && v < 1, 'a fraction in (0, 1)'),
    augment: options.augment ?? false,
    normalize,
    precision,
    seed: int('seed', options.seed, 0, 0),
    device,
    limitTrain: limit('limitTrain', options.limitTrain),
    limitTest: limit('limitTest', options.limitTest),
    size: [size[0], size[1]],
    skipBadImages: options.skipBadImages ?? false,
  }
}
