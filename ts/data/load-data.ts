// One entry point for every data source: 'cifar10', an image folder, an idx folder, a CIFAR copy, an archive of any of
// them, or a label file (CSV, TSV, JSON, JSON lines) naming images and their labels.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { DataError, InputError } from '../errors.ts'
import { extractArchive, isArchive, ARCHIVE_EXTENSIONS } from './archive.ts'
import { readImageArchiveCached } from './archive-images.ts'
import { datasetCacheDir } from './cache-dir.ts'
import { cacheMaxBytes, withPinned } from './cache-index.ts'
import { findCifar10, loadCifar10, readCifar10, readCifar10Copy } from './cifar10.ts'
import { listCachedFolder, readListedCached } from './decoded-cache.ts'
import { hasIdxFiles, loadIdxDir } from './idx.ts'
import { pickedIndices, type ImageFolderResult } from './image-folder.ts'
import type { ImagePicks, ImageSet, ListedImages } from './image-set.ts'
import { readLabelFileImages } from './label-file-images.ts'
import { LABEL_FILE_TEXT_OPTIONS, labelFileOptionsOf, type LabelFileOptions } from './label-file.ts'
import { isLabelFile, LABEL_FILE_EXTENSIONS } from './label-table.ts'
import { isUrl } from './url.ts'
import { isDirectory } from './paths.ts'

export interface LoadDataOptions extends Omit<LabelFileOptions, 'skipBadImages'> {
  /** `[height, width]` images from image folders are resized to; CIFAR-10 (32×32) and idx files keep their own size. Defaults to `[32, 32]`. */
  size?: [number, number]
  /** Channels of images read from image folders: 3 (RGB) or 1 (grayscale). Defaults to 3. */
  channels?: 1 | 3
  /**
   * Image folders: resize each image's shorter side to this many pixels (aspect kept), then take the centre `size`,
   * as torchvision's `Resize` + `CenterCrop`. Without it images are stretched to `size`.
   */
  resizeShorter?: number
  /** Where downloads, extracted archives and decoded images are cached. Defaults to `~/.cache/convkit/datasets` (see `datasetCacheDir`). */
  cacheDir?: string
  /**
   * The cache's size limit in bytes: after each write, least recently used entries are evicted until it fits.
   * Defaults to `$CONVKIT_CACHE_MAX` (a size such as `5G`, or `none`), else 10 GB.
   */
  cacheMaxBytes?: number
  /** Where `'cifar10'` is downloaded from. Defaults to `$CONVKIT_CIFAR10_URL`, else the official site. */
  baseUrl?: string
  /** Skip images that cannot be decoded, listing them in `skipped`, instead of failing. Defaults to false. */
  skipBadImages?: boolean
  /** Draw no progress bars. Defaults to false. */
  quiet?: boolean
  /** Cancels a download. Defaults to none. */
  signal?: AbortSignal
  /**
   * Image folders, archives of them and label files: called with what they list, before anything is decoded; returns
   * the images to decode (see `ImagePicks`), or undefined for all. It may throw to stop before decoding (a set too
   * large to hold). Each subset is its own cache entry. idx files and CIFAR-10 are read whole and never call it.
   * Defaults to none: all.
   *
   * @example
   * const picks = (listed: ListedImages) => ({ train: Int32Array.of(0, 5, 9), test: new Int32Array(0) })
   */
  pick?: (listed: ListedImages) => ImagePicks | undefined
}

export type { ImagePicks, ListedImages } from './image-set.ts'

/** Which reader produced the data. */
export type DataFormat = 'cifar10-binary' | 'cifar10-python' | 'idx' | 'image-folder' | 'label-file'

export interface LoadedData {
  train: ImageSet
  /** The source's own test set; undefined for a single image folder, which the caller splits. */
  test?: ImageSet
  /** The source's own validation set: a label file's `valid` rows. Undefined for every other source. */
  val?: ImageSet
  /** What was asked for: `'cifar10'`, or the absolute path of the folder or archive. */
  source: string
  format: DataFormat
  /**
   * Images skipped as unreadable (only with `skipBadImages`); from a label file, its skipped rows as
   * `<label file>:<line>: <what was wrong>`.
   */
  skipped: string[]
  /**
   * When `pick` chose a subset: each image of `train` (and `test`, `val`), its index in its folder's listing (a label
   * file's: its usable rows of that split; images skipped as unreadable are absent). Undefined when the sets hold
   * every image listed.
   */
  picked?: { train: Int32Array; test?: Int32Array; val?: Int32Array }
}

/** Names that mean "download the official CIFAR-10"; a folder of that name is reached as `./cifar10`. */
const CIFAR10_NAMES = new Set(['cifar10', 'cifar-10'])

