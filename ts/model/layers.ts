// The layer types of a model spec, as TypeScript sees them. Each is declared in Rust in its own file under
// crates/core/src/layers/ (fields, defaults, shape inference, forward pass); this file mirrors the fields for
// editors, and __test__/spec-conformance.spec.ts checks the two agree, field by field.

/** One number for both dimensions, or `[height, width]`. */
export type Size2 = number | [height: number, width: number]

/**
 * How a layer's weights start out: PyTorch's `default` (uniform ±1/√fan_in), torchvision's `kaimingNormal`
 * (fan-out, ReLU gain, zero biases), `normal` (N(0, 0.01²), zero biases: torchvision's MobileNet classifiers),
 * `uniformOut` (±1/√out, zero biases: torchvision's EfficientNet classifiers), `truncNormal` (N(0, 0.02²), zero
 * biases: torchvision's ConvNeXt), `dirac` (convolutions: the first
 * filters pass their channel through, airbench's partial identity) or `zeros`.
 */
export type WeightInit = 'default' | 'kaimingNormal' | 'normal' | 'uniformOut' | 'truncNormal' | 'dirac' | 'zeros'

/** A nonlinearity named as a field (squeeze-and-excitation's `activation` and `gate`). */
export type ActivationName = 'relu' | 'relu6' | 'gelu' | 'silu' | 'hardswish' | 'hardsigmoid' | 'sigmoid'

/** Fields every layer with tensors (or with layers inside) may carry. */
interface Named {
  /**
   * The prefix of its tensors in checkpoints (`conv1` → `conv1.weight`). Defaults to the type counted in its block
   * (`conv1`, `bn2`, `fc1`) at the top level and in residual bodies, and to its position inside a `sequential`.
   */
  name?: string
  /** False freezes the layer (and everything in a block): its weights and batch statistics do not change. @default true */
  trainable?: boolean
}

/** A 2-d convolution. */
export interface Conv2dLayer extends Named {
  type: 'conv2d'
  outChannels: number
  kernelSize: Size2
  /** @default 1 */
  stride?: Size2
  /**
   * Zeros on each side (a number or `[h, w]`), `'same'` (output keeps the input size; stride 1), or `'tf-same'`
   * (TensorFlow's SAME: output ⌈input/stride⌉, the odd pixel after; the EfficientNet-Lite weights need it).
   * @default 0
   */
  padding?: Size2 | 'same' | 'tf-same'
  /** @default 1 */
  dilation?: Size2
  /** Channel groups; equal to the input channels for a depthwise convolution. @default 1 */
  groups?: number
  /** @default true */
  bias?: boolean
  /** @default 'default' */
  init?: WeightInit
}

/** Batch normalization over channels, with running statistics. */
export interface BatchNorm2dLayer extends Named {
  type: 'batchnorm2d'
  /** @default 1e-5 */
  eps?: number
  /** PyTorch's convention: the weight of the new batch's statistics. @default 0.1 */
  momentum?: number
  /** Learnable scale and shift. @default true */
  affine?: boolean
  /** Keep the scale fixed while the shift trains (airbench). @default false */
  frozenScale?: boolean
}

/**
 * A fully connected layer over a flat input; with `channels`, the same at each position of a `[C, H, W]` input over
 * its channels (ConvNeXt's `Linear` between permutes, a 1×1 convolution with an `[out, in]` weight).
 */
export interface LinearLayer extends Named {
  type: 'linear'
  outFeatures: number
  /** @default true */
  bias?: boolean
  /** @default 'default' */
  init?: WeightInit
  /** Over the channels of a `[C, H, W]` input, at each position. @default false */
  channels?: boolean
}

/** Layer normalization over the channels at each position, with a scale and shift per channel (torchvision's `LayerNorm2d`). */
export interface LayerNorm2dLayer extends Named {
  type: 'layernorm2d'
  /** @default 1e-5 */
  eps?: number
}

/**
 * Each channel times a learned factor (LayerScale; ConvNeXt's `layer_scale`), one `[C, 1, 1]` tensor keyed by the
 * layer's own name.
 */
export interface LayerScaleLayer extends Named {
  type: 'layerscale'
  /** Every factor's starting value. @default 1e-6 */
  init?: number
}

