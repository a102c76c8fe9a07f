// The layer types TypeScript declares (ts/layers.ts) are exactly the ones Rust declares (crates/core/src/layers/),
// field for field; and every train option has its CLI flag and help.
import test from 'ava'
import { native } from '../ts/binding.ts'
import { TRAIN_HELP } from '../ts/cli/train-command.ts'
import type { Layer } from '../ts/model/layers.ts'
import { flagName } from '../ts/options/option.ts'
import { TRAIN_OPTIONS } from '../ts/train/train-options.ts'

type Full<T extends Layer['type']> = Required<Extract<Layer, { type: T }>>

/** One example of every layer type with every field set: the compiler checks each TS field is listed here. */
const EVERY_FIELD: { [T in Layer['type']]: Full<T> } = {
  conv2d: {
    type: 'conv2d',
    outChannels: 8,
    kernelSize: [3, 3],
    stride: 1,
    padding: 'tf-same',
    dilation: 1,
    groups: 1,
    bias: false,
    init: 'kaimingNormal',
    name: 'c',
    trainable: true,
  },
  batchnorm2d: { type: 'batchnorm2d', eps: 1e-3, momentum: 0.01, affine: true, frozenScale: false, name: 'b', trainable: true },
  linear: { type: 'linear', outFeatures: 3, bias: true, init: 'default', channels: false, name: 'fc', trainable: true },
  layernorm2d: { type: 'layernorm2d', eps: 1e-6, name: 'norm', trainable: true },
  layerscale: { type: 'layerscale', init: 1e-6, name: 'layer_scale', trainable: true },
  relu: { type: 'relu' },
  relu6: { type: 'relu6' },
  gelu: { type: 'gelu' },
  silu: { type: 'silu' },
  hardswish: { type: 'hardswish' },
  hardsigmoid: { type: 'hardsigmoid' },
  sigmoid: { type: 'sigmoid' },
  maxpool2d: { type: 'maxpool2d', kernelSize: 3, stride: 2, padding: 1, ceilMode: true },
  avgpool2d: { type: 'avgpool2d', kernelSize: 2, stride: 2, padding: 0, ceilMode: false, countIncludePad: false },
  adaptiveavgpool2d: { type: 'adaptiveavgpool2d', outputSize: 1 },
  adaptivemaxpool2d: { type: 'adaptivemaxpool2d', outputSize: [2, 2] },
  flatten: { type: 'flatten' },
  identity: { type: 'identity' },
  dropout: { type: 'dropout', p: 0.2 },
  scale: { type: 'scale', factor: 0.125 },
  sequential: { type: 'sequential', layers: [{ type: 'relu' }], name: 's', trainable: true },
  residual: {
    type: 'residual',
    layers: [{ type: 'relu' }],
    shortcut: [{ type: 'identity' }],
    shortcutName: 'downsample',
    dropPath: 0.1,
    activation: 'relu',
    name: 'r',
    trainable: true,
  },
  se: { type: 'se', squeezeChannels: 4, activation: 'silu', gate: 'hardsigmoid', init: 'kaimingNormal', name: 'se', trainable: true },
}

test('TypeScript and Rust declare the same layer types', (t) => {
  t.deepEqual([...native.layerTypes()].sort(), Object.keys(EVERY_FIELD).sort())
})

test('every TypeScript layer field is a Rust field and every Rust field a TypeScript one', (t) => {
  for (const [type, layer] of Object.entries(EVERY_FIELD)) {
    // Rust rejects unknown fields and writes every field it has; the two key sets must be equal.
    const json = native.normalizeSpec({ inputShape: [3, 8, 8], layers: [layer] })
    const written = (JSON.parse(json) as { layers: Record<string, unknown>[] }).layers[0]!
    t.deepEqual(Object.keys(written).sort(), Object.keys(layer).sort(), type)
  }
})

test('a typo in a nested layer field is an error naming its path', (t) => {
  const err = t.throws(() =>
    native.normalizeSpec({
      inputShape: [3, 8, 8],
      layers: [{ type: 'sequential', layers: [{ type: 'conv2d', outChannels: 4, kernelSize: 3, strid: 2 }] }],
    }),
  )
  t.regex(err!.message, /layers\[0\]\.layers\[0\]\.strid: unknown field `strid`/)
})

test('every train option has a flag in --help, and the flags follow the option names', (t) => {
  for (const [key, decl] of Object.entries(TRAIN_OPTIONS) as [string, { cli: boolean }][]) {
    if (!decl.cli) continue
    const flag = flagName(key)
    t.true(TRAIN_HELP.includes(`--${flag}`) || TRAIN_HELP.includes(`--no-${flag}`), `--${flag} in --help`)
  }
})
