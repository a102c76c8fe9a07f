// A pickle reader for PyTorch checkpoints: it describes tensors from the globals torch state dicts use, and runs nothing.
//
// The opcodes are read by machine.ts beside it, shared with the numpy data reader (numpy-pickle.ts); this file is
// torch's side of it: the whitelist, persistent ids (how torch points at storages), and what calling a whitelisted
// global builds. Nothing is imported or called: a whitelisted global becomes an inert value, and calling one only
// builds a description.
import { CheckpointError } from '../errors.ts'
import { codecsEncode, isDictKey, isGlobalRef, unpickle, type DictKey, type Fail, type GlobalRef, type PickleData } from './machine.ts'

/** Element types a torch checkpoint can hold, named as `torch.<dtype>` names them. */
export type TorchDType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool'
  | 'complex32'
  | 'complex64'
  | 'complex128'
  | 'float8_e4m3fn'
  | 'float8_e5m2'
  | 'float8_e4m3fnuz'
  | 'float8_e5m2fnuz'
  | 'float8_e8m0fnu'

/** Bytes per element of each dtype. */
export const TORCH_DTYPE_SIZE: Readonly<Record<TorchDType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  bool: 1,
  complex32: 4,
  complex64: 8,
  complex128: 16,
  float8_e4m3fn: 1,
  float8_e5m2: 1,
  float8_e4m3fnuz: 1,
  float8_e5m2fnuz: 1,
  float8_e8m0fnu: 1,
}

/** The legacy `torch.<Name>Storage` classes (torch < 2.0 names, still what `torch.save` writes) and their dtypes. */
const STORAGE_DTYPES: Readonly<Record<string, TorchDType>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  ComplexFloatStorage: 'complex64',
  ComplexDoubleStorage: 'complex128',
}

/** `torch.float` and friends: aliases a pickle may name besides the canonical dtype names. */
const DTYPE_ALIASES: Readonly<Record<string, TorchDType>> = {
  float: 'float32',
  double: 'float64',
  half: 'float16',
  long: 'int64',
  int: 'int32',
  short: 'int16',
  cfloat: 'complex64',
  cdouble: 'complex128',
  chalf: 'complex32',
}

/**
 * A storage a pickle points at with a persistent id; its bytes live outside the pickle (`data/<key>` in a zip
 * checkpoint, after the pickles in a legacy one). `numel` counts elements of `dtype`.
 */
export interface StorageRef {
  readonly kind: 'storage'
  key: string
  dtype: TorchDType
  numel: number
  /** Legacy files (torch < 0.4) could point at a part of a storage: `offset` and `numel` in elements. */
  view: { key: string; offset: number; numel: number } | null
}

/** A tensor as the pickle describes it: a strided window on a storage, in elements of `dtype`. */
export interface TensorRef {
  readonly kind: 'tensor'
  storage: StorageRef
  dtype: TorchDType
  offset: number
  shape: number[]
  stride: number[]
}

/** `torch.<Name>Storage` named as a value: only meaningful inside a persistent id. */
interface StorageType {
  readonly kind: 'storage-type'
  name: string
  dtype: TorchDType
}

/** `torch.float32` named as a value: the last argument of `_rebuild_tensor_v3`. */
interface DTypeRef {
  readonly kind: 'dtype'
  dtype: TorchDType
}

export type { DictKey }

/**
 * What unpickling yields: `null`, booleans, numbers (`bigint` beyond 2^53), strings, `Uint8Array` (bytes),
 * arrays (lists; tuples are frozen arrays), `Map` (dict and OrderedDict), tensor and storage descriptions, and
 * inert names of whitelisted globals.
 */
export type TorchPickleValue = PickleData<TensorRef | StorageRef | GlobalRef | StorageType | DTypeRef>

/** Functions a pickle may call; each only builds a description (see `call`). */
const CALLABLE = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
  'torch.Size',
  // Python 3 writes `bytes` as `_codecs.encode(text, 'latin1')` at protocol 2, torch.save's default.
  '_codecs.encode',
])

/** Names that may appear as plain values: the tensor types `_rebuild_from_type_v2` takes. */
const TENSOR_TYPES = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter'])

/** Maps a qualified global name to its inert value, or null when the whitelist does not admit it. */
function admit(qualified: string): TorchPickleValue | null {
  if (CALLABLE.has(qualified) || TENSOR_TYPES.has(qualified)) return { kind: 'global', name: qualified }
  if (qualified === 'torch.storage.UntypedStorage' || qualified === 'torch.UntypedStorage') {
    return { kind: 'storage-type', name: qualified, dtype: 'uint8' }
  }
  // torch.FloatStorage, and torch.cuda.FloatStorage from CUDA tensors saved by torch < 1.0.
  const storage = /^torch\.(?:cuda\.)?(\w+Storage)$/.exec(qualified)
  if (storage && Object.hasOwn(STORAGE_DTYPES, storage[1]!))
    return { kind: 'storage-type', name: qualified, dtype: STORAGE_DTYPES[storage[1]!]! }
  const dtype = /^torch\.(\w+)$/.exec(qualified)?.[1]
  if (dtype !== undefined) {
    if (Object.hasOwn(TORCH_DTYPE_SIZE, dtype)) return { kind: 'dtype', dtype: dtype as TorchDType }
    if (Object.hasOwn(DTYPE_ALIASES, dtype)) return { kind: 'dtype', dtype: DTYPE_ALIASES[dtype]! }
  }
  return null
}

