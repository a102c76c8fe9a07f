// TopLosses: when a run ends, its final model predicts the report's test images once more, and the images with the
// highest loss and the most confused pairs of classes go into history.json (`interpretation`) and report.html.
import { interpretPredictions, type InterpretOptions } from '../report/top-losses.ts'
import type { Callback, TrainContext } from './callback.ts'

/** The most images predicted again; a larger test set is sampled evenly across it. */
const MAX_IMAGES = 5000

export class TopLosses implements Callback {
  private readonly options: InterpretOptions

  constructor(options: InterpretOptions = {}) {
    this.options = options
  }

  async onTrainEnd(ctx: TrainContext): Promise<void> {
    const images = ctx.reportImages
    if (!images || images.indices.length === 0 || ctx.history().epochs.length === 0) return
    const stride = Math.ceil(images.indices.length / MAX_IMAGES)
    const picked = stride > 1 ? images.indices.filter((_, i) => i % stride === 0) : images.indices
    ctx.interpretation = await interpretPredictions(ctx.model, images.set, picked, this.options)
  }
}
