// The one tar header parser, behind both tar readers (ts/data/tar-stream.ts for image archives, and
// ts/data/shards/tar-reader.ts for shards): ustar headers with their checksum, GNU base-256 sizes, and the GNU
// long-name and pax records that carry names too long for a header.

/** Tar's unit: every header is one block, and every entry's data is padded to whole blocks. */
export const BLOCK = 512
const ZERO_BLOCK = Buffer.alloc(BLOCK)

/** What one header says about its entry. */
export interface TarHeader {
  /** The path as the header stores it: ustar's prefix and name joined; long-name records come separately. */
  name: string
  /** Bytes of data that follow, before padding to whole blocks. */
  size: number
  /** The type flag: '0' (or NUL, or '7') a regular file, '5' a folder, 'L' a GNU long name, 'x' pax, … */
  type: string
}

/** A NUL-terminated text field of at most `length` bytes. */
export function cString(block: Buffer, start: number, length: number): string {
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
  const text = block
    .toString('latin1', start, start + length)
    .replace(/[\0 ]+$/, '')
    .trim()
  return text === '' ? 0 : Number.parseInt(text, 8)
}

/** The stored checksum and the one computed; old tars summed signed bytes, so either sum is accepted. */
function checksum(block: Buffer): { stored: number; computed: number; ok: boolean } {
  const stored = numeric(block, 148, 8)
  let unsigned = 0
  let signed = 0
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!
    unsigned += b
    signed += b > 127 ? b - 256 : b
  }
  return { stored, computed: unsigned, ok: stored === unsigned || stored === signed }
}

function isZeroBlock(block: Buffer): boolean {
  return block[0] === 0 && block.subarray(0, BLOCK).equals(ZERO_BLOCK)
}

/** Whether `block` (the first 512 bytes of a file) is a tar header: its checksum holds. */
export function looksLikeTar(block: Buffer): boolean {
  return block.length >= BLOCK && !isZeroBlock(block) && checksum(block.subarray(0, BLOCK)).ok
}

/**
 * Parses the 512-byte header `block`, or returns null for an all-zero block (the end of the archive). A header whose
 * checksum fails or whose size is unreadable throws `damaged(problem)`, where `problem` completes a sentence that
 * the caller starts with the header's place (`the tar header at byte 1536 ` + `is damaged (…)`).
 */
export function parseTarHeader(block: Buffer, damaged: (problem: string) => Error): TarHeader | null {
  if (isZeroBlock(block)) return null
  const sum = checksum(block)
  if (!sum.ok)
    throw damaged(`is damaged (checksum ${sum.stored} stored, ${sum.computed} computed); the file is not a tar archive or was overwritten`)
  const size = numeric(block, 124, 12)
  if (!Number.isSafeInteger(size) || size < 0) throw damaged('has an unreadable size field')
  const name = cString(block, 0, 100)
  const prefix = block.toString('latin1', 257, 262) === 'ustar' ? cString(block, 345, 155) : ''
  return { name: prefix ? `${prefix}/${name}` : name, size, type: String.fromCharCode(block[156]!) }
}

export function isRegularFile(type: string): boolean {
  return type === '0' || type === '\0' || type === '7'
}

/** Whether the entry only names the next one: a GNU long name ('L'), or pax extended ('x') or global ('g') records. */
export function isNameRecord(type: string): boolean {
  return type === 'L' || type === 'x' || type === 'g'
}

/**
 * The name the next entry takes after the name record `data` of `type`: a GNU long name, or a pax header's `path`
 * (`<length> path=<value>\n` records). `current` stands when the record names nothing (a global pax header, a pax
 * header without `path`).
 */
export function nameFromRecord(type: string, data: Buffer, current: string | undefined): string | undefined {
  if (type === 'L') return cString(data, 0, data.length)
  if (type !== 'x') return current
  let at = 0
  let found = current
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