/** Why a refused global is there, when it is a common case. */
function refusalHint(qualified: string): string {
  if (qualified.startsWith('torch.nn.modules.')) return ' (torch.save(model) pickles the whole module; save model.state_dict() instead)'
  if (qualified.startsWith('__torch__.'))
    return " (this is a TorchScript archive from torch.jit.save; save the model's state_dict() instead)"
  if (qualified.startsWith('numpy.')) return ' (numpy values are not read from torch checkpoints; store tensors instead)'
  return ''
}

/**
 * Reads one pickle from `bytes` starting at `start` and returns its value, the offset just after its STOP, and
 * every storage its persistent ids named, in order (a storage shared by several tensors appears once per use).
 * `file` names the checkpoint and `source` the part of it holding `bytes` (`'archive/data.pkl'`) in error messages.
 *
 * Throws a `CORRUPT_CHECKPOINT` CheckpointError for a truncated or malformed pickle, for one that names a global
 * outside the whitelist (the message names it), and for persistent ids that are not torch storages.
 *
 * @example
 * const { value, end, storages } = readTorchPickle(bytes, 0, 'model.pth', 'archive/data.pkl')
 */
export function readTorchPickle(
  bytes: Uint8Array,
  start: number,
  file: string,
  source = 'the file',
): { value: TorchPickleValue; end: number; storages: StorageRef[] } {
  const storages: StorageRef[] = []
  const { value, end } = unpickle(bytes, start, {
    fileKind: 'a torch checkpoint',
    // torch.load's default: Python 2 `str`s are text.
    encoding: 'utf8',
    error: (what, at) => new CheckpointError('CORRUPT_CHECKPOINT', `checkpoint ${file}: ${what} (at byte ${at} of ${source})`),
    global: (qualified, fail) =>
      admit(qualified) ??
      fail(`the pickle names the global ${qualified}, which a weights file never needs; refused, nothing was run${refusalHint(qualified)}`),
    call,
    newObject: (cls, _args, fail) => {
      // cls.__new__(cls, *args): only OrderedDict is built this way in a state dict.
      if (!isGlobalRef(cls) || cls.name !== 'collections.OrderedDict') return fail(`NEWOBJ of ${describe(cls)}`)
      return new Map()
    },
    build: (target, state, fail) => {
      // The state of an OrderedDict is its attributes (`_metadata` on a state dict), which weights do not need.
      if (!(target instanceof Map)) fail(`BUILD on ${describe(target)}`)
      if (!(state instanceof Map) && !Array.isArray(state) && state !== null) fail('BUILD with a state that is not a dict')
    },
    persistentLoad: (pid, fail) => {
      const storage = storageOf(pid, fail)
      storages.push(storage)
      return storage
    },
  })
  return { value, end, storages }
}

/** Resolves a persistent id: `('storage', StorageType, key, location, numel[, view_metadata])`. */
function storageOf(pid: TorchPickleValue, fail: Fail): StorageRef {
  // PERSID's text ids: torch never writes them.
  if (typeof pid === 'string') return fail(`a text persistent id ${JSON.stringify(pid)}; torch checkpoints use binary ones`)
  if (!Array.isArray(pid)) return fail(`a persistent id that is ${describe(pid)}, not a tuple`)
  const [typename, type, key, , numel, viewMeta] = pid.map(asText)
  if (typename === 'module')
    return fail('a persistent id for a module class: torch.save(model) pickles the whole module; save model.state_dict() instead')
  if (typename !== 'storage') return fail(`a persistent id of kind ${describe(typename ?? null)}; only storages are accepted`)
  if (pid.length !== 5 && pid.length !== 6) return fail(`a storage persistent id with ${pid.length} fields`)
  if (!isStorageType(type)) return fail(`a storage persistent id whose type is ${describe(type ?? null)}`)
  if (typeof key !== 'string') return fail('a storage persistent id without a string key')
  if (!isCount(numel)) return fail(`storage ${key} has an element count that is not a non-negative integer`)
  let view: StorageRef['view'] = null
  if (viewMeta !== undefined && viewMeta !== null) {
    const [viewKey, offset, size] = Array.isArray(viewMeta) ? viewMeta.map(asText) : []
    if (typeof viewKey !== 'string' || !isCount(offset) || !isCount(size) || offset + size > numel) {
      return fail(`storage ${key} has view metadata that does not fit it`)
    }
    view = { key: viewKey, offset, numel: size }
  }
  return { kind: 'storage', key, dtype: type.dtype, numel, view }
}

