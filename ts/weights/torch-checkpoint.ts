// Reads PyTorch weight files (.pth, .pt: torch.save's zip format and the legacy pre-1.6 one) into plain tensors, running nothing.
import fs from 'node:fs'
import { unzipSync } from 'fflate'
import { CheckpointError, FileError, InputError } from '../errors.ts'
import { readTorchPickle, isTensorRef, TORCH_DTYPE_SIZE } from '../pickle/torch-pickle.ts'
import type { DictKey, StorageRef, TensorRef, TorchDType, TorchPickleValue } from '../pickle/torch-pickle.ts'

export type { TorchDType } from '../pickle/torch-pickle.ts'

/** One tensor of a state dict, its bytes made contiguous. */
export interface TorchTensor {
  /** The state-dict key, e.g. `'_conv_stem.weight'`. */
  name: string
  dtype: TorchDType
  /** Sizes per dimension, outermost first; `[]` for a scalar (0-d) tensor. */
  shape: number[]
  /**
   * The values, row-major (C order), little-endian, `product(shape) * TORCH_DTYPE_SIZE[dtype]` bytes: the storage
   * offset and strides the file recorded are already applied, and big-endian files are swapped. Each tensor owns
   * its own buffer starting at byte 0 (tensors that shared a storage in PyTorch do not share it here), so
   * `new Float32Array(t.data.buffer, t.data.byteOffset, n)` is aligned; `torchTensorValues` does that for you.
   */
  data: Uint8Array
}

/**
 * Keys under which checkpoints wrap their weights, tried in this order when the top-level dict is not itself a
 * state dict: `{'state_dict': …}` (Lightning, timm training), `{'model_state_dict': …}` (PyTorch's tutorial),
 * `{'model': …}` (torchvision's reference scripts), `{'module': …}`, `{'net': …}`, `{'network': …}`.
 */
export const STATE_DICT_KEYS: readonly string[] = ['state_dict', 'model_state_dict', 'model', 'module', 'net', 'network']

/** The magic number the legacy format's first pickle holds, and the protocol version of its second. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn
const LEGACY_PROTOCOL = 1001

/** The pickled object, the bytes of each root storage, and how to read them. */
interface Container {
  root: TorchPickleValue
  storages: Map<string, Uint8Array>
  /** Whether each storage's bytes are a private copy this reader may hand out as a tensor's data. */
  owned: boolean
  bigEndian: boolean
}

/**
 * Reads the state dict (parameter name → tensor) of a PyTorch weights file, as written by `torch.save`: the zip
 * format (torch ≥ 1.6's default) or the legacy one (`_use_new_zipfile_serialization=False`, and every file saved
 * before 1.6). The file may be a plain `dict` or `OrderedDict` of tensors, or wrap one under a key in
 * `STATE_DICT_KEYS` (`{'state_dict': …, 'epoch': 3}`); the innermost dict of tensors is returned, in file order.
 *
 * Nothing in the file is run: the pickle may only name what torch state dicts need (OrderedDict, torch's tensor and
 * Parameter rebuild functions, storage and dtype names). A file that names anything else, such as a whole model
 * saved with `torch.save(model)` or a hostile `os.system`, is refused before any tensor is read. The whole
 * file is read into memory (up to 2 GiB).
 *
 * Throws a `CORRUPT_CHECKPOINT` CheckpointError that names the file and what is wrong for a truncated, damaged
 * or refused file, and an `IO_ERROR` FileError when the file cannot be read.
 *
 * @example
 * const weights = await readTorchStateDict('efficientnet-lite0-57934424.pth')
 * const stem = weights.get('_conv_stem.weight')!   // { dtype: 'float32', shape: [32, 3, 3, 3], data }
 * const values = torchTensorValues(stem) as Float32Array
 */
export async function readTorchStateDict(file: string): Promise<Map<string, TorchTensor>> {
  let bytes: Uint8Array
  try {
    bytes = await fs.promises.readFile(file)
  } catch (err) {
    throw new FileError('IO_ERROR', `cannot read the checkpoint ${file}: ${(err as Error).message}`, { cause: err })
  }
  return parseTorchStateDict(bytes, file)
}

