// Scoring images with a model: any format and size, prepared exactly as the training data was, in batches.
import fs from 'node:fs'
import sharp from 'sharp'
import { call } from './binding.ts'
import { decodeInto, type DecodeOptions } from './data/decode-image.ts'
import { halfNormalization } from './data/image-set.ts'
import { DataError, InputError } from './errors.ts'
import type { Model } from './model.ts'

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
}

export interface ClassScore {
  label: string
  index: number
  probability: number
}

/** The most likely class of one image, and the `topK` most likely, best first. */
export interface Prediction extends ClassScore {
  topK: ClassScore[]
}

function isRaw(input: ImageInput): input is RawImage {
  return typeof input === 'object' && !(input instanceof Uint8Array) && 'data' in input
}

function describe(input: ImageInput, i: number): string {
  if (typeof input === 'string') return input
  return isRaw(input) ? `raw image #${i}` : `encoded image #${i}`
}

/** Decodes one input into the model's `[C, H, W]` uint8 layout at `offset`: same resize and channel handling as training. */
async function prepare(input: ImageInput, i: number, decode: DecodeOptions, out: Uint8Array, offset: number): Promise<void> {
  if (isRaw(input)) {
    const { data, width, height, channels } = input
    if (![1, 2, 3, 4].includes(channels)) {
      throw new InputError('BAD_SHAPE', `raw image #${i}: channels must be 1, 2, 3 or 4, got ${channels}`)
    }
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0 || data.length !== width * height * channels) {
      throw new InputError('BAD_SHAPE', `raw image #${i}: expected width × height × channels = ${width} × ${height} × ${channels} = ${width * height * channels} bytes, got ${data.length}`)
    }
    const png = await sharp(data, { raw: { width, height, channels } }).png().toBuffer()
    return decodeInto(png, decode, out, offset)
  }
  if (typeof input === 'string' && !fs.existsSync(input)) throw new DataError('DATA_NOT_FOUND', `image ${input} does not exist`, { files: [input] })
  try {
    await decodeInto(typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength), decode, out, offset)
  } catch (err) {
    throw new DataError('DATA_BAD_IMAGE', `${describe(input, i)} could not be decoded as an image: ${(err as Error).message}`, {
      cause: err,
      files: typeof input === 'string' ? [input] : [],
    })
  }
}

function scores(probs: Float32Array, names: readonly string[], k: number): Prediction {
  const ranked = Array.from(probs, (probability, index) => ({ label: names[index] ?? String(index), index, probability }))
  ranked.sort((a, b) => b.probability - a.probability || a.index - b.index)
  return { ...ranked[0]!, topK: ranked.slice(0, k) }
}

/** Scores images with a loaded model: one native call per batch. */
export async function predictWith(model: Model, inputs: readonly ImageInput[], options: PredictOptions = {}): Promise<Prediction[]> {
  if (!Array.isArray(inputs)) {
    throw new InputError('INVALID_OPTION', `model.predict(images): expected an array of images, got ${typeof inputs}; for one image, pass [image] or call predict(image, modelPath)`)
  }
  const [channels, height, width] = model.spec.inputShape
  if (channels !== 1 && channels !== 3) throw new InputError('BAD_SHAPE', `model input has ${channels} channels; prediction from images supports 1 or 3`)
  const k = Math.min(options.topK ?? 5, model.classes)
  if (!Number.isInteger(k) || k < 1) throw new InputError('INVALID_OPTION', `option topK: expected an integer >= 1, got ${options.topK}`)
  const batchSize = options.batchSize ?? 512
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError('INVALID_OPTION', `option batchSize: expected an integer >= 1, got ${batchSize}`)
  const decode: DecodeOptions = { size: [height, width], channels }
  const norm = model.normalization ?? halfNormalization(channels)
  const names = model.classNames ?? []
  const perImage = channels * height * width
  const results: Prediction[] = []
  for (let start = 0; start < inputs.length; start += batchSize) {
    const batch = inputs.slice(start, start + batchSize)
    const pixels = new Uint8Array(batch.length * perImage)
    await Promise.all(batch.map((input, j) => prepare(input, start + j, decode, pixels, j * perImage)))
    const probs = await call('prediction', () => model.native.predictPixels(pixels, batch.length, norm.mean, norm.std))
    for (let j = 0; j < batch.length; j++) results.push(scores(probs.subarray(j * model.classes, (j + 1) * model.classes), names, k))
  }
  return results
}
