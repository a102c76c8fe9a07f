// airbench94 (Keller Jordan, arXiv 2404.00498; PyPI airbench 0.1.8) rebuilt from ConvKit's public pieces: its
// recipe as train options, around its network (ts/zoo/airbench94.ts). bench/RESULTS.md compares it with the package's own code.
import { airbench94Net } from '../zoo/airbench94.ts'
import type { TrainOptions } from '../train/train-options.ts'

/** airbench's learning-rate and decay parametrization: per 1 024 examples, with momentum folded in. */
const MOMENTUM = 0.85
const BATCH = 1024
const KILOSTEP = 1024 * (1 + 1 / (1 - MOMENTUM))
const LR = 11.5 / KILOSTEP
const WD = (0.0153 * BATCH) / KILOSTEP
const BIAS_LR_SCALE = 64
const EPOCHS = 9.9
const BATCHES_PER_EPOCH = Math.floor(50_000 / BATCH)
const TOTAL_STEPS = Math.ceil(BATCHES_PER_EPOCH * EPOCHS)
const PEAK_STEP = Math.floor(0.23 * TOTAL_STEPS)

/**
 * The recipe's options. Its schedule points are exact for 50 000 training images (476 steps: warmup from 0.2 at
 * step 0 to 1 at step 109, then linear toward 0.07, which the last step, 475, reaches only to 0.0725, as in
 * airbench); other dataset sizes get the same shape.
 */
export const AIRBENCH94: Partial<TrainOptions> = {
  model: ({ classes, shape }) => airbench94Net({ classes, inputShape: shape }),
  epochs: EPOCHS,
  batchSize: BATCH,
  dropLast: true,
  valSplit: 0,
  normalize: 'cifar10',
  optimizer: 'sgd',
  lr: LR,
  momentum: MOMENTUM,
  nesterov: true,
  // airbench's decay is an L2 term (weight_decay = wd / lr in torch.optim.SGD): it goes through momentum and
  // follows the schedule. Batch-norm biases train at 64× the rate with the same absolute decay.
  weightDecay: WD / LR,
  paramGroups: [{ layer: 'batchnorm2d', field: 'bias', lrScale: BIAS_LR_SCALE, weightDecay: WD / (LR * BIAS_LR_SCALE) }],
  labelSmoothing: 0.2,
  lossReduction: 'sum',
  schedule: 'piecewise',
  lrPoints: [
    [0, 0.2],
    [PEAK_STEP / (TOTAL_STEPS - 1), 1],
    [1, 1 - (0.93 * (TOTAL_STEPS - 1 - PEAK_STEP)) / (TOTAL_STEPS - PEAK_STEP)],
  ],
  averaging: 'lookahead',
  averagingEvery: 5,
  averagingDecay: 0.95 ** 5,
  averagingWarmup: 'cubic',
  cropPadding: 2,
  padMode: 'reflect',
  flip: 'alternating',
  tta: 'mirrorTranslate',
  whiten: 5000,
  whitenEps: 5e-4,
  trainableSpans: [
    { names: 'whiten.weight', until: 0 },
    { names: 'whiten.bias', until: 3 },
  ],
  patience: 100,
}
