// Which images each rank sees: pure functions, no addon.

/**
 * This rank's share of an epoch's shuffled order, as PyTorch's DistributedSampler takes it: the order is padded to a
 * multiple of `worldSize` by repeating it from its start (or, with `dropTail`, cut down to one), then rank r takes
 * positions r, r + worldSize, r + 2·worldSize, … Every rank gets the same number of images, so every rank runs the
 * same number of steps; with the same order on every rank the shares are disjoint (apart from the padding).
 *
 * Step k of rank r then holds positions r + worldSize·(k·batch … (k+1)·batch − 1) of the order: all ranks' step k
 * together are exactly step k of one process with `worldSize` times the batch.
 */
export function shardIndices(order: Int32Array, rank: number, worldSize: number, dropTail = false): Int32Array {
  const n = order.length
  const per = shardLength(n, worldSize, dropTail)
  const out = new Int32Array(per)
  for (let i = 0; i < per; i++) out[i] = order[(rank + i * worldSize) % n]!
  return out
}

/** How many images each rank gets from `n` (see {@link shardIndices}). */
export function shardLength(n: number, worldSize: number, dropTail = false): number {
  return dropTail ? Math.floor(n / worldSize) : Math.ceil(n / worldSize)
}

/** A contiguous, unpadded share of `indices` for evaluation: counts summed over the ranks cover each image once. */
export function evaluationShare(indices: Int32Array, rank: number, worldSize: number): Int32Array {
  const n = indices.length
  return indices.subarray(Math.floor((rank * n) / worldSize), Math.floor(((rank + 1) * n) / worldSize))
}
