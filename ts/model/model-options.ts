// The options a model is built with, apart from the model: what the zoo, pretrained weights and train() share with
// Model.create, so they can name them without importing the model itself.
import type { OptimizerConfig, ParamGroup } from '../binding.ts'
import type { Normalization } from '../data/image-set.ts'
import type { Device } from '../util/device.ts'

/** Any optimizer with its hyper-parameters; absent fields take PyTorch's defaults. */
export type OptimizerOptions = OptimizerConfig

/**
 * The type convolutions and linear layers compute in. `'bf16'` does what PyTorch's autocast does for these
 * layers: bfloat16 copies of inputs and weights, fp32 weights trained and saved, fp32 logits, loss and softmax.
 */
export type Precision = 'fp32' | 'bf16'

/** Test-time augmentation: the logits of the image, its mirror image, and (with `mirrorTranslate`) 1-px shifts, averaged. */
export type Tta = 'none' | 'mirror' | 'mirrorTranslate'

export interface ModelOptions {
  /** Defaults to `'auto'`: CUDA when available, else the CPU. */
  device?: Device
  /** Defaults to `{ type: 'adam' }` with PyTorch's defaults (lr 1e-3). */
  optimizer?: OptimizerOptions
  /** Parameters with their own learning-rate scale or weight decay (see `ParamGroup`). Defaults to none. */
  paramGroups?: ParamGroup[]
  /** Label smoothing ε of the training loss. Defaults to 0. */
  labelSmoothing?: number
  /** `'mean'` or `'sum'` of the per-image losses. Defaults to `'mean'`. */
  lossReduction?: 'mean' | 'sum'
  /**
   * The weight of each class in the training loss, one per class in label order (PyTorch's `cross_entropy(weight=…)`).
   * Defaults to 1 for every class.
   * @example [0.6, 3]
   */
  classWeights?: number[]
  /** Seeds libtorch before the weights are drawn, so two models with one seed start equal. */
  seed?: number
  /** Run convolutions in channels_last memory order. Defaults to true on the CPU (about 20 % faster there, see bench/RESULTS.md), false on CUDA. */
  channelsLast?: boolean
  /** Defaults to `'fp32'`. */
  precision?: Precision
  /** Class names, saved in checkpoints so predictions can be named. */
  classNames?: string[]
  /** The normalization the training data used, saved in checkpoints so prediction repeats it. */
  normalization?: Normalization
  /** How images are resized for prediction, saved in checkpoints. Defaults to stretching to the input size. */
  preprocessing?: Preprocessing
  /** Test-time augmentation `predict()` uses by default, saved in checkpoints. Defaults to `'none'`. */
  tta?: Tta
  /** `[height, width]` that evaluation and prediction feed the model (see `Model.setEvalInputSize`), saved in checkpoints. Defaults to the spec's input. */
  evalInputSize?: [number, number]
  /** The weights' type: `'float64'` computes everything in double precision, to check numerics against a reference. Defaults to `'float32'`. */
  dtype?: 'float32' | 'float64'
  /** Outputs of a zoo architecture given by name (or of a pretrained model). Defaults to `classNames.length`. */
  classes?: number
  /** `[height, width]` of a zoo architecture given by name. Defaults to its own (224 × 224 for ImageNet networks). */
  inputSize?: [number, number]
}

/** How `predict()` fits an image to the model's input. Without either resize, images are stretched to the input size. */
export interface Preprocessing {
  /** Resize the shorter side to this many pixels, then take the centre (torchvision's `Resize` + `CenterCrop`). */
  resizeShorter?: number
  /**
   * Stretch to `[height, width]`, then take the centre crop of the evaluation input size: how `train()` stores
   * images (`size`) and evaluates them, so a trained model predicts on what it was evaluated on.
   */
  resize?: [height: number, width: number]
  /** The resampling filter, as the weights' own preprocessing names it. Defaults to sharp's Lanczos-3. */
  interpolation?: 'bilinear' | 'bicubic'
}
