// CIFAR-10: downloads the official binary archive into the cache once, and reads its batches (or torchvision's pickled ones).
import fsp from 'node:fs/promises'
import path from 'node:path'
import { DataError } from '../errors.ts'
import { untarInto } from './archive.ts'
import { datasetCacheDir } from './cache-dir.ts'
import { cacheMaxBytes, recordCacheUse, touchIfKnown, withPinned } from './cache-index.ts'
import { download, md5File } from './download.ts'
import type { ImageSet } from './image-set.ts'
import { isNdArray, readPickle, type PickleValue } from '../pickle/numpy-pickle.ts'
import { exists } from './paths.ts'

/** The class names, in label order, used when a copy has no `batches.meta.txt`. */
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
/** Where the archive is published. */
export const CIFAR10_BASE_URL = 'https://www.cs.toronto.edu/~kriz/'
/** The MD5 published for `cifar-10-binary.tar.gz`. */
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530'
export const CIFAR10_ARCHIVE = 'cifar-10-binary.tar.gz'
/** Folder names of the binary release and of torchvision's Python release, as they unpack. */
export const CIFAR10_BINARY_DIR = 'cifar-10-batches-bin'
export const CIFAR10_PYTHON_DIR = 'cifar-10-batches-py'

const SHAPE: [number, number, number] = [3, 32, 32]
const PIXELS = 3 * 32 * 32
/** One binary record: a label byte, then the red, green and blue 32×32 planes (already channel-first). */
const RECORD = 1 + PIXELS
const TRAIN_BATCHES = [1, 2, 3, 4, 5]

export interface Cifar10Options {
  /** Folder the archive and `cifar-10-batches-bin/` go in. Defaults to `~/.cache/convkit/datasets` (see `datasetCacheDir`). */
  cacheDir?: string
  /**
   * Where `cifar-10-binary.tar.gz` is downloaded from: a base URL, or the archive's full URL (ending in `.tar.gz`).
   * Defaults to `$CONVKIT_CIFAR10_URL` when set, else `https://www.cs.toronto.edu/~kriz/`.
   */
  baseUrl?: string
  /** MD5 the archive must have. Defaults to the published `c32a1d4ab5d03f1284b67883e8d87530`; change it only for a mirror of other data. */
  md5?: string
  /** Draw no download progress bar. Defaults to false. */
  quiet?: boolean
  /** Cancels the download. Defaults to none. */
  signal?: AbortSignal
  /** The dataset cache's size limit in bytes, enforced after a download. Defaults to `cacheMaxBytes()` (`$CONVKIT_CACHE_MAX`, else 10 GB). */
  cacheMaxBytes?: number
}

export interface Cifar10 {
  /** The 50 000 images of `data_batch_1` … `data_batch_5`, in file order. */
  train: ImageSet
  /** The 10 000 images of `test_batch`. */
  test: ImageSet
}

/** A CIFAR-10 copy found on disk: which release, and its batches folder. */
export interface Cifar10Copy {
  format: 'cifar10-binary' | 'cifar10-python'
  dir: string
}

/**
 * CIFAR-10 as two ImageSets of 3×32×32 images. A copy already in `cacheDir` (`cifar-10-batches-bin/`, or torchvision's
 * `cifar-10-batches-py/`) is read as it is; otherwise the binary archive is downloaded (progress bar, resumable), its MD5
 * checked, and it is extracted there, once.
 *
 * @example
 * const { train, test } = await loadCifar10()
 * const local = await loadCifar10({ cacheDir: 'data', baseUrl: 'http://127.0.0.1:8080/' })
 */
export async function loadCifar10(options: Cifar10Options = {}): Promise<Cifar10> {
  const root = datasetCacheDir(options.cacheDir)
  const maxBytes = cacheMaxBytes(options.cacheMaxBytes)
  const found = await findCifar10(root)
  if (found) return readCifar10Copy(root, found)

  const md5 = options.md5 ?? CIFAR10_MD5
  const archive = path.join(root, CIFAR10_ARCHIVE)
  // An archive only takes this name once its MD5 matched, but one copied here by hand may not: check before trusting it.
  if ((await exists(archive)) && (await md5File(archive)) !== md5.toLowerCase()) await fsp.rm(archive)
  const url = cifar10Url(options.baseUrl)
  if (!(await exists(archive))) await download(url, archive, { md5, quiet: options.quiet, signal: options.signal })

  const dir = path.join(root, CIFAR10_BINARY_DIR)
  const unpacked = `${dir}.unpacked-${process.pid}`
  await fsp.rm(unpacked, { recursive: true, force: true })
  await untarInto(archive, unpacked)
  try {
    if (!(await exists(path.join(unpacked, CIFAR10_BINARY_DIR)))) {
      throw new DataError('DATA_CORRUPT', `archive ${archive} has no ${CIFAR10_BINARY_DIR}/ folder; expected the CIFAR-10 binary release`, {
        files: [archive],
      })
    }
    await fsp.rename(path.join(unpacked, CIFAR10_BINARY_DIR), dir).catch(async (err: NodeJS.ErrnoException) => {
      // A concurrent run that finished first has put the same files there.
      if (!((err.code === 'ENOTEMPTY' || err.code === 'EEXIST') && (await exists(dir)))) throw err
    })
  } finally {
    await fsp.rm(unpacked, { recursive: true, force: true })
  }
  // Both are the cache's own now, so they count against its limit; the download goes first when space is needed.
  await recordCacheUse(root, [{ file: archive, kind: 'download', source: url }])
  await withPinned([dir], () => recordCacheUse(root, [{ file: dir, kind: 'extracted', source: 'cifar10' }], { wrote: true, maxBytes }))
  return withPinned([dir], () => readCifar10Binary(dir), root)
}

