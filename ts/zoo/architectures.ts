// The model zoo's registry: each architecture's builder, the classifier a fine-tuning run replaces, its native input
// size and a line about it. The list of names is derived from it.
import { InputError } from '../errors.ts'
import type { ModelSpec } from '../model/layers.ts'
import type { ZooOptions } from './blocks.ts'
import { convnextTiny } from './convnext.ts'
import { efficientnetB0, efficientnetLite0, efficientnetV2S } from './efficientnet.ts'
import { mobilenetV2, mobilenetV3Large } from './mobilenet.ts'
import { resnet18, resnet34, resnet50 } from './resnet.ts'
import { regnetY800mf } from './regnet.ts'
import { resnet9 } from './resnet9.ts'

/** One architecture of the zoo. */
export interface ZooArchitecture {
  /** Its spec for `classes` outputs (and an input size, dropout, stochastic depth). */
  build: (options: ZooOptions) => ModelSpec
  /**
   * The tensor prefixes of the classifier layer(s) that a fine-tuning run replaces to fit the data's classes
   * (`classifier.1` → `classifier.1.weight`, `classifier.1.bias`); the rest keeps the pretrained weights.
   */
  head: readonly string[]
  /** `[height, width]` the weights were trained at, and the builder's default. */
  defaultInputSize: readonly [height: number, width: number]
  description: string
}

/**
 * Every architecture of the zoo by name (torchvision's and timm's names), with key names that match the
 * reference implementations' state dicts, so their weights load strictly.
 *
 * @example
 * const spec = ZOO.efficientnet_b0.build({ classes: 10 })
 */
export const ZOO = {
  resnet9: {
    build: resnet9,
    head: ['linear'],
    defaultInputSize: [32, 32],
    description: "ResNet-9 (David Page's fast CIFAR-10 network): 8 convs, two residual pairs, max pooling; 6.6 M parameters",
  },
  resnet18: {
    build: resnet18,
    head: ['fc'],
    defaultInputSize: [224, 224],
    description: 'ResNet-18 (torchvision): basic blocks 2-2-2-2; 11.7 M parameters',
  },
  resnet34: {
    build: resnet34,
    head: ['fc'],
    defaultInputSize: [224, 224],
    description: 'ResNet-34 (torchvision): basic blocks 3-4-6-3; 21.8 M parameters',
  },
  resnet50: {
    build: resnet50,
    head: ['fc'],
    defaultInputSize: [224, 224],
    description: 'ResNet-50 (torchvision, v1.5): bottleneck blocks 3-4-6-3; 25.6 M parameters',
  },
  mobilenet_v2: {
    build: mobilenetV2,
    head: ['classifier.1'],
    defaultInputSize: [224, 224],
    description: 'MobileNetV2 (torchvision): inverted residuals, ReLU6; 3.5 M parameters',
  },
  mobilenet_v3_large: {
    build: mobilenetV3Large,
    head: ['classifier.3'],
    defaultInputSize: [224, 224],
    description: 'MobileNetV3-Large (torchvision): inverted residuals with squeeze-and-excitation, hardswish; 5.5 M parameters',
  },
  efficientnet_b0: {
    build: efficientnetB0,
    head: ['classifier.1'],
    defaultInputSize: [224, 224],
    description: 'EfficientNet-B0 (torchvision): MBConv with squeeze-and-excitation, SiLU, stochastic depth; 5.3 M parameters',
  },
  efficientnet_lite0: {
    build: efficientnetLite0,
    head: ['_fc'],
    defaultInputSize: [224, 224],
    description:
      "EfficientNet-Lite0 (TensorFlow's, efficientnet_pytorch's keys): B0 without squeeze-and-excitation, ReLU6, SAME padding; 4.7 M parameters",
  },
  efficientnet_v2_s: {
    build: efficientnetV2S,
    head: ['classifier.1'],
    defaultInputSize: [384, 384],
    description:
      'EfficientNetV2-S (torchvision): FusedMBConv then MBConv stages, SiLU, stochastic depth, trained at 384 px; 21.5 M parameters',
  },
  convnext_tiny: {
    build: convnextTiny,
    head: ['classifier.2'],
    defaultInputSize: [224, 224],
    description: 'ConvNeXt-Tiny (torchvision): depthwise 7×7, layer norm, inverted MLP, layer scale, stochastic depth; 28.6 M parameters',
  },
  regnet_y_800mf: {
    build: regnetY800mf,
    head: ['fc'],
    defaultInputSize: [224, 224],
    description: 'RegNetY-800MF (torchvision): grouped bottlenecks with squeeze-and-excitation, widths 64-144-320-784; 6.4 M parameters',
  },
} as const satisfies Record<string, ZooArchitecture>

/** The name of an architecture of the zoo. */
export type ZooName = keyof typeof ZOO

/** Every architecture's name, in the registry's order. */
export const ZOO_NAMES = Object.keys(ZOO) as ZooName[]

export function isZooName(name: string): name is ZooName {
  return Object.hasOwn(ZOO, name)
}

/**
 * The spec of the zoo architecture `name`.
 *
 * @example
 * const model = Model.create(zooModel('mobilenet_v2', { classes: 10, inputSize: [160, 160] }))
 */
export function zooModel(name: ZooName, options: ZooOptions): ModelSpec {
  if (typeof name !== 'string' || !isZooName(name)) {
    throw new InputError(
      'INVALID_OPTION',
      `model zoo: unknown architecture ${JSON.stringify(name)}; expected one of ${ZOO_NAMES.join(', ')}`,
    )
  }
  return ZOO[name].build(options)
}
