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
 * Sets what trains in `epoch` of a schedule: with `freezeEpochs`, the classifier alone up to that epoch and every
 * parameter after it; and each span's parameters within its epochs. TrainableSchedule applies it as epochs begin, and
 * what prepares work in a run's state (the learning-rate sweep, the precision probe) applies it to their copies.
 */
export function setTrainableAt(model: Model, epoch: number, options: TrainableScheduleOptions): void {
  if ((options.freezeEpochs ?? 0) > 0) {
    model.setTrainable(['*'], epoch > options.freezeEpochs!)
    model.setTrainable([`${classifierOf(model)}.*`], true)
  }
  for (const span of options.spans ?? []) model.setTrainable([span.names], epoch >= (span.from ?? 1) && epoch <= (span.until ?? Infinity))
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

  constructor(options: TrainableScheduleOptions = {}) {
    this.freezeEpochs = options.freezeEpochs ?? 0
    this.spans = options.spans ?? []
  }

  onTrainBegin(ctx: TrainContext): void {
    // Refuses a model without a classifier before the first epoch.
    if (this.freezeEpochs > 0) classifierOf(ctx.model)
  }

  onEpochBegin(epoch: number, ctx: TrainContext): void {
    // The body unfreezes once, at the epoch after the frozen ones (a resumed run sets it again at its first epoch);
    // later epochs leave it alone, so what a callback of one's own sets then stays.
    const freezeEpochs = epoch <= this.freezeEpochs + 1 ? this.freezeEpochs : 0
    setTrainableAt(ctx.model, epoch, { freezeEpochs, spans: this.spans })
  }
}
