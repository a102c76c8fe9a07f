// MNIST-style idx files (plain or .gz): images and labels checked against their headers, read into ImageSets.
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import { DataError } from '../errors.ts'
import type { ImageSet } from './image-set.ts'

/** The magic numbers: two zero bytes, type 0x08 (unsigned byte), then the number of dimensions. */
const IMAGES_MAGIC = 0x00000803
const LABELS_MAGIC = 0x00000801
const IMAGES_HEADER = 16
const LABELS_HEADER = 8

/** Fashion-MNIST's class names, in label order. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]

const gunzip = promisify(zlib.gunzip)

export interface IdxOptions {
  /** Class names in label order. Defaults to Fashion-MNIST's names when the path contains "fashion", else `'0'`, `'1'`, …. */
  classes?: string[]
}

export interface IdxPair {
  train: ImageSet
  test: ImageSet
}

/** Reads a whole idx file, inflating it when its name ends in `.gz`. */
async function readIdx(file: string): Promise<Buffer> {
  let raw: Buffer
  try {
    raw = await fsp.readFile(file)
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT')
      throw new DataError('DATA_NOT_FOUND', `idx file ${file} is missing`, { cause, files: [file] })
    throw cause
  }
  if (!file.toLowerCase().endsWith('.gz')) return raw
  try {
    return await gunzip(raw)
  } catch (cause) {
    throw new DataError('DATA_CORRUPT', `idx file ${file} is not a readable gzip file (${(cause as Error).message}); it may be truncated`, {
      cause,
      files: [file],
    })
  }
}

