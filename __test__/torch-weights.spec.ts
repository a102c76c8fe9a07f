// Reading PyTorch weight files (.pth/.pt, zip and legacy): the shared EfficientNet-Lite0, files torch.save writes, hostile and truncated ones.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { zipSync } from 'fflate'
import { CheckpointError, FileError, InputError } from '../ts/errors.ts'
import { parseTorchStateDict, readTorchStateDict, torchTensorValues } from '../ts/weights/torch-checkpoint.ts'
import type { TorchTensor } from '../ts/weights/torch-checkpoint.ts'
import { needs } from './helpers/needs.ts'
import { pythonWithTorch } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const script = path.join(here, 'fixtures', 'torch_weights.py')
/** `../shared/models/…` beside the checkout, as CI lays it out. */
const LITE0 = process.env.CONVKIT_LITE0_WEIGHTS ?? path.resolve(here, '..', '..', 'shared', 'models', 'efficientnet-lite0-57934424.pth')
const hasLite0 = fs.existsSync(LITE0)
const python = pythonWithTorch()
const NO_TORCH = 'a python with torch 2.11 (or set CONVKIT_PYTHON)'
const NO_LITE0 = `the shared weights ${LITE0}`
const withLite0 = needs(hasLite0 ? null : NO_LITE0)
const withTorch = needs(python ? null : NO_TORCH)
const withLite0AndTorch = needs(!hasLite0 ? NO_LITE0 : !python ? NO_TORCH : null)
const tmpdir = tempDirs('torch-weights')

interface Expected {
  tensors: Record<string, { dtype: string; shape: number[]; hex: string }>
  lite0?: Record<string, { dtype: string; shape: number[]; sha256: string; sum: number; abs_sum: number; first: number[] }>
}

let fixtures: Promise<{ dir: string; expected: Expected }> | undefined
/** Runs the Python fixture script once (torch's import takes seconds) for every test that needs it. */
function torchFixtures(): Promise<{ dir: string; expected: Expected }> {
  fixtures ??= (async () => {
    const dir = tmpdir()
    await promisify(execFile)(python!, [script, dir, ...(hasLite0 ? [LITE0] : [])])
    return { dir, expected: JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected }
  })()
  return fixtures
}

/** A tensor's values as plain numbers (int64 too: these fit). */
function numbers(t: TorchTensor): number[] {
  return Array.from(torchTensorValues(t) as ArrayLike<number | bigint>, Number)
}

function hex(t: TorchTensor): string {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')
}

/** The reader's tensors are exactly torch's: same names in the same order, dtypes, shapes and bytes. */
function sameAsTorch(t: ExecutionContext, ours: Map<string, TorchTensor>, theirs: Expected['tensors']): void {
  t.deepEqual([...ours.keys()], Object.keys(theirs))
  for (const [name, want] of Object.entries(theirs)) {
    const got = ours.get(name)!
    t.is(got.name, name)
    t.is(got.dtype as string, want.dtype, name)
    t.deepEqual(got.shape, want.shape, name)
    t.is(hex(got), want.hex, `${name}: bytes differ`)
  }
}

function isCorrupt(pattern: RegExp) {
  return { instanceOf: CheckpointError, code: 'CORRUPT_CHECKPOINT', message: pattern } as const
}

withLite0('the shared EfficientNet-Lite0 file (legacy format) reads as 296 named tensors', async (t) => {
  const weights = await readTorchStateDict(LITE0)
  t.is(weights.size, 296)
  const keys = [...weights.keys()]
  t.is(keys[0], '_conv_stem.weight')
  t.is(keys.at(-1), '_fc.bias')
  t.deepEqual(weights.get('_conv_stem.weight')!.shape, [32, 3, 3, 3])
  t.deepEqual(weights.get('_fc.weight')!.shape, [1000, 1280])
  // float32 everywhere but BatchNorm's step counters.
  for (const w of weights.values()) t.is(w.dtype, w.name.endsWith('.num_batches_tracked') ? 'int64' : 'float32', w.name)
  // About 4.7 M parameters, README says; BatchNorm running statistics add a little.
  const params = [...weights.values()].reduce((n, w) => n + (w.dtype === 'float32' ? w.data.length / 4 : 0), 0)
  t.true(params > 4.6e6 && params < 4.8e6, `${params} values`)
  const stem = torchTensorValues(weights.get('_conv_stem.weight')!)
  t.true(stem instanceof Float32Array && stem.length === 864)
})

