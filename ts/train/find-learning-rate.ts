// findLearningRate() and train()'s `lr: 'find'`: a learning-rate sweep on the model a run prepares, trained as the
// run's epochs would train it (its data and order, batch size, augmentation, precision, loss, and what trains in its last epoch),
// on a copy of it. The sweep's curve goes to lr-find.json and lr-find.svg/png.
import path from 'node:path'
import { deriveSeed } from '../data/split.ts'
import { InputError } from '../errors.ts'
import { plotLrFind } from '../report/lr-find-chart.ts'
import { writeFileAtomic } from '../util/atomic-write.ts'
import { runStamp } from '../util/run-stamp.ts'
import { setSeed } from '../util/device.ts'
import { epochOrder, runLoss } from './class-balance.ts'
import { LR_FIND_OPTIONS, resolveLrFind, type LrFindOptions, type LrFindSettings } from './lr-find-options.ts'
import { sweepLearningRate } from './lr-finder.ts'
import type { LrSweep } from './lr-sweep.ts'
import { applyLastEpochState, prepareRun, type PreparedRun } from './prepare.ts'
import type { TrainOptions } from './train-options.ts'

/** The options of findLearningRate(): train()'s (the data, model, batch size, augmentation… of the run to come) and the sweep's. */
export type FindLearningRateOptions = TrainOptions & LrFindOptions

export interface FindLearningRateResult extends LrSweep {
  /** The folder the sweep's files are in (`out`). */
  dir: string
  files: { json: string; svg: string | null; png: string | null }
}

/** The sweep of a prepared run: its model as prepared, training what its last epoch trains, over its training images in its epochs' order. */
async function sweepRun(run: PreparedRun, settings: LrFindSettings, signal: AbortSignal | undefined): Promise<LrSweep> {
  const { config, data, sync } = run
  // The loss train() sets on the model: the checkpoint the copy comes from lacks it.
  const { loss } = runLoss(run.config, run.data)
  // Seeded like an epoch, so that the sweep's dropout repeats; each epoch seeds its own afterwards.
  setSeed(sync.seed(deriveSeed(config.seed, 0x1f1d)))
  return sweepLearningRate(run.model, run.trainData, {
    ...settings,
    batchSize: config.batchSize,
    // Streamed shards: the training images held in memory are a sample of them, which stands for them here.
    order: (pass) => epochOrder(config.sampler, data.train, data.trainSet.labels, config.seed, pass),
    augment: run.augment,
    seed: config.seed,
    quiet: config.quiet,
    signal,
    prepare: (copy) => {
      copy.setLoss(loss)
      // A sweep of the head alone, as a frozen first epoch trains, would find rates ten times what the whole network
      // takes from epoch 2 on (bench/RESULTS.md), and the run's one rate serves both.
      applyLastEpochState(copy, config)
    },
  })
}

/** Writes lr-find.json, and with `plot` lr-find.svg and lr-find.png, into `dir`. */
async function writeSweep(sweep: LrSweep, dir: string, plot: boolean): Promise<FindLearningRateResult['files']> {
  const json = path.join(dir, 'lr-find.json')
  await writeFileAtomic(json, `${JSON.stringify(sweep, null, 2)}\n`)
  const plotted = plot && sweep.rates.length > 0 ? await plotLrFind(sweep, dir) : null
  return { json, svg: plotted?.svg ?? null, png: plotted?.png ?? null }
}

/** A rate as people write it: 1e-7, 0.003, 10. */
function rate(x: number): string {
  return x >= 1e-3 && x < 1e4 ? String(x) : x.toExponential()
}

/** The suggestion's reason and the sweep it comes from, for the console and `chosen.lrReason`. */
function describe(sweep: LrSweep): string {
  const stop = sweep.stoppedEarly ? `, stopped after ${sweep.rates.length}: ${sweep.stopReason}` : ''
  return `${sweep.suggestion.reason}; a sweep of ${rate(sweep.startLr)}–${rate(sweep.endLr)} over ${sweep.steps} batches${stop}`
}

