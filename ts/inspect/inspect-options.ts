// The options of `convkit inspect` / inspectData(), declared once; the data options are train()'s own declarations.
import { boolean, int, number, optionalText, size, text, type InputsOf, type ResolvedOf } from '../options/option.ts'
import { TRAIN_OPTIONS } from '../train/train-options.ts'

/**
 * Similarity (of `duplicateDescriptors`: embedding and layout together) from which two images count as
 * near-duplicates. Measured by `npm run bench:inspect` on the whole shared CIFAR-10 (bench/RESULTS.md): at 0.9, 1.7 %
 * of the test images have a training image this similar (ciFAIR counted 3.3 % with near-duplicates in train), but only
 * 40 % of training images planted in the test set after a JPEG re-encode at quality 60, a 1–2 pixel shift and a
 * brightness change of up to 20 % reach it; 0.8 finds 95.5 % of them and flags 8.7 % of the test images. The
 * default keeps the list short enough to look through; lower it to search harder.
 */
export const NEAR_DUPLICATE_THRESHOLD = 0.9

export const INSPECT_OPTIONS = {
  /** `[height, width]` images are decoded to (CIFAR-10 and idx files keep their own size). @default [64, 64] */
  size: size({ help: 'size images are decoded to before embedding', group: 'data', default: [64, 64], shownDefault: '64x64' }),
  pathColumn: TRAIN_OPTIONS.pathColumn,
  labelColumn: TRAIN_OPTIONS.labelColumn,
  splitColumn: TRAIN_OPTIONS.splitColumn,
  labelDelimiter: TRAIN_OPTIONS.labelDelimiter,
  cacheDir: TRAIN_OPTIONS.cacheDir,
  /** The pretrained weights whose embeddings compare images: a weight set's name or a state dict's path. @default 'efficientnet_lite0' */
  model: text({ help: 'pretrained weights that embed the images', group: 'model', default: 'efficientnet_lite0', metavar: '<weights>' }),
  /** The embedding network's input side in pixels: images are resized to it. @default 128 */
  embedSize: int({ help: "the embedding network's input side in pixels", group: 'model', default: 128, min: 32 }),
  /** The layer whose feature map is averaged into each embedding. @default the network's last feature map */
  layer: optionalText({
    help: 'layer whose feature map is the embedding',
    group: 'model',
    default: null,
    shownDefault: 'the last feature map',
    metavar: '<name>',
  }),
  device: TRAIN_OPTIONS.device,
  /** Cosine similarity at which two images count as near-duplicates (see NEAR_DUPLICATE_THRESHOLD). */
  nearThreshold: number({
    help: 'similarity (embedding and layout) from which two images are near-duplicates',
    group: 'data',
    default: NEAR_DUPLICATE_THRESHOLD,
    ok: (v) => v > 0 && v <= 1,
    expected: 'a number in (0, 1]',
  }),
  /** Folds of the cross-validation that gives each image out-of-sample probabilities. @default 5 */
  folds: int({ help: 'cross-validation folds for out-of-sample probabilities', group: 'data', default: 5, min: 2 }),
  /** Seeds the folds. @default 0 */
  seed: int({ help: 'seed of the cross-validation folds', group: 'data', default: 0, min: 0 }),
  /** Look for label errors (single-label data). @default true */
  labelErrors: boolean({ help: 'skip the search for likely label errors', group: 'data', default: true }),
  quiet: TRAIN_OPTIONS.quiet,
} as const

/** What callers may pass. */
export type InspectOptions = InputsOf<typeof INSPECT_OPTIONS> & { signal?: AbortSignal }

/** Every option with its default applied. */
export type InspectSettings = ResolvedOf<typeof INSPECT_OPTIONS>
