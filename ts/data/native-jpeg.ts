// The native fast path for image folders: JPEGs already at the wanted size are decoded by mozjpeg in Rust,
// byte-identical to sharp (crates/node/src/jpeg.rs says why), about 50 times faster per image. What it
// leaves, callers decode with sharp.
import os from 'node:os'
import { call, native } from '../binding.ts'
import type { DecodeOptions } from './decode-image.ts'

/** Files per native call: progress moves between calls, and one call's buffer stays small. */
const CHUNK = 4096

export interface NativeJpegResult {
  /** `files.length × C×H×W` bytes, channel-first; zero for the files in `rest`. */
  pixels: Uint8Array
  /** Indices of files still to decode with sharp: other formats or sizes, ICC profiles, CMYK, damaged files. */
  rest: number[]
}

/**
 * Whether the native path reproduces `options`: it decodes images already at `size`, which a resize of the shorter
 * side to anything but that size would change.
 */
function nativeApplies(options: DecodeOptions): boolean {
  return options.resizeShorter === undefined || options.resizeShorter === Math.min(...options.size)
}

/**
 * Decodes what the fast path can of `items` (paths or encoded bytes), in chunks of `CHUNK` through `decode` (the
 * native call for that kind of item), on every core and off the JS thread; `onProgress` gets the count decoded.
 */
async function decodeInChunks<T>(
  items: readonly T[],
  options: DecodeOptions,
  decode: (chunk: T[], h: number, w: number, channels: number, threads: number) => Promise<{ pixels: Uint8Array; fallback: number[] }>,
  onProgress?: (decoded: number) => void,
): Promise<NativeJpegResult> {
  const [h, w] = options.size
  const perImage = options.channels * h * w
  const pixels = new Uint8Array(items.length * perImage)
  if (!nativeApplies(options)) return { pixels, rest: items.map((_, i) => i) }
  const rest: number[] = []
  const threads = os.availableParallelism()
  for (let start = 0; start < items.length; start += CHUNK) {
    const chunk = items.slice(start, start + CHUNK)
    const batch = await decode(chunk, h, w, options.channels, threads)
    pixels.set(batch.pixels, start * perImage)
    for (const i of batch.fallback) rest.push(start + i)
    onProgress?.(start + chunk.length - rest.length)
  }
  return { pixels, rest }
}

/** Decodes what the fast path can of the image files `files`. */
export async function decodeJpegsNatively(
  files: readonly string[],
  options: DecodeOptions,
  onProgress?: (decoded: number) => void,
): Promise<NativeJpegResult> {
  return decodeInChunks(
    files,
    options,
    (chunk, h, w, c, threads) => call('decoding JPEG files', () => native.decodeJpegFiles(chunk, h, w, c, threads)),
    onProgress,
  )
}

/** `decodeJpegsNatively` for encoded images in memory (entries read from an archive). */
export async function decodeJpegBuffersNatively(buffers: readonly Buffer[], options: DecodeOptions): Promise<NativeJpegResult> {
  return decodeInChunks(buffers, options, (chunk, h, w, c, threads) =>
    call('decoding JPEG images', () => native.decodeJpegBuffers(chunk, h, w, c, threads)),
  )
}