withLite0AndTorch('the shared Lite0 tensors hold exactly what torch.load gives', async (t) => {
  const { expected } = await torchFixtures()
  const weights = await readTorchStateDict(LITE0)
  const theirs = expected.lite0!
  t.deepEqual([...weights.keys()], Object.keys(theirs))
  for (const [name, want] of Object.entries(theirs)) {
    const got = weights.get(name)!
    t.deepEqual(got.shape, want.shape, name)
    // The file stores most conv weights in TensorFlow's order (strides like [1, 32, 288, 96]), so equal
    // hashes of the contiguous bytes show the strides were applied as torch applies them.
    t.is(createHash('sha256').update(got.data).digest('hex'), want.sha256, `${name}: bytes differ`)
    const values = numbers(got)
    const sum = values.reduce((a, v) => a + v, 0)
    const absSum = values.reduce((a, v) => a + Math.abs(v), 0)
    // Both sides add float32 values in float64, in different orders: the sums agree far below 1e-6.
    t.true(Math.abs(sum - want.sum) <= 1e-6 * Math.max(1, want.abs_sum), `${name}: sum ${sum} vs ${want.sum}`)
    t.true(Math.abs(absSum - want.abs_sum) <= 1e-6 * Math.max(1, want.abs_sum), `${name}: abs sum ${absSum} vs ${want.abs_sum}`)
    t.deepEqual(values.slice(0, 4), want.first, name)
  }
})

withTorch('a zip checkpoint from torch.save reads as torch reads it: dtypes, strides, shared storages, a Parameter', async (t) => {
  const { dir, expected } = await torchFixtures()
  sameAsTorch(t, await readTorchStateDict(path.join(dir, 'zip.pt')), expected.tensors)
})

withTorch('a legacy checkpoint (_use_new_zipfile_serialization=False) reads the same', async (t) => {
  const { dir, expected } = await torchFixtures()
  sameAsTorch(t, await readTorchStateDict(path.join(dir, 'legacy.pt')), expected.tensors)
})

withTorch('wrapped checkpoints give the innermost state dict: state_dict (zip) and model_state_dict (legacy)', async (t) => {
  const { dir, expected } = await torchFixtures()
  // wrapped.pt also holds an optimizer state with its own tensor: it must not leak into the result.
  sameAsTorch(t, await readTorchStateDict(path.join(dir, 'wrapped.pt')), expected.tensors)
  sameAsTorch(t, await readTorchStateDict(path.join(dir, 'wrapped-legacy.pt')), expected.tensors)
})

withTorch('a big-endian zip checkpoint is swapped to little-endian', async (t) => {
  const { dir, expected } = await torchFixtures()
  const { u16: _, ...rest } = expected.tensors
  sameAsTorch(t, await readTorchStateDict(path.join(dir, 'big-endian.pt')), rest)
})

withTorch('a whole module saved with torch.save(model) is refused, naming its class', async (t) => {
  const { dir } = await torchFixtures()
  const file = path.join(dir, 'module.pt')
  const err = await t.throwsAsync(readTorchStateDict(file), isCorrupt(/torch\.nn\.modules\.linear\.Linear.*state_dict\(\)/))
  t.true(err!.message.includes(file))
})

// Hand-made checkpoints: the pickle opcodes torch.save writes, byte by byte, so these tests need no Python.

