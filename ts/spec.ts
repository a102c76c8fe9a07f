// Model specs: the layer types a model is built from, and the reference CNN.
import { InputError } from './errors.ts'

/** A 2-d convolution. Its tensors are named `conv1`, `conv2`, ... in order unless `name` is given. */
export interface Conv2dLayer {
  type: 'conv2d'
  outChannels: number
  kernelSize: number
  /** Defaults to 1. */
  stride?: number
  /** Zero padding on each side. Defaults to 0. */
  padding?: number
  name?: string
}
export interface ReluLayer {
  type: 'relu'
}
export interface MaxPool2dLayer {
  type: 'maxpool2d'
  kernelSize: number
  /** Defaults to `kernelSize`. */
  stride?: number
}
/** Flattens `[C, H, W]` to `[C·H·W]`; needed before the first linear layer. */
export interface FlattenLayer {
  type: 'flatten'
}
/** A fully connected layer, named `fc1`, `fc2`, ... unless `name` is given. */
export interface LinearLayer {
  type: 'linear'
  outFeatures: number
  name?: string
}
export interface DropoutLayer {
  type: 'dropout'
  /** Probability of zeroing an activation while training, in [0, 1). */
  p: number
}
/** Batch normalization over channels, named `bn1`, `bn2`, ... unless `name` is given. */
export interface BatchNorm2dLayer {
  type: 'batchnorm2d'
  /** Defaults to 1e-5. */
  eps?: number
  /** Defaults to 0.1. */
  momentum?: number
  name?: string
}

export type Layer = Conv2dLayer | ReluLayer | MaxPool2dLayer | FlattenLayer | LinearLayer | DropoutLayer | BatchNorm2dLayer

/** `[channels, height, width]` of one image. */
export type Shape3 = [channels: number, height: number, width: number]

/** A model: its input shape and its layers. Sizes between layers are inferred; the last layer's output is the class count. */
export interface ModelSpec {
  inputShape: Shape3
  layers: Layer[]
}

/**
 * The reference network: conv 3→32 (3×3, pad 1), ReLU, maxpool 2; conv 32→64 (3×3, pad 1), ReLU, maxpool 2;
 * linear →512, ReLU; linear →classes. The first linear layer's input size follows from `inputShape`.
 *
 * @example
 * const spec = referenceCnn({ classes: 10 }) // CIFAR-10: 3×32×32 in, 10 scores out
 */
export function referenceCnn(options: { classes: number; inputShape?: Shape3 }): ModelSpec {
  return {
    inputShape: options.inputShape ?? [3, 32, 32],
    layers: [
      { type: 'conv2d', outChannels: 32, kernelSize: 3, padding: 1 },
      { type: 'relu' },
      { type: 'maxpool2d', kernelSize: 2 },
      { type: 'conv2d', outChannels: 64, kernelSize: 3, padding: 1 },
      { type: 'relu' },
      { type: 'maxpool2d', kernelSize: 2 },
      { type: 'flatten' },
      { type: 'linear', outFeatures: 512 },
      { type: 'relu' },
      { type: 'linear', outFeatures: options.classes },
    ],
  }
}

/**
 * The spec to train on data of `shape` with `classes` classes: `spec` with its input shape filled in from the data,
 * or the reference CNN when there is none. Fails when the spec's input or output disagrees with the data.
 */
export function specForData(spec: ModelSpec | null, shape: Shape3, classes: number): ModelSpec {
  const resolved = spec ? { ...spec, inputShape: spec.inputShape ?? shape } : referenceCnn({ classes, inputShape: shape })
  if (resolved.inputShape.join() !== shape.join()) {
    throw new InputError('INVALID_OPTION', `option model: inputShape [${resolved.inputShape}] does not match the data's images [${shape}]`)
  }
  const last = resolved.layers.at(-1)
  if (last?.type === 'linear' && last.outFeatures !== classes) {
    throw new InputError('INVALID_OPTION', `option model: the last layer has ${last.outFeatures} outputs, the data has ${classes} classes`)
  }
  return resolved
}
