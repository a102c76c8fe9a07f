// Writes one tar shard (POSIX ustar, the format WebDataset and `tar` read) through a temporary file and a rename.
//
// Written here rather than with an npm tar library: a shard needs only regular-file entries with short names, which
// is one fixed 512-byte header per file (about 40 lines below), and the project's dependencies stay as they are.
import fsp from 'node:fs/promises'
import path from 'node:path'
import { FileError, InputError } from '../../errors.ts'
import { tempPathFor } from '../../util/atomic-write.ts'

export const BLOCK = 512
/** Bytes gathered before one write: few syscalls, little memory. */
const FLUSH_BYTES = 1 << 20
/** Largest entry an 11-digit octal size field holds. */
const MAX_ENTRY = 8 ** 11 - 1

/** `value` as `digits` octal digits and a NUL, as ustar numeric fields are written. */
function octal(header: Buffer, offset: number, digits: number, value: number): void {
  header.write(`${value.toString(8).padStart(digits, '0')}\0`, offset, digits + 1, 'latin1')
}

/** Splits a name that does not fit ustar's 100-byte field into the 155-byte prefix and the name, at a `/`. */
function splitName(name: string): { prefix: string; name: string } {
  if (Buffer.byteLength(name) <= 100) return { prefix: '', name }
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i)
    const rest = name.slice(i + 1)
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0) return { prefix, name: rest }
  }
  throw new InputError(
    'INVALID_OPTION',
    `tar entry name ${JSON.stringify(name)}: longer than ustar holds (100 bytes, or 155 + 100 split at a "/")`,
  )
}

/** The 512-byte ustar header of a regular file (mode 0644, owner 0, mtime 0 so equal inputs give equal shards). */
export function ustarHeader(name: string, size: number): Buffer {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_ENTRY)
    throw new InputError('INVALID_OPTION', `tar entry ${name}: size ${size} is outside 0..${MAX_ENTRY}`)
  const parts = splitName(name)
  const header = Buffer.alloc(BLOCK)
  header.write(parts.name, 0, 100, 'utf8')
  octal(header, 100, 7, 0o644)
  octal(header, 108, 7, 0)
  octal(header, 116, 7, 0)
  octal(header, 124, 11, size)
  octal(header, 136, 11, 0)
  header.fill(0x20, 148, 156) // the checksum is summed with its own field as spaces
  header.write('0', 156, 'latin1')
  header.write('ustar\0' + '00', 257, 'latin1')
  header.write(parts.prefix, 345, 155, 'utf8')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1')
  return header
}

/**
 * One shard being written: entries are appended in order, and `finish()` writes the end-of-archive blocks and
 * renames the temporary file onto `file`, so a reader never sees half a shard. `abort()` removes the temporary file.
 *
 * @example
 * const shard = await TarShardWriter.create('shards/train-000000.tar')
 * await shard.add('cat/0001.jpg', jpegBytes)
 * await shard.add('cat/0001.cls', Buffer.from('3'))
 * await shard.finish()
 */
export class TarShardWriter {
  readonly file: string
  private readonly temp: string
  private readonly fh: fsp.FileHandle
  private pending: Buffer[] = []
  private pendingBytes = 0
  private written = 0
  private closed = false
  /** Entries added so far. */
  entries = 0

  private constructor(file: string, temp: string, fh: fsp.FileHandle) {
    this.file = file
    this.temp = temp
    this.fh = fh
  }

  static async create(file: string): Promise<TarShardWriter> {
    await fsp.mkdir(path.dirname(file), { recursive: true })
    const temp = tempPathFor(file)
    try {
      return new TarShardWriter(file, temp, await fsp.open(temp, 'w'))
    } catch (cause) {
      throw new FileError('IO_ERROR', `shard ${file}: cannot create ${temp}: ${(cause as Error).message}`, { cause })
    }
  }

  /** Bytes of the shard so far, headers and padding included. */
  get bytes(): number {
    return this.written + this.pendingBytes
  }

  /** Appends a regular file `name` with `data`. */
  async add(name: string, data: Uint8Array): Promise<void> {
    if (this.closed) throw new InputError('INVALID_OPTION', `shard ${this.file}: add() after finish() or abort()`)
    this.push(ustarHeader(name, data.length))
    this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK
    if (pad > 0) this.push(Buffer.alloc(pad))
    this.entries++
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush()
  }

  /** Ends the archive (two zero blocks), syncs, closes and renames it onto `file`. */
  async finish(): Promise<void> {
    if (this.closed) return
    this.push(Buffer.alloc(2 * BLOCK))
    try {
      await this.flush()
      await this.fh.sync()
      this.closed = true
      await this.fh.close()
      await fsp.rename(this.temp, this.file)
    } catch (cause) {
      await this.abort()
      throw new FileError('IO_ERROR', `shard ${this.file}: writing failed: ${(cause as Error).message}`, { cause })
    }
  }

  /** Drops the shard: closes and removes the temporary file. Safe to call more than once. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true
      await this.fh.close().catch(() => {})
    }
    this.pending = []
    this.pendingBytes = 0
    await fsp.rm(this.temp, { force: true })
  }

  private push(chunk: Buffer): void {
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
  }

  private async flush(): Promise<void> {
    const chunks = this.pending
    const total = this.pendingBytes
    this.pending = []
    this.pendingBytes = 0
    try {
      let done = 0
      while (done < total) {
        const { bytesWritten } = await this.fh.writev(done === 0 ? chunks : remaining(chunks, done))
        done += bytesWritten
      }
      this.written += total
    } catch (cause) {
      await this.abort()
      throw new FileError('IO_ERROR', `shard ${this.file}: writing failed: ${(cause as Error).message}`, { cause })
    }
  }
}

/** The chunks after the first `skip` bytes, for a short write. */
function remaining(chunks: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = []
  for (const c of chunks) {
    if (skip >= c.length) skip -= c.length
    else {
      out.push(skip > 0 ? c.subarray(skip) : c)
      skip = 0
    }
  }
  return out
}
