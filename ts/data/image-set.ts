// The in-memory form every data source produces: uint8 pixels, channel-first, with labels and class names.
import type { Shape3 } from '../model/layers.ts'

/** Decoded images, ready to be normalized. */
export interface ImageSet {
  /** N·C·H·W bytes, channel-first (`[image][channel][row][column]`). */
  pixels: Uint8Array
  /** N class indices into `classes` (for multi-label data, each image's first label). */
  labels: Int32Array
  /** Multi-label data: N × classes bytes, row by row, 1 where the image has that label, else 0. */
  targets?: Uint8Array
  /** `[channels, height, width]` of each image. */
  shape: Shape3
  /** Class names; `labels` index into them. */
  classes: string[]
  /** The file each image came from, when it came from one. */
  files?: string[]
}

/** Per-channel normalization applied to pixels scaled to [0, 1]: `(x - mean) / std`. */
export interface Normalization {
  mean: number[]
  std: number[]
}

/** The default normalization, mean 0.5 and std 0.5 per channel, which maps pixels to [-1, 1]. */
export function halfNormalization(channels: number): Normalization {
  return { mean: Array(channels).fill(0.5), std: Array(channels).fill(0.5) }
}

/** What an image source lists before decoding: counts in `listImageFolder`'s order, and the shape images decode to. */
export interface ListedImages {
  /** Images in the training folder (or the only folder). */
  train: number
  /** Images in the test folder; undefined when there is none. */
  test?: number
  /** Images of the source's own validation set (a label file's `valid` rows); undefined when it has none. */
  val?: number
  /** Each training image's class index, in listing order: a test split held out before decoding is stratified by them. */
  labels: Int32Array
  /** `[channels, height, width]` of each decoded image. */
  shape: Shape3
}

/** Images to decode, as ascending indices into each folder's listing; undefined: all of that folder's, empty: none. */
export interface ImagePicks {
  train?: Int32Array
  test?: Int32Array
  val?: Int32Array
}
