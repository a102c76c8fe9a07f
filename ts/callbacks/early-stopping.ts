// EarlyStopping: stops when the monitored metric stops improving, or when training diverges.
import fs from 'node:fs/promises'
import type { Callback, EpochLogs, EpochRecord, TrainContext } from './callback.ts'
import { checkMonitor, improves, resolveMode, type MonitorMode } from './monitor.ts'

export interface EarlyStoppingOptions {
  /** The metric to watch. Defaults to `'val_loss'`. */
  monitor?: string
  /** Defaults to `'auto'`: `min` for losses, `max` for accuracies. */
  mode?: MonitorMode
  /** The least change that counts as an improvement. Defaults to 0. */
  minDelta?: number
  /** Epochs without improvement before stopping. Defaults to 5. */
  patience?: number
  /** At the end, load the weights of the best epoch back into the model. Defaults to false. */
  restoreBestWeights?: boolean
  /** Epochs before this one neither improve nor count toward patience. Defaults to 0. */
  startFromEpoch?: number
}

export interface EarlyStoppingState {
  wait: number
  best?: number
  bestEpoch?: number
  stoppedEpoch?: number
}

export interface StopDecision {
  state: EarlyStoppingState
  improved: boolean
  shouldStop: boolean
  reason?: string
}

/**
 * The stop decision alone, with no effects: given the state so far and this epoch's logs, the next state
 * and whether to stop. A non-finite training loss or monitored value stops at once.
 */
export function decideStop(
  state: EarlyStoppingState,
  epoch: number,
  logs: EpochLogs,
  options: Required<Omit<EarlyStoppingOptions, 'restoreBestWeights'>>,
): StopDecision {
  const current = logs[options.monitor]
  for (const [name, value] of [
    ['train_loss', logs.train_loss],
    [options.monitor, current],
  ] as const) {
    if (value !== undefined && !Number.isFinite(value)) {
      return {
        state: { ...state, stoppedEpoch: epoch },
        improved: false,
        shouldStop: true,
        reason: `${name} is ${value} at epoch ${epoch}: training diverged`,
      }
    }
  }
  if (epoch < options.startFromEpoch || current === undefined) return { state, improved: false, shouldStop: false }
  const mode = resolveMode(options.monitor, options.mode)
  if (improves(current, state.best, mode, options.minDelta)) {
    return { state: { ...state, wait: 0, best: current, bestEpoch: epoch }, improved: true, shouldStop: false }
  }
  const wait = state.wait + 1
  if (wait >= options.patience) {
    return {
      state: { ...state, wait, stoppedEpoch: epoch },
      improved: false,
      shouldStop: true,
      reason: `${options.monitor} has not improved for ${wait} epochs (best ${state.best?.toFixed(4)} at epoch ${state.bestEpoch})`,
    }
  }
  return { state: { ...state, wait }, improved: false, shouldStop: false }
}

/**
 * Stops training when `monitor` has not improved for `patience` epochs.
 *
 * @example
 * new EarlyStopping({ monitor: 'val_loss', patience: 5 })
 */
export class EarlyStopping implements Callback {
  readonly options: Required<Omit<EarlyStoppingOptions, 'restoreBestWeights'>>
  readonly restoreBestWeights: boolean
  private current: EarlyStoppingState = { wait: 0 }
  private bestWeights?: string

  constructor(options: EarlyStoppingOptions = {}) {
    this.options = {
      monitor: options.monitor ?? 'val_loss',
      mode: options.mode ?? 'auto',
      minDelta: options.minDelta ?? 0,
      patience: options.patience ?? 5,
      startFromEpoch: options.startFromEpoch ?? 0,
    }
    this.restoreBestWeights = options.restoreBestWeights ?? false
  }

  get wait(): number {
    return this.current.wait
  }
  get best(): number | undefined {
    return this.current.best
  }
  get bestEpoch(): number | undefined {
    return this.current.bestEpoch
  }
  get stoppedEpoch(): number | undefined {
    return this.current.stoppedEpoch
  }

  /** Clears the state, so one instance can serve several runs. */
  reset(): void {
    this.current = { wait: 0 }
  }

  /** Applies this epoch's logs; returns the decision. */
  evaluate(epoch: number, logs: EpochLogs): StopDecision {
    const decision = decideStop(this.current, epoch, logs, this.options)
    this.current = decision.state
    return decision
  }

  willStop(epoch: number, logs: EpochLogs): boolean {
    return logs[this.options.monitor] !== undefined && decideStop(this.current, epoch, logs, this.options).shouldStop
  }

  onTrainBegin(ctx: TrainContext): void {
    checkMonitor(this.options.monitor, ctx.metrics, 'EarlyStopping')
    if (this.restoreBestWeights) this.bestWeights = `${ctx.runDir}/.early-stopping-best.safetensors`
  }

  async onEpochEnd(record: EpochRecord, logs: EpochLogs, ctx: TrainContext): Promise<void> {
    const decision = this.evaluate(record.epoch, logs)
    if (decision.improved && this.bestWeights) await ctx.model.save(this.bestWeights, { withOptimizer: false, averaged: true })
    if (decision.shouldStop) {
      ctx.stopTraining = true
      ctx.stopReason = decision.reason
    }
  }

  async onTrainEnd(ctx: TrainContext): Promise<void> {
    if (!this.bestWeights || this.current.bestEpoch === undefined) return
    await ctx.model.loadWeights(this.bestWeights)
    await fs.rm(this.bestWeights, { force: true })
  }

  state(): EarlyStoppingState {
    return { ...this.current }
  }

  loadState(state: unknown): void {
    this.current = { ...(state as EarlyStoppingState) }
  }
}
