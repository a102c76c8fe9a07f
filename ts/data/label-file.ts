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
const ROW_SPLITS: readonly RowSplit[] = ['train', 'valid', 'test']

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

/**
 * A label file's rows, column by column, in file order: row `i` is `line[i]`, `written[i]`, … An object per row cost
 * more in garbage collection than reading the file, at 60 000 rows.
 */
export interface LabelFileRows {
  /** 1-based line of the file each row starts on. */
  line: number[]
  /** The path as the file writes it, trimmed. */
  written: string[]
  /** The row's labels (one for single-label files), trimmed, each once, in the order written; shared between rows. */
  labels: (readonly string[])[]
  split: RowSplit[]
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
  rows: LabelFileRows
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
  // Label and split fields repeat: each distinct one is read once.
  const labelLists = new Map<unknown, readonly string[]>()
  const splits = new Map<unknown, RowSplit>()
  const rows: LabelFileRows = { line: [], written: [], labels: [], split: [] }
  for (let record = table.next(); record; record = table.next()) {
    const { line, fields } = record
    const written = text(fields[pathAt]).trim()
    if (isUrl(written)) {
      throw new DataError(
        'DATA_CORRUPT',
        `${file} line ${line}, field ${columns.path}: ${written} is a URL; images are read from disk only: download them and list their paths (relative to ${path.dirname(file)}, or absolute)`,
        { files: [file] },
      )
    }
    const rawLabels = fields[labelAt]
    let labels = labelLists.get(rawLabels)
    if (!labels) labelLists.set(rawLabels, (labels = labelsOf(rawLabels, delimiter)))
    const rawSplit = fields[splitAt]
    let split = splits.get(rawSplit)
    if (!split) splits.set(rawSplit, (split = splitOf(file, line, columns.split, rawSplit)))
    rows.line.push(line)
    rows.written.push(written)
    rows.labels.push(labels)
    rows.split.push(split)
  }
  return { file, columns, rows }
}

