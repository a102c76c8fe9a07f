// Multi-label data made from CIFAR-10 folders: 64×64 mosaics of 1–4 images in a 2×2 grid (gray where a cell is
// empty), each labelled with the classes of its images, listed in one CSV (`file,labels,split`, labels separated by
// spaces). Seeded: the same arguments give the same files.
import fs from 'node:fs'
import path from 'node:path'
import sharp from 'sharp'
import { prng } from '../../ts/data/split.ts'

/** Every image of a class-folder tree: its path and class. */
function listImages(root: string): { file: string; label: string }[] {
  return fs
    .readdirSync(root)
    .sort()
    .flatMap((label) =>
      fs
        .readdirSync(path.join(root, label))
        .sort()
        .map((f) => ({ file: path.join(root, label, f), label })),
    )
}

export interface MosaicSplit {
  /** A folder of class folders of 32×32 images. */
  from: string
  /** Mosaics to make. */
  count: number
  split: 'train' | 'valid' | 'test'
}

/**
 * Writes mosaics from each split's source into `out/<split>/NNNNN.png` and `out/labels.csv`; returns the CSV's path.
 * A mosaic holds 1 to 4 images drawn at random (uniformly many, each image at most once per mosaic).
 */
export async function writeMosaics(out: string, splits: MosaicSplit[], seed: number): Promise<string> {
  const next = prng(seed)
  const rows: string[] = ['file,labels,split']
  const pixels = new Map<string, Buffer>()
  const rgb = async (file: string) => {
    let p = pixels.get(file)
    if (!p) {
      p = await sharp(file).removeAlpha().resize(32, 32, { fit: 'fill' }).raw().toBuffer()
      pixels.set(file, p)
    }
    return p
  }
  for (const { from, count, split } of splits) {
    const images = listImages(from)
    fs.mkdirSync(path.join(out, split), { recursive: true })
    for (let m = 0; m < count; m++) {
      const tiles = 1 + Math.floor(next() * 4)
      const cells = [0, 1, 2, 3].sort(() => next() - 0.5).slice(0, tiles)
      const canvas = Buffer.alloc(64 * 64 * 3, 128)
      const labels = new Set<string>()
      for (const cell of cells) {
        const image = images[Math.floor(next() * images.length)]!
        labels.add(image.label)
        const src = await rgb(image.file)
        const [top, left] = [32 * Math.floor(cell / 2), 32 * (cell % 2)]
        for (let y = 0; y < 32; y++) src.copy(canvas, ((top + y) * 64 + left) * 3, y * 32 * 3, (y + 1) * 32 * 3)
      }
      const name = `${split}/${String(m).padStart(5, '0')}.png`
      await sharp(canvas, { raw: { width: 64, height: 64, channels: 3 } })
        .png()
        .toFile(path.join(out, name))
      rows.push(`${name},${[...labels].sort().join(' ')},${split}`)
    }
  }
  const csv = path.join(out, 'labels.csv')
  fs.writeFileSync(csv, rows.join('\n') + '\n')
  return csv
}
