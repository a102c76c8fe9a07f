// ProgressPrinter: what a run prints while it trains: the model summary, a bar over each epoch's batches (on a
// terminal), one table row per epoch, and the outcome.
import path from 'node:path'
import type { StepResult } from '../model/model.ts'
import { tableHeader, tableRow } from '../train/epoch-table.ts'
import { ProgressBar } from '../util/progress.ts'
import type { Callback, EpochLogs, EpochRecord, TrainContext } from './callback.ts'

export interface ProgressPrinterOptions {
  /** Where lines go. Defaults to console.log. */
  print?: (line: string) => void
  /** No bars (and, with the default print, no lines). Defaults to false. */
  quiet?: boolean
  /** The epoch the monitor likes best so far, marked `*` in its row (ModelCheckpoint's bestEpoch). */
  bestEpoch?: () => number | undefined
}

/** The overall bar in front of each epoch's bar: how many epochs of the run are done. */
function epochGauge(done: number, total: number, width = 10): string {
  const filled = Math.round((done / total) * width)
  return `[${'='.repeat(filled)}${' '.repeat(width - filled)}]`
}

export class ProgressPrinter implements Callback {
  private readonly print: (line: string) => void
  private readonly quiet: boolean
  private readonly bestEpoch: () => number | undefined
  private bar: ProgressBar | null = null
  private started = 0
  private seen = 0
  private lossSum = 0
  private headerShown = ''

  constructor(options: ProgressPrinterOptions = {}) {
    this.quiet = options.quiet ?? false
    this.print = options.print ?? (this.quiet ? () => {} : (line) => console.log(line))
    this.bestEpoch = options.bestEpoch ?? (() => undefined)
  }

  reset(): void {
    this.headerShown = ''
  }

  onTrainBegin(ctx: TrainContext): void {
    this.print(ctx.model.summary())
  }

  onEpochBegin(epoch: number, ctx: TrainContext): void {
    this.bar = new ProgressBar(`${epochGauge(epoch - 1, ctx.epochs)} epoch ${epoch}/${ctx.epochs}`, {
      total: ctx.batches,
      quiet: this.quiet,
      format: (n) => n.toFixed(0),
      rateUnit: ' batch/s',
    })
    this.started = performance.now()
    this.seen = 0
    this.lossSum = 0
  }

  onBatchEnd(batch: number, step: StepResult, ctx: TrainContext): void {
    this.seen += step.count
    this.lossSum += step.loss * step.count
    const elapsed = (performance.now() - this.started) / 1000
    this.bar?.update(batch + 1, {
      loss: this.lossSum / Math.max(1, this.seen),
      'img/s': ((this.seen * ctx.worldSize) / elapsed).toFixed(0),
    })
  }

  onEpochEnd(record: EpochRecord, _logs: EpochLogs): void {
    this.closeBar()
    const header = tableHeader(record)
    if (header !== this.headerShown) {
      this.print(header)
      this.headerShown = header
    }
    this.print(tableRow(record, this.bestEpoch() === record.epoch))
  }

  onTrainEnd(ctx: TrainContext): void {
    this.closeBar()
    const history = ctx.history()
    if (ctx.stopTraining) this.print(`convkit: stopped early: ${ctx.stopReason}`)
    if (history.best)
      this.print(
        `convkit: best epoch ${history.best.epoch} (${history.best.monitor} ${history.best.value.toFixed(4)}): ${path.join(ctx.runDir, history.best.checkpoint)}`,
      )
  }

  private closeBar(): void {
    this.bar?.done()
    this.bar = null
  }
}
