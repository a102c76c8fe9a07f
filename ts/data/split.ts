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

/**
 * A class-balanced draw of as many images as `indices` holds: every class among them gets an equal share of the
 * draws (the few left over go to classes picked at random), each draw an image of its class picked at random with
 * replacement, and the whole order shuffled. It depends only on `seed`, so a resumed epoch draws the same.
 *
 * @example
 * const order = balancedOrder(trainIndices, set.labels, deriveSeed(seed, epoch, 0xba1a))
 */
export function balancedOrder(indices: Int32Array, labels: ArrayLike<number>, seed: number): Int32Array {
  const byClass = new Map<number, number[]>()
  for (const i of indices) {
    const label = labels[i]!
    const members = byClass.get(label)
    if (members) members.push(i)
    else byClass.set(label, [i])
  }
  // In label order, so the draw does not depend on the order of `indices`' first images.
  const groups = [...byClass.entries()].sort((a, b) => a[0] - b[0]).map(([, members]) => members)
  const rand = prng(seed)
  const n = indices.length
  const shares = groups.map(() => Math.floor(n / groups.length))
  const extra = shuffle(range(groups.length), Math.floor(rand() * 2 ** 32)).subarray(0, n - shares.reduce((a, b) => a + b, 0))
  for (const g of extra) shares[g]!++
  const out = new Int32Array(n)
  let k = 0
  groups.forEach((members, g) => {
    for (let j = 0; j < shares[g]!; j++) out[k++] = members[Math.floor(rand() * members.length)]!
  })
  return shuffle(out, Math.floor(rand() * 2 ** 32))
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

/**
 * `splitIndices` per class: of `0..labels.length`, `round(n × fraction)` are held out as `splitIndices` holds them,
 * shared among the classes by their sizes (largest remainders; ties to the lower class index), so each class keeps
 * its proportion on both sides, up to one image. Which images of a class are held is a seeded shuffle of that class
 * alone, so the split depends only on the labels and the seed.
 *
 * @example
 * const { kept, held } = stratifiedSplit(Int32Array.of(0, 0, 0, 0, 1, 1, 1, 1), 0.5, 7) // two of each class held
 */
export function stratifiedSplit(labels: ArrayLike<number>, fraction: number, seed: number): { kept: Int32Array; held: Int32Array } {
  const byClass = new Map<number, number[]>()
  for (let i = 0; i < labels.length; i++) {
    const members = byClass.get(labels[i]!)
    if (members) members.push(i)
    else byClass.set(labels[i]!, [i])
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b)
  const shares = classes.map((c) => byClass.get(c)!.length * fraction)
  const counts = shares.map(Math.floor)
  let left = Math.round(labels.length * fraction) - counts.reduce((a, b) => a + b, 0)
  const byRemainder = classes.map((_, k) => k).sort((a, b) => shares[b]! - counts[b]! - (shares[a]! - counts[a]!) || a - b)
  for (const k of byRemainder) {
    if (left <= 0) break
    counts[k]!++
    left--
  }
  const isHeld = new Uint8Array(labels.length)
  for (const [k, c] of classes.entries())
    for (const i of shuffle(Int32Array.from(byClass.get(c)!), deriveSeed(seed, c)).subarray(0, counts[k]!)) isHeld[i] = 1
  const kept: number[] = []
  const held: number[] = []
  for (let i = 0; i < labels.length; i++) (isHeld[i] ? held : kept).push(i)
  return { held: Int32Array.from(held), kept: Int32Array.from(kept) }
}

/** A seeded subset of `limit` of the indices (all of them when `limit` is undefined or not smaller). */
export function limitIndices(indices: Int32Array, limit: number | undefined, seed: number): Int32Array {
  if (limit === undefined || limit >= indices.length) return indices
  return shuffle(indices, seed).slice(0, limit).sort()
}

/** What `selectImages` picks: seeded subsets, and a test split held out when the data has no test set. */
export interface SelectOptions {
  seed: number
  /**
   * The class of each training image: a test split held out of them is then stratified (`stratifiedSplit`). Single-label
   * sources always pass it, before decoding (from their listing) and after alike, so both choose the same images.
   */
  labels?: ArrayLike<number>
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
    const seed = deriveSeed(options.seed, 0x7e57)
    if (options.labels && options.labels.length !== train)
      throw new Error(`selectImages: ${options.labels.length} labels for ${train} images`)
    const split = options.labels ? stratifiedSplit(options.labels, options.testSplit, seed) : splitIndices(train, options.testSplit, seed)
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
