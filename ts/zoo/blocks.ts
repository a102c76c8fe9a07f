// Shared pieces of the model zoo: the builders' options, conv + batch norm + activation, and the head, laid out so
// that every tensor lands under the key torchvision (or timm, or the weights file) gives it.
import { InputError } from '../errors.ts'
import type { Conv2dLayer, Layer, LinearLayer, ModelSpec, SequentialLayer, Size2, WeightInit } from '../model/layers.ts'

/** What every zoo builder takes. */
export interface ZooOptions {
  /** Outputs of the classifier: 1000 for ImageNet weights, the data's class count for a replaced head. */
  classes: number
  /**
   * `[height, width]` of the input images. Any size the network's strides leave at least 1×1 works; the weights
   * were trained at the default.
   * @default [224, 224] ([32, 32] for resnet9)
   */
  inputSize?: [height: number, width: number]
  /**
   * Dropout probability in the classifier while training; 0 turns it off. Architectures without dropout accept
   * only 0.
   * @default the reference's: 0.2 for mobilenet_v2, mobilenet_v3_large and efficientnet_b0, 0 for efficientnet_lite0
   */
  dropout?: number
  /**
   * Stochastic depth of the last residual block while training, the earlier ones scaled down linearly by block
   * index (`dropPath · i / blocks`); 0 turns it off. Architectures without it accept only 0.
   * @default the reference's: 0.2 for efficientnet_b0, 0 for efficientnet_lite0
   */
  dropPath?: number
}

/** `ZooOptions` checked and filled in with an architecture's defaults. */
export interface ResolvedOptions {
  classes: number
  inputShape: [channels: number, height: number, width: number]
  dropout: number
  dropPath: number
}

/**
 * An architecture's defaults. `dropout` / `dropPath` null: the architecture has none, so only 0 is accepted.
 */
export interface ZooDefaults {
  inputSize: [height: number, width: number]
  dropout: number | null
  dropPath: number | null
}

/** Checks `options` where they enter a builder of `arch`, and fills in its defaults. */
export function resolveOptions(arch: string, options: ZooOptions, defaults: ZooDefaults): ResolvedOptions {
  const bad = (field: string, expected: string, got: unknown) =>
    new InputError('INVALID_OPTION', `${arch}: option ${field}: expected ${expected}, got ${JSON.stringify(got)}`)
  if (typeof options !== 'object' || options === null) throw bad('options', 'an object with `classes`', options)
  const { classes, inputSize = defaults.inputSize } = options
  if (!Number.isInteger(classes) || classes < 1) throw bad('classes', 'an integer >= 1', classes)
  if (!Array.isArray(inputSize) || inputSize.length !== 2 || !inputSize.every((d) => Number.isInteger(d) && d >= 1)) {
    throw bad('inputSize', '[height, width], integers >= 1', inputSize)
  }
  const probability = (field: 'dropout' | 'dropPath', fallback: number | null): number => {
    const value = options[field] ?? fallback ?? 0
    if (typeof value !== 'number' || !(value >= 0 && value < 1)) throw bad(field, 'a probability in [0, 1)', value)
    if (fallback === null && value !== 0)
      throw bad(field, `0 (${arch} has no ${field === 'dropout' ? 'dropout' : 'stochastic depth'})`, value)
    return value
  }
  return {
    classes,
    inputShape: [3, inputSize[0], inputSize[1]],
    dropout: probability('dropout', defaults.dropout),
    dropPath: probability('dropPath', defaults.dropPath),
  }
}

/** The activations the zoo's networks use. */
export type ZooActivation = 'relu' | 'relu6' | 'silu' | 'hardswish'

/** Batch-norm settings, PyTorch's convention (momentum is TensorFlow's 1 − decay). */
export interface Norm {
  eps: number
  momentum: number
}

/** PyTorch's defaults (every torchvision network here but mobilenet_v3_large). */
export const TORCH_NORM: Norm = { eps: 1e-5, momentum: 0.1 }

export interface ConvOptions {
  /** @default 1 */
  stride?: number
  /** @default 1 */
  groups?: number
  /** @default (kernel − 1) / 2 on each side, torchvision's `Conv2dNormActivation` */
  padding?: Size2 | 'tf-same'
  /** @default 'kaimingNormal' */
  init?: WeightInit
  name?: string
}

/** A bias-free convolution (a batch norm always follows in the zoo), padded to keep the size at stride 1. */
export function conv(outChannels: number, kernelSize: number, options: ConvOptions = {}): Conv2dLayer {
  const layer: Conv2dLayer = {
    type: 'conv2d',
    outChannels,
    kernelSize,
    stride: options.stride ?? 1,
    padding: options.padding ?? (kernelSize - 1) / 2,
    groups: options.groups ?? 1,
    bias: false,
    init: options.init ?? 'kaimingNormal',
  }
  if (options.name !== undefined) layer.name = options.name
  return layer
}

export function batchNorm(norm: Norm, name?: string): Layer {
  return { type: 'batchnorm2d', eps: norm.eps, momentum: norm.momentum, ...(name === undefined ? {} : { name }) }
}

export function activation(name: ZooActivation): Layer {
  return { type: name }
}

/**
 * torchvision's `Conv2dNormActivation`: a sequential of conv (`.0`), batch norm (`.1`) and, unless `act` is null,
 * the activation (`.2`, no tensors).
 */
export function convBnAct(
  outChannels: number,
  kernelSize: number,
  norm: Norm,
  act: ZooActivation | null,
  options: ConvOptions = {},
): SequentialLayer {
  const { name, ...convOptions } = options
  const layers: Layer[] = [conv(outChannels, kernelSize, convOptions), batchNorm(norm)]
  if (act !== null) layers.push(activation(act))
  return { type: 'sequential', layers, ...(name === undefined ? {} : { name }) }
}

/**
 * A torchvision inverted-residual block: its layers in a sequential named `body` (`conv` in MobileNetV2, `block` in
 * MobileNetV3 and EfficientNet), wrapped in a residual (with stochastic depth `dropPath`) when the block adds its
 * input, in a plain sequential otherwise, so the keys read `features.3.block.1.0.weight` either way.
 */
export function invertedBlock(body: string, layers: Layer[], residual: boolean, dropPath = 0): Layer {
  const inner: SequentialLayer = { type: 'sequential', name: body, layers }
  if (!residual) return { type: 'sequential', layers: [inner] }
  return { type: 'residual', layers: [inner], ...(dropPath > 0 ? { dropPath } : {}) }
}

/** Global average pooling, flattened: the start of every head here but resnet9's. */
export function globalAveragePool(): Layer[] {
  return [{ type: 'adaptiveavgpool2d', outputSize: 1 }, { type: 'flatten' }]
}

/** A fully connected layer, by default with PyTorch's initialization (uniform ±1/√in, weight and bias). */
export function linear(outFeatures: number, options: { name?: string; bias?: boolean; init?: WeightInit } = {}): LinearLayer {
  return {
    type: 'linear',
    outFeatures,
    bias: options.bias ?? true,
    init: options.init ?? 'default',
    ...(options.name === undefined ? {} : { name: options.name }),
  }
}

/**
 * torchvision's `_make_divisible`: `v` rounded to the nearest multiple of `divisor` (at least `divisor`), never
 * more than 10 % below `v`.
 */
export function makeDivisible(v: number, divisor = 8): number {
  let rounded = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor)
  if (rounded < 0.9 * v) rounded += divisor
  return rounded
}

export function spec(options: ResolvedOptions, layers: Layer[]): ModelSpec {
  return { inputShape: options.inputShape, layers }
}
