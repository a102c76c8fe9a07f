// Buffers of the same size handed out again. A stream of decoded-pixel shards reads one 150 KB entry per image at
// 224 px; allocating each afresh made garbage collection a third of the reading cost (V8 collects as external memory
// grows), and that work competes with the training step for the same cores.

/** Free buffers by exact size, up to `maxBytes` of them; sizes under `minBytes` are left to Node's allocator. */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>()
  private held = 0
  private readonly maxBytes: number
  private readonly minBytes: number

  constructor(maxBytes = 64 * 2 ** 20, minBytes = 64 * 2 ** 10) {
    this.maxBytes = maxBytes
    this.minBytes = minBytes
  }

  /** A buffer of `size` bytes with arbitrary contents: a released one when there is one. */
  take(size: number): Buffer {
    const reused = this.free.get(size)?.pop()
    if (reused) {
      this.held -= size
      return reused
    }
    // Not from Node's shared 8 KB pool: a sample kept in a shuffle buffer would keep its whole pool slab alive.
    return Buffer.allocUnsafeSlow(size)
  }

  /** Gives `buffer` back for a later `take`; the caller must hold no other reference to its bytes. */
  release(buffer: Buffer): void {
    const size = buffer.byteLength
    // Only whole buffers of their own: a view into a larger one would hand out bytes it does not own.
    if (size < this.minBytes || this.held + size > this.maxBytes || buffer.byteOffset !== 0 || buffer.buffer.byteLength !== size) return
    const list = this.free.get(size) ?? this.free.set(size, []).get(size)!
    list.push(buffer)
    this.held += size
  }
}
