// RegNetY-800MF as torchvision 0.26 builds it (Radosavovic et al. 2020), with its state-dict keys.
import type { Layer, ModelSpec } from '../model/layers.ts'
import { convBnAct, globalAveragePool, linear, resolveOptions, spec, TORCH_NORM, type ZooOptions } from './blocks.ts'

/**
 * RegNetY-800MF's stages, as torchvision's `BlockParams.from_init_params(depth=14, w_0=56, w_a=38.84, w_m=2.4,
 * group_width=16, se_ratio=0.25)` works them out: output width and blocks; each stage starts with stride 2, and its
 * 3×3 convolutions have groups of 16 channels.
 */
const Y800MF_STAGES: readonly (readonly [width: number, blocks: number])[] = [
  [64, 1],
  [144, 3],
  [320, 8],
  [784, 2],
]
const GROUP_WIDTH = 16
const SE_RATIO = 0.25
const STEM_WIDTH = 32

/**
 * torchvision's `ResBottleneckBlock` with its `BottleneckTransform` `f`: 1×1 (`f.a`), grouped 3×3 with the stride
 * (`f.b`), squeeze-and-excitation to a quarter of the block's input width (`f.se`, ReLU and sigmoid), 1×1 (`f.c`, no
 * activation); a `proj` 1×1 + batch norm shortcut where the shape changes; ReLU after the sum.
 */
function bottleneckBlock(name: string, input: number, width: number, stride: number): Layer {
  const f: Layer = {
    type: 'sequential',
    name: 'f',
    layers: [
      convBnAct(width, 1, TORCH_NORM, 'relu', { name: 'a' }),
      convBnAct(width, 3, TORCH_NORM, 'relu', { name: 'b', stride, groups: width / GROUP_WIDTH }),
      { type: 'se', name: 'se', squeezeChannels: Math.round(SE_RATIO * input), activation: 'relu', gate: 'sigmoid', init: 'kaimingNormal' },
      convBnAct(width, 1, TORCH_NORM, null, { name: 'c' }),
    ],
  }
  const project = stride !== 1 || input !== width
  return {
    type: 'residual',
    name,
    layers: [f],
    ...(project ? { shortcut: convBnAct(width, 1, TORCH_NORM, null, { stride }).layers, shortcutName: 'proj' } : {}),
    activation: 'relu',
  }
}

/**
 * RegNetY-800MF, torchvision's `regnet_y_800mf`: `stem` (3×3 stride 2 to 32, batch norm, ReLU), `trunk_output.blockS`
 * stages of `blockS-i` bottleneck blocks (widths 64-144-320-784, depths 1-3-8-2), global average pool, `fc`.
 * 6,432,512 parameters at 1000 classes; no dropout or stochastic depth.
 *
 * @example
 * const model = Model.create(regnetY800mf({ classes: 10 }))
 */
export function regnetY800mf(options: ZooOptions): ModelSpec {
  const o = resolveOptions('regnet_y_800mf', options, { inputSize: [224, 224], dropout: null, dropPath: null })
  let input = STEM_WIDTH
  const stages = Y800MF_STAGES.map(([width, blocks], s): Layer => {
    const layers = Array.from({ length: blocks }, (_, i) =>
      bottleneckBlock(`block${s + 1}-${i}`, i === 0 ? input : width, width, i === 0 ? 2 : 1),
    )
    input = width
    return { type: 'sequential', name: `block${s + 1}`, layers }
  })
  return spec(o, [
    convBnAct(STEM_WIDTH, 3, TORCH_NORM, 'relu', { name: 'stem', stride: 2 }),
    { type: 'sequential', name: 'trunk_output', layers: stages },
    ...globalAveragePool(),
    linear(o.classes, { name: 'fc', init: 'normal' }),
  ])
}
