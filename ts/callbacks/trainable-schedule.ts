// TrainableSchedule: which parameters train in which epoch. Fine-tuning's frozen body (the classifier trains alone
// for the first epochs, batch norm statistics included) and `trainableSpans` (airbench's whitening bias trains for
// the first epochs only).
import { InputError } from '../errors.ts'
import type { Model } from '../model/model.ts'
import type { TrainableSpan } from '../train/train-options.ts'
import type { Callback, TrainContext } from './callback.ts'

export interface TrainableScheduleOptions {
  /** Epochs in which only the classifier (the last linear layer) trains. Defaults to 0. */
  freezeEpochs?: number
  spans?: readonly TrainableSpan[]
}

/**
 * The tensor prefix of a model's classifier: its last linear layer, wherever it sits. Without one, an InputError
 * naming `option`, which needs it `purpose`.
 */
export function classifierOf(model: Model, option = 'freezeEpochs', purpose = 'to keep training while its body is frozen'): string {
  const head = model
    .layers()
    .filter((l) => l.kind === 'linear')
    .at(-1)?.name
  if (!head) throw new InputError('INVALID_OPTION', `option ${option}: the model has no linear layer ${purpose}`)
  return head
}

/**
 * Sets what trains at the start of each epoch.
 *
 * @example
 * new TrainableSchedule({ freezeEpochs: 1 }) // the classifier alone in epoch 1, everything from epoch 2
 */
export class TrainableSchedule implements Callback {
  private readonly freezeEpochs: number
  private readonly spans: readonly TrainableSpan[]
  private head: string | null = null

  constructor(options: TrainableScheduleOptions = {}) {
    this.freezeEpochs = options.freezeEpochs ?? 0
    this.spans = options.spans ?? []
  }

  onTrainBegin(ctx: TrainContext): void {
    this.head = this.freezeEpochs > 0 ? classifierOf(ctx.model) : null
  }

  onEpochBegin(epoch: number, ctx: TrainContext): void {
    // The body unfreezes once, at the epoch after the frozen ones; a resumed run sets it again at its first epoch.
    if (this.head !== null && epoch <= this.freezeEpochs + 1) {
      ctx.model.setTrainable(['*'], epoch > this.freezeEpochs)
      ctx.model.setTrainable([`${this.head}.*`], true)
    }
    for (const span of this.spans) ctx.model.setTrainable([span.names], epoch >= (span.from ?? 1) && epoch <= (span.until ?? Infinity))
  }
}
