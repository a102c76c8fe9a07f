// Exact and near-duplicate images, inside a split and across splits (leakage): exact by identical decoded pixels;
// near when the nearest neighbours by embedding are the same picture by their pixels' detail, or by embedding alone
// are very close.
import crypto from 'node:crypto'
import { call, native } from '../binding.ts'

/** Where an image is: its split and its index in that split's set. */
export interface ImageRef {
  split: InspectSplit
  index: number
}

export type InspectSplit = 'train' | 'val' | 'test'

/** Images whose decoded pixels are identical. */
export interface DuplicateGroup {
  images: ImageRef[]
}

/** Two images that are the same picture or nearly the same view (and whose pixels differ). */
export interface NearDuplicate {
  a: ImageRef
  b: ImageRef
  /** Cosine similarity of the two `duplicateDescriptors` (embedding and layout), in [-1, 1]. */
  similarity: number
  /** Correlation of the two pictures' detail at the best shift of up to 2 pixels of 32, in [-1, 1] (core's `pixel_match`). */
  match: number
}

/** When a pair of nearest neighbours counts as near-duplicates: either measure at or over its threshold. */
export interface NearThresholds {
  /** Of `similarity`. */
  similarity: number
  /** Of `match`. */
  match: number
}

/** One split's images as inspect sees them. */
export interface SplitImages {
  split: InspectSplit
  pixels: Uint8Array
  /** `[channels, height, width]` of each image. */
  shape: readonly [number, number, number]
  count: number
  /** `count × dim` embeddings. */
  embeddings: Float32Array
}

const imageBytes = (s: SplitImages) => s.shape[0] * s.shape[1] * s.shape[2]
const imagePixels = (s: SplitImages, i: number) => s.pixels.subarray(i * imageBytes(s), (i + 1) * imageBytes(s))

/** Side of the grid each image's pixels are averaged over for its layout descriptor. */
const LAYOUT_GRID = 8

/**
 * What near-duplicates are compared by, per image: its embedding and its layout (the mean of each channel over an
 * 8×8 grid, minus the channel's mean), each scaled to unit length, side by side, over √2. Their cosine similarity is
 * the mean of the two cosines. The embedding alone ranks same-class look-alikes close to a re-encoded, shifted and
 * brightened copy; the layout alone, images of similar composition; together a planted copy scored 0.887 (median)
 * against 0.808 for the 99th percentile of unrelated test images (`npm run bench:inspect`, bench/RESULTS.md).
 */
export function duplicateDescriptors(s: SplitImages, dim: number): Float32Array {
  const [c, h, w] = s.shape
  const cells = LAYOUT_GRID * LAYOUT_GRID
  const layoutDim = c * cells
  const out = new Float32Array(s.count * (layoutDim + dim))
  const layout = new Float64Array(layoutDim)
  for (let i = 0; i < s.count; i++) {
    layout.fill(0)
    const base = i * imageBytes(s)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++) {
        const row = ch * cells + Math.floor((y * LAYOUT_GRID) / h) * LAYOUT_GRID
        for (let x = 0; x < w; x++) layout[row + Math.floor((x * LAYOUT_GRID) / w)]! += s.pixels[base + (ch * h + y) * w + x]!
      }
    for (let ch = 0; ch < c; ch++) {
      const plane = layout.subarray(ch * cells, (ch + 1) * cells)
      const mean = plane.reduce((a, b) => a + b, 0) / cells
      for (let k = 0; k < cells; k++) plane[k] = plane[k]! - mean
    }
    const row = out.subarray(i * (layoutDim + dim), (i + 1) * (layoutDim + dim))
    writeUnit(row, 0, layout)
    writeUnit(row, layoutDim, s.embeddings.subarray(i * dim, (i + 1) * dim))
  }
  return out
}

