// A pickle reader for PyTorch checkpoints: it describes tensors from the globals torch state dicts use, and runs nothing.
//
// `ts/data/pickle.ts` reads numpy data files; it has no persistent ids (how torch points at storages) and a
// numpy-only whitelist, so torch's globals live here. Like it, this reader never imports or calls anything:
// a whitelisted global becomes an inert value, and calling one only builds a description.
import { CheckpointError } from '../errors.ts'

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

/** A global the whitelist admits, kept as its name. */
interface GlobalRef {
  readonly kind: 'global'
  name: string
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

/** Python dict keys this reader keeps; state dict keys are strings, optimizer state uses ints. */
export type DictKey = string | number | bigint | boolean | null

/**
 * What unpickling yields: `null`, booleans, numbers (`bigint` beyond 2^53), strings, `Uint8Array` (bytes),
 * arrays (lists; tuples are frozen arrays), `Map` (dict and OrderedDict), tensor and storage descriptions, and
 * inert names of whitelisted globals.
 */
export type TorchPickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | TorchPickleValue[]
  | Map<DictKey, TorchPickleValue>
  | TensorRef
  | StorageRef
  | GlobalRef
  | StorageType
  | DTypeRef

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
  if (storage && Object.hasOwn(STORAGE_DTYPES, storage[1]!)) return { kind: 'storage-type', name: qualified, dtype: STORAGE_DTYPES[storage[1]!]! }
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
  if (qualified.startsWith('__torch__.')) return ' (this is a TorchScript archive from torch.jit.save; save the model\'s state_dict() instead)'
  if (qualified.startsWith('numpy.')) return ' (numpy values are not read from torch checkpoints; store tensors instead)'
  return ''
}

