// An RFC 4180 reader for comma- and tab-separated text: quoted fields (with delimiters, doubled quotes and line
// breaks inside), CRLF or LF line ends, a leading byte-order mark; each record keeps the line it starts on.

/** One record: its fields, and the 1-based line of the text it starts on (a quoted field may span lines). */
export interface DelimitedRecord {
  fields: string[]
  line: number
}

/** Malformed text: `line` is where the fault is, `message` says what was expected there. */
export class DelimitedSyntaxError extends Error {
  readonly line: number

  constructor(line: number, message: string) {
    super(message)
    this.line = line
  }
}

const QUOTE = 0x22
const CR = 0x0d

/**
 * Reads `text` one record at a time: fields separated by `delimiter`. A field that starts with `"` is quoted: it ends
 * at the next lone `"`, `""` inside it is one `"`, and delimiters and line breaks inside it are text. A `"` elsewhere
 * in an unquoted field is kept as text, as spreadsheets write it. Blank lines are skipped (files often end with one);
 * whitespace around fields is kept. An unterminated quote, or text after a closing quote, is a `DelimitedSyntaxError`.
 * One record at a time because a label file's records are read into rows as they come: 60 000 records held at once
 * cost more in garbage collection than reading them.
 *
 * @example
 * const reader = new DelimitedReader('file,label\n"a, b.jpg",cat\n', ',')
 * reader.next() // { fields: ['file', 'label'], line: 1 }
 * reader.next() // { fields: ['a, b.jpg', 'cat'], line: 2 }
 * reader.next() // undefined
 */
export class DelimitedReader {
  private readonly text: string
  private readonly delimiter: string
  private i: number
  private line = 1

  constructor(text: string, delimiter: string) {
    this.text = text
    this.delimiter = delimiter
    this.i = text.charCodeAt(0) === 0xfeff ? 1 : 0
  }

  /** The next record, or undefined after the last. */
  next(): DelimitedRecord | undefined {
    const { text, delimiter } = this
    const n = text.length
    while (this.i < n) {
      const start = this.line
      let i = this.i
      // Nearly every line of a real label file has no quotes and ends in LF or CRLF: split it whole.
      if (text.charCodeAt(i) !== QUOTE) {
        const lf = text.indexOf('\n', i)
        const end = lf < 0 ? n : lf
        const body = text.charCodeAt(end - 1) === CR ? end - 1 : end
        const whole = text.slice(i, body)
        if (!whole.includes('"') && !whole.includes('\r')) {
          this.i = lf < 0 ? n : lf + 1
          this.line++
          if (whole === '') continue
          return { fields: whole.split(delimiter), line: start }
        }
      }
      const fields: string[] = []
      // One record: fields until a line break outside quotes, or the end.
      for (;;) {
        let field: string
        if (text[i] === '"') {
          const opened = this.line
          let value = ''
          let from = i + 1
          for (;;) {
            const quote = text.indexOf('"', from)
            if (quote < 0) throw new DelimitedSyntaxError(opened, 'a quoted field is never closed (expected a closing ")')
            value += text.slice(from, quote)
            this.line += countLineBreaks(text, from, quote)
            if (text[quote + 1] === '"') {
              value += '"'
              from = quote + 2
              continue
            }
            i = quote + 1
            break
          }
          const next = text[i]
          if (i < n && next !== delimiter && next !== '\n' && next !== '\r') {
            throw new DelimitedSyntaxError(this.line, `text after a closing quote: expected ${describe(delimiter)} or the end of the line`)
          }
          field = value
        } else {
          let end = i
          while (end < n && text[end] !== delimiter && text[end] !== '\n' && text[end] !== '\r') end++
          field = text.slice(i, end)
          i = end
        }
        fields.push(field)
        if (i < n && text[i] === delimiter) {
          i++
          continue
        }
        break
      }
      // The line break ending the record: CRLF, LF or a lone CR.
      if (text[i] === '\r') i++
      if (text[i] === '\n') i++
      this.i = i
      this.line++
      if (!(fields.length === 1 && fields[0] === '')) return { fields, line: start }
    }
    return undefined
  }
}

/**
 * Every record of `text` (see `DelimitedReader`), at once.
 *
 * @example
 * parseDelimited('file,label\r\n"a, b.jpg","say ""hi"""\r\n', ',')
 * // [{ fields: ['file', 'label'], line: 1 }, { fields: ['a, b.jpg', 'say "hi"'], line: 2 }]
 */
export function parseDelimited(text: string, delimiter: string): DelimitedRecord[] {
  const reader = new DelimitedReader(text, delimiter)
  const records: DelimitedRecord[] = []
  for (let record = reader.next(); record; record = reader.next()) records.push(record)
  return records
}

function countLineBreaks(text: string, from: number, to: number): number {
  let count = 0
  for (let k = from; k < to; k++) {
    // CRLF counts once: its CR is counted only when no LF follows.
    if (text[k] === '\n' || (text[k] === '\r' && text[k + 1] !== '\n')) count++
  }
  return count
}

function describe(delimiter: string): string {
  return delimiter === '\t' ? 'a tab' : delimiter === ',' ? 'a comma' : JSON.stringify(delimiter)
}
