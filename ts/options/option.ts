// Option declarations: one object per option carries its checks, its default, its CLI flag and help, and whether a
// resumed run may change it. Tables of them (`train-options.ts`) derive the types, validation, defaults and --help.
import { InputError } from '../errors.ts'

/** Where an option appears in --help. */
export type OptionGroup = 'data' | 'model' | 'optimization' | 'recipe' | 'evaluation' | 'output' | 'distributed'

/**
 * One option: `In` is what callers pass, `Out` what the resolved config holds. `check` validates a given value and
 * normalizes it; `fallback` gives the default from the options resolved before it (declaration order).
 */
export interface OptionDecl<In, Out = In> {
  readonly check: (value: In, field: string) => Out
  readonly fallback: (resolved: Record<string, unknown>) => Out
  /** Parses the CLI's text for this option; booleans are flags and take none. */
  readonly parse: (text: string, flag: string) => In
  readonly boolean: boolean
  /** `<n>`, `<x>`, `<name>`… in --help. */
  readonly metavar: string
  readonly help: string
  /** The default as --help shows it. */
  readonly shownDefault: string | undefined
  readonly group: OptionGroup
  /** `fixed`: a resumed run keeps the stored value and refuses another; `override`: a new value replaces it. */
  readonly onResume: 'fixed' | 'override'
  /** False for options that steer one invocation (output folder, quiet) and are not part of a run's config. */
  readonly stored: boolean
  /** Not on the command line (functions, objects only code can pass). */
  readonly cli: boolean
}

interface Common<Out> {
  help: string
  group: OptionGroup
  /** A value, or a function of the options resolved before this one. */
  default: Out | ((resolved: Record<string, unknown>) => Out)
  /** How --help shows the default, when it is not just the value. */
  shownDefault?: string
  onResume?: 'fixed' | 'override'
  stored?: boolean
  cli?: boolean
  metavar?: string
}

export function bad(field: string, expected: string, got: unknown): InputError {
  const shown = typeof got === 'number' && !Number.isFinite(got) ? String(got) : JSON.stringify(got)
  return new InputError('INVALID_OPTION', `option ${field}: expected ${expected}, got ${shown}`)
}

function declare<In, Out>(
  common: Common<Out>,
  rest: Pick<OptionDecl<In, Out>, 'check' | 'parse' | 'boolean'> & { metavar: string },
): OptionDecl<In, Out> {
  const def = common.default
  const fallback = typeof def === 'function' ? (def as (r: Record<string, unknown>) => Out) : () => def
  return {
    ...rest,
    fallback,
    metavar: common.metavar ?? rest.metavar,
    help: common.help,
    shownDefault: common.shownDefault ?? (typeof def === 'function' || def === null || def === undefined ? undefined : String(def)),
    group: common.group,
    onResume: common.onResume ?? 'fixed',
    stored: common.stored ?? true,
    cli: common.cli ?? true,
  }
}

function parseNumber(text: string, flag: string): number {
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n))
    throw new InputError('INVALID_OPTION', `--${flag}: expected a number, got ${JSON.stringify(text)}`)
  return n
}

/** An integer of at least `min` (and at most `max`, where given). */
export function int(common: Common<number> & { min: number; max?: number }): OptionDecl<number> {
  const { min, max = Number.POSITIVE_INFINITY } = common
  return declare(common, {
    boolean: false,
    metavar: '<n>',
    parse: parseNumber,
    check: (v, field) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        throw bad(field, max === Number.POSITIVE_INFINITY ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, v)
      }
      return v
    },
  })
}

/** An integer of at least `min`, or null for "off". */
export function optionalInt(common: Common<number | null> & { min: number }): OptionDecl<number | null | undefined, number | null> {
  return declare<number | null | undefined, number | null>(common, {
    boolean: false,
    metavar: '<n>',
    parse: parseNumber,
    check: (v, field) => {
      if (v === null || v === undefined) return null
      if (typeof v !== 'number' || !Number.isInteger(v) || v < common.min) throw bad(field, `an integer >= ${common.min}`, v)
      return v
    },
  })
}

/** A finite number that passes `ok`, described by `expected` ("a number > 0"). */
export function number(common: Common<number> & { ok: (v: number) => boolean; expected: string }): OptionDecl<number> {
  return declare(common, {
    boolean: false,
    metavar: '<x>',
    parse: parseNumber,
    check: (v, field) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || !common.ok(v)) throw bad(field, common.expected, v)
      return v
    },
  })
}

/** A finite number that passes `ok` (described by `expected`), or null for "off". */
export function optionalNumber(
  common: Common<number | null> & { ok: (v: number) => boolean; expected: string },
): OptionDecl<number | null | undefined, number | null> {
  return declare<number | null | undefined, number | null>(common, {
    boolean: false,
    metavar: '<x>',
    parse: parseNumber,
    check: (v, field) => {
      if (v === null || v === undefined) return null
      if (typeof v !== 'number' || !Number.isFinite(v) || !common.ok(v)) throw bad(field, common.expected, v)
      return v
    },
  })
}

/**
 * A finite number that passes `ok` (described by `expected`), or the word `word` that lets something else pick it
 * (`lr: 'find'`). The CLI's text is the word or a number.
 */
export function numberOr<const W extends string>(
  word: W,
  common: Common<number | W> & { ok: (v: number) => boolean; expected: string },
): OptionDecl<number | W> {
  const either = `${common.expected} or '${word}'`
  return declare<number | W, number | W>(common, {
    boolean: false,
    metavar: `<x|${word}>`,
    parse: (text, flag) => {
      if (text === word) return word
      const n = Number(text)
      if (text.trim() === '' || Number.isNaN(n))
        throw new InputError('INVALID_OPTION', `--${flag}: expected ${either}, got ${JSON.stringify(text)}`)
      return n
    },
    check: (v, field) => {
      if (v === word) return v
      if (typeof v !== 'number' || Number.isNaN(v)) throw bad(field, either, v)
      // A number out of range is told the range alone: the word is not what was meant.
      if (!Number.isFinite(v) || !common.ok(v)) throw bad(field, common.expected, v)
      return v
    },
  })
}