const MARK = Symbol('mark')
type Slot = TorchPickleValue | typeof MARK

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
export function readTorchPickle(bytes: Uint8Array, start: number, file: string, source = 'the file'): { value: TorchPickleValue; end: number; storages: StorageRef[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const stack: Slot[] = []
  const memo = new Map<number, TorchPickleValue>()
  const storages: StorageRef[] = []
  let pos = start

  const fail = (what: string): never => {
    throw new CheckpointError('CORRUPT_CHECKPOINT', `checkpoint ${file}: ${what} (at byte ${pos} of ${source})`)
  }
  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) fail(`the file ends early, inside a pickle (${n} more byte${n === 1 ? '' : 's'} expected)`)
  }
  const u8 = () => (need(1), bytes[pos++]!)
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true))
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true))
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true))
  const u64 = () => {
    need(8)
    const n = view.getBigUint64(pos, true)
    pos += 8
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${n} is too large`)
    return Number(n)
  }
  const take = (n: number) => (need(n), (pos += n), bytes.subarray(pos - n, pos))
  const line = () => {
    const end = bytes.indexOf(0x0a, pos)
    if (end < 0) fail('the file ends early, inside a text field')
    const text = Buffer.from(bytes.buffer, bytes.byteOffset + pos, end - pos).toString('latin1')
    pos = end + 1
    return text
  }
  const utf8 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')
  const pop = (): TorchPickleValue => {
    const v = stack.pop()
    if (v === undefined || v === MARK) return fail('the pickle stack is empty')
    return v
  }
  const top = (): TorchPickleValue => {
    const v = stack[stack.length - 1]
    if (v === undefined || v === MARK) return fail('the pickle stack is empty')
    return v
  }
  const popMark = (): TorchPickleValue[] => {
    const at = stack.lastIndexOf(MARK)
    if (at < 0) fail('no MARK on the pickle stack')
    const items = stack.splice(at) as TorchPickleValue[]
    items.shift()
    return items
  }
  const tuple = (items: TorchPickleValue[]) => Object.freeze(items) as TorchPickleValue[]
  const integer = (n: bigint): number | bigint => (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n)
  const longLE = (b: Uint8Array) => {
    let n = 0n
    for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!)
    if (b.length > 0 && b[b.length - 1]! & 0x80) n -= 1n << BigInt(8 * b.length)
    return integer(n)
  }
  const dictOf = (v: TorchPickleValue): Map<DictKey, TorchPickleValue> => (v instanceof Map ? v : fail('SETITEM on something that is not a dict'))
  const listOf = (v: TorchPickleValue): TorchPickleValue[] =>
    Array.isArray(v) && !Object.isFrozen(v) ? v : fail('APPEND on something that is not a list')
  const key = (k: TorchPickleValue): DictKey => {
    if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return k
    if (k instanceof Uint8Array) return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1')
    return fail('a dict key that is not a string, a number, a boolean or None')
  }
  const setItems = (d: Map<DictKey, TorchPickleValue>, items: TorchPickleValue[]) => {
    if (items.length % 2 !== 0) fail('a dict with an odd number of keys and values')
    for (let i = 0; i < items.length; i += 2) d.set(key(items[i]!), items[i + 1]!)
  }
  const global = (qualified: string): TorchPickleValue =>
    admit(qualified) ?? fail(`the pickle names the global ${qualified}, which a weights file never needs; refused, nothing was run${refusalHint(qualified)}`)
  const put = (index: number) => memo.set(index, top())
  const ctx: CallContext = { fail }

  for (;;) {
    const op = u8()
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5')
        break
      case 0x95: // FRAME: framing only helps streaming readers
        u64()
        break
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`)
        return { value: pop(), end: pos, storages }
      case 0x28: // MARK
        stack.push(MARK)
        break
      case 0x30: // POP
        if (stack.pop() === undefined) fail('POP on an empty stack')
        break
      case 0x31: // POP_MARK
        popMark()
        break
      case 0x32: // DUP
        stack.push(top())
        break
      case 0x4e: // NONE
        stack.push(null)
        break
      case 0x88: // NEWTRUE
        stack.push(true)
        break
      case 0x89: // NEWFALSE
        stack.push(false)
        break
      case 0x49: {
        // INT (text): protocol 0 spells booleans 01 and 00
        const text = line()
        if (text === '01' || text === '00') stack.push(text === '01')
        else if (/^-?\d+$/.test(text)) stack.push(integer(BigInt(text)))
        else fail(`INT with text ${JSON.stringify(text)}`)
        break
      }
      case 0x4c: {
        // LONG (text)
        const text = line().replace(/L$/, '')
        if (!/^-?\d+$/.test(text)) fail(`LONG with text ${JSON.stringify(text)}`)
        stack.push(integer(BigInt(text)))
        break
      }
      case 0x4a: // BININT
        stack.push(i32())
        break
      case 0x4b: // BININT1
        stack.push(u8())
        break
      case 0x4d: // BININT2
        stack.push(u16())
        break
      case 0x8a: // LONG1
        stack.push(longLE(take(u8())))
        break
      case 0x8b: {
        // LONG4: torch writes no integer this long; the cap keeps a hostile one from costing quadratic time
        const n = i32()
        if (n > 1024) fail(`an integer of ${n} bytes`)
        stack.push(longLE(take(n)))
        break
      }
      case 0x46: // FLOAT (text)
        stack.push(Number.parseFloat(line()))
        break
      case 0x47: // BINFLOAT (big-endian)
        need(8)
        stack.push(view.getFloat64(pos, false))
        pos += 8
        break
      case 0x54: // BINSTRING: a Python 2 str; torch.load decodes these as UTF-8, and so does this reader
        stack.push(utf8(take(i32())))
        break
      case 0x55: // SHORT_BINSTRING
        stack.push(utf8(take(u8())))
        break
      case 0x42: // BINBYTES
        stack.push(take(u32()))
        break
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()))
        break
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()))
        break
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32())))
        break
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(u8())))
        break
      case 0x8d: // BINUNICODE8
        stack.push(utf8(take(u64())))
        break
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]))
        break
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]))
        break
      case 0x86: {
        // TUPLE2
        const b = pop()
        stack.push(tuple([pop(), b]))
        break
      }
      case 0x87: {
        // TUPLE3
        const c = pop()
        const b = pop()
        stack.push(tuple([pop(), b, c]))
        break
      }
      case 0x74: // TUPLE
        stack.push(tuple(popMark()))
        break
      case 0x6c: // LIST
        stack.push(popMark())
        break
      case 0x5d: // EMPTY_LIST
        stack.push([])
        break
      case 0x61: {
        // APPEND
        const v = pop()
        listOf(top()).push(v)
        break
      }
      case 0x65: {
        // APPENDS
        const items = popMark()
        const list = listOf(top())
        for (const item of items) list.push(item)
        break
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map())
        break
      case 0x64: {
        // DICT
        const d = new Map<DictKey, TorchPickleValue>()
        setItems(d, popMark())
        stack.push(d)
        break
      }
      case 0x73: {
        // SETITEM
        const v = pop()
        const k = pop()
        dictOf(top()).set(key(k), v)
        break
      }
      case 0x75: {
        // SETITEMS
        const items = popMark()
        setItems(dictOf(top()), items)
        break
      }
      case 0x71: // BINPUT
        put(u8())
        break
      case 0x72: // LONG_BINPUT
        put(u32())
        break
      case 0x70: // PUT (text)
        put(Number.parseInt(line(), 10))
        break
      case 0x94: // MEMOIZE
        put(memo.size)
        break
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET (text)
        const index = op === 0x68 ? u8() : op === 0x6a ? u32() : Number.parseInt(line(), 10)
        const v = memo.get(index)
        if (v === undefined) fail(`memo entry ${index} was never stored`)
        stack.push(v!)
        break
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = line()
        stack.push(global(`${module}.${line()}`))
        break
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop()
        const module = pop()
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without two strings')
        stack.push(global(`${module as string}.${name as string}`))
        break
      }
      case 0x51: {
        // BINPERSID: torch's pointer to a storage
        const storage = persistentLoad(pop(), fail)
        storages.push(storage)
        stack.push(storage)
        break
      }
      case 0x50: // PERSID (text): torch never writes it
        fail(`a text persistent id ${JSON.stringify(line())}; torch checkpoints use binary ones`)
        break
      case 0x52: {
        // REDUCE
        const args = pop()
        const fn = pop()
        stack.push(call(fn, Array.isArray(args) ? args : fail('REDUCE without an argument tuple'), ctx))
        break
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args); only OrderedDict is built this way here
        const args = pop()
        const cls = pop()
        if (!isGlobal(cls) || cls.name !== 'collections.OrderedDict') fail(`NEWOBJ of ${describe(cls)}`)
        stack.push(new Map())
        break
      }
      case 0x62: {
        // BUILD: the state of an OrderedDict is its attributes (`_metadata` on a state dict), which weights do not need
        const state = pop()
        const target = top()
        if (!(target instanceof Map)) fail(`BUILD on ${describe(target)}`)
        if (!(state instanceof Map) && !Array.isArray(state) && state !== null) fail('BUILD with a state that is not a dict')
        break
      }
      case 0x98: // READONLY_BUFFER: a marker only
        break
      default:
        fail(`pickle opcode 0x${op.toString(16).padStart(2, '0')} is not accepted (it may run code, or the file is not a torch checkpoint)`)
    }
  }
}

