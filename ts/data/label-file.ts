// A label file's rows as images to read: which columns hold the path, the label(s) and the split, each row's labels
// as a list, the checks every row must pass (its file there and readable, a label, listed once), and the listings of
// its train, validation and test rows that the decoded cache reads.
import fs from 'node:fs'
import path from 'node:path'
import { DataError, InputError, type ErrorCode } from '../errors.ts'
import { pushStat } from './content-hash.ts'
import type { FolderListing } from './decoded-cache.ts'
import { readLabelTable, type LabelTable } from './label-table.ts'
import { isUrl } from './url.ts'

/** How a label file is read. Every name is matched case-insensitively. */
export interface LabelFileOptions {
  /** The column holding each image's path. Defaults to the first of `PATH_COLUMNS` the header has. */
  pathColumn?: string
  /** The column holding each image's label. Defaults to the first of `LABEL_COLUMNS` the header has. */
  labelColumn?: string
  /** The column saying which split a row is in. Defaults to a column named `split` or `is_valid`, if any. */
  splitColumn?: string
  /**
   * What separates several labels in one label field. Defaults to `;`, and also whitespace when the label column is
   * named `labels` or `tags` (fastai's multi-label convention): a column named `label` or `class` may hold single
   * labels with spaces in them ("golden retriever").
   */
  labelDelimiter?: string
  /**
   * Read every row's labels as a set (multi-label data: `ImageSet.targets`). Defaults to true when any row has
   * several labels, else false; false with a row of several labels is a MULTI_LABEL InputError naming the line.
   */
  multiLabel?: boolean
  /** Skip rows whose file is missing or unreadable, whose label is empty, or whose path is listed again. Defaults to false. */
  skipBadImages?: boolean
}

/** The text options of a label file, as train() and loadData() name them too. */
export const LABEL_FILE_TEXT_OPTIONS = ['pathColumn', 'labelColumn', 'splitColumn', 'labelDelimiter'] as const

/**
 * The label-file options among `options` (train()'s resolved config, or loadData's options): the text ones that are
 * set, and `multiLabel` when it is on (off means "when a row has several labels", the reader's own default).
 */
export function labelFileOptionsOf(
  options: { [K in (typeof LABEL_FILE_TEXT_OPTIONS)[number]]?: string | null } & { multiLabel?: boolean },
): Omit<LabelFileOptions, 'skipBadImages'> {
  const given: LabelFileOptions = {}
  for (const key of LABEL_FILE_TEXT_OPTIONS) {
    const v = options[key]
    if (v !== null && v !== undefined) given[key] = v
  }
  if (options.multiLabel) given.multiLabel = true
  return given
}

/** Column names taken for the image path, in order of preference. */
export const PATH_COLUMNS = ['file', 'filename', 'path', 'image', 'image_path', 'fname']
/** Column names taken for the label, in order of preference. */
export const LABEL_COLUMNS = ['label', 'labels', 'class', 'category', 'tags']
/** Column names taken for the split. */
export const SPLIT_COLUMNS = ['split', 'is_valid']
/** Label columns whose fields are split on whitespace too: by convention (fastai's) they hold several labels. */
const MULTI_LABEL_COLUMNS = ['labels', 'tags']

export type RowSplit = 'train' | 'valid' | 'test'

/** Split values, lower case: the names, and fastai's `is_valid` booleans. */
const SPLIT_VALUES: Record<string, RowSplit> = {
  train: 'train',
  training: 'train',
  valid: 'valid',
  val: 'valid',
  validation: 'valid',
  test: 'test',
  true: 'valid',
  false: 'train',
  '1': 'valid',
  '0': 'train',
}

/** One row of a label file. */
export interface LabelRow {
  /** 1-based line of the file the row starts on. */
  line: number
  /** The path as the file writes it. */
  written: string
  /** Absolute: relative paths are taken from the label file's folder. */
  file: string
  /** The row's labels (one for single-label files), trimmed, each once, in the order written; shared between rows. */
  labels: readonly string[]
  split: RowSplit
}