/**
 * `readTorchStateDict` for bytes already in memory; `file` names them in error messages (defaults to
 * `'(in memory)'`). The result does not keep `bytes` alive: every tensor's data is its own buffer.
 *
 * @example
 * const weights = parseTorchStateDict(new Uint8Array(await (await fetch(url)).arrayBuffer()), url)
 */
export function parseTorchStateDict(bytes: Uint8Array, file = '(in memory)'): Map<string, TorchTensor> {
  const container = isZip(bytes) ? readZipCheckpoint(bytes, file) : readLegacyCheckpoint(bytes, file)
  const dict = findStateDict(container.root, file)
  const refs: [string, TensorRef][] = []
  for (const [name, ref] of dict) {
    if (typeof name !== 'string') fail(file, `the state dict has a key ${String(name)} that is not a string`)
    refs.push([name as string, ref as TensorRef])
  }
  const uses = new Map<string, number>()
  for (const [, ref] of refs) uses.set(ref.storage.key, (uses.get(ref.storage.key) ?? 0) + 1)
  const out = new Map<string, TorchTensor>()
  for (const [name, ref] of refs) {
    const bytesOf = container.storages.get(ref.storage.key)
    if (!bytesOf) fail(file, `tensor ${name} points at storage ${ref.storage.key}, which the file does not hold`)
    const soleOwner = container.owned && uses.get(ref.storage.key) === 1
    out.set(name, {
      name,
      dtype: ref.dtype,
      shape: [...ref.shape],
      data: contiguous(name, ref, bytesOf!, soleOwner, container.bigEndian, file),
    })
  }
  return out
}

/** Typed arrays `torchTensorValues` returns. */
export type TorchTensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array

/**
 * A tensor's values as the typed array that fits its dtype: `Float32Array` for float32, and also for float16 and
 * bfloat16 (converted exactly); `Float64Array` for float64; `BigInt64Array` for int64; `Uint8Array` for uint8 and
 * bool (0 or 1); and so on. Complex tensors give interleaved real and imaginary parts (`Float32Array` for
 * complex32 and complex64, `Float64Array` for complex128). Where no conversion is needed the array views
 * `tensor.data`. Throws an `INVALID_OPTION` InputError for the float8 dtypes, which have no JavaScript array type.
 *
 * @example
 * const fc = torchTensorValues(weights.get('_fc.weight')!) as Float32Array  // 1000 × 1280 values
 */
export function torchTensorValues(tensor: TorchTensor): TorchTensorValues {
  const { data, dtype } = tensor
  const size = TORCH_DTYPE_SIZE[dtype]
  // Views need aligned offsets; a TorchTensor from this module always has them, one built elsewhere may not.
  const buf = data.byteOffset % 8 === 0 ? data : data.slice()
  const n = buf.byteLength / size
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf.buffer, buf.byteOffset, n)
    case 'float64':
      return new Float64Array(buf.buffer, buf.byteOffset, n)
    case 'complex64':
      return new Float32Array(buf.buffer, buf.byteOffset, 2 * n)
    case 'complex128':
      return new Float64Array(buf.buffer, buf.byteOffset, 2 * n)
    case 'int64':
      return new BigInt64Array(buf.buffer, buf.byteOffset, n)
    case 'uint64':
      return new BigUint64Array(buf.buffer, buf.byteOffset, n)
    case 'int32':
      return new Int32Array(buf.buffer, buf.byteOffset, n)
    case 'uint32':
      return new Uint32Array(buf.buffer, buf.byteOffset, n)
    case 'int16':
      return new Int16Array(buf.buffer, buf.byteOffset, n)
    case 'uint16':
      return new Uint16Array(buf.buffer, buf.byteOffset, n)
    case 'int8':
      return new Int8Array(buf.buffer, buf.byteOffset, n)
    case 'uint8':
    case 'bool':
      return buf
    case 'float16':
    case 'complex32': {
      const halves = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength / 2)
      const table = halfTable()
      return Float32Array.from(halves, (h) => table[h]!)
    }
    case 'bfloat16': {
      // bfloat16 is the top half of a float32.
      const halves = new Uint16Array(buf.buffer, buf.byteOffset, n)
      const out = new Float32Array(n)
      const bits = new Uint32Array(out.buffer)
      for (let i = 0; i < n; i++) bits[i] = halves[i]! << 16
      return out
    }
    default:
      throw new InputError(
        'INVALID_OPTION',
        `tensor ${tensor.name} is ${dtype}, which has no JavaScript typed array; read its bytes from tensor.data`,
      )
  }
}

