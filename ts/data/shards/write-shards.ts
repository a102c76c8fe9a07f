// Writes an image folder (`root/<class>/*`) as WebDataset-style tar shards in a seeded, mixed order, plus an index.
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { writeFileAtomic } from '../../util/atomic-write.ts'
import { CancelledError, InputError } from '../../errors.ts'
import { ProgressBar } from '../../util/progress.ts'
import { listImageFolder } from '../image-folder.ts'
import { deriveSeed, range, shuffle } from '../split.ts'
import { bracePatternFor, indexPathFor, numberedName, parseNumberedPattern } from './brace-pattern.ts'
import { BatchDecoder, RAW_PIXELS_EXT, type EncodedSample } from './shard-decode.ts'
import { TarShardWriter } from './tar-shard-writer.ts'

/** The sidecar `<stem>.shards.json` beside the shards: what readers need to know before reading them. */
export interface ShardIndex {
  format: 'convkit-shards'
  version: 1
  /** The brace pattern that reads the shards back, relative to the index's folder. */
  pattern: string
  classes: string[]
  /** Samples in all shards. */
  count: number
  /** Samples per shard (the last one may hold fewer). */
  perShard: number
  /** The seed of the sample order. */
  seed: number
  /** `[C, H, W]` when every image has the same size and channels (read from the JPEG/PNG headers), else null. */
  imageShape: [number, number, number] | null
  /** Samples per image extension, e.g. `{ jpg: 50000 }`. */
  formats: Record<string, number>
  /** The folder the shards were written from. */
  source: string
  /** Each shard's file name (in the index's folder), samples, and size in bytes (a shard whose size differs is scanned instead). */
  shards: { file: string; count: number; bytes: number }[]
}

export interface WriteShardsOptions {
  /** Samples per shard. Defaults to 10 000. */
  perShard?: number
  /** Seeds the order samples are written in, so every shard mixes all classes. Defaults to 0. */
  seed?: number
  /** Draw no progress bar. Defaults to false; the bar is silent anyway when stderr is not a terminal. */
  quiet?: boolean
  /** Stops between samples; the shard being written is removed and the promise rejects with a CancelledError. */
  signal?: AbortSignal
  /**
   * Store each image decoded to this size (`C×H×W` bytes, a `.chw` entry) instead of its original bytes: larger on
   * disk, but a stream then copies pixels instead of decoding every image in every epoch. Defaults to the original
   * bytes.
   */
  decode?: { size: [number, number]; channels: 1 | 3; skipBadImages?: boolean }
}

export interface WriteShardsResult {
  /** The shard files written, in order. */
  files: string[]
  /** The brace pattern that reads them (`shards/train-{000000..000004}.tar`), as `--data` or `openShards` take it. */
  pattern: string
  /** The index file. */
  index: string
  count: number
  classes: string[]
  imageShape: [number, number, number] | null
  /** Images left out because they could not be decoded (with `decode.skipBadImages`): their paths and why. */
  skipped: { file: string; reason: string }[]
}

/** Images decoded together when `decode` is given: enough to keep every core busy. */
const DECODE_GROUP = 256

/** Files read ahead of the writer: enough to hide file-open latency, few enough to keep memory flat. */
const READ_AHEAD = 64

/** Width, height and colour channels from a JPEG's SOF or a PNG's IHDR, without decoding; undefined otherwise. */
export function imageHeaderShape(bytes: Uint8Array): [number, number, number] | undefined {
  if (bytes.length > 26 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const colourType = bytes[25]!
    // Grey and grey+alpha are one channel of colour; palette, RGB and RGBA are three (alpha is dropped on decode).
    const channels = colourType === 0 || colourType === 4 ? 1 : 3
    return [channels, view.getUint32(20), view.getUint32(16)]
  }
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined
  let at = 2
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return undefined
    const marker = bytes[at + 1]!
    if (marker === 0xff) {
      at++
      continue
    }
    const length = (bytes[at + 2]! << 8) | bytes[at + 3]!
    // Start-of-frame markers C0–CF, except C4 (Huffman tables), C8 (reserved) and CC (arithmetic conditioning).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const height = (bytes[at + 5]! << 8) | bytes[at + 6]!
      const width = (bytes[at + 7]! << 8) | bytes[at + 8]!
      const components = bytes[at + 9]!
      return [components === 1 ? 1 : 3, height, width]
    }
    at += 2 + length
  }
  return undefined
}

/** A key for a file: `<class>/<name without extension>`, dots made underscores (a key ends at its first dot). */
function sampleKey(className: string, file: string): string {
  const stem = path.basename(file, path.extname(file)).replaceAll('.', '_')
  return `${className.replaceAll('/', '_')}/${stem}`
}

/**
 * Writes the images of `root/<class>/*` (listed as `readImageFolder` lists them) into tar shards named by
 * `outPattern`, which has one `%06d` (or `%d`) for the shard number: `shards/train-%06d.tar` gives
 * `train-000000.tar`, `train-000001.tar`, … as many as `perShard` needs. Each sample is `<key>.<ext>` with the
 * image's bytes as they are (not re-encoded) and `<key>.cls` with its class index as text; samples go in a seeded
 * shuffled order, so every shard mixes the classes. Each shard is written to a temporary name and renamed, and the
 * index (`<stem>.shards.json`: classes, counts, image shape) comes last. Shows a progress bar on a terminal.
 *
 * @example
 * const { pattern } = await writeShards('cifar10-jpg/train', 'shards/train-%06d.tar', { perShard: 10000 })
 * // pattern: 'shards/train-{000000..000004}.tar'
 */
