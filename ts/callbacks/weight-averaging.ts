// WeightAveraging: an exponential moving average (or Lookahead) of the weights while training; evaluation and the
// best checkpoint use the averaged weights, and the run ends with them.
import type { AveragingOptions } from '../model/model.ts'
import type { Callback, TrainContext } from './callback.ts'

/** `AveragingOptions` without `totalSteps`, which the run supplies. */
export type WeightAveragingOptions = Omit<AveragingOptions, 'totalSteps'>

/**
 * Starts averaging when training begins (continuing a resumed run's average) and copies the average into the model
 * when it ends; `last.safetensors` keeps the raw weights and the average beside them, for `--resume`.
 *
 * @example
 * new WeightAveraging({ mode: 'ema', decay: 0.999 })
 */
export class WeightAveraging implements Callback {
  private readonly options: WeightAveragingOptions

  constructor(options: WeightAveragingOptions) {
    this.options = options
  }

  onTrainBegin(ctx: TrainContext): void {
    ctx.model.setAveraging({ ...this.options, totalSteps: ctx.totalSteps })
  }

  async onTrainEnd(ctx: TrainContext): Promise<void> {
    // An interrupted run stays as it was, so `--resume` continues both the weights and their average.
    if (!ctx.interrupted) await ctx.model.finishAveraging()
  }
}