const latin1 = (s: string) => [...Buffer.from(s, 'latin1')]
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]
const op = {
  proto: (n = 2) => [0x80, n],
  global: (module: string, name: string) => [0x63, ...latin1(`${module}\n${name}\n`)],
  str: (s: string) => [0x58, ...u32(Buffer.byteLength(s)), ...Buffer.from(s, 'utf8')],
  int: (n: number) => [0x4a, ...u32(n)],
  tuple: (...items: number[][]) => [0x28, ...items.flat(), 0x74],
  call: (fn: number[], ...args: number[][]) => [...fn, 0x28, ...args.flat(), 0x74, 0x52],
  none: [0x4e],
  false: [0x89],
  true: [0x88],
  stop: [0x2e],
}

/** A persistent id for a float32 storage of 6; legacy ones add view metadata (or None). */
function storageId(key: string, legacy: boolean, view?: [string, number, number]): number[] {
  const viewMeta = view ? op.tuple(op.str(view[0]), op.int(view[1]), op.int(view[2])) : op.none
  return [
    ...op.tuple(op.str('storage'), op.global('torch', 'FloatStorage'), op.str(key), op.str('cpu'), op.int(6), legacy ? viewMeta : []),
    0x51,
  ]
}

/** `_rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())`. */
function rebuild(storage: number[], offset: number, shape: number[], stride: number[]): number[] {
  return op.call(
    op.global('torch._utils', '_rebuild_tensor_v2'),
    storage,
    op.int(offset),
    op.tuple(...shape.map(op.int)),
    op.tuple(...stride.map(op.int)),
    op.false,
    op.call(op.global('collections', 'OrderedDict')),
  )
}

/** `OrderedDict(<name>=<tensor>, …)` as torch.save writes it. */
function orderedDict(entries: [string, number[]][]): Uint8Array {
  const items = entries.flatMap(([name, tensor]) => [...op.str(name), ...tensor])
  // OrderedDict(), MARK, key, value, …, SETITEMS
  return new Uint8Array([...op.proto(), ...op.call(op.global('collections', 'OrderedDict')), 0x28, ...items, 0x75, ...op.stop])
}

/** `OrderedDict(w=<2×3 float32>, b=<the same storage from element 3>)`, with storage key `key`. */
function stateDictPickle(key: string, legacy: boolean): Uint8Array {
  const storage = storageId(key, legacy)
  return orderedDict([
    ['w', rebuild(storage, 0, [2, 3], [3, 1])],
    ['b', rebuild(storage, 3, [3], [1])],
  ])
}

const VALUES = new Float32Array([0.5, -1, 2, 3.25, -4, 1e-3])

function zipCheckpoint(pickle: Uint8Array): Uint8Array {
  return zipSync(
    {
      'archive/data.pkl': pickle,
      'archive/byteorder': new Uint8Array(latin1('little')),
      'archive/data/0': new Uint8Array(VALUES.buffer),
      'archive/version': new Uint8Array(latin1('3\n')),
    },
    { level: 0 },
  )
}

/** torch's legacy stream: magic, protocol 1001, sys_info, the object, the storage keys, then the storages. */
function legacyCheckpoint(pickle: Uint8Array): Uint8Array {
  // LONG1: 0x1950a86a20f9469cfc6c in 10 little-endian bytes.
  const magic = [
    ...op.proto(),
    0x8a,
    10,
    ...Array.from({ length: 10 }, (_, i) => Number((0x1950a86a20f9469cfc6cn >> BigInt(8 * i)) & 0xffn)),
    ...op.stop,
  ]
  const version = [...op.proto(), 0x4d, 0xe9, 0x03, ...op.stop]
  const sysInfo = [...op.proto(), 0x7d, ...op.str('little_endian'), ...op.true, 0x73, ...op.stop]
  const keys = [...op.proto(), 0x5d, ...op.str('140001'), 0x61, ...op.stop]
  const count = [6, 0, 0, 0, 0, 0, 0, 0]
  return new Uint8Array([...magic, ...version, ...sysInfo, ...pickle, ...keys, ...count, ...new Uint8Array(VALUES.buffer)])
}

