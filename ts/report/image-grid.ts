// Grids of small images with captions, as PNG: the training samples, and test images with predicted vs true labels.
import sharp from 'sharp'
import type { ImageSet } from '../data/image-set.ts'

export interface GridCell {
  /** Index of the image in the set. */
  index: number
  /** One or two caption lines under the image. */
  caption: string[]
  /** Caption colour; defaults to dark gray. */
  color?: string
}

/** How much larger than the data reports draw each image. */
export const IMAGE_SCALE = 3

/** One image of a set as PNG, scaled up with nearest-neighbour so small images stay crisp. */
export async function imagePng(set: ImageSet, index: number, scale = IMAGE_SCALE): Promise<Buffer> {
  const [c, h, w] = set.shape
  const plane = h * w
  const hwc = Buffer.alloc(c * plane)
  const base = index * c * plane
  for (let ch = 0; ch < c; ch++) for (let i = 0; i < plane; i++) hwc[i * c + ch] = set.pixels[base + ch * plane + i]!
  return sharp(hwc, { raw: { width: w, height: h, channels: c as 1 | 3 } })
    .resize(w * scale, h * scale, { kernel: 'nearest' })
    .png()
    .toBuffer()
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

/** Lays images out `columns` wide with captions beneath, and renders the sheet to PNG. */
export async function imageGrid(
  set: ImageSet,
  cells: readonly GridCell[],
  options: { columns?: number; scale?: number; title?: string } = {},
): Promise<Buffer> {
  const columns = options.columns ?? 8
  const scale = options.scale ?? 3
  const [, h, w] = set.shape
  const cellW = Math.max(w * scale, 110) + 10
  const lines = Math.max(1, ...cells.map((c) => c.caption.length))
  const cellH = h * scale + 16 * lines + 12
  const top = options.title ? 34 : 8
  const rows = Math.ceil(cells.length / columns)
  const width = columns * cellW + 10
  const height = top + rows * cellH + 4
  const parts: string[] = []
  for (const [i, cell] of cells.entries()) {
    const x = 10 + (i % columns) * cellW
    const y = top + Math.floor(i / columns) * cellH
    const png = (await imagePng(set, cell.index, scale)).toString('base64')
    parts.push(
      `<image x="${x + (cellW - 10 - w * scale) / 2}" y="${y}" width="${w * scale}" height="${h * scale}" href="data:image/png;base64,${png}"/>`,
    )
    cell.caption.forEach((text, k) => {
      parts.push(
        `<text x="${x + (cellW - 10) / 2}" y="${y + h * scale + 15 + 16 * k}" fill="${cell.color ?? '#333'}">${escapeXml(text)}</text>`,
      )
    })
  }
  const title = options.title
    ? `<text x="${width / 2}" y="24" font-size="18" font-weight="bold" fill="#000">${escapeXml(options.title)}</text>`
    : ''
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans" font-size="13" text-anchor="middle"><rect width="100%" height="100%" fill="white"/>${title}${parts.join('')}</svg>`
  return sharp(Buffer.from(svg), { density: 72 }).png().toBuffer()
}

/** Picks `perClass` images of each class, first ones in order: a fixed, balanced sample. */
export function balancedSample(labels: Int32Array, classes: number, perClass: number, from?: Int32Array): number[] {
  const picked: number[][] = Array.from({ length: classes }, () => [])
  for (const i of from ?? labels.keys()) {
    const bucket = picked[labels[i]!]!
    if (bucket.length < perClass) bucket.push(i)
  }
  return picked.flat()
}
