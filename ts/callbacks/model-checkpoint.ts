// ModelCheckpoint: keeps the checkpoint of the best epoch by a monitored metric, named for its epoch and accuracy.
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Callback, EpochLogs, EpochRecord, TrainContext } from './callback.ts'
import { checkMonitor, improves, resolveMode, type MonitorMode } from './monitor.ts'

export interface ModelCheckpointOptions {
  /** The metric that picks the best epoch. Defaults to `'val_loss'`. */
  monitor?: string
  /** Defaults to `'auto'`: `min` for losses, `max` for accuracies. */
  mode?: MonitorMode
  /** The least change that counts as an improvement. Defaults to 0. */
  minDelta?: number
  /**
   * The file name (without `.safetensors`) for an epoch. Defaults to the seed's `epoch_<N>_accuracy_<test top-1>`
   * (validation top-1 when there is no test split; `epoch_<N>_map_<mAP>` for multi-label data).
   */
  filename?: (record: EpochRecord) => string
  /** Extra header entries for the checkpoint. */
  metadata?: (record: EpochRecord) => Record<string, unknown>
}

export interface ModelCheckpointState {
  best?: number
  bestEpoch?: number
  /** Relative to the run directory. */
  bestFile?: string
}

function defaultName(record: EpochRecord): string {
  const scored = record.test ?? record.val
  // A multi-label run is named by its mAP: its top-1 is the exact-match ratio, which says little on its own.
  if (scored?.multiLabel) return `epoch_${record.epoch}_map_${scored.multiLabel.mAP.toFixed(2)}`
  const accuracy = scored?.top1 ?? record.train.top1
  return `epoch_${record.epoch}_accuracy_${accuracy.toFixed(2)}`
}

/**
 * Saves the model whenever `monitor` improves, replacing the previous best file.
 *
 * @example
 * new ModelCheckpoint({ monitor: 'val_loss' })
 */
export class ModelCheckpoint implements Callback {
  readonly monitor: string
  readonly mode: MonitorMode
  readonly minDelta: number
  private readonly filename: (record: EpochRecord) => string
  private readonly metadata: (record: EpochRecord) => Record<string, unknown>
  private current: ModelCheckpointState = {}

  constructor(options: ModelCheckpointOptions = {}) {
    this.monitor = options.monitor ?? 'val_loss'
    this.mode = options.mode ?? 'auto'
    this.minDelta = options.minDelta ?? 0
    this.filename = options.filename ?? defaultName
    this.metadata = options.metadata ?? (() => ({}))
  }

  /** The best epoch's checkpoint, relative to the run directory. */
  get bestFile(): string | undefined {
    return this.current.bestFile
  }
  get best(): number | undefined {
    return this.current.best
  }
  get bestEpoch(): number | undefined {
    return this.current.bestEpoch
  }

  reset(): void {
    this.current = {}
  }

  onTrainBegin(ctx: TrainContext): void {
    checkMonitor(this.monitor, ctx.metrics, 'ModelCheckpoint')
  }

  async onEpochEnd(record: EpochRecord, logs: EpochLogs, ctx: TrainContext): Promise<void> {
    const value = logs[this.monitor]
    if (value === undefined || !improves(value, this.current.best, resolveMode(this.monitor, this.mode), this.minDelta)) return
    const file = `${this.filename(record)}.safetensors`
    await ctx.model.save(path.join(ctx.runDir, file), {
      withOptimizer: false,
      averaged: true,
      metadata: { epoch: record.epoch, monitor: this.monitor, [this.monitor]: value, ...this.metadata(record) },
    })
    const previous = this.current.bestFile
    if (previous && previous !== file) await fs.rm(path.join(ctx.runDir, previous), { force: true })
    this.current = { best: value, bestEpoch: record.epoch, bestFile: file }
  }

  state(): ModelCheckpointState {
    return { ...this.current }
  }

  loadState(state: unknown): void {
    this.current = { ...(state as ModelCheckpointState) }
  }
}
