// A push parser for tar streams (ustar, with GNU long names and pax paths): feed it chunks as they arrive from a
// (gunzipped) archive, and it hands back each entry with its bytes, without writing anything to disk.
// Headers are parsed by ts/data/tar-header.ts, which the shard reader shares.
import { BLOCK, isNameRecord, isRegularFile, nameFromRecord, parseTarHeader } from './tar-header.ts'

export { looksLikeTar } from './tar-header.ts'

export interface TarStreamEntry {
  /** Path inside the archive, as stored, without a leading `./`. */
  name: string
  /** '0' regular file, '5' folder, '1' hard link, '2' symlink, …; regular files are normalized to '0'. */
  type: string
  /** The bytes of a regular file (a copy owned by the caller); empty for other entries. */
  data: Buffer
}

/**
 * Parses a tar stream pushed to it in chunks of any size. `push` returns the entries completed by that chunk;
 * `end` checks the stream stopped at an entry boundary. A damaged header or a stream that ends inside an entry is an
 * Error whose message says where (callers wrap it with the archive's name).
 *
 * @example
 * const tar = new TarStreamParser()
 * for await (const chunk of gunzipped) for (const entry of tar.push(chunk)) use(entry)
 * tar.end()
 */
export class TarStreamParser {
  private pending: Buffer[] = []
  private pendingBytes = 0
  /** Byte offset in the tar stream of the next unparsed byte. */
  private offset = 0
  /** The entry whose body comes next; `left` counts the bytes still to drop when its data is not kept. */
  private header: { name: string; type: string; size: number; at: number; keep: boolean; left: number } | undefined
  private longName: string | undefined
  private finished = false
  private last = ''
  private readonly keepData: (name: string) => boolean

  /** @param keepData Whether a regular file's bytes are wanted; others come back with empty `data`, never held in memory. Defaults to all. */
  constructor(keepData: (name: string) => boolean = () => true) {
    this.keepData = keepData
  }

  push(chunk: Buffer): TarStreamEntry[] {
    const out: TarStreamEntry[] = []
    if (this.finished || chunk.length === 0) return out
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    for (;;) {
      if (!this.header) {
        if (this.pendingBytes < BLOCK) break
        const at = this.offset
        const parsed = parseTarHeader(
          this.take(BLOCK),
          (problem) => new Error(`the tar header at byte ${at}${this.last ? ` (after entry ${this.last})` : ''} ${problem}`),
        )
        if (!parsed) {
          this.finished = true
          break
        }
        const { size, type } = parsed
        const meta = isNameRecord(type)
        let name = ''
        if (!meta) {
          name = (this.longName ?? parsed.name).replace(/^(\.\/)+/, '').replace(/^\/+/, '')
          this.longName = undefined
          this.last = name
        }
        const padded = Math.ceil(size / BLOCK) * BLOCK
        const keep = meta || (isRegularFile(type) && this.keepData(name))
        this.header = { name, type, size, at, keep, left: keep ? 0 : padded }
      }
      const header = this.header
      if (!header.keep) {
        // Dropped as it arrives, so a large entry nobody wants never sits in memory.
        const n = Math.min(header.left, this.pendingBytes)
        if (n > 0) this.drop(n)
        header.left -= n
        if (header.left > 0) break
        this.header = undefined
        out.push({ name: header.name, type: isRegularFile(header.type) ? '0' : header.type, data: Buffer.alloc(0) })
        continue
      }
      const padded = Math.ceil(header.size / BLOCK) * BLOCK
      if (this.pendingBytes < padded) break
      const data = (padded > 0 ? this.take(padded) : Buffer.alloc(0)).subarray(0, header.size)
      this.header = undefined
      if (isNameRecord(header.type)) this.longName = nameFromRecord(header.type, data, this.longName)
      else out.push({ name: header.name, type: '0', data: Buffer.from(data) })
    }
    return out
  }

  /** Throws when the stream ended inside an entry or a header. */
  end(): void {
    if (this.finished) return
    if (this.header)
      throw new Error(
        `the archive ends inside entry ${this.header.name} (${this.header.size} bytes from byte ${this.header.at + BLOCK}); it is truncated`,
      )
    if (this.pendingBytes > 0) throw new Error(`the archive ends inside a tar header at byte ${this.offset}; it is truncated`)
  }

  /** Discards the next `n` bytes (n ≤ pendingBytes). */
  private drop(n: number): void {
    this.offset += n
    this.pendingBytes -= n
    for (let left = n; left > 0; ) {
      const head = this.pending[0]!
      if (head.length <= left) {
        left -= head.length
        this.pending.shift()
      } else {
        this.pending[0] = head.subarray(left)
        left = 0
      }
    }
  }

  /** Removes and returns the next `n` bytes (n ≤ pendingBytes), copying only when they span chunks. */
  private take(n: number): Buffer {
    this.offset += n
    this.pendingBytes -= n
    const first = this.pending[0]!
    if (first.length >= n) {
      const out = first.subarray(0, n)
      if (first.length === n) this.pending.shift()
      else this.pending[0] = first.subarray(n)
      return out
    }
    const out = Buffer.allocUnsafe(n)
    let done = 0
    while (done < n) {
      const head = this.pending[0]!
      const k = Math.min(head.length, n - done)
      head.copy(out, done, 0, k)
      done += k
      if (k === head.length) this.pending.shift()
      else this.pending[0] = head.subarray(k)
    }
    return out
  }
}