/** The columns a label file is read by, as its header spells them. */
export interface LabelColumns {
  path: string
  label: string
  split?: string
}

/** A label file read into rows, before any row is checked against the disk. */
export interface LabelRows {
  file: string
  columns: LabelColumns
  rows: LabelRow[]
}

/**
 * Reads the rows of the label file `file`: finds its columns, splits each label field into a list (see
 * `LabelFileOptions.labelDelimiter`) and reads each split value. A missing column is an INVALID_OPTION InputError
 * listing the columns found and the names looked for; a split value it does not know a DATA_CORRUPT DataError naming
 * the line and the value; an image given by URL one too, since images are read from disk only.
 */
export function readLabelRows(file: string, options: LabelFileOptions = {}): LabelRows {
  const table = readLabelTable(file)
  const columns = findColumns(file, table, options)
  const at = (name: string | undefined) => (name === undefined ? -1 : table.columns.indexOf(name))
  const [pathAt, labelAt, splitAt] = [at(columns.path), at(columns.label), at(columns.split)]
  const delimiter = labelSplitter(columns.label, options.labelDelimiter)
  const dirPrefix = withSep(path.dirname(file))
  const singles = new Map<string, readonly string[]>()
  const rows = table.records.map(({ line, fields: values }): LabelRow => {
    const written = text(values[pathAt]).trim()
    if (isUrl(written)) {
      throw new DataError(
        'DATA_CORRUPT',
        `${file} line ${line}, field ${columns.path}: ${written} is a URL; images are read from disk only: download them and list their paths (relative to ${path.dirname(file)}, or absolute)`,
        { files: [file] },
      )
    }
    const raw = values[labelAt]
    const labels = labelsOf(raw, delimiter, singles)
    return {
      line,
      written,
      file: written === '' ? '' : resolveFrom(dirPrefix, written),
      labels,
      split: splitOf(file, line, columns.split, values[splitAt]),
    }
  })
  return { file, columns, rows }
}

/**
 * A label field's labels: split at `delimiter` (JSON arrays as they are), trimmed, empty ones dropped, each once. A
 * single label's list comes from `singles`, one per label: a 60 000-row file makes ten lists, not 60 000.
 */
function labelsOf(raw: unknown, delimiter: string | RegExp, singles: Map<string, readonly string[]>): readonly string[] {
  if (typeof raw === 'string' && (typeof delimiter === 'string' ? !raw.includes(delimiter) : !delimiter.test(raw))) {
    // One label, nearly every row of a single-label file: no arrays or set to build.
    const label = raw.trim()
    let list = singles.get(label)
    if (!list) singles.set(label, (list = label === '' ? [] : [label]))
    return list
  }
  const parts = Array.isArray(raw) ? raw.map(text) : text(raw).split(delimiter)
  return [...new Set(parts.map((l) => l.trim()).filter((l) => l !== ''))]
}

/** A field as text: JSON numbers and booleans as written, a missing or null value as ''. */
function text(value: unknown): string {
  if (value === undefined || value === null) return ''
  return typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value)
}

function splitOf(file: string, line: number, column: string | undefined, value: unknown): RowSplit {
  if (column === undefined) return 'train'
  const split = SPLIT_VALUES[text(value).trim().toLowerCase()]
  if (split) return split
  throw new DataError(
    'DATA_CORRUPT',
    `${file} line ${line}, field ${column}: unknown split ${JSON.stringify(text(value))}; expected train, valid (val, validation) or test, or is_valid's true/false (1/0)`,
    { files: [file] },
  )
}

function labelSplitter(column: string, delimiter: string | undefined): string | RegExp {
  if (delimiter !== undefined) return delimiter
  return MULTI_LABEL_COLUMNS.includes(column.toLowerCase()) ? /[\s;]+/ : ';'
}