let halfValues: Float32Array | undefined
/** Every float16 bit pattern's value, made once (256 KiB). */
function halfTable(): Float32Array {
  if (halfValues) return halfValues
  halfValues = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exponent = (h >> 10) & 0x1f
    const fraction = h & 0x3ff
    halfValues[h] =
      exponent === 0
        ? sign * fraction * 2 ** -24
        : exponent === 31
          ? fraction
            ? Number.NaN
            : sign * Infinity
          : sign * (1 + fraction / 1024) * 2 ** (exponent - 15)
  }
  return halfValues
}

function fail(file: string, what: string, cause?: unknown): never {
  throw new CheckpointError('CORRUPT_CHECKPOINT', `checkpoint ${file}: ${what}`, cause === undefined ? undefined : { cause })
}

/** A local file header (`PK\x03\x04`), or the end record of an empty archive (`PK\x05\x06`). */
function isZip(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 4 &&
    bytes[0] === 0x50 &&
    bytes[1] === 0x4b &&
    ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6))
  )
}

/**
 * The zip format: `<archive>/data.pkl` (the object, whose persistent ids name storages by key),
 * `<archive>/data/<key>` (each storage's raw bytes, stored), and `<archive>/byteorder` (absent before torch 1.10,
 * meaning little-endian). `<archive>` is the first entry's folder, as torch's own reader takes it.
 */
function readZipCheckpoint(bytes: Uint8Array, file: string): Container {
  let prefix: string | undefined
  const names: string[] = []
  // A central-directory entry takes at least 46 bytes, so more entries than that cannot be real; the check
  // keeps a damaged entry count from looping over garbage.
  const maxEntries = Math.floor(bytes.length / 46)
  const meta = unzipEntries(bytes, file, (name) => {
    if (names.push(name) > maxEntries) fail(file, 'the zip directory lists more entries than the file can hold')
    prefix ??= name.includes('/') ? name.slice(0, name.indexOf('/')) : ''
    return name === `${prefix}/data.pkl` || name === `${prefix}/byteorder`
  })
  if (!prefix) fail(file, 'a zip archive, but not one torch.save writes (no <archive>/data.pkl)')
  const pickle = meta[`${prefix}/data.pkl`]
  if (!pickle) {
    const script = names.some((n) => n === `${prefix}/constants.pkl` || n.startsWith(`${prefix}/code/`))
    fail(
      file,
      script
        ? "a TorchScript archive (torch.jit.save), not a state dict; save the model's state_dict() with torch.save instead"
        : `a zip archive without ${prefix}/data.pkl, so not a torch.save checkpoint`,
    )
  }
  const order = meta[`${prefix}/byteorder`]
  const byteorder = order ? Buffer.from(order).toString('latin1').trim() : 'little'
  if (byteorder !== 'little' && byteorder !== 'big') fail(file, `${prefix}/byteorder says ${JSON.stringify(byteorder)}, not little or big`)

  const { value, end, storages: refs } = readTorchPickle(pickle!, 0, file, `${prefix}/data.pkl`)
  if (end !== pickle!.length) fail(file, `${prefix}/data.pkl has ${pickle!.length - end} bytes after the pickle's end`)
  const roots = rootStorages(refs, file)

  const wanted = new Map([...roots.keys()].map((key) => [`${prefix}/data/${key}`, key]))
  const records = wanted.size === 0 ? {} : unzipEntries(bytes, file, (name) => wanted.has(name))
  const storages = new Map<string, Uint8Array>()
  for (const [record, key] of wanted) {
    const data = records[record]
    if (!data) fail(file, `the pickle names storage ${key}, but the archive has no ${record}`)
    const expected = storageBytes(roots.get(key)!)
    if (data!.length !== expected)
      fail(file, `${record} holds ${data!.length} bytes; its ${roots.get(key)!.numel} ${roots.get(key)!.dtype} elements need ${expected}`)
    storages.set(key, data!)
  }
  // fflate copies each entry out of the archive, so the storages are private and may become tensors' data.
  return { root: value, storages, owned: true, bigEndian: byteorder === 'big' }
}

