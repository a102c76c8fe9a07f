// A push parser for tar streams (ustar, with GNU long names and pax paths): feed it chunks as they arrive from a
// (gunzipped) archive, and it hands back each entry with its bytes, without writing anything to disk.

const BLOCK = 512
const ZERO = Buffer.alloc(BLOCK)

export interface TarStreamEntry {
  /** Path inside the archive, as stored, without a leading `./`. */
  name: string
  /** '0' regular file, '5' folder, '1' hard link, '2' symlink, …; regular files are normalized to '0'. */
  type: string
  /** The bytes of a regular file (a copy owned by the caller); empty for other entries. */
  data: Buffer
}

function cString(block: Buffer, start: number, length: number): string {
  const end = block.indexOf(0, start)
  return block.toString('utf8', start, end < 0 || end > start + length ? start + length : end)
}

/** A numeric header field: octal text, or GNU's base-256 when the top bit of its first byte is set. */
function numeric(block: Buffer, start: number, length: number): number {
  if (block[start]! & 0x80) {
    let value = block[start]! & 0x7f
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i]!
    return value
  }
  const text = block.toString('latin1', start, start + length).replace(/[\0 ]+$/, '').trim()
  return text === '' ? 0 : Number.parseInt(text, 8)
}

function checksumOk(block: Buffer): boolean {
  const stored = numeric(block, 148, 8)
  let unsigned = 0
  let signed = 0
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!
    unsigned += b
    signed += b > 127 ? b - 256 : b
  }
  return stored === unsigned || stored === signed
}

function isRegular(type: string): boolean {
  return type === '0' || type === '\0' || type === '7'
}

/** Whether `block` (the first 512 bytes of a file) is a tar header: its checksum holds. */
export function looksLikeTar(block: Buffer): boolean {
  return block.length >= BLOCK && !block.subarray(0, BLOCK).equals(ZERO) && checksumOk(block.subarray(0, BLOCK))
}

/** The `path` record of a pax extended header (`<length> path=<value>\n` records), if it has one. */
function paxPath(data: Buffer): string | undefined {
  let at = 0
  let found: string | undefined
  while (at < data.length) {
    const space = data.indexOf(0x20, at)
    if (space < 0) break
    const length = Number.parseInt(data.toString('latin1', at, space), 10)
    if (!Number.isInteger(length) || length <= 0) break
    const record = data.toString('utf8', space + 1, at + length - 1)
    const eq = record.indexOf('=')
    if (record.slice(0, eq) === 'path') found = record.slice(eq + 1)
    at += length
  }
  return found
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
        const block = this.take(BLOCK)
        if (block.equals(ZERO)) {
          this.finished = true
          break
        }
        if (!checksumOk(block)) {
          throw new Error(`the tar header at byte ${this.offset - BLOCK}${this.last ? ` (after entry ${this.last})` : ''} is damaged`)
        }
        const size = numeric(block, 124, 12)
        if (!Number.isSafeInteger(size) || size < 0) throw new Error(`the tar header at byte ${this.offset - BLOCK} has an unreadable size field`)
        const type = String.fromCharCode(block[156]!)
        const meta = type === 'L' || type === 'x' || type === 'g'
        let name = ''
        if (!meta) {
          const base = cString(block, 0, 100)
          const prefix = block.toString('latin1', 257, 262) === 'ustar' ? cString(block, 345, 155) : ''
          name = (this.longName ?? (prefix ? `${prefix}/${base}` : base)).replace(/^(\.\/)+/, '').replace(/^\/+/, '')
          this.longName = undefined
          this.last = name
        }
        const padded = Math.ceil(size / BLOCK) * BLOCK
        const keep = meta || (isRegular(type) && this.keepData(name))
        this.header = { name, type, size, at: this.offset - BLOCK, keep, left: keep ? 0 : padded }
      }
      const header = this.header
      if (!header.keep) {
        // Dropped as it arrives, so a large entry nobody wants never sits in memory.
        const n = Math.min(header.left, this.pendingBytes)
        if (n > 0) this.drop(n)
        header.left -= n
        if (header.left > 0) break
        this.header = undefined
        out.push({ name: header.name, type: isRegular(header.type) ? '0' : header.type, data: Buffer.alloc(0) })
        continue
      }
      const padded = Math.ceil(header.size / BLOCK) * BLOCK
      if (this.pendingBytes < padded) break
      const data = (padded > 0 ? this.take(padded) : Buffer.alloc(0)).subarray(0, header.size)
      this.header = undefined
      if (header.type === 'L') this.longName = cString(data, 0, data.length)
      else if (header.type === 'x') this.longName = paxPath(data) ?? this.longName
      else if (header.type !== 'g') out.push({ name: header.name, type: '0', data: Buffer.from(data) })
    }
    return out
  }

  /** Throws when the stream ended inside an entry or a header. */
  end(): void {
    if (this.finished) return
    if (this.header) throw new Error(`the archive ends inside entry ${this.header.name} (${this.header.size} bytes from byte ${this.header.at + BLOCK}); it is truncated`)
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
