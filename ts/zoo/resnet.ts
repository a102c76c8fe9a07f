// ResNet-18, -34 and -50 as torchvision 0.26 builds them (ResNet v1.5: a bottleneck's stride on its 3×3), with its
// state-dict keys.
import type { Layer, ModelSpec } from '../model/layers.ts'
import { batchNorm, conv, globalAveragePool, linear, resolveOptions, spec, TORCH_NORM, type ZooOptions } from './blocks.ts'

/**
 * `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`: two 3×3 convs (the first with the block's stride), keys
 * `conv1`, `bn1`, `conv2`, `bn2`, and a `downsample` 1×1 conv + batch norm where the shape changes.
 */
function basicBlock(input: number, planes: number, stride: number): Layer {
  return residualBlock(input, planes, stride, [
    conv(planes, 3, { stride }),
    batchNorm(TORCH_NORM),
    { type: 'relu' },
    conv(planes, 3),
    batchNorm(TORCH_NORM),
  ])
}

/** 1×1 down to `planes`, 3×3 with the block's stride, 1×1 up to 4 · `planes` (`conv1`…`bn3`), and the shortcut. */
function bottleneck(input: number, planes: number, stride: number): Layer {
  return residualBlock(input, planes * 4, stride, [
    conv(planes, 1),
    batchNorm(TORCH_NORM),
    { type: 'relu' },
    conv(planes, 3, { stride }),
    batchNorm(TORCH_NORM),
    { type: 'relu' },
    conv(planes * 4, 1),
    batchNorm(TORCH_NORM),
  ])
}

/** A block's layers plus its shortcut: the identity, or a projection where the stride or the width changes. */
function residualBlock(input: number, out: number, stride: number, layers: Layer[]): Layer {
  const project = stride !== 1 || input !== out
  return {
    type: 'residual',
    layers,
    ...(project ? { shortcut: [conv(out, 1, { stride }), batchNorm(TORCH_NORM)] } : {}),
    activation: 'relu',
  }
}

type Block = typeof basicBlock

function resnet(arch: string, block: Block, expansion: number, depths: readonly number[], options: ZooOptions): ModelSpec {
  const o = resolveOptions(arch, options, { inputSize: [224, 224], dropout: null, dropPath: null })
  const layers: Layer[] = [
    conv(64, 7, { stride: 2, name: 'conv1' }),
    batchNorm(TORCH_NORM, 'bn1'),
    { type: 'relu' },
    { type: 'maxpool2d', kernelSize: 3, stride: 2, padding: 1 },
  ]
  let input = 64
  for (const [i, depth] of depths.entries()) {
    const planes = 64 * 2 ** i
    const blocks: Layer[] = []
    for (let b = 0; b < depth; b++) {
      blocks.push(block(input, planes, b === 0 && i > 0 ? 2 : 1))
      input = planes * expansion
    }
    layers.push({ type: 'sequential', name: `layer${i + 1}`, layers: blocks })
  }
  layers.push(...globalAveragePool(), linear(o.classes, { name: 'fc' }))
  return spec(o, layers)
}

/**
 * ResNet-18 (He et al. 2015), torchvision's `resnet18`: 7×7 stem, max pool, four stages of two basic blocks
 * (`layer1.0.conv1` …), global average pool, `fc`. 11,689,512 parameters at 1000 classes.
 *
 * @example
 * const model = Model.create(resnet18({ classes: 10 }))
 */
export function resnet18(options: ZooOptions): ModelSpec {
  return resnet('resnet18', basicBlock, 1, [2, 2, 2, 2], options)
}

/** ResNet-34, torchvision's `resnet34`: basic blocks, 3, 4, 6, 3 per stage. 21,797,672 parameters at 1000 classes. */
export function resnet34(options: ZooOptions): ModelSpec {
  return resnet('resnet34', basicBlock, 1, [3, 4, 6, 3], options)
}

/**
 * ResNet-50, torchvision's `resnet50` (v1.5): bottleneck blocks, 3, 4, 6, 3 per stage, 2048 features.
 * 25,557,032 parameters at 1000 classes.
 */
export function resnet50(options: ZooOptions): ModelSpec {
  return resnet('resnet50', bottleneck, 4, [3, 4, 6, 3], options)
}
