// Reads a folder of images laid out as `root/<class>/<file>` into an ImageSet, decoding with sharp (JPEGs at the
// wanted size natively, with identical pixels).
import { constants } from 'node:buffer'
import { statSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { DataError } from '../errors.ts'
import { decodeInto, type DecodeOptions } from './decode-image.ts'
import type { ImageSet } from './image-set.ts'
import { decodeJpegsNatively } from './native-jpeg.ts'

/** The most bytes one typed array holds (2^32 on Node 20, more on later versions): a decoded set is kept in one. */
export const MAX_DECODED_BYTES = constants.MAX_LENGTH

/** Extensions read as images; other files in class folders (README, .DS_Store, ...) are ignored. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif', '.svg']

export interface ImageFolderOptions {
  /** `[height, width]` every image is resized to. Defaults to `[32, 32]`. */
  size?: [number, number]
  /**
   * Resize each image's shorter side to this many pixels, keeping its aspect ratio, then take the centre `size`
   * (torchvision's `Resize` + `CenterCrop`). Without it images are stretched to `size`.
   */
  resizeShorter?: number
  /** 3 (RGB) or 1 (grayscale). Defaults to 3. */
  channels?: 1 | 3
  /** Skip unreadable images instead of failing; they are listed in the result's `skipped`. Defaults to false. */
  skipBadImages?: boolean
  /** Images decoded at once. Defaults to 16. */
  concurrency?: number
}

export interface ImageFolderResult extends ImageSet {
  files: string[]
  /** Images that could not be decoded and were skipped (only with `skipBadImages`). */
  skipped: string[]
}

/**
 * The error for images that could not be decoded: the first three by path with the decoder's words (on one line:
 * libvips's own messages span several), how many more, and how to skip them.
 */
export function badImages(failed: { file: string; reason: string }[]): DataError {
  const sorted = [...failed].sort((a, b) => a.file.localeCompare(b.file))
  const shown = sorted
    .slice(0, 3)
    .map((f) => `${f.file} (${f.reason.replace(/\s*\n\s*/g, '; ')})`)
    .join('; ')
  const more = sorted.length > 3 ? ` and ${sorted.length - 3} more` : ''
  return new DataError(
    'DATA_BAD_IMAGE',
    `${sorted.length} image(s) could not be decoded: ${shown}${more}. Pass skipBadImages to skip them.`,
    {
      files: sorted.map((f) => f.file),
    },
  )
}

/**
 * Whether a folder entry is a file or a folder, following symbolic links as torchvision's ImageFolder does (a folder
 * of links into another dataset is a common way to make a subset); a broken link is neither.
 */
export function entryKind(dir: string, entry: import('node:fs').Dirent): 'file' | 'folder' | 'other' {
  if (entry.isFile()) return 'file'
  if (entry.isDirectory()) return 'folder'
  if (!entry.isSymbolicLink()) return 'other'
  try {
    const target = statSync(path.join(dir, entry.name))
    return target.isFile() ? 'file' : target.isDirectory() ? 'folder' : 'other'
  } catch {
    return 'other'
  }
}

async function listDir(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new DataError('DATA_NOT_FOUND', `image folder ${dir} does not exist or is not a folder`, { cause: err })
    }
    throw err
  }
}

/**
 * The images `readImageFolder` reads, in its order: class folders (sorted, hidden ones left out) and in each the files
 * with an image extension, sorted by name. A missing folder, no class folders or an empty class is a DataError.
 *
 * @example
 * const { classes, files, labels } = await listImageFolder('data/train')
 */
export async function listImageFolder(root: string): Promise<{ classes: string[]; files: string[]; labels: number[] }> {
  const classes = (await listDir(root))
    .filter((e) => !e.name.startsWith('.') && entryKind(root, e) === 'folder')
    .map((e) => e.name)
    .sort()
  if (classes.length === 0) throw new DataError('DATA_EMPTY', `image folder ${root} has no class folders; expected ${root}/<class>/<image>`)

  const files: string[] = []
  const labels: number[] = []
  for (const [label, name] of classes.entries()) {
    const dir = path.join(root, name)
    const images = (await listDir(dir))
      .filter(
        (e) => !e.name.startsWith('.') && IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase()) && entryKind(dir, e) === 'file',
      )
      .map((e) => e.name)
      .sort()
    if (images.length === 0) {
      throw new DataError('DATA_EMPTY', `class folder ${dir} has no images (looked for ${IMAGE_EXTENSIONS.join(', ')})`)
    }
    for (const image of images) {
      files.push(path.join(dir, image))
      labels.push(label)
    }
  }
  return { classes, files, labels }
}

