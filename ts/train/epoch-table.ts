// The compact table the training loop prints: a header, then one row per epoch.
import type { EpochRecord, SplitMetrics } from '../callbacks/callback.ts'

const SPLITS = ['train', 'val', 'test'] as const

/**
 * Whether a split's group shows balanced accuracy (`bal`): the evaluated splits do, where unbalanced classes show;
 * train's stays in history.json so that rows stay short.
 */
function withBalanced(split: (typeof SPLITS)[number], m: SplitMetrics): boolean {
  return split !== 'train' && m.balancedAccuracy !== undefined
}

export function tableHeader(record: EpochRecord): string {
  const groups = SPLITS.filter((s) => record[s]).map(
    (s) => `${s.padEnd(5)} loss   top1   top5${withBalanced(s, record[s]!) ? '    bal' : ''}`,
  )
  return `epoch  ${groups.join(' │ ')} │   time    img/s`
}

/** One epoch; `best` marks the epoch the monitor likes most so far. */
export function tableRow(record: EpochRecord, best: boolean): string {
  const cells = SPLITS.filter((s) => record[s]).map((s) => {
    const m = record[s]!
    const bal = withBalanced(s, m) ? ` ${m.balancedAccuracy!.toFixed(2).padStart(6)}` : ''
    return `${m.loss.toFixed(4).padStart(10)} ${m.top1.toFixed(2).padStart(6)} ${m.top5.toFixed(2).padStart(6)}${bal}`
  })
  const time = `${record.seconds.toFixed(1)}s`.padStart(7)
  return `${String(record.epoch).padStart(5)}${best ? '*' : ' '} ${cells.join(' │ ')} │ ${time} ${record.imagesPerSecond.toFixed(0).padStart(8)}`
}
