// The options of `convkit inspect` / inspectData(), declared once; the data options are train()'s own declarations.
import { boolean, choice, int, number, optionalText, size, text, type InputsOf, type ResolvedOf } from '../options/option.ts'
import { TRAIN_OPTIONS } from '../train/train-options.ts'

/**
 * Pixel match (the core's `pixel_match`: detail correlated at the best shift of up to 2 pixels of 32) from which two
 * nearest neighbours are the same picture. Measured by `npm run bench:inspect` on the whole shared CIFAR-10
 * (bench/RESULTS.md): all 200 training images planted in the test split after a JPEG re-encode at quality 60, a 1–2
 * pixel shift and a brightness change of up to 20 % match at 0.906 or more; 1.4 % of the original test images match a
 * training image at 0.85 or more, and by eye all but a few of those pairs are the same photo.
 */
export const MATCH_THRESHOLD = 0.85

/**
 * Similarity (of `duplicateDescriptors`: embedding and layout together) from which two images count as
 * near-duplicates whatever their pixels: the same view re-cropped or rescaled, which the pixel match's small shifts do
 * not reach. Measured by `npm run bench:inspect` (bench/RESULTS.md): among test images whose pixels match no training
 * image, 0.95 adds 12 of 10 000, each a photo of the same object from the same series; at 0.9 a copy's embedding is
 * no closer than many same-class look-alikes.
 */
export const NEAR_DUPLICATE_THRESHOLD = 0.95

/**
 * Labelled images from which `labelModel: 'auto'` trains the label-error network instead of fitting the probe.
 * Measured on CIFAR-10 training images with 10 % of the labels changed (bench/RESULTS.md): on 25 000 (two folds of
 * 12 500) the network's out-of-sample probabilities agreed with the given labels 65 % of the time and flagged the
 * changed ones with F1 0.67; the probe's, on all 60 200 images, 67 % and F1 0.66 (not measured on 25 000). On all of
 * them the network reached 78 % and F1 0.84. CIFAR-10 is 32 pixels, the network's own size: for larger photos,
 * where the embeddings see detail that 32×32 loses, the probe may be the better choice (`labelModel: 'probe'`).
 */
export const NETWORK_MIN_IMAGES = 25_000

/**
 * Folds of the label-error network's cross-validation: k folds cost k − 1 trainings on all the images, so two give
 * each image an out-of-sample prediction for the price of one training.
 */
export const NETWORK_FOLDS = 2

/** Images a fold of the label-error network trains on at the least: 16-image batches, 8 steps an epoch. */
export const MIN_NETWORK_FOLD_IMAGES = 128

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
  /** Pixel match at which two nearest neighbours count as near-duplicates (see MATCH_THRESHOLD). */
  matchThreshold: number({
    help: "pixel match (detail's correlation at the best small shift) from which two images are near-duplicates",
    group: 'data',
    default: MATCH_THRESHOLD,
    ok: (v) => v > 0 && v <= 1,
    expected: 'a number in (0, 1]',
  }),
  /** Similarity at which two images count as near-duplicates whatever their pixels (see NEAR_DUPLICATE_THRESHOLD). */
  nearThreshold: number({
    help: 'similarity (embedding and layout) from which two images are near-duplicates whatever their pixels',
    group: 'data',
    default: NEAR_DUPLICATE_THRESHOLD,
    ok: (v) => v > 0 && v <= 1,
    expected: 'a number in (0, 1]',
  }),
  /**
   * What gives each image the out-of-sample class probabilities that point to label errors: `'network'` trains the
   * airbench94 network on the images themselves, at 32×32, over two folds (see NETWORK_FOLDS); `'probe'` fits a
   * logistic regression on the embeddings over `folds` folds; `'auto'` takes the network from NETWORK_MIN_IMAGES
   * labelled images, where it is the better of the two on CIFAR-10 (bench/RESULTS.md), else the probe.
   * @default 'auto'
   */
  labelModel: choice(['auto', 'network', 'probe'], {
    help: `what predicts labels for the label-error search: network (trained on the images at 32x32), probe (logistic regression on the embeddings), or auto (network from ${NETWORK_MIN_IMAGES} images)`,
    group: 'data',
    default: 'auto',
  }),
  /** Epochs each fold's label-error network trains for: enough to learn the images, too few to learn their wrong labels. @default 6 */
  labelEpochs: int({ help: "epochs of each fold's label-error network", group: 'data', default: 6, min: 1 }),
  /** Folds of the probe's cross-validation. @default 5 */
  folds: int({ help: "folds of the probe's cross-validation", group: 'data', default: 5, min: 2 }),
  /** Seeds the folds and the label-error network. @default 0 */
  seed: int({ help: 'seed of the cross-validation folds and the label-error network', group: 'data', default: 0, min: 0 }),
  /** Look for label errors (single-label data). @default true */
  labelErrors: boolean({ help: 'skip the search for likely label errors', group: 'data', default: true }),
  quiet: TRAIN_OPTIONS.quiet,
} as const

/** What callers may pass. */
export type InspectOptions = InputsOf<typeof INSPECT_OPTIONS> & { signal?: AbortSignal }

/** Every option with its default applied. */
export type InspectSettings = ResolvedOf<typeof INSPECT_OPTIONS>