/**
 * Reads a copy `findCifar10` found in the cache folder `cacheDir`, refreshing its last use when the cache made it
 * (a copy put there by hand is not the cache's to count or evict).
 */
export async function readCifar10Copy(cacheDir: string, copy: Cifar10Copy): Promise<Cifar10> {
  return withPinned(
    [copy.dir],
    async () => {
      await touchIfKnown(cacheDir, [copy.dir])
      return readCifar10(copy)
    },
    cacheDir,
  )
}

/** The archive URL: `baseUrl`, else `$CONVKIT_CIFAR10_URL`, else the official site; a base gets the archive name appended. */
export function cifar10Url(baseUrl?: string): string {
  const base = baseUrl || process.env.CONVKIT_CIFAR10_URL || CIFAR10_BASE_URL
  if (/\.(tar\.gz|tgz)$/i.test(base)) return base
  return `${base.endsWith('/') ? base : `${base}/`}${CIFAR10_ARCHIVE}`
}

/**
 * Finds a CIFAR-10 copy at `dir`: `dir` itself is a batches folder, or holds `cifar-10-batches-bin/` or
 * `cifar-10-batches-py/`. The binary release wins when both are there.
 */
export async function findCifar10(dir: string): Promise<Cifar10Copy | undefined> {
  for (const candidate of [dir, path.join(dir, CIFAR10_BINARY_DIR), path.join(dir, CIFAR10_PYTHON_DIR)]) {
    if (await exists(path.join(candidate, 'data_batch_1.bin'))) return { format: 'cifar10-binary', dir: candidate }
    if (await exists(path.join(candidate, 'data_batch_1'))) return { format: 'cifar10-python', dir: candidate }
  }
  return undefined
}

/** Reads a copy `findCifar10` found. */
export function readCifar10(copy: Cifar10Copy): Promise<Cifar10> {
  return copy.format === 'cifar10-binary' ? readCifar10Binary(copy.dir) : readCifar10Python(copy.dir)
}

/**
 * Reads the binary release from its `cifar-10-batches-bin/` folder: `data_batch_1.bin` … `data_batch_5.bin`,
 * `test_batch.bin` and the class names in `batches.meta.txt`. A file whose size is not a whole number of
 * 3073-byte records is a `DATA_CORRUPT` error naming it.
 */
export async function readCifar10Binary(dir: string): Promise<Cifar10> {
  const classes = await readBinaryMeta(path.join(dir, 'batches.meta.txt'))
  const train = await readBinaryBatches(
    TRAIN_BATCHES.map((i) => path.join(dir, `data_batch_${i}.bin`)),
    classes,
  )
  const test = await readBinaryBatches([path.join(dir, 'test_batch.bin')], classes)
  return { train, test }
}

async function readBinaryMeta(file: string): Promise<string[]> {
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch {
    return [...CIFAR10_CLASSES]
  }
  const names = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
  if (names.length === 0) throw new DataError('DATA_CORRUPT', `${file} has no class names; expected one name per line`, { files: [file] })
  return names
}

async function readFileOrMissing(file: string, what: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file)
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DataError('DATA_NOT_FOUND', `${what} ${file} is missing`, { cause, files: [file] })
    }
    throw cause
  }
}

async function readBinaryBatches(files: string[], classes: string[]): Promise<ImageSet> {
  const sizes = await Promise.all(
    files.map(async (file) => {
      let size: number
      try {
        size = (await fsp.stat(file)).size
      } catch (cause) {
        throw new DataError('DATA_NOT_FOUND', `CIFAR-10 batch ${file} is missing`, { cause, files: [file] })
      }
      if (size === 0 || size % RECORD !== 0) {
        throw new DataError(
          'DATA_CORRUPT',
          `CIFAR-10 batch ${file} is ${size} bytes, not a whole number of ${RECORD}-byte records (1 label byte + 3×32×32 pixel bytes); it is truncated or not a CIFAR-10 batch`,
          { files: [file] },
        )
      }
      return size
    }),
  )
  const count = sizes.reduce((a, b) => a + b, 0) / RECORD
  const pixels = new Uint8Array(count * PIXELS)
  const labels = new Int32Array(count)
  let n = 0
  for (const file of files) {
    // One file at a time keeps peak memory at the output plus one 30 MB batch.
    const bytes = await readFileOrMissing(file, 'CIFAR-10 batch')
    if (bytes.length !== sizes[files.indexOf(file)]) {
      throw new DataError('DATA_CORRUPT', `CIFAR-10 batch ${file} changed size while it was read`, { files: [file] })
    }
    for (let at = 0; at < bytes.length; at += RECORD, n++) {
      const label = bytes[at]!
      if (label >= classes.length) {
        throw new DataError(
          'DATA_CORRUPT',
          `CIFAR-10 batch ${file}: record ${at / RECORD} has label ${label}; expected 0..${classes.length - 1}`,
          { files: [file] },
        )
      }
      labels[n] = label
      pixels.set(bytes.subarray(at + 1, at + RECORD), n * PIXELS)
    }
  }
  return { pixels, labels, shape: [...SHAPE], classes }
}