/** fflate's unzip, its errors turned into named ones. */
function unzipEntries(bytes: Uint8Array, file: string, want: (name: string) => boolean): Record<string, Uint8Array> {
  try {
    return unzipSync(bytes, { filter: (entry) => want(entry.name) })
  } catch (err) {
    if (err instanceof CheckpointError) throw err
    return fail(file, `the zip archive is truncated or damaged (${(err as Error).message})`, err)
  }
}

/**
 * The legacy format, five pickles and the storages: the magic number, the protocol version (1001), system info
 * (`little_endian`), the object, and the sorted list of storage keys; then each storage in that order as an
 * 8-byte element count followed by its raw bytes.
 */
function readLegacyCheckpoint(bytes: Uint8Array, file: string): Container {
  if (bytes.length === 0) fail(file, 'the file is empty')
  if (bytes[0] !== 0x80) {
    // Pickles from torch.save start with PROTO; tar (torch < 0.1.10) and safetensors files do not.
    const tar = bytes.length > 262 && Buffer.from(bytes.subarray(257, 262)).toString('latin1') === 'ustar'
    const safetensors = bytes.length > 9 && bytes[8] === 0x7b
    fail(
      file,
      tar
        ? "a tar archive: torch < 0.1.10's format, which is not read; load and re-save it with a newer torch"
        : safetensors
          ? 'not a torch.save file (it looks like safetensors; load it with model.loadWeights)'
          : 'not a PyTorch checkpoint: neither a zip archive nor a legacy pickle stream',
    )
  }
  const magic = readTorchPickle(bytes, 0, file)
  if (magic.value !== LEGACY_MAGIC) fail(file, "not a PyTorch checkpoint: a pickle, but without torch.save's magic number")
  const version = readTorchPickle(bytes, magic.end, file)
  if (version.value !== LEGACY_PROTOCOL) fail(file, `legacy protocol version ${String(version.value)}; only ${LEGACY_PROTOCOL} exists`)
  const sysInfo = readTorchPickle(bytes, version.end, file)
  const littleEndian = sysInfo.value instanceof Map ? sysInfo.value.get('little_endian') !== false : true
  const object = readTorchPickle(bytes, sysInfo.end, file)
  const keyList = readTorchPickle(bytes, object.end, file)
  if (!Array.isArray(keyList.value) || !keyList.value.every((k) => typeof k === 'string'))
    fail(file, 'the list of storage keys is not a list of strings')
  const keys = keyList.value as string[]
  const roots = rootStorages(object.storages, file)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const storages = new Map<string, Uint8Array>()
  let pos = keyList.end
  for (const key of keys) {
    const ref = roots.get(key)
    if (!ref) fail(file, `storage ${key} is listed, but no tensor uses it`)
    if (pos + 8 > bytes.length) fail(file, `the file ends early: storage ${key}'s header is missing (byte ${pos} of ${bytes.length})`)
    const count = view.getBigUint64(pos, littleEndian)
    if (count !== BigInt(ref!.numel)) fail(file, `storage ${key} holds ${count} elements where the pickle says ${ref!.numel}`)
    pos += 8
    const size = storageBytes(ref!)
    if (pos + size > bytes.length)
      fail(file, `the file ends early: storage ${key} needs ${size} bytes at byte ${pos}, and ${bytes.length - pos} remain`)
    storages.set(key, bytes.subarray(pos, pos + size))
    pos += size
  }
  for (const key of roots.keys()) if (!storages.has(key)) fail(file, `the pickle names storage ${key}, but the file does not hold it`)
  if (pos !== bytes.length) fail(file, `${bytes.length - pos} bytes after the last storage`)
  // The storages view the file's buffer; tensors get copies so that buffer can be freed.
  return { root: object.value, storages, owned: false, bigEndian: !littleEndian }
}