/**
 * train()'s rate for the first epoch of this invocation: `lr` as given; or with `lr: 'find'`, the suggestion of a sweep
 * (recorded in `chosen.lr` with its reason, and kept by a resumed run), set on the model. The sweep trains a copy: the
 * model starts the run with the weights and optimizer state it was prepared with.
 */
export async function runLearningRate(run: PreparedRun, signal: AbortSignal | undefined): Promise<number> {
  const { config, previous, chosen, sync, model, print } = run
  if (config.lr !== 'find') return previous?.lr ?? config.lr
  // A resumed run keeps the rate its sweep chose, and goes on where its schedule and plateaus took it.
  if (chosen.lr !== undefined) return previous?.lr ?? chosen.lr
  const sweep = await sweepRun(run, config.lrFind, signal)
  // Each rank swept its own copy; rank 0's outcome is every rank's (before any rank may stop, so none waits alone).
  const outcome = [sweep.suggestion.lr, sweep.interrupted ? 1 : 0]
  const [lr, interrupted] = sync.group ? await sync.group.broadcast(outcome, 0, 'the learning-rate choice') : outcome
  // Stopped by the signal, the run stops before its first step and records no choice: a resumed one sweeps again.
  if (interrupted) return Number.isFinite(lr) ? lr! : sweep.startLr
  if (!Number.isFinite(lr)) {
    throw new InputError('INVALID_OPTION', `option lr: 'find' read no rate from its sweep (${describe(sweep)}); pass a rate`)
  }
  chosen.lr = lr!
  chosen.lrReason = describe(sweep)
  model.setLearningRate(chosen.lr)
  print(`convkit: lr ${chosen.lr.toExponential(2)} (lr find: ${chosen.lrReason})`)
  if (sync.isWriter) await writeSweep(sweep, run.runDir, config.report)
  return chosen.lr
}

/**
 * A learning-rate range test: prepares the run that `train()` would with these options (data, splits, model,
 * pretrained weights, precision, what trains in its last epoch), then trains a copy of its model for `steps` batches at
 * rates growing exponentially from `startLr` to `endLr`, stopping when the smoothed loss diverges, and suggests a tenth
 * of the rate at the smoothed loss's lowest point. Writes lr-find.json (rates, losses, smoothed losses, suggestion) and lr-find.svg/png (loss
 * against rate, the suggestion marked) into `out`. `train({ lr: 'find' })` does the same before it trains.
 *
 * @example
 * const { suggestion } = await findLearningRate({ data: 'cifar10', limitTrain: 2000 })
 * await train({ data: 'cifar10', lr: suggestion.lr })
 */
export async function findLearningRate(options: FindLearningRateOptions): Promise<FindLearningRateResult> {
  const settings = resolveLrFind(options)
  if (options.distributed) throw new InputError('INVALID_OPTION', 'option distributed: a learning-rate sweep runs in one process')
  for (const key of ['lr', 'lrFind'] as const) {
    if (options[key] !== undefined)
      throw new InputError(
        'INVALID_OPTION',
        `option ${key}: findLearningRate sweeps the rate itself; give startLr, endLr and steps instead`,
      )
  }
  const trainOptions = Object.fromEntries(
    Object.entries(options).filter(([key]) => !Object.hasOwn(LR_FIND_OPTIONS, key)),
  ) as unknown as TrainOptions
  const joined: { sync?: PreparedRun['sync'] } = {}
  try {
    const run = await prepareRun({ ...trainOptions, out: trainOptions.out ?? path.join('runs', `lr-find-${runStamp()}`) }, joined)
    const sweep = await sweepRun(run, settings, options.signal)
    const files = await writeSweep(sweep, run.runDir, true)
    const suggested = Number.isFinite(sweep.suggestion.lr) ? `suggested lr ${sweep.suggestion.lr.toExponential(2)}` : 'no rate suggested'
    run.print(`convkit: ${suggested} (${describe(sweep)})`)
    run.print(`convkit: the sweep is in ${files.json}${files.png ? ` and ${path.basename(files.png)}` : ''}`)
    return { ...sweep, dir: run.runDir, files }
  } finally {
    joined.sync?.finish()
  }
}