interface CallContext {
  fail: (what: string) => never
}

/** Resolves a persistent id: `('storage', StorageType, key, location, numel[, view_metadata])`. */
function persistentLoad(pid: TorchPickleValue, fail: (what: string) => never): StorageRef {
  if (!Array.isArray(pid)) return fail(`a persistent id that is ${describe(pid)}, not a tuple`)
  const [typename, type, key, , numel, viewMeta] = pid.map(asText)
  if (typename === 'module') return fail('a persistent id for a module class: torch.save(model) pickles the whole module; save model.state_dict() instead')
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
function call(fn: TorchPickleValue, args: TorchPickleValue[], ctx: CallContext): TorchPickleValue {
  const { fail } = ctx
  if (!isGlobal(fn)) return fail(`a call to ${describe(fn)}, which cannot be called`)
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
        if (!isKey(k)) return fail('an OrderedDict key that is not a string, a number, a boolean or None')
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
      if (!isGlobal(type) || !TENSOR_TYPES.has(type.name)) return fail(`${fn.name} rebuilds a ${describe(type ?? null)}, not a tensor or Parameter`)
      if (!isGlobal(inner) || !inner.name.startsWith('torch._utils._rebuild_')) return fail(`${fn.name} calls ${describe(inner ?? null)}`)
      if (!Array.isArray(innerArgs)) return fail(`${fn.name} called without an argument tuple`)
      const tensor = call(inner, innerArgs, ctx)
      return isTensor(tensor) ? tensor : fail(`${fn.name} did not rebuild a tensor`)
    }
    case 'torch.Size': {
      const [dims] = args
      return isCounts(dims) ? (Object.freeze([...dims]) as number[]) : fail('torch.Size called without a list of sizes')
    }
    case '_codecs.encode': {
      const [text] = args
      if (typeof text !== 'string') return fail('_codecs.encode called without a string')
      return new Uint8Array(Buffer.from(text, 'latin1'))
    }
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

function isKey(v: unknown): v is DictKey {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean'
}
function isGlobal(v: unknown): v is GlobalRef {
  return typeof v === 'object' && v !== null && (v as GlobalRef).kind === 'global'
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