/** Each root storage once, checking that every reference agrees on its dtype and size. */
function rootStorages(refs: StorageRef[], file: string): Map<string, StorageRef> {
  const roots = new Map<string, StorageRef>()
  for (const ref of refs) {
    const seen = roots.get(ref.key)
    if (!seen) roots.set(ref.key, ref)
    else if (seen.dtype !== ref.dtype || seen.numel !== ref.numel) {
      fail(file, `storage ${ref.key} is named as ${seen.numel} ${seen.dtype} and as ${ref.numel} ${ref.dtype} elements`)
    }
  }
  return roots
}

function storageBytes(ref: StorageRef): number {
  return ref.numel * TORCH_DTYPE_SIZE[ref.dtype]
}

/** The state dict in `root`: itself when it is a dict of tensors, else what a key in STATE_DICT_KEYS holds. */
function findStateDict(root: TorchPickleValue, file: string): Map<DictKey, TorchPickleValue> {
  let current = root
  const path: string[] = []
  for (let depth = 0; depth <= STATE_DICT_KEYS.length; depth++) {
    const where = path.length ? `the dict under ${path.map((k) => `[${JSON.stringify(k)}]`).join('')}` : 'the file'
    if (!(current instanceof Map)) return fail(file, `${where} holds ${kindOf(current)}, not a dict of tensors`)
    const dict = current
    if ([...dict.values()].every(isTensorRef)) return dict
    const next = STATE_DICT_KEYS.find((k) => dict.get(k) instanceof Map)
    if (next === undefined) {
      const keys = [...dict.keys()].map(String)
      const shown = keys.slice(0, 8).join(', ') + (keys.length > 8 ? `, … (${keys.length} keys)` : '')
      return fail(
        file,
        `no state dict found: ${where} holds keys ${shown}, whose values are not all tensors, and none of ${STATE_DICT_KEYS.join(', ')} holds a dict`,
      )
    }
    path.push(next)
    current = dict.get(next)!
  }
  return fail(file, `no state dict found within ${path.length} nested wrappers`)
}

function kindOf(v: TorchPickleValue): string {
  if (v === null) return 'None'
  if (Array.isArray(v)) return 'a list or tuple'
  if (isTensorRef(v)) return 'a single tensor'
  if (v instanceof Map) return 'a dict'
  return typeof v === 'object' ? (v instanceof Uint8Array ? 'bytes' : `a ${v.kind}`) : `a ${typeof v}`
}

/**
 * The tensor's elements in row-major order, little-endian: its window on `storage` (offset and strides in
 * elements of its dtype, within the storage or the legacy view of it) gathered into a new buffer. When the
 * tensor is the only user of a private storage and spans it exactly, the storage itself is returned.
 */
function contiguous(name: string, ref: TensorRef, storage: Uint8Array, soleOwner: boolean, bigEndian: boolean, file: string): Uint8Array {
  const size = TORCH_DTYPE_SIZE[ref.dtype]
  const unit = TORCH_DTYPE_SIZE[ref.storage.dtype]
  const view = ref.storage.view
  const base = view ? view.offset * unit : 0
  const limit = view ? view.numel * unit : storage.length
  const { shape, stride, offset } = ref
  let numel = 1
  for (const n of shape) numel *= n
  let last = offset
  for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * stride[d]!
  if (!Number.isSafeInteger(numel) || numel * size > 2 ** 32) fail(file, `tensor ${name} of shape [${shape.join(', ')}] is too large`)
  if (numel > 0 && (last + 1) * size > limit) {
    fail(
      file,
      `tensor ${name} (shape [${shape.join(', ')}], offset ${offset}, strides [${stride.join(', ')}]) reaches past its storage of ${limit / size} ${ref.dtype} elements`,
    )
  }
  const start = base + offset * size
  if (soleOwner && start === 0 && storage.byteOffset === 0 && numel * size === storage.length && isContiguous(shape, stride)) {
    if (bigEndian) swapBytes(storage, ref.dtype)
    return storage
  }
  const out = new Uint8Array(numel * size)
  if (numel > 0) gather(storage, start, shape, stride, size, out)
  if (bigEndian) swapBytes(out, ref.dtype)
  return out
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false
    expected *= shape[d]!
  }
  return true
}

