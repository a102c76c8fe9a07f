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