/** `values` scaled to length 1/√2, written at `at` (a zero vector stays zero). */
function writeUnit(into: Float32Array, at: number, values: ArrayLike<number>): void {
  let sum = 0
  for (let k = 0; k < values.length; k++) sum += values[k]! ** 2
  const scale = sum > 0 ? 1 / Math.sqrt(2 * sum) : 0
  for (let k = 0; k < values.length; k++) into[at + k] = values[k]! * scale
}

/** Groups of two or more images (over all splits) with the same pixels, in first-seen order. */
export function exactDuplicates(splits: readonly SplitImages[]): DuplicateGroup[] {
  const groups = new Map<string, ImageRef[]>()
  for (const s of splits) {
    for (let i = 0; i < s.count; i++) {
      const key = crypto.hash('sha1', imagePixels(s, i), 'base64')
      const refs = groups.get(key)
      if (refs) refs.push({ split: s.split, index: i })
      else groups.set(key, [{ split: s.split, index: i }])
    }
  }
  return [...groups.values()].filter((g) => g.length > 1).map((images) => ({ images }))
}

/**
 * Neighbours compared per image: enough that an image copied several times finds every copy, and that a copy's
 * original is among them when a few look-alikes rank above it by embedding (pixel matching then tells them apart).
 */
const NEIGHBOURS = 8

const bytesOf = (s: SplitImages) => ({ pixels: s.pixels, count: s.count, shape: [...s.shape] })

/**
 * Pairs of nearest neighbours by `duplicateDescriptors` whose `similarity` or pixel `match` reaches its threshold:
 * inside each split and between each later split and every earlier one (test against train: leakage). Pairs whose
 * pixels are identical are left to `exactDuplicates`. Most alike first (by the higher of match and similarity).
 */
export async function nearDuplicates(
  splits: readonly SplitImages[],
  dim: number,
  thresholds: NearThresholds,
  onProgress?: (done: number, total: number) => void,
): Promise<NearDuplicate[]> {
  const descriptors = new Map(splits.map((s) => [s, duplicateDescriptors(s, dim)]))
  const width = splits[0] ? splits[0].shape[0] * LAYOUT_GRID * LAYOUT_GRID + dim : 0
  const pairs = new Map<string, NearDuplicate>()
  const same = (x: SplitImages, i: number, y: SplitImages, j: number) => Buffer.compare(imagePixels(x, i), imagePixels(y, j)) === 0
  const searches = splits.flatMap((q, qi) => splits.slice(0, qi + 1).map((k) => [q, k] as const))
  for (const [n, [queries, keys]] of searches.entries()) {
    onProgress?.(n, searches.length)
    const own = queries === keys
    const available = own ? keys.count - 1 : keys.count
    if (queries.count === 0 || available <= 0) continue
    const k = Math.min(NEIGHBOURS, available)
    const found = await call('nearest neighbours', () =>
      native.nearestNeighbours(
        descriptors.get(queries)!,
        queries.count,
        own ? null : descriptors.get(keys)!,
        own ? null : keys.count,
        width,
        k,
      ),
    )
    const matches = await call('pixel match', () => native.pixelMatch(bytesOf(queries), own ? null : bytesOf(keys), found.indices, k))
    for (let i = 0; i < queries.count; i++) {
      for (let r = 0; r < k; r++) {
        const similarity = found.similarities[i * k + r]!
        const match = matches[i * k + r]!
        if (similarity < thresholds.similarity && match < thresholds.match) continue
        const j = found.indices[i * k + r]!
        if (same(queries, i, keys, j)) continue
        const [a, b] = own && j < i ? [j, i] : [i, j]
        const key = `${queries.split}:${a}/${keys.split}:${b}`
        if (!pairs.has(key))
          pairs.set(key, {
            a: { split: queries.split, index: own ? a : i },
            b: { split: keys.split, index: own ? b : j },
            similarity,
            match,
          })
      }
    }
  }
  onProgress?.(searches.length, searches.length)
  const alike = (p: NearDuplicate) => Math.max(p.similarity, p.match)
  return [...pairs.values()].sort((x, y) => alike(y) - alike(x))
}