test('hand-made zip and legacy checkpoints read, with a view into a shared storage', (t) => {
  for (const bytes of [zipCheckpoint(stateDictPickle('0', false)), legacyCheckpoint(stateDictPickle('140001', true))]) {
    const weights = parseTorchStateDict(bytes, 'hand-made.pt')
    t.deepEqual([...weights.keys()], ['w', 'b'])
    t.deepEqual(numbers(weights.get('w')!), Array.from(VALUES))
    t.deepEqual(numbers(weights.get('b')!), Array.from(VALUES.subarray(3)))
    t.deepEqual(weights.get('b')!.shape, [3])
  }
})

test('a legacy storage view (torch < 0.4) offsets the tensor into its root storage', (t) => {
  // The view covers root elements 2..4; the tensor starts 1 into it, so it holds root elements 3 and 4.
  const pickle = orderedDict([['v', rebuild(storageId('140001', true, ['140002', 2, 3]), 1, [2], [1])]])
  t.deepEqual(numbers(parseTorchStateDict(legacyCheckpoint(pickle), 'view.pt').get('v')!), [VALUES[3], VALUES[4]])
  // A tensor that reaches past its view is corrupt even though the root storage is longer.
  const past = orderedDict([['v', rebuild(storageId('140001', true, ['140002', 2, 3]), 2, [2], [1])]])
  t.throws(
    () => parseTorchStateDict(legacyCheckpoint(past), 'past.pt'),
    isCorrupt(/tensor v .* reaches past its storage of 3 float32 elements/),
  )
})

test('every truncation of a checkpoint fails with a CheckpointError', (t) => {
  for (const [kind, bytes] of [
    ['zip', zipCheckpoint(stateDictPickle('0', false))],
    ['legacy', legacyCheckpoint(stateDictPickle('140001', true))],
  ] as const) {
    for (let cut = 0; cut < bytes.length; cut++) {
      const error = t.throws(() => parseTorchStateDict(bytes.subarray(0, cut), `${kind}-cut-${cut}.pt`), { instanceOf: CheckpointError })
      t.true(error?.message.includes(`${kind}-cut-${cut}.pt`), error?.message)
    }
  }
  const legacy = legacyCheckpoint(stateDictPickle('140001', true))
  t.throws(
    () => parseTorchStateDict(legacy.subarray(0, legacy.length - 5), 'short.pt'),
    isCorrupt(/ends early: storage 140001 needs 24 bytes/),
  )
})

withLite0('a truncated Lite0 file fails, saying where', (t) => {
  const bytes = fs.readFileSync(LITE0)
  t.throws(
    () => parseTorchStateDict(bytes.subarray(0, 20_000), 'lite0-head.pth'),
    isCorrupt(/lite0-head\.pth: the file ends early, inside a pickle/),
  )
  t.throws(
    () => parseTorchStateDict(bytes.subarray(0, bytes.length >> 1), 'lite0-half.pth'),
    isCorrupt(/lite0-half\.pth: the file ends early: storage \d+ needs/),
  )
})

test('a pickle that calls os.system is refused, naming the global, and runs nothing', (t) => {
  const dir = tmpdir()
  const marker = path.join(dir, 'pwned')
  const hostile = new Uint8Array([...op.proto(), ...op.global('os', 'system'), ...op.str(`touch ${marker}`), 0x85, 0x52, ...op.stop])
  for (const bytes of [zipCheckpoint(hostile), legacyCheckpoint(hostile)]) {
    t.throws(
      () => parseTorchStateDict(bytes, 'evil.pth'),
      isCorrupt(/^checkpoint evil\.pth: the pickle names the global os\.system, which a weights file never needs; refused/),
    )
  }
  t.false(fs.existsSync(marker))
})

