// A Python pickle reader for data files (torchvision's CIFAR batches): plain values and numpy arrays only, and it runs no code.
import { DataError } from '../errors.ts'

/**
 * A numpy array as pickled: its bytes are not converted, only located. `dtype` is numpy's type string
 * (`'u1'`, `'<i8'`, …); `data` views the pickle's own buffer.
 */
export interface NdArray {
  readonly kind: 'ndarray'
  shape: number[]
  dtype: string
  fortranOrder: boolean
  data: Uint8Array
}

/**
 * What unpickling yields: `null`, booleans, numbers, strings (Python `str`), `Uint8Array` (Python 2 `str` and
 * Python 3 `bytes`), arrays (lists and tuples), `Map` (dicts; byte-string keys become latin1 strings), `NdArray`.
 */
export type PickleValue = null | boolean | number | string | Uint8Array | PickleValue[] | Map<string | number, PickleValue> | NdArray | PickleGlobal | DType

/** A whitelisted global (a callable the pickle names), kept as a name; pickles can only call these. */
interface PickleGlobal {
  readonly kind: 'global'
  name: string
}

interface DType {
  readonly kind: 'dtype'
  dtype: string
}

/**
 * The only globals a pickle may name. Everything `pickle.load` would import and call is refused, so a hostile file
 * can fail to load but cannot run anything. `numpy._core` is numpy 2's name for `numpy.core`.
 */
const ALLOWED_GLOBALS = new Set([
  'numpy.core.multiarray._reconstruct',
  'numpy._core.multiarray._reconstruct',
  'numpy.core.numeric._frombuffer',
  'numpy._core.numeric._frombuffer',
  'numpy.ndarray',
  'numpy.dtype',
  // Python 3 writes `bytes` as `_codecs.encode(text, 'latin1')` at protocols below 3.
  '_codecs.encode',
])

const MARK = Symbol('mark')
type Slot = PickleValue | typeof MARK

/**
 * Reads one pickled value from `bytes`. `name` (the file) is used in error messages.
 * Throws a `DATA_CORRUPT` DataError for a truncated or malformed pickle, and for one that names any global
 * other than the numpy array constructors.
 *
 * @example
 * const batch = readPickle(fs.readFileSync('cifar-10-batches-py/data_batch_1'), 'data_batch_1') as Map<string, PickleValue>
 */
export function readPickle(bytes: Uint8Array, name: string): PickleValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const stack: Slot[] = []
  const memo = new Map<number, PickleValue>()
  let pos = 0

  const fail = (what: string): never => {
    throw new DataError('DATA_CORRUPT', `${name}: not a pickle this reader accepts: ${what} (at byte ${pos} of ${bytes.length})`, { files: [name] })
  }
  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) fail(`the file ends early; expected ${n} more bytes`)
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
    if (end < 0) fail('a text field has no newline')
    const text = Buffer.from(bytes.buffer, bytes.byteOffset + pos, end - pos).toString('latin1')
    pos = end + 1
    return text
  }
  const utf8 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')
  const pop = (): PickleValue => {
    const v = stack.pop()
    if (v === undefined || v === MARK) return fail('the stack is empty')
    return v
  }
  const top = (): PickleValue => {
    const v = stack[stack.length - 1]
    if (v === undefined || v === MARK) return fail('the stack is empty')
    return v
  }
  const popMark = (): PickleValue[] => {
    const at = stack.lastIndexOf(MARK)
    if (at < 0) fail('no MARK on the stack')
    const items = stack.splice(at) as PickleValue[]
    items.shift()
    return items
  }
  const longLE = (b: Uint8Array) => {
    let n = 0n
    for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!)
    if (b.length > 0 && b[b.length - 1]! & 0x80) n -= 1n << BigInt(8 * b.length)
    return Number(n)
  }
  const dictOf = (v: PickleValue): Map<string | number, PickleValue> => (v instanceof Map ? v : fail('SETITEM on something that is not a dict'))
  const key = (k: PickleValue): string | number => {
    if (typeof k === 'string' || typeof k === 'number') return k
    if (k instanceof Uint8Array) return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1')
    return fail('a dict key that is not a string or a number')
  }
  const listOf = (v: PickleValue): PickleValue[] => (Array.isArray(v) ? v : fail('APPEND on something that is not a list'))
  const global = (qualified: string): PickleGlobal => {
    if (!ALLOWED_GLOBALS.has(qualified)) fail(`it names ${qualified}, and only numpy arrays are accepted`)
    return { kind: 'global', name: qualified }
  }
  const put = (index: number) => memo.set(index, top())

  for (;;) {
    const op = u8()
    switch (op) {
      case 0x80: // PROTO
        u8()
        break
      case 0x95: // FRAME: framing only helps streaming readers
        u64()
        break
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`)
        return pop()
      case 0x28: // MARK
        stack.push(MARK)
        break
      case 0x30: // POP
        stack.pop()
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
        stack.push(text === '01' ? true : text === '00' ? false : Number.parseInt(text, 10))
        break
      }
      case 0x4c: // LONG (text)
        stack.push(Number(BigInt(line().replace(/L$/, ''))))
        break
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
      case 0x8b: // LONG4
        stack.push(longLE(take(i32())))
        break
      case 0x47: // BINFLOAT (big-endian)
        need(8)
        stack.push(view.getFloat64(pos, false))
        pos += 8
        break
      case 0x54: // BINSTRING: a Python 2 str, kept as bytes
        stack.push(take(i32()))
        break
      case 0x55: // SHORT_BINSTRING
        stack.push(take(u8()))
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
        stack.push([])
        break
      case 0x85: // TUPLE1
        stack.push([pop()])
        break
      case 0x86: {
        // TUPLE2
        const b = pop()
        stack.push([pop(), b])
        break
      }
      case 0x87: {
        // TUPLE3
        const c = pop()
        const b = pop()
        stack.push([pop(), b, c])
        break
      }
      case 0x74: // TUPLE
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
        listOf(top()).push(...items)
        break
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map())
        break
      case 0x64: {
        // DICT
        const items = popMark()
        const d = new Map<string | number, PickleValue>()
        for (let i = 0; i + 1 < items.length; i += 2) d.set(key(items[i]!), items[i + 1]!)
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
        const d = dictOf(top())
        for (let i = 0; i + 1 < items.length; i += 2) d.set(key(items[i]!), items[i + 1]!)
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
        if (!memo.has(index)) fail(`memo entry ${index} was never stored`)
        stack.push(memo.get(index)!)
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
        const qualname = pop()
        const module = pop()
        if (typeof module !== 'string' || typeof qualname !== 'string') fail('STACK_GLOBAL without two strings')
        stack.push(global(`${module}.${qualname}`))
        break
      }
      case 0x52: {
        // REDUCE
        const args = pop()
        stack.push(call(pop(), Array.isArray(args) ? args : fail('REDUCE without an argument tuple'), fail))
        break
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args); only numpy's types get here
        const args = pop()
        stack.push(call(pop(), Array.isArray(args) ? args : fail('NEWOBJ without an argument tuple'), fail))
        break
      }
      case 0x62: {
        // BUILD
        const state = pop()
        build(top(), state, fail)
        break
      }
      case 0x98: // READONLY_BUFFER: a marker only
        break
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not supported (it may run code, or the file is not a pickle)`)
    }
  }
}

