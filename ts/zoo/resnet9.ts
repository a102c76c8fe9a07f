// ResNet-9, David Page's fast CIFAR-10 network ("How to train your ResNet", DAWNBench 2018), with keys that follow
// his module paths (`layer1.residual.res1.conv` ↔ his `layer1_residual_res1_conv`).
import type { Layer, ModelSpec, SequentialLayer } from '../model/layers.ts'
import { batchNorm, conv, linear, resolveOptions, spec, TORCH_NORM, type ZooOptions } from './blocks.ts'

/** Page's `conv_bn`: 3×3 conv (PyTorch's default init, no bias), batch norm, ReLU, under `name`. */
function convBn(name: string, outChannels: number): SequentialLayer {
  return {
    type: 'sequential',
    name,
    layers: [conv(outChannels, 3, { name: 'conv', init: 'default' }), batchNorm(TORCH_NORM, 'bn'), { type: 'relu' }],
  }
}

/** conv_bn → 2×2 max pool, then, where `residual`, `x + res2(res1(x))` (no activation after the sum). */
function stage(name: string, outChannels: number, residual: boolean): Layer {
  const { layers } = convBn(name, outChannels)
  layers.push({ type: 'maxpool2d', kernelSize: 2 })
  if (residual) {
    layers.push({ type: 'residual', name: 'residual', layers: [convBn('res1', outChannels), convBn('res2', outChannels)] })
  }
  return { type: 'sequential', name, layers }
}

/**
 * ResNet-9: `prep` conv_bn 64, `layer1` 128 with a residual, `layer2` 256, `layer3` 512 with a residual, global
 * max pool (Page's 4×4 pool on a 32×32 input), `linear` without bias, × 0.125. Inputs from 8×8 up. 6,573,120
 * parameters at 10 classes.
 *
 * @example
 * const model = Model.create(resnet9({ classes: 10 }))
 */
export function resnet9(options: ZooOptions): ModelSpec {
  const o = resolveOptions('resnet9', options, { inputSize: [32, 32], dropout: null, dropPath: null })
  return spec(o, [
    convBn('prep', 64),
    stage('layer1', 128, true),
    stage('layer2', 256, false),
    stage('layer3', 512, true),
    { type: 'adaptivemaxpool2d', outputSize: 1 },
    { type: 'flatten' },
    linear(o.classes, { name: 'linear', bias: false }),
    { type: 'scale', factor: 0.125 },
  ])
}
