// Native error messages become typed ConvkitErrors with stable codes; no addon needed.
import test from 'ava'
import { CheckpointError, ConvkitError, InputError, SpecError, isCheckpointError, isConvkitError } from '../ts/errors.ts'
import { fromNative } from '../ts/errors.ts'

test('a coded native error becomes the matching subclass, keeping the original as cause', (t) => {
  const original = new Error('[CHECKPOINT_MISMATCH] checkpoint a.safetensors does not match the model: tensor "fc2.weight"')
  const err = fromNative(original, 'loading a.safetensors')
  t.true(err instanceof CheckpointError)
  t.true(isCheckpointError(err) && isConvkitError(err))
  const e = err as ConvkitError
  t.is(e.code, 'CHECKPOINT_MISMATCH')
  t.is(e.name, 'CheckpointError')
  t.is(e.message, 'loading a.safetensors: checkpoint a.safetensors does not match the model: tensor "fc2.weight"')
  t.is(e.cause, original)
})

test('codes map to their families', (t) => {
  t.true(fromNative(new Error('[UNKNOWN_LAYER] x')) instanceof SpecError)
  t.true(fromNative(new Error('[LABEL_OUT_OF_RANGE] x')) instanceof InputError)
})

test('errors without a known code pass through untouched', (t) => {
  const plain = new Error('something else')
  t.is(fromNative(plain), plain)
  const unknown = new Error('[NOT_A_CODE] x')
  t.is(fromNative(unknown), unknown)
  t.is(fromNative('a string'), 'a string')
})
