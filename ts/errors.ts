// Every error ConvKit throws: one base class with a stable `code`, typed subclasses, and guards.

/** Stable codes; match on these rather than on messages. */
export type ErrorCode =
  | 'INVALID_SPEC'
  | 'UNKNOWN_LAYER'
  | 'NOT_EXPORTABLE'
  | 'BAD_SHAPE'
  | 'LABEL_OUT_OF_RANGE'
  | 'INVALID_OPTION'
  | 'CORRUPT_CHECKPOINT'
  | 'CHECKPOINT_MISMATCH'
  | 'IO_ERROR'
  | 'DEVICE_UNAVAILABLE'
  | 'CANCELLED'
  | 'TORCH_ERROR'
  | 'INTERNAL'
  | 'DATA_NOT_FOUND'
  | 'DATA_EMPTY'
  | 'DATA_BAD_IMAGE'
  | 'DATA_CORRUPT'
  | 'DATA_TOO_LARGE'
  | 'DOWNLOAD_FAILED'
  | 'CHECKSUM_MISMATCH'
  | 'DISTRIBUTED_ERROR'
  | 'MULTI_LABEL'

/** The base of every ConvKit error. `code` is stable; the message names the input, the field and what was expected. */
export class ConvkitError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** A model spec that is malformed, names an unknown layer, does not fit its input shape, or has a layer with no ONNX form. */
export class SpecError extends ConvkitError {}

/** Input data or an option of the wrong shape, size, range or value. */
export class InputError extends ConvkitError {}

/** A checkpoint that cannot be read, or whose tensors do not fit the model. */
export class CheckpointError extends ConvkitError {}

/** A dataset that is missing, empty or holds unreadable images. */
export class DataError extends ConvkitError {
  /** The files at fault, when there are any. */
  readonly files: readonly string[]

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; files?: readonly string[] }) {
    super(code, message, options)
    this.files = options?.files ?? []
  }
}

/** A device that was asked for and cannot be used (`cuda` on a machine without one). */
export class DeviceError extends ConvkitError {}

/** Work stopped by an AbortSignal. */
export class CancelledError extends ConvkitError {}

/** A file that could not be read or written. */
export class FileError extends ConvkitError {}

/**
 * A distributed run's rank could not meet the others, or lost one: a peer died, hung or was unreachable. The message
 * starts with this rank (`rank 0 of 2: …`) and names the rank it lost where it can tell.
 */
export class DistributedError extends ConvkitError {}

/** libtorch itself failed, or native code hit a bug; the message carries its words. */
export class NativeError extends ConvkitError {}

const classByCode: Record<ErrorCode, new (code: ErrorCode, message: string, options?: { cause?: unknown }) => ConvkitError> = {
  INVALID_SPEC: SpecError,
  UNKNOWN_LAYER: SpecError,
  NOT_EXPORTABLE: SpecError,
  BAD_SHAPE: InputError,
  LABEL_OUT_OF_RANGE: InputError,
  INVALID_OPTION: InputError,
  CORRUPT_CHECKPOINT: CheckpointError,
  CHECKPOINT_MISMATCH: CheckpointError,
  IO_ERROR: FileError,
  DEVICE_UNAVAILABLE: DeviceError,
  CANCELLED: CancelledError,
  TORCH_ERROR: NativeError,
  INTERNAL: NativeError,
  DATA_NOT_FOUND: DataError,
  DATA_EMPTY: DataError,
  DATA_BAD_IMAGE: DataError,
  DATA_CORRUPT: DataError,
  DATA_TOO_LARGE: DataError,
  DOWNLOAD_FAILED: DataError,
  CHECKSUM_MISMATCH: DataError,
  DISTRIBUTED_ERROR: DistributedError,
  MULTI_LABEL: InputError,
}

/** Makes the error class that fits `code`. */
export function errorFor(code: ErrorCode, message: string, options?: { cause?: unknown }): ConvkitError {
  const ErrorClass = classByCode[code]
  return new ErrorClass(code, message, options)
}

/** napi's own argument errors: a value of the wrong type where an option object crosses into Rust. */
const NAPI_ARGUMENT_CODES = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
])

/**
 * napi names the Rust types a bad value sat in (`… on OptimizerConfig.lr on ModelOptions.optimizer`); users
 * know the option path (`optimizer.lr`).
 */
function napiArgumentMessage(message: string): string {
  const [what, ...places] = message.split(' on ')
  const path = places
    .map((p) => p.split('.').slice(1).join('.'))
    .filter(Boolean)
    .reverse()
    .join('.')
  const text = what!.replace(
    /^Failed to convert napi value (\w+) into rust type `(\w+)`$/,
    (_, from: string, to: string) =>
      `expected ${to === 'f64' || to === 'i64' || to === 'u32' || to === 'i32' ? 'a number' : to === 'bool' ? 'a boolean' : to === 'String' ? 'a string' : to}, got a ${from.toLowerCase()}`,
  )
  return path ? `option ${path}: ${text.charAt(0).toLowerCase()}${text.slice(1)}` : text
}

/** Turns an error from the native addon (`[CODE] message`, or napi's own argument errors) into the matching ConvkitError. */
export function fromNative(err: unknown, context?: string): unknown {
  if (!(err instanceof Error)) return err
  const napiCode = (err as { code?: unknown }).code
  if (typeof napiCode === 'string' && NAPI_ARGUMENT_CODES.has(napiCode)) {
    const message = napiArgumentMessage(err.message)
    return new InputError('INVALID_OPTION', context ? `${context}: ${message}` : message, { cause: err })
  }
  const match = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(err.message)
  if (!match || !(match[1]! in classByCode)) return err
  const message = context ? `${context}: ${match[2]}` : match[2]!
  return errorFor(match[1] as ErrorCode, message, { cause: err })
}

export function isConvkitError(error: unknown): error is ConvkitError {
  return error instanceof ConvkitError
}

export function isCheckpointError(error: unknown): error is CheckpointError {
  return error instanceof CheckpointError
}

export function isDataError(error: unknown): error is DataError {
  return error instanceof DataError
}

export function isDistributedError(error: unknown): error is DistributedError {
  return error instanceof DistributedError
}

export function isCancelledError(error: unknown): error is CancelledError {
  return error instanceof CancelledError
}