function checkOptions(options: LoadDataOptions): void {
  const { size, channels } = options
  if (size !== undefined && !(Array.isArray(size) && size.length === 2 && size.every((d) => Number.isInteger(d) && d > 0))) {
    throw new InputError('INVALID_OPTION', `option size: expected [height, width] of positive integers, got ${JSON.stringify(size)}`)
  }
  if (channels !== undefined && channels !== 1 && channels !== 3) {
    throw new InputError('INVALID_OPTION', `option channels: expected 1 or 3, got ${JSON.stringify(channels)}`)
  }
  cacheMaxBytes(options.cacheMaxBytes)
  for (const key of LABEL_FILE_TEXT_OPTIONS) {
    const v = options[key]
    if (v !== undefined && (typeof v !== 'string' || v === ''))
      throw new InputError('INVALID_OPTION', `option ${key}: expected a non-empty string, got ${JSON.stringify(v)}`)
  }
}

/**
 * Loads a dataset from `source`:
 * - `'cifar10'`: the official binary release, downloaded and cached once (see `loadCifar10`);
 * - a `.tar.gz`/`.tgz`/`.tar` archive: when it holds a single top-level folder, that folder is the dataset; image
 *   folders in it are read straight from the archive, without extracting (see `readImageArchiveCached`); idx files
 *   and CIFAR batches are extracted into the cache once (see `extractArchive`) and read as a folder;
 * - a folder holding `cifar-10-batches-bin/` or `cifar-10-batches-py/` (or being one): read as CIFAR-10;
 * - a folder of MNIST-style idx files: `train-*` is the training set, `t10k-*` the test set;
 * - a folder with `train/` and `test/` image folders (`<split>/<class>/<image>`): both decoded, through the decoded
 *   cache, which is keyed by the images' content, so copies share it;
 * - any other folder: one image folder (`<class>/<image>`), returned with `test` undefined for the caller to split;
 * - a `.csv`, `.tsv`, `.json` (an array of records) or `.jsonl` (a record per line) label file: a row per image, its
 *   path (relative to the label file's folder, or absolute) and its label in columns found by name (see
 *   `readLabelRows`), and optionally its split (`train`/`valid`/`test`, or fastai's `is_valid`): `valid` rows are
 *   returned as `val`, `test` rows as `test`. Decoded through the decoded cache like image folders.
 *
 * A missing path is a `DATA_NOT_FOUND` DataError naming it. Everything cached counts against the cache's size limit
 * (`cacheMaxBytes`). Images read from an archive are named `<archive>/<path inside it>` in `files` and errors.
 *
 * @example
 * const { train, test } = await loadData('../shared/datasets/cifar10-jpg.tar.gz')
 * const fashion = await loadData('/usr/share/datasets/fashion-mnist')
 * const pets = await loadData('pets/labels.csv', { labelColumn: 'breed' })
 */
export async function loadData(source: string, options: LoadDataOptions = {}): Promise<LoadedData> {
  checkOptions(options)
  if (CIFAR10_NAMES.has(source.toLowerCase())) {
    // Look first only to report which release was read; loadCifar10 makes the same choice.
    const cacheDir = datasetCacheDir(options.cacheDir)
    const copy = await findCifar10(cacheDir)
    const { train, test } = copy
      ? await readCifar10Copy(cacheDir, copy)
      : await loadCifar10({
          cacheDir: options.cacheDir,
          baseUrl: options.baseUrl,
          quiet: options.quiet,
          signal: options.signal,
          cacheMaxBytes: options.cacheMaxBytes,
        })
    return { train, test, source: 'cifar10', format: copy?.format ?? 'cifar10-binary', skipped: [] }
  }

  if (isUrl(source))
    throw new InputError('INVALID_OPTION', `data source ${source} is a URL; download it and pass the path of the file or folder`)
  const resolved = path.resolve(source)
  let stat: fs.Stats
  try {
    stat = await fsp.stat(resolved)
  } catch (cause) {
    throw new DataError(
      'DATA_NOT_FOUND',
      `data source ${source} does not exist (looked for ${resolved}); expected 'cifar10', a folder or a ${ARCHIVE_EXTENSIONS.join('/')} archive`,
      {
        cause,
        files: [resolved],
      },
    )
  }
  if (stat.isFile()) {
    if (isLabelFile(resolved)) return { ...(await readLabelFile(resolved, options)), source: resolved }
    if (!isArchive(resolved)) {
      throw new InputError(
        'INVALID_OPTION',
        `data source ${source} is a file but not a ${ARCHIVE_EXTENSIONS.join('/')} archive or a ${LABEL_FILE_EXTENSIONS.join('/')} label file; expected 'cifar10', a folder, an archive or a label file`,
      )
    }
    const images = await readImageArchiveCached(resolved, stat, archiveOptions(options))
    if (images) {
      const { train, test, trainRoot, testRoot, picked } = images
      const aligned = test && alignClasses(test, train.classes, testRoot!, trainRoot)
      return {
        train,
        ...(aligned ? { test: aligned } : {}),
        format: 'image-folder',
        skipped: [...train.skipped, ...(test?.skipped ?? [])],
        source: resolved,
        ...(picked ? { picked } : {}),
      }
    }
    const extracted = await extractArchive(resolved, options.cacheDir, { cacheMaxBytes: options.cacheMaxBytes })
    // Pinned while it is read, so that no write of this process evicts it meanwhile.
    return withPinned(
      [extracted],
      async () => ({ ...(await readFolder(await singleTopFolder(extracted), options)), source: resolved }),
      datasetCacheDir(options.cacheDir),
    )
  }
  if (!stat.isDirectory())
    throw new DataError('DATA_NOT_FOUND', `data source ${source} is neither a folder nor a file`, { files: [resolved] })
  return { ...(await readFolder(resolved, options)), source: resolved }
}