export function boolean(common: Common<boolean>): OptionDecl<boolean> {
  return declare(common, {
    boolean: true,
    metavar: '',
    parse: () => true,
    check: (v, field) => {
      if (typeof v !== 'boolean') throw bad(field, 'true or false', v)
      return v
    },
  })
}

/** One of `values`. */
export function choice<const V extends string>(values: readonly V[], common: Common<V>): OptionDecl<V> {
  const expected = values
    .map((v) => `'${v}'`)
    .join(', ')
    .replace(/, ([^,]*)$/, ' or $1')
  return declare(common, {
    boolean: false,
    metavar: `<${values.join('|')}>`,
    parse: (text) => text as V,
    check: (v, field) => {
      if (!values.includes(v)) throw bad(field, expected, v)
      return v
    },
  })
}

/** Free text (a path, a metric name); `ok` may narrow it (and its type, as a device name). */
export function text<T extends string = string>(common: Common<T> & { ok?: (v: string) => boolean; expected?: string }): OptionDecl<T> {
  return declare<T, T>(common, {
    boolean: false,
    metavar: '<text>',
    parse: (t) => t as T,
    check: (v, field) => {
      if (typeof v !== 'string' || v === '' || (common.ok && !common.ok(v))) throw bad(field, common.expected ?? 'a non-empty string', v)
      return v
    },
  })
}

/** Free text or nothing. */
export function optionalText(common: Common<string | null>): OptionDecl<string | null | undefined, string | null> {
  return declare<string | null | undefined, string | null>(common, {
    boolean: false,
    metavar: '<text>',
    parse: (t) => t,
    check: (v, field) => {
      if (v === null || v === undefined) return null
      if (typeof v !== 'string' || v === '') throw bad(field, 'a non-empty string', v)
      return v
    },
  })
}

/** `[height, width]` of positive integers; `HxW` on the command line. */
export function size(common: Common<[number, number]>): OptionDecl<[number, number]> {
  return declare(common, {
    boolean: false,
    metavar: '<h>x<w>',
    parse: (t, flag) => {
      const m = /^(\d+)x(\d+)$/.exec(t)
      if (!m) throw new InputError('INVALID_OPTION', `--${flag}: expected <height>x<width> such as 32x32, got ${JSON.stringify(t)}`)
      return [Number(m[1]), Number(m[2])]
    },
    check: (v, field) => {
      if (!Array.isArray(v) || v.length !== 2 || !v.every((d) => Number.isInteger(d) && d > 0))
        throw bad(field, '[height, width] of positive integers', v)
      return [v[0], v[1]]
    },
  })
}

/** `[height, width]`, or null for "follow another option". */
export function optionalSize(
  common: Common<[number, number] | null>,
): OptionDecl<[number, number] | null | undefined, [number, number] | null> {
  const inner = size({ ...common, default: [1, 1] })
  return declare<[number, number] | null | undefined, [number, number] | null>(common, {
    boolean: false,
    metavar: '<h>x<w>',
    parse: inner.parse,
    check: (v, field) => (v === null || v === undefined ? null : inner.check(v, field)),
  })
}

/**
 * A JSON value checked by `validate` (which throws naming the field); JSON text on the command line. For
 * structured options such as parameter groups.
 */
export function json<T>(common: Common<T>, validate: (v: unknown, field: string) => T): OptionDecl<T> {
  return declare(common, {
    boolean: false,
    metavar: '<json>',
    parse: (t, flag) => {
      try {
        return JSON.parse(t) as T
      } catch (err) {
        throw new InputError('INVALID_OPTION', `--${flag}: expected JSON, got ${JSON.stringify(t)} (${(err as Error).message})`)
      }
    },
    check: validate,
  })
}

/** A value only code can pass (a spec object, a function); `validate` checks it. */
export function value<In, Out = In>(common: Common<Out>, validate: (v: In, field: string) => Out): OptionDecl<In, Out> {
  return declare({ ...common, cli: common.cli ?? false }, { boolean: false, metavar: '<value>', parse: (t) => t as In, check: validate })
}

/** A table of options, keyed by their API names. */
export type OptionTable = Record<string, OptionDecl<never, unknown> | OptionDecl<any, any>>

/** What callers pass for each option of a table (all optional). */
export type InputsOf<T extends OptionTable> = { -readonly [K in keyof T]?: T[K] extends OptionDecl<infer In, any> ? In : never }

/** What a resolved config holds for each option of a table. */
export type ResolvedOf<T extends OptionTable> = { -readonly [K in keyof T]: T[K] extends OptionDecl<any, infer Out> ? Out : never }

/** `camelCase` → `camel-case`, the CLI spelling of an option. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}

/**
 * Applies defaults and checks every option of `table` in declaration order; throws an InputError naming the first bad
 * one. Options given as `undefined` take their defaults.
 */
export function resolveTable<T extends OptionTable>(table: T, given: Record<string, unknown>): ResolvedOf<T> {
  const resolved: Record<string, unknown> = {}
  for (const [key, decl] of Object.entries(table) as [string, OptionDecl<unknown, unknown>][]) {
    const v = given[key]
    resolved[key] = v === undefined ? decl.fallback(resolved) : decl.check(v, key)
  }
  return resolved as ResolvedOf<T>
}
