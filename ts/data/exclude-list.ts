// Images to leave out of training and testing: `convkit inspect`'s findings, or a list a person wrote.
import fsp from 'node:fs/promises'
import path from 'node:path'
import { DataError } from '../errors.ts'
import type { ImageSet } from './image-set.ts'

/** Which part of a data source an image is in. */
export type ImageSplit = 'train' | 'val' | 'test'

/** How an image without a file (CIFAR-10's binary batches, idx files) is named: `<split>:<index>`. */
const SPLIT_ID = /^(train|val|test):\d+$/

/**
 * The name by which an image is listed and excluded: its file (an absolute path, or `<archive>/<path inside it>`),
 * else `<split>:<index>` in its set.
 */
export function imageId(set: ImageSet, split: ImageSplit, index: number): string {
  return set.files?.[index] ?? `${split}:${index}`
}

/**
 * The images `file` lists: `inspect.json` (its `exclude` array), a JSON array of names, or text with one name per
 * line (`#` starts a comment). Relative paths are taken from the list's folder.
 */
export async function readExcludeList(file: string): Promise<Set<string>> {
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (cause) {
    throw new DataError('DATA_NOT_FOUND', `exclude list ${file} cannot be read; expected inspect.json or a text file of image paths`, {
      cause,
      files: [file],
    })
  }
  const dir = path.dirname(path.resolve(file))
  let names: unknown
  if (/^\s*[[{]/.test(text)) {
    try {
      const parsed: unknown = JSON.parse(text)
      names = Array.isArray(parsed) ? parsed : (parsed as { exclude?: unknown }).exclude
    } catch (cause) {
      throw new DataError('DATA_CORRUPT', `exclude list ${file} is not valid JSON: ${(cause as Error).message}`, { cause, files: [file] })
    }
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))
      throw new DataError('DATA_CORRUPT', `exclude list ${file}: expected an "exclude" array of image paths (as inspect.json has)`, {
        files: [file],
      })
  } else {
    names = text
      .split(/\r?\n/)
      .map((line) => line.replace(/#.*$/, '').trim())
      .filter(Boolean)
  }
  return new Set((names as string[]).map((n) => (SPLIT_ID.test(n) || path.isAbsolute(n) ? n : path.resolve(dir, n))))
}

/** `indices` into `set` without the images `excluded` names. */
export function withoutExcluded(indices: Int32Array, set: ImageSet, split: ImageSplit, excluded: ReadonlySet<string>): Int32Array {
  if (excluded.size === 0) return indices
  return indices.filter((i) => !excluded.has(imageId(set, split, i)))
}
