// Seeded shuffles, splits and subsets of index lists: the order of a run depends only on its seed.

/** mulberry32: a small, fast 32-bit PRNG; plenty for shuffles, and the same in every JS engine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** Mixes integers into one 32-bit seed, so (run seed, epoch, batch) each get their own stream. */
export function deriveSeed(...parts: number[]): number {
  let h = 0x811c9dc5
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0
  }
  return (h ^ (h >>> 15)) >>> 0
}

/** A Fisher–Yates shuffle of `values` (a copy), driven by `seed`. */
export function shuffle(values: Int32Array, seed: number): Int32Array {
  const out = values.slice()
  const rand = prng(seed)
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
  }
  return out
}

export function range(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i)
}

/** Splits `0..n` into a seeded held-out part of `fraction` and the rest, each sorted. */
export function splitIndices(n: number, fraction: number, seed: number): { kept: Int32Array; held: Int32Array } {
  const order = shuffle(range(n), seed)
  const heldCount = Math.round(n * fraction)
  return { held: order.slice(0, heldCount).sort(), kept: order.slice(heldCount).sort() }
}

/** A seeded subset of `limit` of the indices (all of them when `limit` is undefined or not smaller). */
export function limitIndices(indices: Int32Array, limit: number | undefined, seed: number): Int32Array {
  if (limit === undefined || limit >= indices.length) return indices
  return shuffle(indices, seed).slice(0, limit).sort()
}

/** What `selectImages` picks: seeded subsets, and a test split held out when the data has no test set. */
export interface SelectOptions {
  seed: number
  /** Images trained on (validation included): a seeded subset of this many. Defaults to all. */
  limitTrain?: number
  /** Test images: a seeded subset of this many. Defaults to all. */
  limitTest?: number
  /** Fraction of the training images held out as the test set when there is no test set. */
  testSplit: number
}

/** The images a run uses, as ascending indices. */
export interface Selection {
  /** Into the training images: those trained on, validation included. */
  train: Int32Array
  /** Into the test images, or, when `heldOut`, into the training images. */
  test: Int32Array
  /** Whether the test images were held out of the training images. */
  heldOut: boolean
}

/**
 * The images a run uses out of `train` training and `test` test images (`test` undefined: none, so `testSplit` of
 * the training images are held out as the test set), seeded. It needs only the counts, so a loader can call it
 * before decoding anything and decode just these.
 *
 * @example
 * const { train, test } = selectImages(50_000, 10_000, { seed: 0, limitTrain: 200, testSplit: 0.2 })
 */
export function selectImages(train: number, test: number | undefined, options: SelectOptions): Selection {
  let pool = range(train)
  let held: Int32Array
  if (test === undefined) {
    // Seeded, so every run (and resume) agrees on the held-out test set.
    const split = splitIndices(train, options.testSplit, deriveSeed(options.seed, 0x7e57))
    pool = split.kept
    held = split.held
  } else held = range(test)
  return {
    train: limitIndices(pool, options.limitTrain, deriveSeed(options.seed, 0x1)),
    test: limitIndices(held, options.limitTest, deriveSeed(options.seed, 0x2)),
    heldOut: test === undefined,
  }
}

/** The ascending union of two ascending index lists. */
export function mergeIndices(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length)
  let i = 0
  let j = 0
  let n = 0
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && a[i]! <= b[j]!) ? a[i++]! : b[j++]!
    if (n === 0 || out[n - 1] !== next) out[n++] = next
  }
  return out.slice(0, n)
}
