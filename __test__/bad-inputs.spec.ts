// Bad input from TypeScript is a typed error with a code and a message naming the fault; the process lives on.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import {
  CheckpointError,
  DeviceError,
  FileError,
  InputError,
  Model,
  SpecError,
  TensorDataset,
  referenceCnn,
  runtimeInfo,
} from '../ts/index.ts'
import type { ConvkitError, ModelSpec } from '../ts/index.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmp = tempDirs('bad')()
const small = referenceCnn({ classes: 3, inputShape: [1, 8, 8] })

function tiny(seed = 1): Model {
  return Model.create(small, { device: 'cpu', seed })
}

test('an unknown layer type is a SpecError naming the layer and the known types', (t) => {
  const spec = { inputShape: [3, 8, 8], layers: [{ type: 'relu' }, { type: 'conv3d' }] } as unknown as ModelSpec
  const err = t.throws(() => Model.create(spec, { device: 'cpu' }), { instanceOf: SpecError }) as ConvkitError
  t.is(err.code, 'UNKNOWN_LAYER')
  t.regex(err.message, /conv3d.*layers\[1\].*conv2d/)
})

test('a spec that does not fit its input is a SpecError saying why', (t) => {
  const spec: ModelSpec = { inputShape: [3, 8, 8], layers: [{ type: 'linear', outFeatures: 4 }] }
  const err = t.throws(() => Model.create(spec, { device: 'cpu' }), { instanceOf: SpecError }) as ConvkitError
  t.is(err.code, 'INVALID_SPEC')
  t.regex(err.message, /flatten/)
})

test('a batch of the wrong size is a BAD_SHAPE InputError', async (t) => {
  const err = (await t.throwsAsync(tiny().trainBatchFloats(new Float32Array(10), [0]), { instanceOf: InputError })) as ConvkitError
  t.is(err.code, 'BAD_SHAPE')
  t.regex(err.message, /1 × 1×8×8 = 64 floats.*got 10 floats/)
})

test('a label out of range is an error, not a libtorch abort', async (t) => {
  const err = (await t.throwsAsync(tiny().trainBatchFloats(new Float32Array(2 * 64), [0, 7]), { instanceOf: InputError })) as ConvkitError
  t.is(err.code, 'LABEL_OUT_OF_RANGE')
  t.regex(err.message, /label 7 at position 1.*0\.\.3/)
  const negative = TensorDataset.create(
    { pixels: new Uint8Array(64), labels: Int32Array.of(-1), shape: [1, 8, 8], classes: ['a', 'b', 'c'] },
    { device: 'cpu' },
  )
  t.is(((await t.throwsAsync(negative)) as ConvkitError).code, 'LABEL_OUT_OF_RANGE')
})

test('dataset indices out of range and pixel counts that disagree with labels are errors', async (t) => {
  const data = await TensorDataset.create(
    { pixels: new Uint8Array(2 * 64), labels: Int32Array.of(0, 1), shape: [1, 8, 8], classes: ['a', 'b', 'c'] },
    { device: 'cpu' },
  )
  const err = (await t.throwsAsync(tiny().trainBatch(data, [0, 2]))) as ConvkitError
  t.is(err.code, 'BAD_SHAPE')
  t.regex(err.message, /indices\[1\].*0\.\.2.*got 2/)
  const short = TensorDataset.create(
    { pixels: new Uint8Array(100), labels: Int32Array.of(0, 1), shape: [1, 8, 8], classes: ['a'] },
    { device: 'cpu' },
  )
  t.is(((await t.throwsAsync(short)) as ConvkitError).code, 'BAD_SHAPE')
  const otherShape = await TensorDataset.create(
    { pixels: new Uint8Array(3 * 64), labels: Int32Array.of(0), shape: [3, 8, 8], classes: ['a'] },
    { device: 'cpu' },
  )
  t.regex(((await t.throwsAsync(tiny().evaluate(otherShape))) as ConvkitError).message, /inputShape/)
})

test('options are checked where they enter', (t) => {
  t.throws(() => Model.create(small, { device: 'gpu' as 'cpu' }), { instanceOf: InputError, message: /device/ })
  t.throws(() => Model.create(small, { device: 'cpu', optimizer: { type: 'adam', lr: -1 } }), { instanceOf: InputError, message: /lr/ })
  t.throws(() => Model.create(small, { device: 'cpu', optimizer: { type: 'rmsprop' } as never }), {
    instanceOf: InputError,
    message: /option optimizer: unknown variant `rmsprop`/,
  })
  t.throws(() => Model.create(small, { device: 'cpu', optimizer: { type: 'sgd', lr: 'fast' } as never }), {
    instanceOf: InputError,
    message: /option optimizer\.lr: expected a number, got a string/,
  })
  t.throws(() => Model.create(small, { device: 'cpu', optimizer: { type: 'sgd', nesterov: true } }), {
    instanceOf: InputError,
    message: /nesterov.*momentum > 0/,
  })
  t.throws(() => Model.create(small, { device: 'cpu', paramGroups: [{ lrScale: 2 }] }), {
    instanceOf: InputError,
    message: /paramGroups\[0\].*names, layer or field/,
  })
})

// Only a machine without CUDA can show this; on one with CUDA the test is skipped, not passed.
;(runtimeInfo().cudaAvailable ? test.skip : test)('asking for CUDA on a machine without it is a DeviceError', (t) => {
  const err = t.throws(() => Model.create(small, { device: 'cuda' }), { instanceOf: DeviceError }) as ConvkitError
  t.is(err.code, 'DEVICE_UNAVAILABLE')
})

test('missing, truncated, garbage and mismatched checkpoints are named errors', async (t) => {
  const good = path.join(tmp, 'good.safetensors')
  await tiny().save(good)
  const missing = (await t.throwsAsync(Model.load(path.join(tmp, 'nope.safetensors'), { device: 'cpu' }), {
    instanceOf: FileError,
  })) as ConvkitError
  t.regex(missing.message, /nope\.safetensors/)

  const truncated = path.join(tmp, 'truncated.safetensors')
  fs.writeFileSync(truncated, fs.readFileSync(good).subarray(0, 200))
  const err = (await t.throwsAsync(Model.load(truncated, { device: 'cpu' }), { instanceOf: CheckpointError })) as ConvkitError
  t.is(err.code, 'CORRUPT_CHECKPOINT')
  t.regex(err.message, /truncated\.safetensors/)

  const garbage = path.join(tmp, 'garbage.safetensors')
  fs.writeFileSync(garbage, Buffer.from('\xff\xff\xff\xff\xff\xff\xff\x7fnot a checkpoint at all', 'latin1'))
  t.is(((await t.throwsAsync(Model.load(garbage, { device: 'cpu' }))) as ConvkitError).code, 'CORRUPT_CHECKPOINT')

  const wider = Model.create(referenceCnn({ classes: 5, inputShape: [1, 8, 8] }), { device: 'cpu' })
  const mismatch = (await t.throwsAsync(wider.loadWeights(good), { instanceOf: CheckpointError })) as ConvkitError
  t.is(mismatch.code, 'CHECKPOINT_MISMATCH')
  t.regex(mismatch.message, /fc2\.weight.*\[3, 512\].*\[5, 512\]/)
})