/** A label field's labels: split at `delimiter` (JSON arrays as they are), trimmed, empty ones dropped, each once. */
function labelsOf(raw: unknown, delimiter: string | RegExp): readonly string[] {
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

/** A row that cannot be used: which, what, and the error code it fails with. */
interface RowFault {
  row: number
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
  /** Whether an image lies outside the label file's folder: the cache then names it `<folder>/../…`. */
  outside: boolean
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
  const multiLabel = options.multiLabel ?? rows.labels.some((labels) => labels.length > 1)
  if (!multiLabel) refuseMultiLabel(file, columns, rows)
  const faults: RowFault[] = []
  const usable: Record<RowSplit, UsableRows> = { train: usableRows(), valid: usableRows(), test: usableRows() }
  // Each row's absolute path, once resolved ('' for a row with no path or no label).
  const files: string[] = []
  const prefix = withSep(path.dirname(file))
  let outside = false
  const fault = (row: number, field: string, what: string, code: ErrorCode = 'DATA_CORRUPT') => faults.push({ row, field, what, code })
  for (let i = 0; i < rows.written.length; i++) {
    const written = rows.written[i]!
    files.push('')
    if (written === '') {
      fault(i, columns.path, 'no image path')
      continue
    }
    if (rows.labels[i]!.length === 0) {
      fault(i, columns.label, `no label for ${written}`)
      continue
    }
    // A plain relative path, nearly every row of a real label file, is joined by concatenation and is its own path
    // relative to the label file's folder: path.resolve costs as much as the row's stat at 60 000 rows.
    const isPlain = path.sep === '/' && plain(written)
    const resolved = isPlain ? prefix + written : path.resolve(prefix, written)
    files[i] = resolved
    const problem = unreadable(resolved)
    if (typeof problem === 'string') {
      fault(i, columns.path, `${written} ${problem}`, 'DATA_NOT_FOUND')
      continue
    }
    const these = usable[rows.split[i]!]
    these.stats = pushStat(these.stats, 4 * these.rows.length, problem)
    these.rows.push(i)
    // The cache names images by their path relative to the label file's folder ('../' for images outside it).
    const rel = isPlain ? written : relativeTo(prefix, resolved)
    if (!isPlain && rel.startsWith('../')) outside = true
    these.rels.push(rel)
  }
  const repeated = repeatedFiles(usable, files)
  if (repeated.size > 0) {
    for (const [row, first] of repeated) {
      const what = files[first] === files[row] ? 'is listed again' : `is the same file as ${rows.written[first]}`
      fault(row, columns.path, `${rows.written[row]} ${what} (first on line ${rows.line[first]})`)
    }
    faults.sort((a, b) => a.row - b.row)
    for (const split of ROW_SPLITS) usable[split] = withoutRows(usable[split], repeated)
  }
  const kept = [...usable.train.rows, ...usable.valid.rows, ...usable.test.rows]
  if (faults.length > 0 && !options.skipBadImages) throw rowError(file, rows, files, faults)
  if (kept.length === 0) throw new DataError('DATA_EMPTY', `label file ${file} lists no images`, { files: [file] })

  const names = new Set<string>()
  const labelLists = new Set<readonly string[]>()
  for (const i of kept) labelLists.add(rows.labels[i]!)
  for (const labels of labelLists) {
    if (multiLabel) for (const label of labels) names.add(label)
    else names.add(labels[0]!)
  }
  const classes = [...names].sort()
  const index = new Map(classes.map((c, i) => [c, i]))
  const listingOf = (split: RowSplit): FolderListing | undefined => {
    const { rows: these, rels, stats } = usable[split]
    if (these.length === 0) return undefined
    return {
      classes,
      files: these.map((i) => files[i]!),
      labels: Int32Array.from(these, (i) => index.get(rows.labels[i]![0]!)!),
      folder: { rels, stats: stats.subarray(0, 4 * these.length) },
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
    lineOf: lineFinder(kept, rows, files),
    ...(multiLabel ? { labelSets: new Map(kept.map((i) => [files[i]!, rows.labels[i]!])) } : {}),
    skipped: faults.map((f) => `${file}:${rows.line[f.row]}: ${f.what}`),
    outside,
  }
}

/**
 * The usable rows that list an earlier usable row's file again (by the same path, or another one through a link), each
 * with that earlier row. Sorting the inodes tells whether any file is there twice for less than a map filled row by
 * row costs (about 5 ms against 15 at 60 000 rows); only then, or where a file system gives no inode numbers (0), are
 * the rows compared one by one.
 */
function repeatedFiles(usable: Record<RowSplit, UsableRows>, files: readonly string[]): Map<number, number> {
  const repeated = new Map<number, number>()
  const count = ROW_SPLITS.reduce((n, split) => n + usable[split].rows.length, 0)
  const inodes = new Float64Array(count)
  let at = 0
  for (const split of ROW_SPLITS) {
    const { rows, stats } = usable[split]
    for (let k = 0; k < rows.length; k++) inodes[at++] = stats[4 * k + 3]!
  }
  inodes.sort()
  let twice = inodes[0] === 0
  for (let k = 1; k < count && !twice; k++) twice = inodes[k] === inodes[k - 1]
  if (!twice) return repeated

  const inodeOf = new Map<number, number>()
  for (const split of ROW_SPLITS) usable[split].rows.forEach((row, k) => inodeOf.set(row, usable[split].stats[4 * k + 3]!))
  const listed = new ListedFiles(files)
  for (const row of [...inodeOf.keys()].sort((a, b) => a - b)) {
    const first = listed.earlier(row, inodeOf.get(row)!)
    if (first >= 0) repeated.set(row, first)
  }
  return repeated
}

/** `these` less the rows in `left`. */
function withoutRows(these: UsableRows, left: ReadonlyMap<number, number>): UsableRows {
  const keep = these.rows.flatMap((row, k) => (left.has(row) ? [] : [k]))
  const stats = new Float64Array(4 * keep.length)
  keep.forEach((k, j) => stats.set(these.stats.subarray(4 * k, 4 * k + 4), 4 * j))
  return { rows: keep.map((k) => these.rows[k]!), rels: keep.map((k) => these.rels[k]!), stats }
}

/**
 * The files of the rows checked so far, in row order, by inode: a row whose file an earlier row listed (by the same
 * path, or by another one through a link) is a duplicate. The rare inode shared by files on two devices (or a file
 * system without inode numbers, 0) falls back to comparing paths.
 */
class ListedFiles {
  private readonly byInode = new Map<number, number>()
  private readonly byPath = new Map<string, number>()
  /** Each row's absolute path, by row. */
  private readonly files: readonly string[]

  constructor(files: readonly string[]) {
    this.files = files
  }

  /** The earlier row listing row `row`'s file (whose inode is `inode`), or -1, in which case `row` is remembered. */
  earlier(row: number, inode: number): number {
    const file = this.files[row]!
    const first = inode === 0 ? undefined : this.byInode.get(inode)
    if (first === undefined && inode !== 0) {
      this.byInode.set(inode, row)
      return -1
    }
    if (first !== undefined && (this.files[first] === file || sameFile(this.files[first]!, file))) return first
    const samePath = this.byPath.get(file)
    if (samePath !== undefined) return samePath
    this.byPath.set(file, row)
    return -1
  }
}

/** Whether two paths name one file: the same device and inode, read exactly (inodes may pass 2⁵³). */
function sameFile(a: string, b: string): boolean {
  const [x, y] = [fs.statSync(a, { bigint: true, throwIfNoEntry: false }), fs.statSync(b, { bigint: true, throwIfNoEntry: false })]
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino
}

/** The line of a listed row by its file, built on the first question: only messages about a file ask. */
function lineFinder(kept: readonly number[], rows: LabelFileRows, files: readonly string[]): (file: string) => number | undefined {
  let lines: Map<string, number> | undefined
  return (file) => (lines ??= new Map(kept.map((i) => [files[i]!, rows.line[i]!]))).get(file)
}

/**
 * One split's usable rows, their paths relative to the label file's folder, and their stats (size, mtime, ctime,
 * inode; see `pushStat`) as numbers: 60 000 `fs.Stats` objects kept until the listing is built cost more in garbage
 * collection than the stat calls themselves.
 */
interface UsableRows {
  rows: number[]
  rels: string[]
  stats: Float64Array
}

function usableRows(): UsableRows {
  return { rows: [], rels: [], stats: new Float64Array(0) }
}

/** A row with several labels where the file was to be read single-label (`multiLabel: false`). */
function refuseMultiLabel(file: string, columns: LabelColumns, rows: LabelFileRows): void {
  const first = rows.labels.findIndex((labels) => labels.length > 1)
  if (first < 0) return
  const more = rows.labels.filter((labels) => labels.length > 1).length - 1
  const labels = rows.labels[first]!
  throw new InputError(
    'MULTI_LABEL',
    `${file} line ${rows.line[first]}, field ${columns.label}: ${labels.length} labels (${labels.join(', ')})` +
      `${more > 0 ? `, and ${more} more row(s) with several` : ''}, but multiLabel is false. ` +
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

/** `file` relative to the folder `rootPrefix`, with forward slashes, as the decoded cache names images. */
function relativeTo(rootPrefix: string, file: string): string {
  if (path.sep === '/' && file.startsWith(rootPrefix)) return file.slice(rootPrefix.length)
  return path.relative(rootPrefix, file).split(path.sep).join('/')
}

function rowError(file: string, rows: LabelFileRows, files: readonly string[], faults: RowFault[]): DataError {
  const shown = faults
    .slice(0, 3)
    .map((f) => `line ${rows.line[f.row]}, field ${f.field}: ${f.what}`)
    .join('; ')
  const more = faults.length > 3 ? `; and ${faults.length - 3} more row(s)` : ''
  return new DataError(faults[0]!.code, `${file} ${shown}${more}. Pass skipBadImages to skip such rows.`, {
    files: [file, ...faults.flatMap((f) => (files[f.row] ? [files[f.row]!] : []))],
  })
}