function findColumns(file: string, table: LabelTable, options: LabelFileOptions): LabelColumns {
  const lower = table.columns.map((c) => c.toLowerCase())
  const found = `the columns found are ${table.columns.map((c) => JSON.stringify(c)).join(', ') || 'none'}`
  const pick = (given: string | undefined, names: string[], option: string, what: string): string | undefined => {
    if (given !== undefined) {
      const i = lower.indexOf(given.toLowerCase())
      if (i < 0) throw new InputError('INVALID_OPTION', `option ${option}: ${file} has no column ${JSON.stringify(given)}; ${found}`)
      return table.columns[i]
    }
    const i = names.map((n) => lower.indexOf(n)).find((k) => k >= 0)
    if (i === undefined && what) {
      throw new InputError(
        'INVALID_OPTION',
        `${file}: no ${what} column; ${found}, the names looked for ${names.join(', ')} (case-insensitive); name it with ${option}`,
      )
    }
    return i === undefined ? undefined : table.columns[i]
  }
  const pathColumn = pick(options.pathColumn, PATH_COLUMNS, 'pathColumn (--path-column)', 'image path')!
  const label = pick(options.labelColumn, LABEL_COLUMNS, 'labelColumn (--label-column)', 'label')!
  const split = pick(options.splitColumn, SPLIT_COLUMNS, 'splitColumn (--split-column)', '')
  if (pathColumn === label)
    throw new InputError('INVALID_OPTION', `${file}: the path and the label are both read from column ${pathColumn}`)
  return { path: pathColumn, label, ...(split !== undefined && split !== pathColumn && split !== label ? { split } : {}) }
}

/** A row that cannot be used: where, what, and the error code it fails with. */
interface RowFault {
  row: LabelRow
  field: string
  what: string
  code: ErrorCode
}

/** The rows of a label file, each checked, as the decoded cache lists images. */
export interface LabelFileListing {
  file: string
  columns: LabelColumns
  /** Sorted label names (every label any row has); every split's `labels` index into them. */
  classes: string[]
  /** Multi-label: each listed image's labels, by its absolute path; each split's `labels` hold the first. */
  labelSets?: Map<string, readonly string[]>
  /** The train, validation and test rows (validation and test undefined when there are none), in file order. */
  splits: { train: FolderListing; valid?: FolderListing; test?: FolderListing }
  /** The line of a listed image, by its absolute path (for messages about it). */
  lineOf: (file: string) => number | undefined
  /** Rows skipped with skipBadImages, as `<label file>:<line>: <what was wrong>`. */
  skipped: string[]
}

/**
 * Reads a label file and checks every row: its file must exist and be readable, it must have a label and must not
 * list an earlier row's file again (by the same path or through a link). A row that fails is a DataError naming the label file, the line and the field
 * (DATA_NOT_FOUND for files, DATA_CORRUPT otherwise; the first three such rows, and how many more), or, with
 * `skipBadImages`, left out and listed in `skipped`. Multi-label (see `LabelFileOptions.multiLabel`) when rows have
 * several labels.
 */
