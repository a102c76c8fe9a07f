// Area resampling of decoded images in memory (channel-first bytes): each output pixel is the mean of the input it
// covers, fractions of pixels weighed by how much of them it covers.
import type { ImageSet } from './image-set.ts'

/**
 * The images resized to `height`×`width` by area: an output pixel covers `from / to` input pixels along each axis and
 * takes their mean, each weighed by the part of it that falls inside (enlarging, that blends the one or two input
 * pixels the output pixel falls on). The set itself when it already has that size.
 *
 * @example
 * resizeArea(set, 32, 32) // a 64×64 set: each output pixel the mean of a 2×2 block
 */
export function resizeArea(set: ImageSet, height: number, width: number): ImageSet {
  const [channels, h, w] = set.shape
  if (h === height && w === width) return set
  const rows = coverage(h, height)
  const columns = coverage(w, width)
  const planes = set.labels.length * channels
  const pixels = new Uint8Array(planes * height * width)
  for (let plane = 0; plane < planes; plane++) {
    const src = plane * h * w
    const dst = plane * height * width
    for (let oy = 0; oy < height; oy++) {
      const row = rows[oy]!
      for (let ox = 0; ox < width; ox++) {
        const column = columns[ox]!
        let sum = 0
        for (let a = 0; a < row.index.length; a++) {
          const line = src + row.index[a]! * w
          let across = 0
          for (let b = 0; b < column.index.length; b++) across += set.pixels[line + column.index[b]!]! * column.weight[b]!
          sum += across * row.weight[a]!
        }
        pixels[dst + oy * width + ox] = Math.round(sum)
      }
    }
  }
  return { ...set, pixels, shape: [channels, height, width] }
}

/** For each of `to` output positions, the input positions (of `from`) it covers and their weights, summing to 1. */
function coverage(from: number, to: number): { index: number[]; weight: number[] }[] {
  const scale = from / to
  return Array.from({ length: to }, (_, o) => {
    const start = o * scale
    const end = (o + 1) * scale
    const index: number[] = []
    const weight: number[] = []
    for (let i = Math.floor(start); i < Math.min(from, Math.ceil(end)); i++) {
      const part = Math.min(end, i + 1) - Math.max(start, i)
      if (part <= 1e-12) continue
      index.push(i)
      weight.push(part / scale)
    }
    return { index, weight }
  })
}