/**
 * Copies a strided window into `out`. Trailing dimensions laid out densely form one run; runs of 64 bytes or more
 * are block copies, shorter ones (a transposed or TensorFlow-ordered weight: one element per run) are copied as
 * 16- or 32-bit words, which is several times faster than bytes.
 */
function gather(src: Uint8Array, start: number, shape: number[], stride: number[], size: number, out: Uint8Array): void {
  let inner = shape.length
  let run = 1
  while (inner > 0 && (shape[inner - 1] === 1 || stride[inner - 1] === run)) {
    run *= shape[inner - 1]!
    inner--
  }
  const runBytes = run * size
  if (inner === 0) {
    out.set(src.subarray(start, start + runBytes))
    return
  }
  // The innermost strided dimension is walked by a plain loop; the ones outside it by an odometer.
  const length = shape[inner - 1]!
  const step = stride[inner - 1]! * size
  const outer = inner - 1
  let outerRuns = 1
  for (let d = 0; d < outer; d++) outerRuns *= shape[d]!
  const index = new Array<number>(outer).fill(0)
  const advance = (at: number): number => {
    for (let d = outer - 1; d >= 0; d--) {
      index[d]!++
      at += stride[d]! * size
      if (index[d]! < shape[d]!) return at
      at -= shape[d]! * stride[d]! * size
      index[d] = 0
    }
    return at
  }
  if (runBytes >= 64) {
    for (let r = 0, at = start, to = 0; r < outerRuns; r++, at = advance(at)) {
      for (let i = 0, from = at; i < length; i++, from += step, to += runBytes) out.set(src.subarray(from, from + runBytes), to)
    }
    return
  }
  let word = size % 4 === 0 ? 4 : size % 2 === 0 ? 2 : 1
  if (start % word !== 0) word = 1
  // Word views need an aligned source: legacy files put storages at any byte, so copy the window when not.
  let source = src
  let first = start
  if (src.byteOffset % word !== 0) {
    let last = start
    for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * stride[d]! * size
    source = new Uint8Array(src.subarray(start, last + size))
    first = 0
  }
  const from = words(source, word)
  const to = words(out, word)
  const runWords = runBytes / word
  const stepWords = step / word
  let o = 0
  for (let r = 0, at = first; r < outerRuns; r++, at = advance(at)) {
    if (runWords === 1) for (let i = 0, a = at / word; i < length; i++, a += stepWords) to[o++] = from[a]!
    else {
      for (let i = 0, a = at / word; i < length; i++, a += stepWords) {
        for (let k = 0; k < runWords; k++) to[o++] = from[a + k]!
      }
    }
  }
}

function words(bytes: Uint8Array, word: number): Uint8Array | Uint16Array | Uint32Array {
  const n = Math.floor(bytes.byteLength / word)
  return word === 4
    ? new Uint32Array(bytes.buffer, bytes.byteOffset, n)
    : word === 2
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
      : bytes
}

/** Big-endian to little-endian, per element (per real and imaginary part for complex dtypes). */
function swapBytes(data: Uint8Array, dtype: TorchDType): void {
  const size = dtype.startsWith('complex') ? TORCH_DTYPE_SIZE[dtype] / 2 : TORCH_DTYPE_SIZE[dtype]
  if (size === 1) return
  for (let i = 0; i < data.length; i += size) data.subarray(i, i + size).reverse()
}
