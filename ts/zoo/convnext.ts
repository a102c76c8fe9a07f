// ConvNeXt-Tiny as torchvision 0.26 builds it (Liu et al. 2022), with its state-dict keys.
import type { Conv2dLayer, Layer, ModelSpec } from '../model/layers.ts'
import { linear, resolveOptions, spec, type ZooOptions } from './blocks.ts'

/** ConvNeXt-Tiny's stages: width and blocks; a downsampling layer (norm, 2×2 stride-2 conv) sits between stages. */
const TINY_STAGES: readonly (readonly [width: number, blocks: number])[] = [
  [96, 3],
  [192, 3],
  [384, 9],
  [768, 3],
]
/** torchvision's `LayerNorm2d` and `LayerNorm` in ConvNeXt: eps 1e-6. */
const NORM: Layer = { type: 'layernorm2d', eps: 1e-6 }

/** A biased convolution, initialized as torchvision's ConvNeXt does (`trunc_normal_(std=0.02)`, zero bias). */
function conv(outChannels: number, kernelSize: number, stride: number, padding: number, groups = 1): Conv2dLayer {
  return { type: 'conv2d', outChannels, kernelSize, stride, padding, groups, bias: true, init: 'truncNormal' }
}

/**
 * torchvision's `CNBlock`: `block` = depthwise 7×7 (`.0`), layer norm over channels (`.2`), linear to 4× the width
 * (`.3`), GELU, linear back (`.5`) — `.1` and `.6` are the permutes to and from channels-last, which ConvKit does not
 * need, so identities hold their places — then `layer_scale`, stochastic depth, and the input added.
 */
function block(width: number, dropPath: number): Layer {
  return {
    type: 'residual',
    layers: [
      {
        type: 'sequential',
        name: 'block',
        layers: [
          conv(width, 7, 1, 3, width),
          { type: 'identity' },
          NORM,
          { ...linear(4 * width, { init: 'truncNormal' }), channels: true },
          { type: 'gelu' },
          { ...linear(width, { init: 'truncNormal' }), channels: true },
          { type: 'identity' },
        ],
      },
      { type: 'layerscale', name: 'layer_scale', init: 1e-6 },
    ],
    ...(dropPath > 0 ? { dropPath } : {}),
  }
}

/**
 * ConvNeXt-Tiny, torchvision's `convnext_tiny`: `features.0` a 4×4 stride-4 patch convolution to 96 and layer norm,
 * `features.1/3/5/7` stages of ConvNeXt blocks (widths 96-192-384-768, depths 3-3-9-3), `features.2/4/6` downsampling
 * (layer norm, 2×2 stride-2 convolution), global average pool, `classifier.0` layer norm, `classifier.2` linear.
 * Stochastic depth `dropPath · i / 17` on block i. 28,589,128 parameters at 1000 classes.
 *
 * @example
 * const model = Model.create(convnextTiny({ classes: 10 }))
 */
export function convnextTiny(options: ZooOptions): ModelSpec {
  const o = resolveOptions('convnext_tiny', options, { inputSize: [224, 224], dropout: null, dropPath: 0.1 })
  const total = TINY_STAGES.reduce((sum, [, blocks]) => sum + blocks, 0)
  let index = 0
  const features: Layer[] = [{ type: 'sequential', layers: [conv(TINY_STAGES[0]![0], 4, 4, 0), NORM] }]
  TINY_STAGES.forEach(([width, blocks], s) => {
    features.push({ type: 'sequential', layers: Array.from({ length: blocks }, () => block(width, (o.dropPath * index++) / (total - 1))) })
    const next = TINY_STAGES[s + 1]
    if (next) features.push({ type: 'sequential', layers: [NORM, conv(next[0], 2, 2, 0)] })
  })
  return spec(o, [
    { type: 'sequential', name: 'features', layers: features },
    { type: 'adaptiveavgpool2d', outputSize: 1 },
    // The head normalizes the pooled 1×1 map, then flattens it.
    { type: 'sequential', name: 'classifier', layers: [NORM, { type: 'flatten' }, linear(o.classes, { init: 'truncNormal' })] },
  ])
}
