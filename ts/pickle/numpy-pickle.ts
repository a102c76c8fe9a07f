// A Python pickle reader for data files (torchvision's CIFAR batches): plain values and numpy arrays only, and it runs no code.
//
// The opcodes are read by machine.ts beside it, shared with the torch checkpoint reader; this file is numpy's side
// of it: the whitelist, and what numpy's constructors and BUILD make of their arguments.
import { DataError } from '../errors.ts'
import { codecsEncode, isGlobalRef, unpickle, type Fail, type GlobalRef, type PickleData } from './machine.ts'

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
 * What unpickling yields: `null`, booleans, numbers (`bigint` beyond 2^53), strings (Python `str`), `Uint8Array`
 * (Python 2 `str` and Python 3 `bytes`), arrays (lists; tuples are frozen arrays), `Map` (dicts; byte-string keys
 * become latin1 strings), `NdArray`.
 */
export type PickleValue = PickleData<NdArray | GlobalRef | DType>

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

/**
 * Reads one pickled value from `bytes`. `name` (the file) is used in error messages.
 * Throws a `DATA_CORRUPT` DataError for a truncated or malformed pickle, and for one that names any global
 * other than the numpy array constructors.
 *
 * @example
 * const batch = readPickle(fs.readFileSync('cifar-10-batches-py/data_batch_1'), 'data_batch_1') as Map<string, PickleValue>
 */
export function readPickle(bytes: Uint8Array, name: string): PickleValue {
  return unpickle<NdArray | GlobalRef | DType>(bytes, 0, {
    fileKind: 'a pickle',
    // numpy arrays pickled by Python 2 hold their raw data in a `str`, so those stay bytes (`encoding='bytes'`).
    encoding: 'bytes',
    error: (what, at) =>
      new DataError('DATA_CORRUPT', `${name}: not a pickle this reader accepts: ${what} (at byte ${at} of ${bytes.length})`, {
        files: [name],
      }),
    global: (qualified, fail) =>
      ALLOWED_GLOBALS.has(qualified)
        ? { kind: 'global', name: qualified }
        : fail(`it names ${qualified}, and only numpy arrays are accepted`),
    call,
    // cls.__new__(cls, *args): only numpy's types get here, and they are built as calls are.
    newObject: call,
    build,
  }).value
}

/** What the whitelisted globals do when called: build data, nothing else. */
function call(fn: PickleValue, args: PickleValue[], fail: Fail): PickleValue {
  if (!isGlobalRef(fn)) return fail('a call to something that is not a known global')
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
      return { kind: 'ndarray', shape: [...shape], dtype: dtype.dtype, fortranOrder: order === 'F', data: buffer }
    }
    case '_codecs.encode':
      return codecsEncode(args, fail)
    default:
      return fail(`${fn.name} cannot be called`)
  }
}

function build(target: PickleValue, state: PickleValue, fail: Fail): void {
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
    target.shape = [...shape] // a copy: the pickle's tuple is frozen
    target.dtype = dtype.dtype
    target.fortranOrder = fortran === true || fortran === 1
    target.data = raw
    return
  }
  fail('BUILD on something other than a numpy array')
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