/** What the whitelisted globals do when called: build data, nothing else. */
function call(fn: PickleValue, args: PickleValue[], fail: (what: string) => never): PickleValue {
  if (!isGlobal(fn)) return fail('a call to something that is not a known global')
  switch (fn.name) {
    case 'numpy.core.multiarray._reconstruct':
    case 'numpy._core.multiarray._reconstruct':
      // The real shape, type and bytes arrive with BUILD.
      return { kind: 'ndarray', shape: [0], dtype: 'u1', fortranOrder: false, data: new Uint8Array(0) }
    case 'numpy.dtype': {
      const spec = args[0]
      if (typeof spec !== 'string' && !(spec instanceof Uint8Array)) return fail('numpy.dtype without a type string')
      return { kind: 'dtype', dtype: typeof spec === 'string' ? spec : Buffer.from(spec).toString('latin1') }
    }
    case 'numpy.core.numeric._frombuffer':
    case 'numpy._core.numeric._frombuffer': {
      const [buffer, dtype, shape, order] = args
      if (!(buffer instanceof Uint8Array) || !isDType(dtype) || !isShape(shape)) return fail('_frombuffer with unexpected arguments')
      return { kind: 'ndarray', shape, dtype: dtype.dtype, fortranOrder: order === 'F', data: buffer }
    }
    case '_codecs.encode': {
      const [text] = args
      if (typeof text !== 'string') return fail('_codecs.encode without a string')
      return new Uint8Array(Buffer.from(text, 'latin1'))
    }
    default:
      return fail(`${fn.name} cannot be called`)
  }
}

function build(target: PickleValue, state: PickleValue, fail: (what: string) => never): void {
  if (isDType(target)) {
    // (version, byteorder, subarray, names, fields, elsize, alignment, flags): only the byte order matters here.
    const order = Array.isArray(state) ? state[1] : undefined
    const o = typeof order === 'string' ? order : order instanceof Uint8Array ? Buffer.from(order).toString('latin1') : '|'
    if (o === '<' || o === '>') target.dtype = `${o}${target.dtype.replace(/^[<>|=]/, '')}`
    return
  }
  if (isNdArray(target)) {
    // (version, shape, dtype, is_fortran, raw bytes); very old pickles omit the version.
    if (!Array.isArray(state)) return fail('ndarray state is not a tuple')
    const fields = state.length === 5 ? state.slice(1) : state
    const [shape, dtype, fortran, raw] = fields
    if (!isShape(shape) || !isDType(dtype)) return fail('ndarray state without a shape and dtype')
    if (!(raw instanceof Uint8Array)) return fail('ndarray of Python objects (only numeric arrays are accepted)')
    target.shape = shape
    target.dtype = dtype.dtype
    target.fortranOrder = fortran === true || fortran === 1
    target.data = raw
    return
  }
  fail('BUILD on something other than a numpy array')
}

function isGlobal(v: unknown): v is PickleGlobal {
  return typeof v === 'object' && v !== null && (v as PickleGlobal).kind === 'global'
}
function isDType(v: unknown): v is DType {
  return typeof v === 'object' && v !== null && (v as DType).kind === 'dtype'
}
export function isNdArray(v: unknown): v is NdArray {
  return typeof v === 'object' && v !== null && (v as NdArray).kind === 'ndarray'
}
function isShape(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((n) => Number.isInteger(n) && n >= 0)
}
