// RunReport: samples.png when a run starts; plots/ and report.html when it ends.
import path from 'node:path'
import type { ImageSet } from '../data/image-set.ts'
import { samplesPng, writeRunReport } from '../report/run-report.ts'
import { writeFileAtomic } from '../util/atomic-write.ts'
import type { Callback, TrainContext } from './callback.ts'

export interface RunReportOptions {
  /** The training images the sample grid draws from. */
  trainImages: { set: ImageSet; indices: Int32Array }
  /** Prints where the report went. Defaults to nothing. */
  print?: (line: string) => void
}

export class RunReport implements Callback {
  private readonly options: RunReportOptions

  constructor(options: RunReportOptions) {
    this.options = options
  }

  async onTrainBegin(ctx: TrainContext): Promise<void> {
    // A resumed run keeps the first run's samples.
    if (ctx.resumed) return
    ctx.samplesPng = await samplesPng(this.options.trainImages.set, this.options.trainImages.indices)
    await writeFileAtomic(path.join(ctx.runDir, 'samples.png'), ctx.samplesPng)
  }

  async onTrainEnd(ctx: TrainContext): Promise<void> {
    const history = ctx.history()
    if (history.epochs.length === 0 || !ctx.reportImages) return
    try {
      await writeRunReport(ctx.runDir, history, ctx.model, ctx.reportImages.set, ctx.reportImages.indices)
      this.options.print?.(`convkit: plots in ${path.join(ctx.runDir, 'plots')}, report in ${path.join(ctx.runDir, 'report.html')}`)
    } catch (err) {
      // The run itself is on disk already; a report that cannot be drawn must not hide it.
      console.error(`convkit: could not write the plots or report: ${(err as Error).message}`)
    }
  }
}
