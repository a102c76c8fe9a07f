// Reads a label file (CSV, TSV, a JSON array of records, JSON lines) into one table: its column names and, per
// record, its values and the line it starts on, so that every later message can point at the line.
import fs from 'node:fs'
import path from 'node:path'
import { DataError } from '../errors.ts'
import { DelimitedReader, DelimitedSyntaxError } from './csv.ts'

/** Extensions read as label files, lower case. */
export const LABEL_FILE_EXTENSIONS = ['.csv', '.tsv', '.json', '.jsonl']

/** Whether `file` is named as a label file (by its extension, in any case). */
export function isLabelFile(file: string): boolean {
  return LABEL_FILE_EXTENSIONS.includes(path.extname(file).toLowerCase())
}

/** One record: its values by column (strings from CSV/TSV; any JSON value, or undefined where a record lacks the key). */
export interface LabelRecord {
  line: number
  fields: unknown[]
}

export interface LabelTable {
  /** Column names as the file spells them: the header of CSV/TSV, every key of the JSON records in first-seen order. */
  columns: string[]
  /**
   * The next record in file order, or undefined after the last. One at a time, so that a 60 000-row CSV is read into
   * rows as it is parsed and never held as 60 000 records besides (their garbage collection cost more than the reading).
   * A CSV/TSV record that is malformed throws when it is reached.
   */
  next(): LabelRecord | undefined
}

/**
 * Reads `file` (absolute) as its extension says. A file that cannot be read is a DATA_NOT_FOUND DataError; malformed
 * text (an unclosed quote, a row with another number of fields than the header, invalid JSON, a record that is not an
 * object) a DATA_CORRUPT one naming the file and the line: for CSV/TSV, when `next()` reaches that record.
 */
export function readLabelTable(file: string): LabelTable {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (cause) {
    throw new DataError('DATA_NOT_FOUND', `label file ${file} cannot be read (${(cause as Error).message})`, { cause, files: [file] })
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  const ext = path.extname(file).toLowerCase()
  if (ext === '.json') return objectTable(file, jsonRecords(file, text))
  if (ext === '.jsonl') return objectTable(file, jsonLines(file, text))
  return delimitedTable(file, text, ext === '.tsv' ? '\t' : ',')
}

function corrupt(file: string, line: number, what: string, cause?: unknown): DataError {
  return new DataError('DATA_CORRUPT', `${file} line ${line}: ${what}`, { files: [file], ...(cause ? { cause } : {}) })
}

function delimitedTable(file: string, text: string, delimiter: string): LabelTable {
  const reader = new DelimitedReader(text, delimiter)
  const read = () => {
    try {
      return reader.next()
    } catch (err) {
      if (err instanceof DelimitedSyntaxError) throw corrupt(file, err.line, err.message, err)
      throw err
    }
  }
  const header = read()
  if (!header)
    throw new DataError('DATA_EMPTY', `label file ${file} is empty; expected a header line and a line per image`, { files: [file] })
  const columns = header.fields.map((c) => c.trim())
  return {
    columns,
    next: () => {
      const row = read()
      if (row && row.fields.length !== columns.length) {
        throw corrupt(
          file,
          row.line,
          `${row.fields.length} field(s), but the header (line ${header.line}) has ${columns.length}: ${columns.join(', ')}` +
            (delimiter === '\t' ? '' : '; a field holding a comma must be quoted ("a, b")'),
        )
      }
      return row
    },
  }
}

/** A JSON array of records, each with the line it starts on. */
function jsonRecords(file: string, text: string): { line: number; value: unknown }[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw corrupt(file, lineOfJsonError(text, err as Error), `invalid JSON (${(err as Error).message}); expected an array of records`, err)
  }
  if (!Array.isArray(parsed)) throw corrupt(file, 1, 'expected a JSON array of records ([{"file": "...", "label": "..."}, ...])')
  const lines = elementLines(text)
  return parsed.map((value, i) => ({ line: lines[i] ?? 1, value }))
}

function jsonLines(file: string, text: string): { line: number; value: unknown }[] {
  const out: { line: number; value: unknown }[] = []
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue
    try {
      out.push({ line: i + 1, value: JSON.parse(line) })
    } catch (err) {
      throw corrupt(file, i + 1, `invalid JSON (${(err as Error).message}); expected one record per line`, err)
    }
  }
  return out
}

function objectTable(file: string, records: { line: number; value: unknown }[]): LabelTable {
  const columns: string[] = []
  const index = new Map<string, number>()
  for (const { line, value } of records) {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw corrupt(file, line, `expected a record ({"file": "...", "label": "..."}), got ${JSON.stringify(value)}`)
    for (const key of Object.keys(value)) {
      if (index.has(key)) continue
      index.set(key, columns.length)
      columns.push(key)
    }
  }
  let at = 0
  return {
    columns,
    next: () => {
      const record = records[at++]
      if (!record) return undefined
      const fields: unknown[] = new Array(columns.length).fill(undefined)
      for (const [key, v] of Object.entries(record.value as object)) fields[index.get(key)!] = v
      return { line: record.line, fields }
    },
  }
}

/**
 * The line each element of the top-level JSON array starts on (JSON.parse gives no positions): a scan that skips
 * strings and counts the depth of brackets and braces.
 */
function elementLines(text: string): number[] {
  const lines: number[] = []
  let line = 1
  let depth = 0
  let inString = false
  let expecting = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (ch === '\n') line++
    if (inString) {
      if (ch === '\\') i++
      else if (ch === '"') inString = false
      continue
    }
    if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') continue
    if (depth === 1 && expecting && ch !== ']') {
      lines.push(line)
      expecting = false
    }
    if (ch === '"') inString = true
    else if (ch === '[' || ch === '{') {
      depth++
      if (depth === 1) expecting = true
    } else if (ch === ']' || ch === '}') depth--
    else if (ch === ',' && depth === 1) expecting = true
  }
  return lines
}

/** The line of a JSON.parse error, from the position V8 reports ("... at position 42"); 1 when it names none. */
function lineOfJsonError(text: string, err: Error): number {
  const at = /position (\d+)/.exec(err.message)
  if (!at) return 1
  return text.slice(0, Number(at[1])).split('\n').length
}