export async function writeShards(root: string, outPattern: string, options: WriteShardsOptions = {}): Promise<WriteShardsResult> {
  const perShard = options.perShard ?? 10000
  if (!Number.isInteger(perShard) || perShard < 1)
    throw new InputError('INVALID_OPTION', `option perShard: expected an integer >= 1, got ${options.perShard}`)
  const seed = options.seed ?? 0
  if (!Number.isInteger(seed) || seed < 0)
    throw new InputError('INVALID_OPTION', `option seed: expected an integer >= 0, got ${options.seed}`)
  const numbered = parseNumberedPattern(outPattern)
  if (numbered.after.includes('/') || numbered.after.includes(path.sep)) {
    throw new InputError(
      'INVALID_OPTION',
      `shard pattern ${JSON.stringify(outPattern)}: the shard number goes in the file name, not in a folder name (e.g. "shards/train-%06d.tar")`,
    )
  }
  const signal = options.signal
  const cancelled = () => new CancelledError('CANCELLED', `writing shards ${outPattern}: cancelled`, { cause: signal?.reason })
  if (signal?.aborted) throw cancelled()

  const { classes, files, labels } = await listImageFolder(root)
  const order = shuffle(range(files.length), deriveSeed(seed, 0x5ad))
  const shardCount = Math.ceil(files.length / perShard)
  const indexFile = indexPathFor(outPattern)
  // A stale index must not describe the new shards if this run stops halfway.
  await fsp.rm(indexFile, { force: true })

  const keys = new Set<string>()
  const uniqueKey = (i: number) => {
    const base = sampleKey(classes[labels[i]!]!, files[i]!)
    let key = base
    for (let n = 1; keys.has(key); n++) key = `${base}_${n}`
    keys.add(key)
    return key
  }
  const formats: Record<string, number> = {}
  const decode = options.decode
  const decoder = decode
    ? new BatchDecoder({
        size: decode.size,
        channels: decode.channels,
        threads: os.availableParallelism(),
        skipBadImages: decode.skipBadImages ?? false,
      })
    : undefined
  const decodedShape: [number, number, number] | undefined = decode ? [decode.channels, ...decode.size] : undefined
  const skipped: WriteShardsResult['skipped'] = []
  /** Decodes a group into `.chw` samples; with skipBadImages, the undecodable ones are left out and listed. */
  const decodeGroup = async (using: BatchDecoder, group: EncodedSample[]): Promise<EncodedSample[]> => {
    const batch = await using.decode(group)
    const per = batch.count > 0 ? batch.pixels.length / batch.count : 0
    for (const bad of batch.skipped) skipped.push({ file: bad.shard, reason: bad.reason })
    const kept = new Set(batch.keys)
    return group
      .filter((g) => kept.has(g.key))
      .map((g, j) => ({ ...g, ext: RAW_PIXELS_EXT, data: Buffer.from(batch.pixels.buffer, batch.pixels.byteOffset + j * per, per) }))
  }
  let written = 0
  let shape: [number, number, number] | null | undefined
  const shards: ShardIndex['shards'] = []
  const writtenFiles: string[] = []
  const bar = new ProgressBar(`shard ${path.basename(root)}`, { total: files.length, rateUnit: ' img/s', quiet: options.quiet })
  let done = 0
  let writer: TarShardWriter | undefined
  try {
    for (let s = 0; s < shardCount; s++) {
      const file = numberedName(numbered, s)
      writer = await TarShardWriter.create(file)
      const before = written
      const members = order.subarray(s * perShard, (s + 1) * perShard)
      let next = 0
      const read = (k: number) => fsp.readFile(files[members[k]!]!)
      const ahead: Promise<Buffer>[] = []
      for (; next < Math.min(READ_AHEAD, members.length); next++) ahead.push(read(next))
      let group: EncodedSample[] = []
      const flush = async () => {
        const entries = decoder ? await decodeGroup(decoder, group) : group
        for (const sample of entries) {
          await writer!.add(`${sample.key}.${sample.ext}`, sample.data)
          await writer!.add(`${sample.key}.cls`, Buffer.from(String(sample.label)))
          formats[sample.ext] = (formats[sample.ext] ?? 0) + 1
          const found = decoder ? decodedShape : imageHeaderShape(sample.data)
          if (shape === undefined) shape = found ?? null
          else if (shape && (!found || found.some((d, j) => d !== shape![j]))) shape = null
        }
        written += entries.length
        bar.update((done += group.length))
        group = []
      }
      for (let k = 0; k < members.length; k++) {
        if (signal?.aborted) throw cancelled()
        const bytes = await ahead.shift()!
        if (next < members.length) ahead.push(read(next++))
        const i = members[k]!
        const ext = path.extname(files[i]!).slice(1).toLowerCase()
        group.push({ key: uniqueKey(i), ext, data: bytes, label: labels[i]!, shard: files[i]! })
        if (group.length === (decoder ? DECODE_GROUP : 1)) await flush()
      }
      if (group.length > 0) await flush()
      await Promise.allSettled(ahead)
      await writer.finish()
      shards.push({ file: path.basename(file), count: written - before, bytes: (await fsp.stat(file)).size })
      writtenFiles.push(file)
      writer = undefined
    }
  } catch (err) {
    await writer?.abort()
    throw err
  } finally {
    bar.done()
  }

  const pattern = bracePatternFor(numbered, shardCount)
  const index: ShardIndex = {
    format: 'convkit-shards',
    version: 1,
    pattern: path.basename(pattern),
    classes,
    count: written,
    perShard,
    seed,
    imageShape: shape ?? null,
    formats,
    source: path.resolve(root),
    shards,
  }
  await writeFileAtomic(indexFile, `${JSON.stringify(index, null, 1)}\n`)
  return { files: writtenFiles, pattern, index: indexFile, count: written, classes, imageShape: shape ?? null, skipped }
}