/**
 * Reads torchvision's `cifar-10-batches-py/`: pickled dicts holding a `data` uint8 array of N×3072 (already R, G, B
 * planes) and a `labels` list, plus `batches.meta` with `label_names`. The pickles are read by a reader that only
 * builds lists, dicts and numpy arrays, so a tampered file cannot run code.
 */
export async function readCifar10Python(dir: string): Promise<Cifar10> {
  const classes = await readPythonMeta(path.join(dir, 'batches.meta'))
  const train = await readPythonBatches(
    TRAIN_BATCHES.map((i) => path.join(dir, `data_batch_${i}`)),
    classes,
  )
  const test = await readPythonBatches([path.join(dir, 'test_batch')], classes)
  return { train, test }
}

function field(dict: PickleValue, name: string, file: string): PickleValue {
  if (!(dict instanceof Map))
    throw new DataError('DATA_CORRUPT', `${file} holds no dict; expected a pickled CIFAR-10 batch`, { files: [file] })
  const value = dict.get(name)
  if (value === undefined)
    throw new DataError('DATA_CORRUPT', `${file} has no '${name}' entry; expected a pickled CIFAR-10 batch`, { files: [file] })
  return value
}

async function readPythonMeta(file: string): Promise<string[]> {
  let bytes: Buffer
  try {
    bytes = await fsp.readFile(file)
  } catch {
    return [...CIFAR10_CLASSES]
  }
  const names = field(readPickle(bytes, file), 'label_names', file)
  if (!Array.isArray(names) || names.length === 0)
    throw new DataError('DATA_CORRUPT', `${file}: 'label_names' is not a list of names`, { files: [file] })
  return names.map((n) => (typeof n === 'string' ? n : n instanceof Uint8Array ? Buffer.from(n).toString('utf8') : String(n)))
}

async function readPythonBatches(files: string[], classes: string[]): Promise<ImageSet> {
  const parts: { data: Uint8Array; labels: number[] }[] = []
  for (const file of files) {
    const batch = readPickle(await readFileOrMissing(file, 'CIFAR-10 batch'), file)
    const data = field(batch, 'data', file)
    const labels = field(batch, 'labels', file)
    if (!isNdArray(data) || !/^[|=<>]?u1$/.test(data.dtype) || data.fortranOrder || data.shape.length !== 2 || data.shape[1] !== PIXELS) {
      const got = isNdArray(data) ? `${data.dtype} array of shape [${data.shape.join(', ')}]` : 'something else'
      throw new DataError('DATA_CORRUPT', `${file}: 'data' is ${got}; expected a C-ordered uint8 array of shape [N, ${PIXELS}]`, {
        files: [file],
      })
    }
    const n = data.shape[0]!
    if (data.data.length !== n * PIXELS) {
      throw new DataError(
        'DATA_CORRUPT',
        `${file}: 'data' holds ${data.data.length} bytes; its shape [${n}, ${PIXELS}] needs ${n * PIXELS}`,
        { files: [file] },
      )
    }
    if (!Array.isArray(labels) || labels.length !== n) {
      throw new DataError('DATA_CORRUPT', `${file}: 'labels' should be a list of ${n} labels, one per image`, { files: [file] })
    }
    const bad = labels.findIndex((l) => typeof l !== 'number' || !Number.isInteger(l) || l < 0 || l >= classes.length)
    if (bad >= 0) {
      throw new DataError('DATA_CORRUPT', `${file}: label ${String(labels[bad])} at index ${bad}; expected 0..${classes.length - 1}`, {
        files: [file],
      })
    }
    parts.push({ data: data.data, labels: labels as number[] })
  }
  const count = parts.reduce((a, p) => a + p.labels.length, 0)
  const pixels = new Uint8Array(count * PIXELS)
  const labels = new Int32Array(count)
  let n = 0
  for (const part of parts) {
    pixels.set(part.data, n * PIXELS)
    labels.set(part.labels, n)
    n += part.labels.length
  }
  return { pixels, labels, shape: [...SHAPE], classes }
}
