// Reads the regular files of a tar shard in order, with large sequential reads and little memory: ustar, plus the
// pax and GNU long-name records that Python's tarfile and GNU tar write for long names. Headers are parsed by
// ts/data/tar-header.ts, which the image-archive reader shares.
import fsp from 'node:fs/promises'
import { CancelledError, DataError } from '../../errors.ts'
import { BufferPool } from './buffer-pool.ts'
import { BLOCK, isNameRecord, isRegularFile, nameFromRecord, parseTarHeader, type TarHeader } from '../tar-header.ts'

export interface TarEntry {
  /** The entry's path inside the archive. */
  name: string
  /** Its bytes, a copy owned by the caller. */
  data: Buffer
}

export interface TarReadOptions {
  /** Bytes per read. Defaults to 1 MiB. */
  chunkBytes?: number
  /** Stops reading; the generator throws a CancelledError. */
  signal?: AbortSignal
  /** Where entries' buffers come from. Defaults to a fresh buffer each. */
  pool?: BufferPool
}

function corrupt(file: string, what: string): DataError {
  return new DataError('DATA_CORRUPT', `shard ${file}: ${what}`, { files: [file] })
}

/** Parses the header at byte `offset`, or returns null at the end-of-archive block; `after` names the entry before. */
function parseHeader(block: Buffer, file: string, offset: number, after: string): TarHeader | null {
  if (offset === 0 && block[0] === 0x1f && block[1] === 0x8b)
    throw corrupt(file, 'is gzip-compressed; shards are read as plain .tar files (write them uncompressed, or gunzip them)')
  const where = `the tar header at byte ${offset}${after ? ` (after entry ${after})` : ' (the first)'}`
  return parseTarHeader(block, (problem) => corrupt(file, `${where} ${problem}`))
}

/**
 * Yields the regular files of `file` in archive order; directories, links and other entries are skipped. Damaged
 * headers, a file that ends inside an entry, and gzip-compressed input are DataErrors naming the file, the byte
 * offset and the entry before.
 *
 * @example
 * for await (const { name, data } of readTar('shards/train-000000.tar')) console.log(name, data.length)
 */
export async function* readTar(file: string, options: TarReadOptions = {}): AsyncGenerator<TarEntry> {
  for await (const entries of readTarChunks(file, options)) yield* entries
}

/**
 * `readTar` by the read: each array holds the entries that one read completed. Parsing within a read is synchronous,
 * so a sample costs no promise of its own (with 32×32 JPEGs that halves the reading cost).
 */
export async function* readTarChunks(file: string, options: TarReadOptions = {}): AsyncGenerator<TarEntry[]> {
  const chunk = Math.max(BLOCK, options.chunkBytes ?? 1 << 20)
  const signal = options.signal
  let fh: fsp.FileHandle
  try {
    fh = await fsp.open(file, 'r')
  } catch (cause) {
    throw new DataError(
      'DATA_NOT_FOUND',
      `shard ${file} cannot be opened (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`,
      { cause, files: [file] },
    )
  }
  try {
    const buf = Buffer.allocUnsafe(chunk)
    let start = 0 // unread bytes are buf[start, end)
    let end = 0
    let filePos = 0 // file offset of buf[end]
    const offset = () => filePos - (end - start)

    const readAt = async (into: Buffer, at: number, length: number, position: number): Promise<number> => {
      if (signal?.aborted) throw new CancelledError('CANCELLED', `reading shard ${file}: cancelled`, { cause: signal.reason })
      try {
        return (await fh.read(into, at, length, position)).bytesRead
      } catch (cause) {
        throw new DataError('DATA_CORRUPT', `shard ${file}: read failed at byte ${position}: ${(cause as Error).message}`, {
          cause,
          files: [file],
        })
      }
    }
    /** Makes at least `n` (≤ chunk) bytes available; false at the end of the file. */
    const fill = async (n: number): Promise<boolean> => {
      buf.copy(buf, 0, start, end)
      end -= start
      start = 0
      while (end < n) {
        const got = await readAt(buf, end, chunk - end, filePos)
        if (got === 0) return false
        end += got
        filePos += got
      }
      return true
    }
    /** Copies the next `n` bytes into a new Buffer, reading what the buffer lacks; null at the end of the file. */
    const pool = options.pool ?? new BufferPool(0)
    const take = async (n: number): Promise<Buffer | null> => {
      const out = pool.take(n)
      const fromBuf = Math.min(n, end - start)
      buf.copy(out, 0, start, start + fromBuf)
      start += fromBuf
      let done = fromBuf
      if (n - done >= chunk) {
        // Large entries go straight into their own buffer.
        while (done < n) {
          const got = await readAt(out, done, n - done, filePos)
          if (got === 0) return null
          done += got
          filePos += got
        }
      } else if (done < n) {
        if (!(await fill(n - done))) return null
        buf.copy(out, done, start, start + (n - done))
        start += n - done
      }
      return out
    }
    const skip = (n: number): void => {
      const fromBuf = Math.min(n, end - start)
      start += fromBuf
      filePos += n - fromBuf // positional reads: skipping is moving the position
    }

    let last = ''
    let longName: string | undefined
    let ready: TarEntry[] = []
    for (;;) {
      const at = offset()
      if (end - start < BLOCK) {
        // About to wait for the disk: hand over what this read completed first.
        if (ready.length > 0) {
          yield ready
          ready = []
        }
        if (!(await fill(BLOCK))) {
          // A file that simply stops after the last entry (no end blocks) is accepted; stopping mid-header is not.
          if (end - start === 0) return
          throw corrupt(file, `ends inside the tar header at byte ${at}${last ? ` (after entry ${last})` : ''}; the shard is truncated`)
        }
      }
      const header = parseHeader(buf.subarray(start, start + BLOCK), file, at, last)
      start += BLOCK
      if (!header) break
      const padded = Math.ceil(header.size / BLOCK) * BLOCK
      const name = longName ?? header.name
      const isMeta = isNameRecord(header.type)
      if (!isRegularFile(header.type) && !isMeta) {
        skip(padded)
        continue
      }
      let data: Buffer | null
      if (end - start >= header.size) {
        data = pool.take(header.size)
        buf.copy(data, 0, start, start + header.size)
        start += header.size
      } else {
        if (ready.length > 0) {
          yield ready
          ready = []
        }
        data = await take(header.size)
      }
      if (!data) throw corrupt(file, `ends inside entry ${name} (${header.size} bytes from byte ${at + BLOCK}); the shard is truncated`)
      skip(padded - header.size)
      if (isMeta) {
        longName = nameFromRecord(header.type, data, longName)
        continue
      }
      longName = undefined
      last = name
      ready.push({ name, data })
    }
    if (ready.length > 0) yield ready
  } finally {
    await fh.close()
  }
}
