// TFRecord framing, the container of TensorBoard event files: length, masked CRC-32C of the length, data, masked CRC-32C of the data.
import { crc32c } from '@node-rs/crc32'

/** Added after the rotation so that a CRC over bytes that themselves hold CRCs is not trivially zero (TFRecord's mask). */
const MASK_DELTA = 0xa282ead8

/**
 * TFRecord's masked CRC-32C (Castagnoli, as in iSCSI and ext4), not the CRC-32 of zip and PNG: readers check every
 * record against it and drop those that do not match.
 */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data)
  return (((crc >>> 15) | (crc << 17)) + MASK_DELTA) >>> 0
}

/** One record: uint64 length (little-endian), its masked CRC, the data, the data's masked CRC. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(8 + 4 + data.length + 4)
  out.writeBigUInt64LE(BigInt(data.length), 0)
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8)
  out.set(data, 12)
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length)
  return out
}

export interface RecordRead {
  data: Uint8Array
  /** Byte offset of the record's length field in the file. */
  offset: number
}

/**
 * Reads records back, checking both CRCs. Stops with an error at the first record that is cut short or fails a
 * check, naming its offset; TensorBoard's reader stops there too (a cut record may still be being written).
 */
export function readRecords(bytes: Uint8Array): RecordRead[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out: RecordRead[] = []
  let at = 0
  while (at < buf.length) {
    if (at + 12 > buf.length) throw new Error(`TFRecord at byte ${at}: truncated header`)
    const length = buf.readBigUInt64LE(at)
    if (buf.readUInt32LE(at + 8) !== maskedCrc32c(buf.subarray(at, at + 8))) throw new Error(`TFRecord at byte ${at}: length CRC mismatch`)
    const end = at + 12 + Number(length)
    if (end + 4 > buf.length) throw new Error(`TFRecord at byte ${at}: truncated data`)
    const data = buf.subarray(at + 12, end)
    if (buf.readUInt32LE(end) !== maskedCrc32c(data)) throw new Error(`TFRecord at byte ${at}: data CRC mismatch`)
    out.push({ data, offset: at })
    at = end + 4
  }
  return out
}
