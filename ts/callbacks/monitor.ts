// What "better" means for a monitored metric: the comparison EarlyStopping and ModelCheckpoint share.
import { InputError } from '../errors.ts'

export type MonitorMode = 'min' | 'max' | 'auto'

/** `auto` minimizes losses and maximizes accuracies. */
export function resolveMode(monitor: string, mode: MonitorMode): 'min' | 'max' {
  if (mode !== 'auto') return mode
  return /loss/.test(monitor) ? 'min' : 'max'
}

/** Whether `current` beats `best` by more than `minDelta` in the direction of `mode`. */
export function improves(current: number, best: number | undefined, mode: 'min' | 'max', minDelta: number): boolean {
  if (!Number.isFinite(current)) return false
  if (best === undefined) return true
  return mode === 'min' ? current < best - minDelta : current > best + minDelta
}

/** Throws when `monitor` is not a metric of this run, listing the ones that are. */
export function checkMonitor(monitor: string, available: readonly string[], who: string): void {
  if (!available.includes(monitor)) {
    throw new InputError(
      'INVALID_OPTION',
      `${who}: monitor ${JSON.stringify(monitor)} is not a metric of this run; expected one of ${available.join(', ')}`,
    )
  }
}
