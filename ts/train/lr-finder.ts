// sweepLearningRate(): a learning-rate range test on a copy of a model. The copy is made through a checkpoint of the
// weights and the optimizer state, trained at exponentially growing rates, and dropped: the model itself is never
// stepped, so training it afterwards starts from exactly the weights and optimizer state it had.
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { deriveSeed, shuffle } from '../data/split.ts'
import type { TensorDataset } from '../data/tensor-dataset.ts'
import { InputError } from '../errors.ts'
import { Model, type AugmentOptions, type TrainBatch } from '../model/model.ts'
import type { Device } from '../util/device.ts'
import { ProgressBar } from '../util/progress.ts'
import { resolveLrFind, type LrFindOptions } from './lr-find-options.ts'
import { SmoothedLoss, suggestLearningRate, sweepRates, type LrSweep } from './lr-sweep.ts'

export interface SweepLearningRateOptions extends LrFindOptions {
  /** Images per batch. Defaults to 128. */
  batchSize?: number
  /**
   * The images of each pass over the data (`pass` counts from 1), in the order the batches take them; only full
   * batches are trained, so that every loss is a mean over as many images. Defaults to every image of the dataset,
   * shuffled by `seed` for each pass.
   */
  order?: (pass: number) => Int32Array | readonly number[]
  /** Each batch's augmentation. Defaults to none. */
  augment?: AugmentOptions
  /** Seeds the default order and the augmentation. Defaults to 0. */
  seed?: number
  /**
   * Sets on the copy what a checkpoint does not keep, so that it trains as the model would: its loss (`setLoss`),
   * frozen layers (`setTrainable`), frozen batch norm statistics. The copy has the model's precision already.
   */
  prepare?: (copy: Model) => void | Promise<void>
  /** Stops after the batch running now; the result has `interrupted` set. */
  signal?: AbortSignal
  /** No progress bar. Defaults to false. */
  quiet?: boolean
}

/** Weights, buffers and optimizer state in a model of their own (the averaged weights too, when averaging). */
async function copyOf(model: Model): Promise<Model> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'convkit-lr-find-'))
  try {
    const file = path.join(dir, 'model.safetensors')
    await model.save(file, { withOptimizer: true })
    const copy = await Model.load(file, { device: model.device as Device, forTraining: true })
    copy.setPrecision(model.precision)
    return copy
  } finally {
    await fsp.rm(dir, { recursive: true, force: true })
  }
}

/**
 * Trains a copy of `model` on batches of `data` at rates growing exponentially from `startLr` to `endLr` over
 * `steps` batches, recording each batch's loss and their smoothed curve, and stops early when the smoothed loss
 * diverges (over 4× its best). Suggests a tenth of the rate at the smoothed loss's lowest point ({@link suggestLearningRate}). `model`
 * itself is left as it was, weights and optimizer state alike.
 *
 * @example
 * const sweep = await sweepLearningRate(model, train, { batchSize: 64, steps: 100 })
 * model.setLearningRate(sweep.suggestion.lr)
 */
export async function sweepLearningRate(model: Model, data: TensorDataset, options: SweepLearningRateOptions = {}): Promise<LrSweep> {
  const { startLr, endLr, steps } = resolveLrFind(options)
  const batchSize = options.batchSize ?? 128
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new InputError('INVALID_OPTION', `option batchSize: expected an integer >= 1, got ${batchSize}`)
  const seed = options.seed ?? 0
  const all = Int32Array.from({ length: data.length }, (_, i) => i)
  const orderOf = (pass: number): Int32Array => {
    const order = options.order?.(pass) ?? shuffle(all, deriveSeed(seed, pass, 0x1f))
    if (order.length === 0) throw new InputError('INVALID_OPTION', 'option order: expected images to sweep over, got none')
    return order instanceof Int32Array ? order : Int32Array.from(order)
  }
  const rates = sweepRates(startLr, endLr, steps)
  const runSeed = deriveSeed(seed, 0xf1)
  function* batches(): Generator<TrainBatch> {
    let step = 0
    for (let pass = 1; step < steps; pass++) {
      const order = orderOf(pass)
      // Fewer images than a batch make one smaller batch per pass.
      const size = Math.min(batchSize, order.length)
      for (let b = 0; b + size <= order.length && step < steps; b += size, step++) {
        yield {
          indices: order.subarray(b, b + size),
          options: { lr: rates[step]!, augment: options.augment, batchSeed: deriveSeed(seed, step, 0x1fd), runSeed, epoch: pass },
        }
      }
    }
  }

  const copy = await copyOf(model)
  await options.prepare?.(copy)
  const trainableParams = copy.trainableParamCount
  const sweep = { rates: [] as number[], losses: [] as number[], smoothed: [] as number[] }
  const smoother = new SmoothedLoss()
  let stopReason: string | null = null
  let interrupted = options.signal?.aborted ?? false
  const bar = new ProgressBar('lr find', { total: steps, quiet: options.quiet })
  try {
    if (!interrupted) {
      for await (const step of copy.trainBatches(data, batches())) {
        const lr = rates[sweep.rates.length]!
        const smoothed = smoother.add(step.loss)
        sweep.rates.push(lr)
        sweep.losses.push(step.loss)
        sweep.smoothed.push(smoothed)
        bar.update(sweep.rates.length, { lr: lr.toExponential(1), loss: smoothed })
        const diverged = smoother.divergence(smoothed)
        if (diverged) {
          stopReason = `${diverged} at lr ${lr.toExponential(2)}`
          break
        }
        if (options.signal?.aborted) {
          interrupted = true
          break
        }
      }
    }
  } finally {
    bar.done()
  }
  return {
    startLr,
    endLr,
    steps,
    ...sweep,
    stoppedEarly: stopReason !== null,
    stopReason,
    interrupted,
    suggestion: suggestLearningRate(sweep.rates, sweep.smoothed),
    trainableParams,
    paramCount: copy.paramCount,
  }
}