/** `max(0, x)`. */
export interface ReluLayer {
  type: 'relu'
}
/** `min(max(0, x), 6)`. */
export interface Relu6Layer {
  type: 'relu6'
}
/** The exact (erf) GELU. */
export interface GeluLayer {
  type: 'gelu'
}
/** `x · sigmoid(x)` (swish). */
export interface SiluLayer {
  type: 'silu'
}
/** `x · relu6(x + 3) / 6`. */
export interface HardswishLayer {
  type: 'hardswish'
}
/** `relu6(x + 3) / 6`. */
export interface HardsigmoidLayer {
  type: 'hardsigmoid'
}
export interface SigmoidLayer {
  type: 'sigmoid'
}

export interface MaxPool2dLayer {
  type: 'maxpool2d'
  kernelSize: Size2
  /** @default kernelSize */
  stride?: Size2
  /** @default 0 */
  padding?: Size2
  /** @default false */
  ceilMode?: boolean
}

export interface AvgPool2dLayer {
  type: 'avgpool2d'
  kernelSize: Size2
  /** @default kernelSize */
  stride?: Size2
  /** @default 0 */
  padding?: Size2
  /** @default false */
  ceilMode?: boolean
  /** Count padded zeros in the average. @default true */
  countIncludePad?: boolean
}

/** Average pooling to a fixed output size; 1 (the default) pools globally. */
export interface AdaptiveAvgPool2dLayer {
  type: 'adaptiveavgpool2d'
  /** @default 1 */
  outputSize?: Size2
}

/** Max pooling to a fixed output size; 1 (the default) pools globally. */
export interface AdaptiveMaxPool2dLayer {
  type: 'adaptivemaxpool2d'
  /** @default 1 */
  outputSize?: Size2
}

/** `[C, H, W]` → `[C·H·W]`; needed before the first linear layer. */
export interface FlattenLayer {
  type: 'flatten'
}
export interface IdentityLayer {
  type: 'identity'
}
export interface DropoutLayer {
  type: 'dropout'
  /** Probability of zeroing an activation while training, in [0, 1). */
  p: number
}
/** Multiplies by a constant. */
export interface ScaleLayer {
  type: 'scale'
  factor: number
}

/** Layers in order under one name; children are named by position (`0`, `1`, …) like `nn.Sequential`. */
export interface SequentialLayer extends Named {
  type: 'sequential'
  layers: Layer[]
}

/**
 * `body(x) + shortcut(x)`, then `activation` if set. The body's layers are named like a PyTorch block's children (`conv1`, `bn1`, …); the
 * shortcut is the identity, or a projection run like a `sequential`.
 */
export interface ResidualLayer extends Named {
  type: 'residual'
  layers: Layer[]
  shortcut?: Layer[]
  /** The shortcut's name. @default 'downsample' */
  shortcutName?: string
  /** Stochastic depth: while training, skip the body for a whole image with this probability. @default 0 */
  dropPath?: number
  /** Applied to the sum, as torchvision's ResNet blocks end with `relu(out + identity)`. @default none */
  activation?: ActivationName
}

/** Squeeze-and-excitation: global pool, 1×1 conv down (`fc1`), activation, 1×1 conv up (`fc2`), gate, scale. */
export interface SeLayer extends Named {
  type: 'se'
  squeezeChannels: number
  /** @default 'relu' */
  activation?: ActivationName
  /** @default 'sigmoid' */
  gate?: ActivationName
  /** How `fc1` and `fc2` start: `'default'` or `'kaimingNormal'` (torchvision's). @default 'default' */
  init?: 'default' | 'kaimingNormal'
}

export type Layer =
  | Conv2dLayer
  | BatchNorm2dLayer
  | LayerNorm2dLayer
  | LayerScaleLayer
  | LinearLayer
  | ReluLayer
  | Relu6Layer
  | GeluLayer
  | SiluLayer
  | HardswishLayer
  | HardsigmoidLayer
  | SigmoidLayer
  | MaxPool2dLayer
  | AvgPool2dLayer
  | AdaptiveAvgPool2dLayer
  | AdaptiveMaxPool2dLayer
  | FlattenLayer
  | IdentityLayer
  | DropoutLayer
  | ScaleLayer
  | SequentialLayer
  | ResidualLayer
  | SeLayer

/** `[channels, height, width]` of one image. */
export type Shape3 = [channels: number, height: number, width: number]

/** A model: its input shape and its layers. Sizes between layers are inferred; the last layer's output is the class count. */
export interface ModelSpec {
  inputShape: Shape3
  layers: Layer[]
}
