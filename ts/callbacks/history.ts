// History: every epoch's record, written after each epoch as history.json and history.csv.
import path from 'node:path'
import { writeFileAtomic } from '../util/atomic-write.ts'
import type { Callback, EpochRecord, HistoryFile, SplitMetrics } from './callback.ts'

export type { HistoryFile } from './callback.ts'

function csvCell(v: number | string | undefined): string {
  if (v === undefined) return ''
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(Number(v.toFixed(6))) : String(v)) : v
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

/** One row per epoch: the headline metrics of each split, its balanced accuracy and macro-F1, then per-class top-1. */
export function historyCsv(history: HistoryFile): string {
  const splits = (['train', 'val', 'test'] as const).filter((s) => history.epochs.some((e) => e[s]))
  const header = ['epoch', 'seconds', 'lr', 'images_per_second']
  for (const s of splits) header.push(`${s}_loss`, `${s}_top1`, `${s}_top5`)
  for (const s of splits) header.push(`${s}_balanced_accuracy`, `${s}_macro_f1`)
  // Multi-label runs: mAP and micro-F1 of the splits evaluated as a whole (not train's running metrics).
  const ranked = splits.filter((s) => history.epochs.some((e) => e[s]?.multiLabel))
  for (const s of ranked) header.push(`${s}_map`, `${s}_micro_f1`)
  for (const s of splits) for (const c of history.classes) header.push(`${s}_top1_${c}`)
  const rows = history.epochs.map((e) => {
    const cells: (number | string | undefined)[] = [e.epoch, e.seconds, e.lr, e.imagesPerSecond]
    for (const s of splits) cells.push(e[s]?.loss, e[s]?.top1, e[s]?.top5)
    for (const s of splits) cells.push(e[s]?.balancedAccuracy, e[s]?.macroF1)
    for (const s of ranked) cells.push(e[s]?.multiLabel?.mAP, e[s]?.multiLabel?.microF1)
    for (const s of splits) for (const c of history.classes) cells.push((e[s] as SplitMetrics | undefined)?.perClass[c])
    return cells.map(csvCell).join(',')
  })
  return [header.map(csvCell).join(','), ...rows].join('\n') + '\n'
}

export async function writeHistory(runDir: string, history: HistoryFile): Promise<void> {
  await writeFileAtomic(path.join(runDir, 'history.json'), JSON.stringify(history, null, 2) + '\n')
  await writeFileAtomic(path.join(runDir, 'history.csv'), historyCsv(history))
}

/** Collects epoch records as training goes. */
export class History implements Callback {
  epochs: EpochRecord[] = []

  reset(): void {
    this.epochs = []
  }

  onEpochEnd(record: EpochRecord): void {
    this.epochs.push(record)
  }

  state(): EpochRecord[] {
    return this.epochs
  }

  loadState(state: unknown): void {
    this.epochs = [...(state as EpochRecord[])]
  }
}
