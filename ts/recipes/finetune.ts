// The fine-tuning recipe: what train() does with pretrained weights unless told otherwise, and what
// `--recipe finetune` names for any model. Each value was measured on the fine-tuning bench (bench/finetune.ts,
// bench/RESULTS.md: EfficientNet-Lite0 on 1 000 CIFAR-10 photos); the two rules that need the data (epochs, crop
// sizes) are functions below, applied once the data and the stored size are known.
import type { TrainOptions } from '../train/train-options.ts'

/**
 * AdamW with 10 % warmup into a cosine decay, one epoch with the pretrained body frozen (its batch norm statistics
 * stay frozen throughout: small batches of new photos would overwrite ImageNet's), the body at a fifth of the
 * classifier's rate after it, label smoothing, random-resized crops and flips, mirror test-time augmentation, batch
 * 32, the number of epochs from the data's size (`finetuneEpochs`), and the test data evaluated once, after the last
 * epoch (validation runs every epoch; evaluating 10 000 test images at 224 pixels every epoch would cost more than
 * the training).
 */
export const FINETUNE: Partial<TrainOptions> = {
  epochs: 'auto',
  batchSize: 32,
  optimizer: 'adamw',
  lr: 1e-3,
  weightDecay: 0.05,
  schedule: 'cosine',
  warmup: 0.1,
  labelSmoothing: 0.1,
  freezeEpochs: 1,
  // 0.2 scored 0.7 points above 0.1 and 1.3 above 0.4 on the bench (bench/RESULTS.md).
  backboneLrScale: 0.2,
  batchNormStatistics: 'frozen',
  // Half to all of the area scored above 0.35–1 and 0.7–1 on the bench (torchvision's ImageNet training uses 0.08–1,
  // made for hundreds of epochs; a short fine-tune on few photos needs the object kept in view).
  resizedCrop: [0.5, 1],
  flip: 'random',
  tta: 'mirror',
  testEvery: 0,
}

/**
 * What the recipe sets only for a pretrained body: a network from scratch has no features to keep (its batch norm
 * statistics would stay at their initial 0 and 1, its body would learn at a fifth of the rate after a wasted epoch).
 */
export const PRETRAINED_ONLY = ['freezeEpochs', 'backboneLrScale', 'batchNormStatistics'] as const

/**
 * Epochs by training-set size: about 8 000·√(n / 1 000) images seen, so 8 epochs of 1 000 images, 25 of 100, 3 of
 * 10 000; at least 2 and at most 30. Small sets need more passes to take enough steps; large sets take enough steps in
 * fewer, and their time grows only with the square root of their size.
 */
export function finetuneEpochs(images: number): number {
  return Math.min(30, Math.max(2, Math.round(8 * Math.sqrt(1000 / Math.max(1, images)))))
}

/**
 * The training crop of images stored at `stored` pixels: 6/7 of it, down to a multiple of 8 (192 of 224), so that
 * evaluation on the whole stored image sees objects at the size random-resized crops showed them (FixRes, Touvron et
 * al. 2019: +0.9 points on the bench). Below 64 pixels the crop would lose too much of the image: none.
 */
export function finetuneCrop(stored: readonly [number, number]): [number, number] {
  const crop = (side: number) => (side < 64 ? side : Math.floor((side * 6) / 7 / 8) * 8)
  return [crop(stored[0]), crop(stored[1])]
}
