// Preparing images to score: any format and size, decoded, resized and converted exactly as the training data
// was, into one channel-first uint8 batch; and ranking a model's probabilities into labelled predictions.
import fs from 'node:fs'
import { decodeInto, fixedResize, type DecodeOptions } from '../data/decode-image.ts'
import { DataError, InputError } from '../errors.ts'

/** Pixels already decoded: `width × height × channels` bytes, interleaved (as sharp's `raw()` gives them). */
export interface RawImage {
  data: Uint8Array
  width: number
  height: number
  /** 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA). */
  channels: 1 | 2 | 3 | 4
}

/** A file path, an encoded image (PNG, JPEG, WebP, ... bytes), or raw pixels. */
export type ImageInput = string | Buffer | Uint8Array | RawImage

export interface PredictOptions {
  /** How many of the most likely classes to list in `topK`. Defaults to 5 (or the class count, if smaller). */
  topK?: number
  /** Images per native call for arrays. Defaults to 512. */
  batchSize?: number
  /**
   * Test-time augmentation: `'mirror'` averages the image and its mirror image, `'mirrorTranslate'` adds 1-pixel
   * shifts. Defaults to the one the model was trained with (stored in its checkpoint), else `'none'`.
   */
  tta?: 'none' | 'mirror' | 'mirrorTranslate'
}

export interface ClassScore {
  label: string
  index: number
  probability: number
}

/** The most likely class of one image, and the `topK` most likely, best first. */
export interface Prediction extends ClassScore {
  topK: ClassScore[]
  /**
   * A multi-label model's prediction: every class whose probability reaches its threshold, most likely first (empty
   * when none does). Undefined for a single-label model.
   */
  labels?: ClassScore[]
}

function isRaw(input: ImageInput): input is RawImage {
  return typeof input === 'object' && !(input instanceof Uint8Array) && 'data' in input
}

function describe(input: ImageInput, i: number): string {
  if (typeof input === 'string') return input
  return isRaw(input) ? `raw image #${i}` : `encoded image #${i}`
}

/** Raw pixels already at the wanted size and channels go straight into the batch, HWC to CHW, without sharp. */
function copyRaw(raw: RawImage, decode: DecodeOptions, out: Uint8Array, offset: number): boolean {
  const [h, w] = decode.size
  const resize = fixedResize(decode)
  if (raw.width !== w || raw.height !== h || raw.channels !== decode.channels || resize?.[0] !== h || resize[1] !== w) return false
  const plane = h * w
  for (let c = 0; c < raw.channels; c++) {
    const base = offset + c * plane
    for (let i = 0, j = c; i < plane; i++, j += raw.channels) out[base + i] = raw.data[j]!
  }
  return true
}

/** Decodes one input into the model's `[C, H, W]` uint8 layout at `offset`: same resize and channel handling as training. */
async function prepare(input: ImageInput, i: number, decode: DecodeOptions, out: Uint8Array, offset: number): Promise<void> {
  if (isRaw(input)) {
    const { data, width, height, channels } = input
    if (![1, 2, 3, 4].includes(channels)) {
      throw new InputError('BAD_SHAPE', `raw image #${i}: channels must be 1, 2, 3 or 4, got ${channels}`)
    }
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0 || data.length !== width * height * channels) {
      throw new InputError(
        'BAD_SHAPE',
        `raw image #${i}: expected width × height × channels = ${width} × ${height} × ${channels} = ${width * height * channels} bytes, got ${data.length}`,
      )
    }
    if (copyRaw(input, decode, out, offset)) return
    return decodeInto({ raw: input }, decode, out, offset)
  }
  if (typeof input === 'string' && !fs.existsSync(input))
    throw new DataError('DATA_NOT_FOUND', `image ${input} does not exist`, { files: [input] })
  try {
    await decodeInto(typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength), decode, out, offset)
  } catch (err) {
    throw new DataError('DATA_BAD_IMAGE', `${describe(input, i)} could not be decoded as an image: ${(err as Error).message}`, {
      cause: err,
      files: typeof input === 'string' ? [input] : [],
    })
  }
}

/** Decodes `inputs` into one uint8 batch `[N, C, H, W]` as `decode` says; errors name the input at fault. */
export async function prepareImages(inputs: readonly ImageInput[], first: number, decode: DecodeOptions): Promise<Uint8Array> {
  const perImage = decode.channels * decode.size[0] * decode.size[1]
  const pixels = new Uint8Array(inputs.length * perImage)
  await Promise.all(inputs.map((input, j) => prepare(input, first + j, decode, pixels, j * perImage)))
  return pixels
}

/**
 * One image's probabilities as a labelled prediction with the `k` best; with `thresholds` (a multi-label model), also
 * every class above its threshold.
 */
export function rankScores(probs: Float32Array, names: readonly string[], k: number, thresholds?: readonly number[]): Prediction {
  const ranked = Array.from(probs, (probability, index) => ({ label: names[index] ?? String(index), index, probability }))
  ranked.sort((a, b) => b.probability - a.probability || a.index - b.index)
  const labels = thresholds && ranked.filter((s) => s.probability >= thresholds[s.index]!)
  return { ...ranked[0]!, topK: ranked.slice(0, k), ...(labels ? { labels } : {}) }
}
