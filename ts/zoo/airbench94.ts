// airbench94's network (Keller Jordan, arXiv 2404.00498; PyPI airbench 0.1.8) as a spec; its recipe is
// ts/recipes/airbench94.ts.
import type { Layer, ModelSpec, Shape3 } from '../model/layers.ts'

/** A conv 3×3 group: conv → 2×2 max pool → BN → GELU → conv → BN → GELU (airbench's ConvGroup). */
function convGroup(name: string, width: number): Layer {
  const bn = { type: 'batchnorm2d', eps: 1e-12, momentum: 0.4, frozenScale: true } as const
  return {
    type: 'sequential',
    name,
    layers: [
      { type: 'conv2d', outChannels: width, kernelSize: 3, padding: 'same', bias: false, init: 'dirac', name: 'conv1' },
      { type: 'maxpool2d', kernelSize: 2 },
      { ...bn, name: 'norm1' },
      { type: 'gelu' },
      { type: 'conv2d', outChannels: width, kernelSize: 3, padding: 'same', bias: false, init: 'dirac', name: 'conv2' },
      { ...bn, name: 'norm2' },
      { type: 'gelu' },
    ],
  }
}

/**
 * airbench94's network: a 2×2 whitening conv 3→24 with bias and GELU; groups of width 64, 256, 256; 3×3 max pool;
 * a bias-free linear layer; × 1/9. Batch norms keep their scale at 1 (eps 1e-12, momentum 0.4); every 3×3 conv
 * starts with identity filters.
 */
export function airbench94Net(options: { classes: number; inputShape?: Shape3 }): ModelSpec {
  return {
    inputShape: options.inputShape ?? [3, 32, 32],
    layers: [
      { type: 'conv2d', outChannels: 24, kernelSize: 2, bias: true, name: 'whiten' },
      { type: 'gelu' },
      convGroup('group1', 64),
      convGroup('group2', 256),
      convGroup('group3', 256),
      { type: 'maxpool2d', kernelSize: 3 },
      { type: 'flatten' },
      { type: 'linear', outFeatures: options.classes, bias: false, name: 'head' },
      { type: 'scale', factor: 1 / 9 },
    ],
  }
}
