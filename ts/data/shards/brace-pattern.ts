// Shard names from patterns: brace expansion for reading (`train-{000000..000099}.tar`, as WebDataset and bash
// write it) and printf-style `%06d` for writing, where the number of shards is only known at the end.
import { InputError } from '../../errors.ts'

/** Where a brace group starts in the pattern, for error messages. */
interface Group {
  kind: 'group'
  /** Each alternative is itself a sequence (lists may nest ranges: `{a,b{0..1}}`). */
  alternatives: Part[][]
}
type Part = { kind: 'text'; text: string } | Group

/** More names than any real shard set has; a typo like `{0..99999999}` fails instead of filling memory. */
const MAX_NAMES = 1_000_000

function fail(pattern: string, what: string): InputError {
  return new InputError('INVALID_OPTION', `shard pattern ${JSON.stringify(pattern)}: ${what}`)
}

/**
 * Expands brace groups: zero-padded numeric ranges `{000..099}` (padding kept when either end has a leading zero,
 * as bash does; descending ranges count down), lists `{a,b,c}`, several groups (the first varies slowest) and
 * nested groups. Text without braces is one name. A group that is neither a range nor a list, unbalanced braces
 * and an empty expansion are errors naming the pattern.
 *
 * @example
 * expandBraces('shards/train-{000000..000002}.tar') // ['shards/train-000000.tar', 'shards/train-000001.tar', 'shards/train-000002.tar']
 * expandBraces('{train,val}-{0..1}.tar') // ['train-0.tar', 'train-1.tar', 'val-0.tar', 'val-1.tar']
 */
export function expandBraces(pattern: string): string[] {
  let pos = 0
  // Parses a sequence up to `}` or `,` at this depth (or the end at depth 0).
  const sequence = (depth: number): Part[] => {
    const parts: Part[] = []
    let text = ''
    while (pos < pattern.length) {
      const ch = pattern[pos]!
      if (ch === '{') {
        if (text) parts.push({ kind: 'text', text })
        text = ''
        parts.push(group(depth + 1))
      } else if (ch === '}' || ch === ',') {
        if (depth === 0) {
          if (ch === '}') throw fail(pattern, `"}" at position ${pos} has no matching "{"`)
          text += ch
          pos++
        } else break
      } else {
        text += ch
        pos++
      }
    }
    if (text) parts.push({ kind: 'text', text })
    return parts
  }
  const group = (depth: number): Group => {
    const start = pos
    pos++ // '{'
    const alternatives: Part[][] = [sequence(depth)]
    while (pattern[pos] === ',') {
      pos++
      alternatives.push(sequence(depth))
    }
    if (pattern[pos] !== '}') throw fail(pattern, `"{" at position ${start} is never closed`)
    pos++
    if (alternatives.length > 1) return { kind: 'group', alternatives }
    // One alternative: a numeric range, or a mistake (bash would keep it literally; a shard list never wants that).
    const only = alternatives[0]!
    const body = pattern.slice(start + 1, pos - 1)
    const range = only.length === 1 && only[0]!.kind === 'text' ? /^(-?\d+)\.\.(-?\d+)$/.exec(body) : null
    if (!range) {
      throw fail(pattern, `the group {${body}} at position ${start} is neither a numeric range like {000000..000099} nor a list like {a,b}`)
    }
    return { kind: 'group', alternatives: rangeValues(pattern, range[1]!, range[2]!).map((text) => [{ kind: 'text', text }]) }
  }

  const parts = sequence(0)
  const names = expandParts(pattern, parts)
  if (names.length === 0) throw fail(pattern, 'expands to no names')
  return names
}

function rangeValues(pattern: string, from: string, to: string): string[] {
  const a = Number(from)
  const b = Number(to)
  const count = Math.abs(b - a) + 1
  if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || count > MAX_NAMES) {
    throw fail(pattern, `the range {${from}..${to}} is too large (at most ${MAX_NAMES.toLocaleString('en-US')} names)`)
  }
  const padded = (s: string) => /^-?0\d/.test(s)
  const width = padded(from) || padded(to) ? Math.max(from.length, to.length) : 0
  const step = a <= b ? 1 : -1
  const out: string[] = []
  for (let v = a; out.length < count; v += step) {
    const digits = String(Math.abs(v)).padStart(v < 0 ? width - 1 : width, '0')
    out.push(v < 0 ? `-${digits}` : digits)
  }
  return out
}