/**
 * Reads `root/<class>/*`. Class names are the folder names, sorted; labels index into them.
 *
 * @example
 * const train = await readImageFolder('data/train', { size: [32, 32] })
 */
export async function readImageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageFolderResult> {
  const decode: DecodeOptions = { size: options.size ?? [32, 32], channels: options.channels ?? 3, resizeShorter: options.resizeShorter }
  return decodeListed(root, await listImageFolder(root), { ...options, ...decode })
}

/**
 * Decodes the images a listing of `root` names (`listImageFolder`'s, or some of them), in its order, as
 * `readImageFolder` does: with its errors for undecodable images, or their skip list.
 */
export async function decodeListed(
  root: string,
  listing: { classes: string[]; files: string[]; labels: ArrayLike<number> },
  options: ImageFolderOptions,
): Promise<ImageFolderResult> {
  const decode: DecodeOptions = { size: options.size ?? [32, 32], channels: options.channels ?? 3, resizeShorter: options.resizeShorter }
  const { classes, files } = listing
  const labels = Array.from(listing.labels)
  checkDecodable(files.length, [decode.channels, ...decode.size], root)
  const [h, w] = decode.size
  const perImage = decode.channels * h * w
  const { pixels, rest } = await decodeJpegsNatively(files, decode)
  const failed: { file: string; reason: string }[] = []
  let next = 0
  const worker = async () => {
    for (let k = next++; k < rest.length; k = next++) {
      const i = rest[k]!
      try {
        await decodeInto(files[i]!, decode, pixels, i * perImage)
      } catch (err) {
        failed.push({ file: files[i]!, reason: (err as Error).message })
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 16) }, worker))

  if (failed.length > 0 && !options.skipBadImages) throw badImages(failed)
  if (failed.length === 0) {
    return { pixels, labels: Int32Array.from(labels), shape: [decode.channels, h, w], classes, files, skipped: [] }
  }
  const bad = new Set(failed.map((f) => f.file))
  const keep = files.map((f, i) => (bad.has(f) ? -1 : i)).filter((i) => i >= 0)
  const kept = new Uint8Array(keep.length * perImage)
  keep.forEach((src, dst) => kept.set(pixels.subarray(src * perImage, (src + 1) * perImage), dst * perImage))
  return {
    pixels: kept,
    labels: Int32Array.from(keep.map((i) => labels[i]!)),
    shape: [decode.channels, h, w],
    classes,
    files: keep.map((i) => files[i]!),
    skipped: [...bad].sort(),
  }
}

/**
 * Fails before decoding when `count` images of `shape` cannot be held in one typed array (`MAX_DECODED_BYTES`), which
 * is how a decoded set is kept: a DATA_TOO_LARGE DataError naming both sizes, where (`root`, when given) and `advice`.
 */
export function checkDecodable(
  count: number,
  shape: readonly number[],
  root?: string,
  advice = 'decode fewer images (limitTrain/limitTest), at a smaller size, or write shards (convkit shard) to stream them',
): void {
  const bytes = count * shape.reduce((a, b) => a * b, 1)
  if (bytes <= MAX_DECODED_BYTES) return
  throw new DataError(
    'DATA_TOO_LARGE',
    `${root ? `${root}: ` : ''}${count} images × ${shape.join('×')} bytes decode to ${formatGB(bytes)}, more than the ${formatGB(MAX_DECODED_BYTES)} one typed array can hold; ${advice}`,
  )
}

/** Bytes as GB (2^30), one decimal. */
export function formatGB(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GB`
}

/** Where each image of `set` is in the listing `files`: `pick` (all when undefined), less what was skipped. */
export function pickedIndices(
  files: readonly string[],
  set: { files: string[]; skipped: string[] },
  pick: Int32Array | undefined,
): Int32Array {
  const all = pick ?? Int32Array.from(files, (_, i) => i)
  if (set.skipped.length === 0) return all
  const bad = new Set(set.skipped)
  return all.filter((i) => !bad.has(files[i]!))
}
