// MobileNetV2 and MobileNetV3-Large as torchvision 0.26 builds them (width 1.0), with its state-dict keys.
import type { Layer, ModelSpec } from '../model/layers.ts'
import {
  activation,
  batchNorm,
  conv,
  convBnAct,
  globalAveragePool,
  invertedBlock,
  linear,
  makeDivisible,
  resolveOptions,
  spec,
  TORCH_NORM,
  type Norm,
  type ZooActivation,
  type ZooOptions,
} from './blocks.ts'

/** MobileNetV2's stages: expansion t, output channels c, blocks n, stride s of the first block. */
const V2_STAGES: readonly (readonly [t: number, c: number, n: number, s: number])[] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
]

/**
 * MobileNetV2 (Sandler et al. 2018), torchvision's `mobilenet_v2`: `features.0` stem, `features.1`–`17` inverted
 * residuals (`features.N.conv.…`), `features.18` 1×1 to 1280, global average pool, `classifier.0` dropout,
 * `classifier.1` linear. ReLU6, batch norm eps 1e-5, momentum 0.1. 3,504,872 parameters at 1000 classes.
 *
 * @example
 * const model = Model.create(mobilenetV2({ classes: 10 }))
 */
export function mobilenetV2(options: ZooOptions): ModelSpec {
  const o = resolveOptions('mobilenet_v2', options, { inputSize: [224, 224], dropout: 0.2, dropPath: null })
  const features: Layer[] = [convBnAct(32, 3, TORCH_NORM, 'relu6', { stride: 2 })]
  let input = 32
  for (const [t, c, n, s] of V2_STAGES) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1
      const hidden = Math.round(input * t)
      const layers: Layer[] = t === 1 ? [] : [convBnAct(hidden, 1, TORCH_NORM, 'relu6')]
      // The projection is a bare conv and batch norm (`conv.2`, `conv.3`), not a Conv2dNormActivation.
      layers.push(convBnAct(hidden, 3, TORCH_NORM, 'relu6', { stride, groups: hidden }), conv(c, 1), batchNorm(TORCH_NORM))
      features.push(invertedBlock('conv', layers, stride === 1 && input === c))
      input = c
    }
  }
  features.push(convBnAct(1280, 1, TORCH_NORM, 'relu6'))
  return spec(o, [
    { type: 'sequential', name: 'features', layers: features },
    ...globalAveragePool(),
    { type: 'sequential', name: 'classifier', layers: [{ type: 'dropout', p: o.dropout }, linear(o.classes, { init: 'normal' })] },
  ])
}

/** MobileNetV3-Large's blocks: input, kernel, expanded, output channels, squeeze-and-excitation, activation, stride. */
const V3_LARGE_BLOCKS: readonly (readonly [
  input: number,
  kernel: number,
  expanded: number,
  out: number,
  se: boolean,
  act: ZooActivation,
  stride: number,
])[] = [
  [16, 3, 16, 16, false, 'relu', 1],
  [16, 3, 64, 24, false, 'relu', 2],
  [24, 3, 72, 24, false, 'relu', 1],
  [24, 5, 72, 40, true, 'relu', 2],
  [40, 5, 120, 40, true, 'relu', 1],
  [40, 5, 120, 40, true, 'relu', 1],
  [40, 3, 240, 80, false, 'hardswish', 2],
  [80, 3, 200, 80, false, 'hardswish', 1],
  [80, 3, 184, 80, false, 'hardswish', 1],
  [80, 3, 184, 80, false, 'hardswish', 1],
  [80, 3, 480, 112, true, 'hardswish', 1],
  [112, 3, 672, 112, true, 'hardswish', 1],
  [112, 5, 672, 160, true, 'hardswish', 2],
  [160, 5, 960, 160, true, 'hardswish', 1],
  [160, 5, 960, 160, true, 'hardswish', 1],
]

/** MobileNetV3's batch norm: TensorFlow's eps 1e-3 and decay 0.99. */
const V3_NORM: Norm = { eps: 1e-3, momentum: 0.01 }

/**
 * MobileNetV3-Large (Howard et al. 2019), torchvision's `mobilenet_v3_large`: `features.0` stem (hardswish),
 * `features.1`–`15` inverted residuals (`features.N.block.…`, squeeze-and-excitation with a hardsigmoid gate where the
 * paper has it), `features.16` 1×1 to 960, global average pool, then `classifier.0` linear 960→1280, hardswish,
 * `classifier.2` dropout and `classifier.3` linear. Batch norm eps 1e-3, momentum 0.01. 5,483,032 parameters at
 * 1000 classes.
 *
 * @example
 * const model = Model.create(mobilenetV3Large({ classes: 10 }))
 */
export function mobilenetV3Large(options: ZooOptions): ModelSpec {
  const o = resolveOptions('mobilenet_v3_large', options, { inputSize: [224, 224], dropout: 0.2, dropPath: null })
  const features: Layer[] = [convBnAct(16, 3, V3_NORM, 'hardswish', { stride: 2 })]
  for (const [input, kernel, expanded, out, se, act, stride] of V3_LARGE_BLOCKS) {
    const layers: Layer[] = expanded === input ? [] : [convBnAct(expanded, 1, V3_NORM, act)]
    layers.push(convBnAct(expanded, kernel, V3_NORM, act, { stride, groups: expanded }))
    if (se)
      layers.push({
        type: 'se',
        squeezeChannels: makeDivisible(Math.floor(expanded / 4)),
        activation: 'relu',
        gate: 'hardsigmoid',
        init: 'kaimingNormal',
      })
    layers.push(convBnAct(out, 1, V3_NORM, null))
    features.push(invertedBlock('block', layers, stride === 1 && input === out))
  }
  features.push(convBnAct(960, 1, V3_NORM, 'hardswish'))
  return spec(o, [
    { type: 'sequential', name: 'features', layers: features },
    ...globalAveragePool(),
    {
      type: 'sequential',
      name: 'classifier',
      layers: [
        linear(1280, { init: 'normal' }),
        activation('hardswish'),
        { type: 'dropout', p: o.dropout },
        linear(o.classes, { init: 'normal' }),
      ],
    },
  ])
}