function expandParts(pattern: string, parts: Part[]): string[] {
  let names = ['']
  for (const part of parts) {
    const options = part.kind === 'text' ? [part.text] : part.alternatives.flatMap((alt) => expandParts(pattern, alt))
    if (names.length * options.length > MAX_NAMES) throw fail(pattern, `expands to more than ${MAX_NAMES.toLocaleString('en-US')} names`)
    names = names.flatMap((prefix) => options.map((o) => prefix + o))
  }
  return names
}

/** A printf-style output pattern: the text around one `%d`/`%0Nd`. */
export interface NumberedPattern {
  before: string
  after: string
  /** Digits the number is zero-padded to; 0 for none. */
  width: number
}

/**
 * Parses an output pattern with exactly one `%d` or `%0Nd` (`shards/train-%06d.tar`), as WebDataset's
 * `ShardWriter` takes it. `%%` is a literal percent sign.
 */
export function parseNumberedPattern(pattern: string): NumberedPattern {
  const found = [...pattern.matchAll(/%(%|0?(\d*)d)/g)].filter((m) => m[1] !== '%')
  if (found.length !== 1) {
    const hint = /\{[^}]*\.\.[^}]*\}/.test(pattern)
      ? ` Brace ranges name shards to read; for writing, put one %06d where the number goes (e.g. ${JSON.stringify(pattern.replace(/\{[^}]*\}/, '%06d'))}): the writer makes as many shards as the data needs and prints the brace pattern to read them with.`
      : ' Expected one %06d (or %d) where the shard number goes, e.g. "shards/train-%06d.tar".'
    throw fail(pattern, `has ${found.length} number placeholders.${hint}`)
  }
  const m = found[0]!
  const literal = (s: string) => s.replaceAll('%%', '%')
  return {
    before: literal(pattern.slice(0, m.index)),
    after: literal(pattern.slice(m.index! + m[0].length)),
    width: m[2] ? Number(m[2]) : 0,
  }
}

/** The name of shard `n` under a numbered pattern. */
export function numberedName(p: NumberedPattern, n: number): string {
  return `${p.before}${String(n).padStart(p.width, '0')}${p.after}`
}

/** The brace pattern that reads back shards `0..count-1` of a numbered pattern (`train-{000000..000004}.tar`). */
export function bracePatternFor(p: NumberedPattern, count: number): string {
  if (count === 1) return numberedName(p, 0)
  const first = String(0).padStart(p.width, '0')
  const last = String(count - 1).padStart(p.width, '0')
  // Without padding, {0..12} expands unpadded as well, which is what `%d` wrote.
  return `${escapeBraces(p.before)}{${first}..${last}}${escapeBraces(p.after)}`
}

function escapeBraces(s: string): string {
  if (/[{},]/.test(s))
    throw new InputError(
      'INVALID_OPTION',
      `shard pattern text ${JSON.stringify(s)}: braces and commas around the number cannot be read back by a brace pattern`,
    )
  return s
}

/**
 * Where a shard set's index (`<stem>.shards.json`) lives: beside the shards, named after the pattern's text up to
 * its first `{` or `%` without trailing separators, so the writing pattern `shards/train-%06d.tar` and the reading
 * pattern `shards/train-{000000..000004}.tar` find the same `shards/train.shards.json`.
 */
export function indexPathFor(pattern: string): string {
  const cut = pattern.search(/[{%]/)
  const head = cut < 0 ? pattern.replace(/\.tar$/i, '') : pattern.slice(0, cut)
  const slash = head.lastIndexOf('/')
  const dir = slash < 0 ? '' : head.slice(0, slash + 1)
  const stem = head.slice(slash + 1).replace(/[-_.]+$/, '') || 'shards'
  return `${dir}${stem}.shards.json`
}