export function listLabelFile(file: string, options: LabelFileOptions = {}): LabelFileListing {
  const { columns, rows } = readLabelRows(file, options)
  const multiLabel = options.multiLabel ?? rows.some((r) => r.labels.length > 1)
  if (!multiLabel) refuseMultiLabel(file, columns, rows)
  const faults: RowFault[] = []
  const usable: Record<RowSplit, UsableRows> = { train: usableRows(), valid: usableRows(), test: usableRows() }
  const listed = new ListedFiles()
  const fault = (row: LabelRow, field: string, what: string, code: ErrorCode = 'DATA_CORRUPT') => faults.push({ row, field, what, code })
  for (const row of rows) {
    if (row.written === '') {
      fault(row, columns.path, 'no image path')
      continue
    }
    if (row.labels.length === 0) {
      fault(row, columns.label, `no label for ${row.written}`)
      continue
    }
    const problem = unreadable(row.file)
    if (typeof problem === 'string') {
      fault(row, columns.path, `${row.written} ${problem}`, 'DATA_NOT_FOUND')
      continue
    }
    const first = listed.earlier(row, problem)
    if (first) {
      const what = first.file === row.file ? 'is listed again' : `is the same file as ${first.written}`
      fault(row, columns.path, `${row.written} ${what} (first on line ${first.line})`)
      continue
    }
    const these = usable[row.split]
    these.stats = pushStat(these.stats, 4 * these.rows.length, problem)
    these.rows.push(row)
  }
  const kept = [...usable.train.rows, ...usable.valid.rows, ...usable.test.rows]
  if (faults.length > 0 && !options.skipBadImages) throw rowError(file, faults)
  if (kept.length === 0) throw new DataError('DATA_EMPTY', `label file ${file} lists no images`, { files: [file] })

  const names = new Set<string>()
  for (const row of kept) {
    if (multiLabel) for (const label of row.labels) names.add(label)
    else names.add(row.labels[0]!)
  }
  const classes = [...names].sort()
  const index = new Map(classes.map((c, i) => [c, i]))
  const rootPrefix = withSep(path.dirname(file))
  const listingOf = (split: RowSplit): FolderListing | undefined => {
    const { rows: these, stats } = usable[split]
    if (these.length === 0) return undefined
    return {
      classes,
      files: these.map((row) => row.file),
      labels: Int32Array.from(these, (row) => index.get(row.labels[0]!)!),
      // Paths relative to the label file's folder, as the cache stores them ('../' for images outside it).
      folder: { rels: these.map((row) => relativeTo(rootPrefix, row.file)), stats: stats.subarray(0, 4 * these.length) },
      labelled: { from: `${file}#${split}` },
    }
  }
  const train = listingOf('train')
  if (!train) {
    throw new DataError('DATA_EMPTY', `label file ${file} has no training rows (every row is ${columns.split} valid or test)`, {
      files: [file],
    })
  }
  const [valid, test] = [listingOf('valid'), listingOf('test')]
  return {
    file,
    columns,
    classes,
    splits: { train, ...(valid ? { valid } : {}), ...(test ? { test } : {}) },
    lineOf: lineFinder(kept),
    ...(multiLabel ? { labelSets: new Map(kept.map((row) => [row.file, row.labels])) } : {}),
    skipped: faults.map((f) => `${file}:${f.row.line}: ${f.what}`),
  }
}

/**
 * The files of the rows checked so far, by inode: a row whose file an earlier row listed (by the same path, or by
 * another one through a link) is a duplicate. Numbers hash faster than 60 000 paths; the rare inode shared by files on
 * two devices (or a file system without inode numbers, 0) falls back to comparing paths.
 */
class ListedFiles {
  private readonly byInode = new Map<number, LabelRow>()
  private readonly byPath = new Map<string, LabelRow>()

  /** The earlier row listing `row`'s file (whose stat is `stat`), or undefined, in which case `row` is remembered. */
  earlier(row: LabelRow, stat: fs.Stats): LabelRow | undefined {
    const first = stat.ino === 0 ? undefined : this.byInode.get(stat.ino)
    if (first === undefined && stat.ino !== 0) {
      this.byInode.set(stat.ino, row)
      return undefined
    }
    if (first !== undefined && (first.file === row.file || sameFile(first.file, row.file))) return first
    const samePath = this.byPath.get(row.file)
    if (samePath) return samePath
    this.byPath.set(row.file, row)
    return undefined
  }
}

/** Whether two paths name one file: the same device and inode, read exactly (inodes may pass 2⁵³). */
function sameFile(a: string, b: string): boolean {
  const [x, y] = [fs.statSync(a, { bigint: true, throwIfNoEntry: false }), fs.statSync(b, { bigint: true, throwIfNoEntry: false })]
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino
}

