// `convkit lr-find` (and `npm run lr-find`): findLearningRate() from the train command's flags (those a sweep uses)
// and the sweep's own.
import type { OptionTable } from '../options/option.ts'
import { findLearningRate, type FindLearningRateOptions } from '../train/find-learning-rate.ts'
import { LR_FIND_OPTIONS } from '../train/lr-find-options.ts'
import { TRAIN_OPTIONS } from '../train/train-options.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'
import { abortOnInterrupt } from './run.ts'

/** Train options a sweep never reads: the schedule over epochs, what happens after them, and more processes. */
const NOT_SWEPT = new Set([
  'epochs',
  'dropLast',
  'lr',
  'lrFind',
  'schedule',
  'warmup',
  'warmupStart',
  'finalLr',
  'lrPoints',
  'lrPatience',
  'lrFactor',
  'averaging',
  'averagingDecay',
  'averagingEvery',
  'averagingWarmup',
  'patience',
  'minDelta',
  'monitor',
  'testEvery',
  'tta',
  'evalInputSize',
  'trainMetrics',
  'resume',
  'report',
  'tensorboard',
  'nprocPerNode',
  'distributed',
  'bucketMb',
  'syncBatchNorm',
])

const LR_FIND_FLAGS: OptionTable = {
  ...Object.fromEntries(Object.entries(TRAIN_OPTIONS).filter(([key]) => !NOT_SWEPT.has(key))),
  out: { ...TRAIN_OPTIONS.out, help: 'where lr-find.json, lr-find.png and lr-find.svg go', shownDefault: 'runs/lr-find-<date-time>' },
  ...LR_FIND_OPTIONS,
}

const USAGE = `Find a learning rate: train a copy of the model convkit train would train for a few batches at rates growing
from --start-lr to --end-lr, and suggest one from the loss curve (a tenth of the rate where the smoothed loss is lowest). Writes lr-find.json and
lr-find.png/svg. With --quiet, prints the suggested rate alone. convkit train --lr find does this before it trains.

usage: convkit lr-find [--data <source>] [options]
       npm run lr-find -- [--data <source>] [options]`

const EXTRA: ExtraFlag[] = [
  {
    name: 'data',
    boolean: false,
    help: 'the training data, any source convkit train takes (default: cifar10)',
    metavar: '<source>',
  },
  { name: 'help', boolean: true, help: 'this text', short: 'h' },
]

export const LR_FIND_HELP = helpText(USAGE, LR_FIND_FLAGS, EXTRA)

/** Runs the lr-find command on `argv`; returns the exit code. */
export async function lrFindCommand(argv: string[]): Promise<number> {
  const { options, extra } = parseFlags(LR_FIND_FLAGS, argv, EXTRA)
  if (extra.help) {
    console.log(LR_FIND_HELP)
    return 0
  }
  const controller = abortOnInterrupt('stopping the sweep after the current batch')
  const data = (extra.data as string | undefined) ?? 'cifar10'
  const result = await findLearningRate({ ...options, data, signal: controller.signal } as FindLearningRateOptions)
  // Quiet, the rate alone, for scripts: `lr=$(convkit lr-find --quiet …)`.
  if (!Number.isFinite(result.suggestion.lr)) {
    console.error(`convkit: lr-find suggested no rate: ${result.suggestion.reason}`)
    return 1
  }
  if (options.quiet) console.log(result.suggestion.lr)
  return result.interrupted ? 130 : 0
}
