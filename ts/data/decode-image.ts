// Decodes one image of any format sharp reads into channel-first uint8 pixels of a fixed size.
import sharp from 'sharp'

export interface DecodeOptions {
  /** `[height, width]` to resize to. */
  size: [number, number]
  /** 1 for grayscale, 3 for RGB; other inputs (RGBA, grayscale, CMYK) are converted. */
  channels: 1 | 3
}

/**
 * Decodes `input` (a path or encoded bytes) and writes `channels × height × width` bytes into `out` at `offset`.
 * Resizing stretches to the exact size, as torchvision's `Resize((h, w))` does.
 */
export async function decodeInto(input: string | Buffer, options: DecodeOptions, out: Uint8Array, offset: number): Promise<void> {
  const [height, width] = options.size
  let image = sharp(input, { failOn: 'error' }).resize(width, height, { fit: 'fill' })
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

/** Decodes one image into its own buffer. */
export async function decodeImage(input: string | Buffer, options: DecodeOptions): Promise<Uint8Array> {
  const out = new Uint8Array(options.channels * options.size[0] * options.size[1])
  await decodeInto(input, options, out, 0)
  return out
}
