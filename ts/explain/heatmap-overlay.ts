// A heatmap drawn over its image as PNG: the jet colour map blended with the pixels, as pytorch-grad-cam's
// show_cam_on_image draws it (half image, half colour by default).
import sharp from 'sharp'
import { InputError } from '../errors.ts'
import type { Explanation } from './explanation.ts'

export interface OverlayOptions {
  /** The heatmap's weight in the blend, 0 (the image alone) to 1 (the colours alone). Defaults to 0.5. */
  opacity?: number
  /** Each pixel drawn as `scale × scale` (small images such as CIFAR's 32×32 stay visible). Defaults to 1. */
  scale?: number
}

const clamp01 = (v: number) => Math.min(1, Math.max(0, v))

/** The jet colour map (blue for 0, through cyan, yellow, to red for 1), as 0–255 RGB. */
export function jet(value: number): [number, number, number] {
  const v = clamp01(value)
  const channel = (centre: number) => Math.round(255 * clamp01(1.5 - Math.abs(4 * v - centre)))
  return [channel(3), channel(2), channel(1)]
}

/** `explanation`'s heatmap over its image, as RGB pixels `height × width × 3` (row-major, interleaved). */
export function overlayPixels(explanation: Explanation, opacity = 0.5): Uint8Array {
  if (!(opacity >= 0 && opacity <= 1)) throw new InputError('INVALID_OPTION', `option opacity: expected a number in 0..1, got ${opacity}`)
  const { heatmap, image, channels, height, width } = explanation
  const plane = height * width
  const out = new Uint8Array(plane * 3)
  for (let i = 0; i < plane; i++) {
    const colour = jet(heatmap[i]!)
    for (let c = 0; c < 3; c++) {
      const pixel = image[(channels === 1 ? 0 : c) * plane + i]!
      out[i * 3 + c] = Math.round((1 - opacity) * pixel + opacity * colour[c]!)
    }
  }
  return out
}

/** `explanation`'s heatmap over its image as a PNG. */
export async function heatmapOverlay(explanation: Explanation, options: OverlayOptions = {}): Promise<Buffer> {
  const scale = options.scale ?? 1
  if (!Number.isInteger(scale) || scale < 1) throw new InputError('INVALID_OPTION', `option scale: expected an integer >= 1, got ${scale}`)
  const { width, height } = explanation
  const rgb = overlayPixels(explanation, options.opacity ?? 0.5)
  let image = sharp(rgb, { raw: { width, height, channels: 3 } })
  if (scale > 1) image = image.resize(width * scale, height * scale, { kernel: 'nearest' })
  return image.png().toBuffer()
}