test('other ways to reach code are refused too', (t) => {
  // Protocol 4's STACK_GLOBAL spells the name as two strings.
  const stackGlobal = [
    ...op.proto(4),
    0x8c,
    8,
    ...latin1('builtins'),
    0x8c,
    4,
    ...latin1('eval'),
    0x93,
    ...op.str('1'),
    0x85,
    0x52,
    ...op.stop,
  ]
  t.throws(() => parseTorchStateDict(zipCheckpoint(new Uint8Array(stackGlobal)), 'eval.pt'), isCorrupt(/global builtins\.eval/))
  // INST builds an instance of a class named inline.
  const inst = [...op.proto(), 0x28, 0x69, ...latin1('subprocess\nPopen\n'), ...op.stop]
  t.throws(() => parseTorchStateDict(zipCheckpoint(new Uint8Array(inst)), 'inst.pt'), isCorrupt(/opcode 0x69 is not accepted/))
  // A whitelisted name is still only a name: a storage class cannot be called.
  const callStorage = [...op.proto(), ...op.call(op.global('torch', 'FloatStorage'), op.int(3)), ...op.stop]
  t.throws(
    () => parseTorchStateDict(zipCheckpoint(new Uint8Array(callStorage)), 'call.pt'),
    isCorrupt(/torch\.FloatStorage, which cannot be called/),
  )
})

test('files that are not torch checkpoints say what they are', async (t) => {
  const dir = tmpdir()
  const text = path.join(dir, 'notes.pth')
  fs.writeFileSync(text, 'hello')
  await t.throwsAsync(readTorchStateDict(text), isCorrupt(/notes\.pth: not a PyTorch checkpoint/))
  const header = Buffer.from('{"__metadata__":{}}')
  const safetensors = Buffer.concat([Buffer.from([header.length, 0, 0, 0, 0, 0, 0, 0]), header])
  t.throws(() => parseTorchStateDict(safetensors, 'w.safetensors'), isCorrupt(/safetensors/))
  t.throws(
    () => parseTorchStateDict(zipSync({ 'a/readme.txt': new Uint8Array(latin1('hi')) }), 'other.zip'),
    isCorrupt(/without a\/data\.pkl/),
  )
  const list = new Uint8Array([...op.proto(), 0x5d, ...op.stop])
  t.throws(() => parseTorchStateDict(zipCheckpoint(list), 'list.pt'), isCorrupt(/holds a list or tuple, not a dict of tensors/))
  const wrapper = new Uint8Array([...op.proto(), 0x7d, ...op.str('epoch'), ...op.int(3), 0x73, ...op.stop])
  t.throws(() => parseTorchStateDict(zipCheckpoint(wrapper), 'meta.pt'), isCorrupt(/no state dict found: the file holds keys epoch/))
  await t.throwsAsync(readTorchStateDict(path.join(dir, 'missing.pth')), {
    instanceOf: FileError,
    code: 'IO_ERROR',
    message: /missing\.pth/,
  })
})

test('torchTensorValues converts float16 and bfloat16 exactly and refuses float8', (t) => {
  // 1, -2, 0.5 and 65504 (the largest float16) as float16; 1, -2 and 3.140625 as bfloat16.
  const half: TorchTensor = {
    name: 'h',
    dtype: 'float16',
    shape: [4],
    data: new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff]).buffer),
  }
  t.deepEqual(numbers(half), [1, -2, 0.5, 65504])
  const bf16: TorchTensor = {
    name: 'b',
    dtype: 'bfloat16',
    shape: [3],
    data: new Uint8Array(new Uint16Array([0x3f80, 0xc000, 0x4049]).buffer),
  }
  t.deepEqual(numbers(bf16), [1, -2, 3.140625])
  const fp8: TorchTensor = { name: 'q', dtype: 'float8_e4m3fn', shape: [1], data: new Uint8Array(1) }
  t.throws(() => torchTensorValues(fp8), { instanceOf: InputError, message: /tensor q is float8_e4m3fn/ })
})
