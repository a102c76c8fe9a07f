// ReduceLROnPlateau: multiplies the learning rate by `factor` when the monitored metric stops improving.
import type { Callback, EpochLogs, EpochRecord, TrainContext } from './callback.ts'
import { checkMonitor, improves, resolveMode, type MonitorMode } from './monitor.ts'

export interface ReduceLROnPlateauOptions {
  /** The metric to watch. Defaults to `'val_loss'`. */
  monitor?: string
  /** Defaults to `'auto'`: `min` for losses, `max` for accuracies. */
  mode?: MonitorMode
  /** The new rate is `lr × factor`. Defaults to 0.1. */
  factor?: number
  /** Epochs without improvement before the rate drops. Defaults to 10, as in Keras. */
  patience?: number
  /** The least change that counts as an improvement. Defaults to 0. */
  minDelta?: number
  /** Epochs to wait after a drop before counting again. Defaults to 0. */
  cooldown?: number
  /** The rate never goes below this. Defaults to 0. */
  minLr?: number
}

export interface ReduceLROnPlateauState {
  wait: number
  cooldown: number
  best?: number
}

/**
 * Lowers the learning rate when `monitor` plateaus; training reads `ctx.lr` before each epoch.
 *
 * @example
 * new ReduceLROnPlateau({ monitor: 'val_loss', factor: 0.1, patience: 3 })
 */
export class ReduceLROnPlateau implements Callback {
  readonly options: Required<ReduceLROnPlateauOptions>
  private current: ReduceLROnPlateauState = { wait: 0, cooldown: 0 }

  constructor(options: ReduceLROnPlateauOptions = {}) {
    this.options = {
      monitor: options.monitor ?? 'val_loss',
      mode: options.mode ?? 'auto',
      factor: options.factor ?? 0.1,
      patience: options.patience ?? 10,
      minDelta: options.minDelta ?? 0,
      cooldown: options.cooldown ?? 0,
      minLr: options.minLr ?? 0,
    }
  }

  reset(): void {
    this.current = { wait: 0, cooldown: 0 }
  }

  onTrainBegin(ctx: TrainContext): void {
    checkMonitor(this.options.monitor, ctx.metrics, 'ReduceLROnPlateau')
  }

  onEpochEnd(_record: EpochRecord, logs: EpochLogs, ctx: TrainContext): void {
    const value = logs[this.options.monitor]
    if (value === undefined) return
    const { wait, cooldown, best } = this.current
    if (improves(value, best, resolveMode(this.options.monitor, this.options.mode), this.options.minDelta)) {
      this.current = { wait: 0, cooldown: Math.max(0, cooldown - 1), best: value }
      return
    }
    if (cooldown > 0) {
      this.current = { wait: 0, cooldown: cooldown - 1, best }
      return
    }
    if (wait + 1 < this.options.patience) {
      this.current = { wait: wait + 1, cooldown, best }
      return
    }
    ctx.lr = Math.max(this.options.minLr, ctx.lr * this.options.factor)
    this.current = { wait: 0, cooldown: this.options.cooldown, best }
  }

  state(): ReduceLROnPlateauState {
    return { ...this.current }
  }

  loadState(state: unknown): void {
    this.current = { ...(state as ReduceLROnPlateauState) }
  }
}