/** What the whitelisted globals do when called: describe tensors and containers, nothing else. */
function call(fn: TorchPickleValue, args: TorchPickleValue[], fail: Fail): TorchPickleValue {
  if (!isGlobalRef(fn)) return fail(`a call to ${describe(fn)}, which cannot be called`)
  switch (fn.name) {
    case 'collections.OrderedDict': {
      // OrderedDict() at protocol 2; OrderedDict([(k, v), …]) in hand-written pickles.
      const d = new Map<DictKey, TorchPickleValue>()
      const [pairs] = args
      if (pairs === undefined) return d
      if (!Array.isArray(pairs)) return fail('OrderedDict called with something other than a list of pairs')
      for (const pair of pairs) {
        if (!Array.isArray(pair) || pair.length !== 2) return fail('OrderedDict called with something other than a list of pairs')
        const [k, v] = pair
        if (!isDictKey(k)) return fail('an OrderedDict key that is not a string, a number, a boolean or None')
        d.set(k, v!)
      }
      return d
    }
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor_v3': {
      // (storage, storage_offset, size, stride[, requires_grad, backward_hooks][, dtype (v3)][, metadata])
      const [storage, offset, size, stride] = args
      const minArgs = fn.name.endsWith('_v3') ? 7 : fn.name.endsWith('_v2') ? 6 : 4
      if (args.length < minArgs || args.length > minArgs + 1) return fail(`${fn.name} called with ${args.length} arguments`)
      if (!isStorage(storage)) return fail(`${fn.name} called without a storage`)
      if (!isCount(offset) || !isCounts(size) || !isCounts(stride) || size.length !== stride.length) {
        return fail(`${fn.name} called with a bad offset, size or stride`)
      }
      let dtype = storage.dtype
      if (fn.name.endsWith('_v3')) {
        const d = args[6]
        if (!isDType(d)) return fail(`${fn.name} called without a dtype`)
        dtype = d.dtype
      }
      return { kind: 'tensor', storage, dtype, offset, shape: [...size], stride: [...stride] }
    }
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state': {
      // (data, requires_grad, backward_hooks[, state]): a Parameter's data is the tensor itself.
      const [data] = args
      if (!isTensor(data)) return fail(`${fn.name} called without a tensor`)
      return data
    }
    case 'torch._tensor._rebuild_from_type_v2': {
      // (func, new_type, args, state): a tensor with Python attributes; only plain tensors and Parameters.
      const [inner, type, innerArgs] = args
      if (!isGlobalRef(type) || !TENSOR_TYPES.has(type.name))
        return fail(`${fn.name} rebuilds a ${describe(type ?? null)}, not a tensor or Parameter`)
      if (!isGlobalRef(inner) || !inner.name.startsWith('torch._utils._rebuild_'))
        return fail(`${fn.name} calls ${describe(inner ?? null)}`)
      if (!Array.isArray(innerArgs)) return fail(`${fn.name} called without an argument tuple`)
      const tensor = call(inner, innerArgs, fail)
      return isTensor(tensor) ? tensor : fail(`${fn.name} did not rebuild a tensor`)
    }
    case 'torch.Size': {
      const [dims] = args
      return isCounts(dims) ? (Object.freeze([...dims]) as number[]) : fail('torch.Size called without a list of sizes')
    }
    case '_codecs.encode':
      return codecsEncode(args, fail)
    default:
      return fail(`${fn.name} cannot be called`)
  }
}

/** Python 2 pickles may spell persistent-id fields as bytes; torch.load decodes them as ASCII. */
function asText(v: TorchPickleValue): TorchPickleValue {
  return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1') : v
}

/** A short, safe description of a pickle value for error messages. */
function describe(v: TorchPickleValue): string {
  if (v === null) return 'None'
  if (Array.isArray(v)) return 'a tuple or list'
  if (v instanceof Map) return 'a dict'
  if (v instanceof Uint8Array) return 'bytes'
  if (typeof v === 'object') return 'name' in v ? v.name : v.kind
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
  return String(v)
}

function isStorageType(v: unknown): v is StorageType {
  return typeof v === 'object' && v !== null && (v as StorageType).kind === 'storage-type'
}
function isDType(v: unknown): v is DTypeRef {
  return typeof v === 'object' && v !== null && (v as DTypeRef).kind === 'dtype'
}
function isStorage(v: unknown): v is StorageRef {
  return typeof v === 'object' && v !== null && (v as StorageRef).kind === 'storage'
}
/** Whether `v` is a tensor description from a torch pickle. */
export function isTensorRef(v: unknown): v is TensorRef {
  return typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor'
}
const isTensor = isTensorRef
function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}
function isCounts(v: unknown): v is number[] {
  return Array.isArray(v) && v.every(isCount)
}