function checkMagic(bytes: Buffer, file: string, expected: number, what: string): void {
  if (bytes.length < 4) {
    throw new DataError('DATA_CORRUPT', `idx file ${file} is ${bytes.length} bytes, too short for a header; expected an idx ${what} file`, {
      files: [file],
    })
  }
  const magic = bytes.readUInt32BE(0)
  if (magic !== expected) {
    const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`
    throw new DataError('DATA_CORRUPT', `idx file ${file} has magic number ${hex(magic)}; expected ${hex(expected)} (${what})`, {
      files: [file],
    })
  }
}

function checkSize(bytes: Buffer, file: string, expected: number, header: string, compressed: boolean): void {
  if (bytes.length === expected) return
  const which = compressed ? ' once decompressed' : ''
  const fault = bytes.length < expected ? 'it is truncated' : 'it has trailing bytes'
  throw new DataError(
    'DATA_CORRUPT',
    `idx file ${file} is ${bytes.length} bytes${which}; its header (${header}) needs ${expected}, so ${fault}`,
    { files: [file] },
  )
}

/**
 * Reads an images file (`idx3`, N×rows×cols bytes) and its labels file (`idx1`, N bytes) into one ImageSet of
 * shape `[1, rows, cols]`. Either may be gzipped (`.gz`). Magic numbers, the file sizes their headers imply, and
 * the two counts are all checked; a mismatch is a `DATA_CORRUPT` DataError naming the file.
 *
 * @example
 * const train = await readIdxPair('fashion/train-images-idx3-ubyte.gz', 'fashion/train-labels-idx1-ubyte.gz')
 */
export async function readIdxPair(imagesPath: string, labelsPath: string, options: IdxOptions = {}): Promise<ImageSet> {
  const [images, labelBytes] = await Promise.all([readIdx(imagesPath), readIdx(labelsPath)])

  checkMagic(images, imagesPath, IMAGES_MAGIC, 'unsigned-byte images, 3 dimensions')
  if (images.length < IMAGES_HEADER) checkSize(images, imagesPath, IMAGES_HEADER, 'a 16-byte header', imagesPath.endsWith('.gz'))
  const count = images.readUInt32BE(4)
  const rows = images.readUInt32BE(8)
  const cols = images.readUInt32BE(12)
  checkSize(images, imagesPath, IMAGES_HEADER + count * rows * cols, `${count} images of ${rows}×${cols}`, imagesPath.endsWith('.gz'))

  checkMagic(labelBytes, labelsPath, LABELS_MAGIC, 'unsigned-byte labels, 1 dimension')
  if (labelBytes.length < LABELS_HEADER) checkSize(labelBytes, labelsPath, LABELS_HEADER, 'an 8-byte header', labelsPath.endsWith('.gz'))
  const labelCount = labelBytes.readUInt32BE(4)
  checkSize(labelBytes, labelsPath, LABELS_HEADER + labelCount, `${labelCount} labels`, labelsPath.endsWith('.gz'))
  if (labelCount !== count) {
    throw new DataError(
      'DATA_CORRUPT',
      `idx files disagree: ${imagesPath} holds ${count} images but ${labelsPath} holds ${labelCount} labels; expected one label per image`,
      {
        files: [imagesPath, labelsPath],
      },
    )
  }
  if (count === 0) throw new DataError('DATA_EMPTY', `idx file ${imagesPath} holds no images`, { files: [imagesPath] })

  const labels = Int32Array.from(labelBytes.subarray(LABELS_HEADER))
  const maxLabel = labels.reduce((a, b) => Math.max(a, b), 0)
  const classes = options.classes ?? defaultClasses(imagesPath, maxLabel)
  if (maxLabel >= classes.length) {
    throw new DataError(
      'DATA_CORRUPT',
      `idx file ${labelsPath} has label ${maxLabel}; expected 0..${classes.length - 1} (one per class name)`,
      { files: [labelsPath] },
    )
  }
  // The rows are already one plane per image, which is channel-first with a single channel.
  const pixels = new Uint8Array(images.buffer, images.byteOffset + IMAGES_HEADER, count * rows * cols)
  return { pixels, labels, shape: [1, rows, cols], classes }
}

function defaultClasses(file: string, maxLabel: number): string[] {
  if (/fashion/i.test(path.resolve(file)) && maxLabel < FASHION_MNIST_CLASSES.length) return [...FASHION_MNIST_CLASSES]
  return Array.from({ length: Math.max(10, maxLabel + 1) }, (_, i) => String(i))
}

/** How the four files of an idx dataset are named; MNIST mirrors spell the dot both ways. */
const IDX_FILES = {
  trainImages: ['train-images-idx3-ubyte', 'train-images.idx3-ubyte'],
  trainLabels: ['train-labels-idx1-ubyte', 'train-labels.idx1-ubyte'],
  testImages: ['t10k-images-idx3-ubyte', 't10k-images.idx3-ubyte'],
  testLabels: ['t10k-labels-idx1-ubyte', 't10k-labels.idx1-ubyte'],
}

/** Whether `dir` holds an idx training-images file, plain or gzipped. */
export async function hasIdxFiles(dir: string): Promise<boolean> {
  let names: string[]
  try {
    names = await fsp.readdir(dir)
  } catch {
    return false
  }
  return IDX_FILES.trainImages.some((base) => names.includes(base) || names.includes(`${base}.gz`))
}

/**
 * Reads an MNIST-style folder: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
 * `t10k-labels-idx1-ubyte`, each plain or `.gz`. Class names follow `readIdxPair`'s rule.
 *
 * @example
 * const { train, test } = await loadIdxDir('/usr/share/datasets/fashion-mnist')
 */
export async function loadIdxDir(dir: string, options: IdxOptions = {}): Promise<IdxPair> {
  let names: string[]
  try {
    names = await fsp.readdir(dir)
  } catch (cause) {
    throw new DataError('DATA_NOT_FOUND', `idx folder ${dir} does not exist or is not a folder`, { cause, files: [dir] })
  }
  const find = (bases: string[]): string => {
    // The uncompressed file wins when both are there: it is the one someone unpacked on purpose.
    const hit = bases.flatMap((b) => [b, `${b}.gz`]).find((n) => names.includes(n))
    if (!hit) {
      throw new DataError(
        'DATA_NOT_FOUND',
        `idx folder ${dir} has no ${bases[0]} (or ${bases[0]}.gz); expected the four MNIST-style files`,
        { files: [dir] },
      )
    }
    return path.join(dir, hit)
  }
  const classOptions = { classes: options.classes ?? undefined }
  const train = await readIdxPair(find(IDX_FILES.trainImages), find(IDX_FILES.trainLabels), classOptions)
  const test = await readIdxPair(find(IDX_FILES.testImages), find(IDX_FILES.testLabels), classOptions)
  // Both halves share one class list even when one split happens to lack the highest label.
  if (train.classes.length !== test.classes.length) {
    const classes = train.classes.length > test.classes.length ? train.classes : test.classes
    train.classes = classes
    test.classes = classes
  }
  return { train, test }
}