/** The line of a listed row by its file, built on the first question: only messages about a file ask. */
function lineFinder(rows: readonly LabelRow[]): (file: string) => number | undefined {
  let lines: Map<string, number> | undefined
  return (file) => (lines ??= new Map(rows.map((row) => [row.file, row.line]))).get(file)
}

/**
 * One split's usable rows with their stats (size, mtime, ctime, inode; see `pushStat`) as numbers: 60 000 `fs.Stats`
 * objects kept until the listing is built cost more in garbage collection than the stat calls themselves.
 */
interface UsableRows {
  rows: LabelRow[]
  stats: Float64Array
}

function usableRows(): UsableRows {
  return { rows: [], stats: new Float64Array(0) }
}

/** A row with several labels where the file was to be read single-label (`multiLabel: false`). */
function refuseMultiLabel(file: string, columns: LabelColumns, rows: LabelRow[]): void {
  const multi = rows.filter((r) => r.labels.length > 1)
  if (multi.length === 0) return
  const first = multi[0]!
  throw new InputError(
    'MULTI_LABEL',
    `${file} line ${first.line}, field ${columns.label}: ${first.labels.length} labels (${first.labels.join(', ')})` +
      `${multi.length > 1 ? `, and ${multi.length - 1} more row(s) with several` : ''}, but multiLabel is false. ` +
      'Give one label per row, or leave multiLabel on; a label with spaces in it is one label unless the column is named labels or tags (pass labelDelimiter to say what separates labels)',
  )
}

/**
 * The file's stat when it is a file, else what is wrong with it. One stat per row, as an image folder's listing
 * takes: a file that exists but cannot be read fails when it is decoded, with its line (label-file-images.ts).
 */
function unreadable(file: string): fs.Stats | string {
  let stat: fs.Stats | undefined
  try {
    stat = fs.statSync(file, { throwIfNoEntry: false })
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`
  }
  if (!stat) return `does not exist (looked for ${file})`
  if (!stat.isFile()) return `is not a file (${file})`
  return stat
}

function withSep(dir: string): string {
  return dir.endsWith(path.sep) ? dir : dir + path.sep
}

/**
 * Whether a path needs no normalizing: relative, with no `.`/`..` segments, empty segments or backslashes. Read
 * conservatively (a name ending in a dot, or with `./` inside, counts as needing it), and without a regular
 * expression, which cost more than the check at 60 000 rows.
 */
function plain(written: string): boolean {
  return (
    written.charCodeAt(0) !== 0x2f &&
    !written.endsWith('.') &&
    !written.includes('./') &&
    !written.includes('//') &&
    !written.includes('\\')
  )
}

/**
 * `written` resolved against the folder `dirPrefix` (ending in a separator). Plain relative paths, nearly every row of
 * a real label file, are joined by concatenation: path.resolve costs as much as the row's stat at 60 000 rows.
 */
function resolveFrom(dirPrefix: string, written: string): string {
  return path.sep === '/' && plain(written) ? dirPrefix + written : path.resolve(dirPrefix, written)
}

/** `file` relative to the folder `rootPrefix`, with forward slashes, as the decoded cache names images. */
function relativeTo(rootPrefix: string, file: string): string {
  if (path.sep === '/' && file.startsWith(rootPrefix)) return file.slice(rootPrefix.length)
  return path.relative(rootPrefix, file).split(path.sep).join('/')
}

function rowError(file: string, faults: RowFault[]): DataError {
  const shown = faults
    .slice(0, 3)
    .map((f) => `line ${f.row.line}, field ${f.field}: ${f.what}`)
    .join('; ')
  const more = faults.length > 3 ? `; and ${faults.length - 3} more row(s)` : ''
  return new DataError(faults[0]!.code, `${file} ${shown}${more}. Pass skipBadImages to skip such rows.`, {
    files: [file, ...faults.flatMap((f) => (f.row.file ? [f.row.file] : []))],
  })
}