function archiveOptions(options: LoadDataOptions) {
  const { size, channels, resizeShorter, cacheDir, skipBadImages, quiet, signal, cacheMaxBytes, pick } = options
  return { size, channels, resizeShorter, cacheDir, skipBadImages, quiet, signal, cacheMaxBytes, pick }
}

async function readLabelFile(file: string, options: LoadDataOptions): Promise<Omit<LoadedData, 'source'>> {
  const { train, val, test, skipped, picked } = await readLabelFileImages(file, {
    ...archiveOptions(options),
    ...labelFileOptionsOf(options),
    // loadData's own false refuses rows with several labels (train()'s false means "when a row has several").
    multiLabel: options.multiLabel,
  })
  return { train, ...(val ? { val } : {}), ...(test ? { test } : {}), format: 'label-file', skipped, ...(picked ? { picked } : {}) }
}

/** Archives usually wrap their contents in one folder (`cifar10-jpg/…`); that folder is the dataset. */
async function singleTopFolder(dir: string): Promise<string> {
  const entries = (await fsp.readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.') && e.name !== '__MACOSX')
  const only = entries[0]
  if (entries.length === 1 && only!.isDirectory()) return path.join(dir, only!.name)
  return dir
}

async function readFolder(dir: string, options: LoadDataOptions): Promise<Omit<LoadedData, 'source'>> {
  const cifar = await findCifar10(dir)
  if (cifar) return { ...(await readCifar10(cifar)), format: cifar.format, skipped: [] }
  if (await hasIdxFiles(dir)) return { ...(await loadIdxDir(dir)), format: 'idx', skipped: [] }

  const folderOptions = {
    size: options.size,
    channels: options.channels,
    resizeShorter: options.resizeShorter,
    skipBadImages: options.skipBadImages,
    cacheDir: options.cacheDir,
    quiet: options.quiet,
    cacheMaxBytes: options.cacheMaxBytes,
  }
  const trainDir = path.join(dir, 'train')
  const testDir = path.join(dir, 'test')
  const split = await isDirectory(trainDir)
  const roots = split ? [trainDir, ...((await isDirectory(testDir)) ? [testDir] : [])] : [dir]
  const listings = roots.map(listCachedFolder)
  const size = options.size ?? [32, 32]
  const picks =
    options.pick && listings.every((l) => l !== undefined)
      ? options.pick({
          train: listings[0]!.files.length,
          test: listings[1]?.files.length,
          labels: listings[0]!.labels,
          shape: [options.channels ?? 3, ...size],
        })
      : undefined
  const chosen = [picks?.train, picks?.test].map((p, i) => (p && listings[i] && p.length < listings[i].files.length ? p : undefined))
  // One after the other: each decode keeps every core busy.
  const sets: ImageFolderResult[] = []
  for (const [i, root] of roots.entries())
    sets.push(await readListedCached(root, listings[i], { ...folderOptions, ...(chosen[i] ? { pick: chosen[i] } : {}) }))
  const [train, test] = sets
  const picked = chosen.some(Boolean)
    ? {
        train: pickedIndices(listings[0]!.files, train!, chosen[0]),
        ...(test ? { test: pickedIndices(listings[1]!.files, test, chosen[1]) } : {}),
      }
    : undefined
  const skipped = [...train!.skipped, ...(test?.skipped ?? [])]
  return {
    train: train!,
    ...(test ? { test: alignClasses(test, train!.classes, testDir, trainDir) } : {}),
    format: 'image-folder',
    skipped,
    ...(picked ? { picked } : {}),
  }
}

/**
 * Makes the test set's labels index the training classes. A test folder may lack some classes (labels are then
 * remapped by name); one the training folder lacks could never be predicted, so it is an error.
 */
function alignClasses<T extends ImageSet>(test: T, classes: string[], testDir: string, trainDir: string): T {
  if (test.classes.join('\n') === classes.join('\n')) return test
  const extra = test.classes.filter((c) => !classes.includes(c))
  if (extra.length > 0) {
    throw new DataError(
      'DATA_CORRUPT',
      `${testDir} has class folder(s) ${extra.join(', ')} that ${trainDir} lacks; expected the test classes to be among the training classes (${classes.join(', ')})`,
      {
        files: extra.map((c) => path.join(testDir, c)),
      },
    )
  }
  const toTrain = test.classes.map((c) => classes.indexOf(c))
  return { ...test, labels: test.labels.map((l) => toTrain[l]!), classes }
}
