// Decodes one image of any format sharp reads into channel-first uint8 pixels of a fixed size.
import sharp from 'sharp'

export interface DecodeOptions {
  /** `[height, width]` of the result. */
  size: [number, number]
  /** 1 for grayscale, 3 for RGB; other inputs (RGBA, grayscale, CMYK) are converted. */
  channels: 1 | 3
  /**
   * Resize the shorter side to this many pixels (keeping the aspect ratio), then take the centre `size`, as
   * torchvision's `Resize(n)` + `CenterCrop(size)` do. Without it the image is stretched to `size` exactly.
   */
  resizeShorter?: number
  /** Stretch to `[height, width]` (at least `size`), then take the centre `size`; ignored with `resizeShorter`. */
  resize?: [number, number]
  /**
   * The resampling filter: `'bilinear'` and `'bicubic'` as torchvision's antialiased resize (libvips' linear and
   * cubic reducers), else sharp's default, Lanczos-3.
   */
  interpolation?: 'bilinear' | 'bicubic'
}

const KERNELS = { bilinear: 'linear', bicubic: 'cubic' } as const

/** Raw interleaved pixels to decode as an image. */
export interface RawInput {
  raw: { data: Uint8Array; width: number; height: number; channels: 1 | 2 | 3 | 4 }
}

function pipeline(input: string | Buffer | RawInput): ReturnType<typeof sharp> {
  if (typeof input === 'object' && 'raw' in input) {
    const { data, width, height, channels } = input.raw
    return sharp(data, { raw: { width, height, channels } })
  }
  return sharp(input, { failOn: 'error' })
}

/**
 * Decodes `input` (a path, encoded bytes or raw pixels) and writes `channels × height × width` bytes into `out` at
 * `offset`. Resizing stretches to the exact size, as torchvision's `Resize((h, w))` does, unless `resizeShorter` or `resize`
 * asks for a centre crop of a larger resize.
 */
export async function decodeInto(
  input: string | Buffer | RawInput,
  options: DecodeOptions,
  out: Uint8Array,
  offset: number,
): Promise<void> {
  const [height, width] = options.size
  let image = pipeline(input)
  const kernel = options.interpolation ? KERNELS[options.interpolation] : undefined
  const [h1, w1] = await resizedSize(image, options)
  if (h1 !== height || w1 !== width) {
    // Resize to a buffer first: sharp applies extract before resize within one pipeline.
    const resized = await image
      .resize(w1, h1, { fit: 'fill', ...(kernel ? { kernel } : {}) })
      .raw()
      .toBuffer({ resolveWithObject: true })
    image = sharp(resized.data, { raw: resized.info }).extract({
      left: Math.floor((w1 - width) / 2),
      top: Math.floor((h1 - height) / 2),
      width,
      height,
    })
  } else {
    image = image.resize(width, height, { fit: 'fill', ...(kernel ? { kernel } : {}) })
  }
  image = options.channels === 1 ? image.grayscale() : image.toColourspace('srgb')
  const { data, info } = await image.removeAlpha().raw().toBuffer({ resolveWithObject: true })
  if (info.channels !== options.channels || info.width !== width || info.height !== height) {
    throw new Error(`decoded to ${info.channels}×${info.height}×${info.width}, expected ${options.channels}×${height}×${width}`)
  }
  const plane = width * height
  // sharp gives interleaved HWC; the model wants one plane per channel.
  for (let c = 0; c < options.channels; c++) {
    const base = offset + c * plane
    for (let i = 0, j = c; i < plane; i++, j += options.channels) out[base + i] = data[j]!
  }
}

/**
 * `[height, width]` to stretch to before the centre crop of `options.size` (equal to it: no crop), when it does not
 * depend on the image; undefined with `resizeShorter`, whose size follows the image's own.
 */
export function fixedResize(options: DecodeOptions): [number, number] | undefined {
  if (options.resizeShorter !== undefined) return undefined
  const [height, width] = options.size
  const [h1, w1] = options.resize ?? options.size
  return [Math.max(height, h1), Math.max(width, w1)]
}

/** `[height, width]` to resize to before the centre crop of `options.size` (equal to it: no crop). */
async function resizedSize(image: ReturnType<typeof sharp>, options: DecodeOptions): Promise<[number, number]> {
  const fixed = fixedResize(options)
  if (fixed) return fixed
  const [height, width] = options.size
  const meta = await image.metadata()
  const [w0, h0] = [meta.width ?? width, meta.height ?? height]
  const scale = options.resizeShorter! / Math.min(w0, h0)
  return [Math.max(height, Math.round(h0 * scale)), Math.max(width, Math.round(w0 * scale))]
}

/** Decodes one image into its own buffer. */
export async function decodeImage(input: string | Buffer, options: DecodeOptions): Promise<Uint8Array> {
  const out = new Uint8Array(options.channels * options.size[0] * options.size[1])
  await decodeInto(input, options, out, 0)
  return out
}
