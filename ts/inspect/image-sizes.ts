// Each image's width and height as stored, read from its header: what a folder of photos really holds before any
// resizing (thumbnails among full-size photos, panoramas among squares).
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import sharp from 'sharp'
import { ARCHIVE_EXTENSIONS } from '../data/archive.ts'
import { archiveFormat } from '../data/archive-images.ts'
import { TarStreamParser } from '../data/tar-stream.ts'

/** Width and height of each named file; 0 × 0 for one whose header cannot be read. */
export type ImageSizes = Map<string, [width: number, height: number]>

/** Header reads in flight at once: sharp's threads overlap them. */
const CONCURRENCY = 16

async function headerSize(input: string | Buffer): Promise<[number, number]> {
  try {
    const m = await sharp(input).metadata()
    // Orientations 5–8 are stored rotated by a quarter turn: they are shown (and decoded) the other way round.
    const turned = (m.orientation ?? 1) >= 5
    return turned ? [m.height ?? 0, m.width ?? 0] : [m.width ?? 0, m.height ?? 0]
  } catch {
    return [0, 0]
  }
}

/**
 * The sizes of `files`: paths on disk are read directly; names `<archive>/<path inside it>` (how archives name their
 * images) by one pass through that archive.
 */
export async function readImageSizes(files: readonly string[], onProgress?: (done: number) => void): Promise<ImageSizes> {
  const sizes: ImageSizes = new Map()
  const onDisk: string[] = []
  const inArchives = new Map<string, Set<string>>()
  for (const f of files) {
    const archive = archiveOf(f)
    if (archive) {
      const names = inArchives.get(archive) ?? new Set<string>()
      names.add(f.slice(archive.length + 1))
      inArchives.set(archive, names)
    } else onDisk.push(f)
  }
  let next = 0
  const worker = async () => {
    while (next < onDisk.length) {
      const f = onDisk[next++]!
      sizes.set(f, await headerSize(f))
      onProgress?.(sizes.size)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  for (const [archive, names] of inArchives) {
    const tar = new TarStreamParser((name) => names.has(name))
    const stream = fs.createReadStream(archive)
    const body = archiveFormat(archive) === 'gzip' ? stream.pipe(zlib.createGunzip()) : stream
    const pending: Promise<void>[] = []
    for await (const chunk of body as AsyncIterable<Buffer>) {
      for (const entry of tar.push(chunk)) {
        if (!names.has(entry.name)) continue
        pending.push(
          headerSize(entry.data).then((s) => {
            sizes.set(`${archive}/${entry.name}`, s)
          }),
        )
      }
      if (pending.length >= 256) {
        await Promise.all(pending.splice(0))
        onProgress?.(sizes.size)
      }
    }
    await Promise.all(pending)
    tar.end()
    onProgress?.(sizes.size)
  }
  return sizes
}

/** The archive a name `<archive>/<path inside>` points into, or undefined for a file on disk. */
function archiveOf(file: string): string | undefined {
  const lower = file.toLowerCase()
  for (const ext of ARCHIVE_EXTENSIONS) {
    const end = lower.indexOf(`${ext}/`)
    if (end < 0) continue
    const archive = file.slice(0, end + ext.length)
    if (fs.statSync(archive, { throwIfNoEntry: false })?.isFile()) return path.resolve(archive)
  }
  return undefined
}

/** Counts and quantiles of sizes for the report. */
export interface SizeSummary {
  /** Images whose header was read. */
  read: number
  /** Images whose header could not be read. */
  unreadable: number
  width: { min: number; median: number; max: number }
  height: { min: number; median: number; max: number }
  /** width / height: share of images wider than 1.2, taller than 1/1.2, and in between. */
  aspect: { landscape: number; square: number; portrait: number }
  /** The five most common sizes, `WxH` with their counts. */
  common: { size: string; count: number }[]
}

export function summarizeSizes(sizes: Iterable<[number, number]>): SizeSummary {
  const all = [...sizes]
  const ok = all.filter(([w, h]) => w > 0 && h > 0)
  const quantiles = (v: number[]) => {
    const s = v.sort((a, b) => a - b)
    return { min: s[0] ?? 0, median: s[Math.floor(s.length / 2)] ?? 0, max: s.at(-1) ?? 0 }
  }
  const ratios = ok.map(([w, h]) => w / h)
  const counts = new Map<string, number>()
  for (const [w, h] of ok) counts.set(`${w}x${h}`, (counts.get(`${w}x${h}`) ?? 0) + 1)
  return {
    read: ok.length,
    unreadable: all.length - ok.length,
    width: quantiles(ok.map(([w]) => w)),
    height: quantiles(ok.map(([, h]) => h)),
    aspect: {
      landscape: ratios.filter((r) => r > 1.2).length,
      square: ratios.filter((r) => r >= 1 / 1.2 && r <= 1.2).length,
      portrait: ratios.filter((r) => r < 1 / 1.2).length,
    },
    common: [...counts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([size, count]) => ({ size, count })),
  }
}
