// Decodes the images a label file lists, split by split, through the decoded cache (keyed by the images' content and
// their labels), with undecodable images named by the label file's line.
import path from 'node:path'
import { DataError, isDataError } from '../errors.ts'
import { readListedCached, type CachedImageFolderOptions, type FolderListing } from './decoded-cache.ts'
import { pickedIndices, type ImageFolderResult } from './image-folder.ts'
import type { ImagePicks, ListedImages } from './image-set.ts'
import { listLabelFile, type LabelFileListing, type LabelFileOptions } from './label-file.ts'

export interface LabelFileImagesOptions extends LabelFileOptions, CachedImageFolderOptions {
  /** Chooses the images to decode once the rows are checked (see `LoadDataOptions.pick`); undefined: all. */
  pick?: (listed: ListedImages) => ImagePicks | undefined
}

/** A label file's images, decoded: `val` and `test` from the rows its split column puts there. */
export interface LabelFileImages {
  train: ImageFolderResult
  val?: ImageFolderResult
  test?: ImageFolderResult
  /** Rows skipped with skipBadImages (unusable rows, undecodable images), as `<label file>:<line>: <what>`. */
  skipped: string[]
  /** When `pick` chose a subset: each image's index among its split's usable rows (see `LoadedData.picked`). */
  picked?: { train: Int32Array; val?: Int32Array; test?: Int32Array }
}

/**
 * Reads the label file `file` (absolute; see `listLabelFile` for its columns and checks) and decodes its images at
 * `size`, each split through the decoded cache as an image folder is (`readListedCached`): a warm run stats the
 * files and reads one cached file per split. Relative paths are taken from the label file's folder.
 *
 * @example
 * const { train, val } = await readLabelFileImages('/data/pets/labels.csv', { size: [64, 64] })
 */
export async function readLabelFileImages(file: string, options: LabelFileImagesOptions = {}): Promise<LabelFileImages> {
  const listing = listLabelFile(file, options)
  const { train, valid, test } = listing.splits
  const size = options.size ?? [32, 32]
  const picks = options.pick?.({
    train: train.files.length,
    ...(test ? { test: test.files.length } : {}),
    ...(valid ? { val: valid.files.length } : {}),
    labels: train.labels,
    shape: [options.channels ?? 3, size[0], size[1]],
  })
  const order = [
    { name: 'train', split: train, pick: picks?.train },
    { name: 'val', split: valid, pick: picks?.val },
    { name: 'test', split: test, pick: picks?.test },
  ] as const
  const root = path.dirname(file)
  const { pick: _, ...cacheOptions } = options
  const sets: Partial<Record<'train' | 'val' | 'test', ImageFolderResult>> = {}
  const picked: Partial<Record<'train' | 'val' | 'test', Int32Array>> = {}
  // One after the other: each decode keeps every core busy.
  for (const { name, split, pick } of order) {
    if (!split) continue
    const chosen = pick && pick.length < split.files.length ? pick : undefined
    const set = withTargets(
      placed(await decodeSplit(listing, root, split, { ...cacheOptions, ...(chosen ? { pick: chosen } : {}) }), listing.outside),
      listing,
    )
    sets[name] = set
    if (chosen) picked[name] = pickedIndices(split.files, set, chosen)
  }
  const decodeSkipped = Object.values(sets).flatMap((s) =>
    s.skipped.map((f) => `${file}:${listing.lineOf(f)}: ${path.relative(root, f)} could not be decoded`),
  )
  const anyPicked = Object.keys(picked).length > 0
  return {
    train: sets.train!,
    ...(sets.val ? { val: sets.val } : {}),
    ...(sets.test ? { test: sets.test } : {}),
    skipped: [...listing.skipped, ...decodeSkipped],
    ...(anyPicked
      ? {
          picked: {
            train: picked.train ?? pickedIndices(train.files, sets.train!, undefined),
            ...(sets.val ? { val: picked.val ?? pickedIndices(valid!.files, sets.val, undefined) } : {}),
            ...(sets.test ? { test: picked.test ?? pickedIndices(test!.files, sets.test, undefined) } : {}),
          },
        }
      : {}),
  }
}

/** Decodes one split; undecodable images are named by their line (the decoder's error names only the files). */
async function decodeSplit(
  listing: LabelFileListing,
  root: string,
  split: FolderListing,
  options: CachedImageFolderOptions & { pick?: Int32Array },
): Promise<ImageFolderResult> {
  try {
    return await readListedCached(root, split, options)
  } catch (err) {
    if (!isDataError(err) || err.code !== 'DATA_BAD_IMAGE') throw err
    const lines = err.files.map((f) => listing.lineOf(path.resolve(f))).filter((l) => l !== undefined)
    throw new DataError(
      'DATA_BAD_IMAGE',
      `${listing.file} line${lines.length > 1 ? 's' : ''} ${lines.join(', ')}, field ${listing.columns.path}: ${err.message}`,
      { cause: err, files: [listing.file, ...err.files] },
    )
  }
}

/** A multi-label file's set with `targets`: each decoded image's labels as a multi-hot row (the set as it is otherwise). */
function withTargets(set: ImageFolderResult, listing: LabelFileListing): ImageFolderResult {
  if (!listing.labelSets) return set
  const k = listing.classes.length
  const index = new Map(listing.classes.map((c, i) => [c, i]))
  const targets = new Uint8Array(set.files.length * k)
  set.files.forEach((f, i) => {
    for (const label of listing.labelSets!.get(path.resolve(f)) ?? []) targets[i * k + index.get(label)!] = 1
  })
  return { ...set, targets }
}

/**
 * The set with its paths resolved: the cache names images `<folder>/<path relative to it>`, which for images outside
 * the label file's folder (`outside`) reads `<folder>/../…`.
 */
function placed(set: ImageFolderResult, outside: boolean): ImageFolderResult {
  if (!outside) return set
  return { ...set, files: set.files.map((f) => path.resolve(f)), skipped: set.skipped.map((f) => path.resolve(f)) }
}
