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

/**
 * Multi-label runs show the exact-match ratio where top-1 goes (`exact`); the evaluated splits then show mAP and
 * macro-F1 (`F1`) instead of top-5 and balanced accuracy, and train the share of images whose highest score is one
 * of their labels (`hit1`, its top5).
 */
function isMultiLabel(record: EpochRecord): boolean {
  return SPLITS.some((s) => record[s]?.multiLabel)
}

export function tableHeader(record: EpochRecord): string {
  const multi = isMultiLabel(record)
  const groups = SPLITS.filter((s) => record[s]).map((s) => {
    if (multi) return `${s.padEnd(5)} loss  exact${record[s]!.multiLabel ? '    mAP     F1' : '   hit1'}`
    return `${s.padEnd(5)} loss   top1   top5${withBalanced(s, record[s]!) ? '    bal' : ''}`
  })
  return `epoch  ${groups.join(' │ ')} │   time    img/s`
}

/** One epoch; `best` marks the epoch the monitor likes most so far. */
export function tableRow(record: EpochRecord, best: boolean): string {
  const multi = isMultiLabel(record)
  const cells = SPLITS.filter((s) => record[s]).map((s) => {
    const m = record[s]!
    const cell = (v: number) => ` ${v.toFixed(2).padStart(6)}`
    const head = `${m.loss.toFixed(4).padStart(10)}${cell(m.top1)}`
    if (m.multiLabel) return `${head}${cell(m.multiLabel.mAP)}${cell(m.macroF1 ?? Number.NaN)}`
    if (multi) return `${head}${cell(m.top5)}`
    const bal = withBalanced(s, m) ? cell(m.balancedAccuracy!) : ''
    return `${head}${cell(m.top5)}${bal}`
  })
  const time = `${record.seconds.toFixed(1)}s`.padStart(7)
  return `${String(record.epoch).padStart(5)}${best ? '*' : ' '} ${cells.join(' │ ')} │ ${time} ${record.imagesPerSecond.toFixed(0).padStart(8)}`
}
