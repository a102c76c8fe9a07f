// Command-line flags from an option table: `--kebab-case` per option, booleans as bare flags (and `--no-x` for
// those on by default), values parsed and then checked by the same declarations as the API, and --help text.
import { parseArgs } from 'node:util'
import { InputError } from '../errors.ts'
import { flagName, type OptionDecl, type OptionGroup, type OptionTable } from '../options/option.ts'

/** A flag a command has besides its table (`--help`, `--summary`). */
export interface ExtraFlag {
  name: string
  boolean: boolean
  help: string
  metavar?: string
  short?: string
}

const GROUP_TITLES: Record<OptionGroup, string> = {
  data: 'data',
  model: 'model',
  optimization: 'optimization',
  recipe: 'recipe (schedules, smoothing, averaging)',
  evaluation: 'evaluation',
  output: 'early stopping and output',
  distributed: 'more than one process (data-parallel)',
}

type Decl = OptionDecl<unknown, unknown>

function entries(table: OptionTable): [string, Decl][] {
  return (Object.entries(table) as [string, Decl][]).filter(([, d]) => d.cli)
}

/** Whether a boolean option defaults to true, so its flag is `--no-<name>`. */
function onByDefault(decl: Decl): boolean {
  return decl.boolean && decl.fallback({}) === true
}

/**
 * Parses `argv` against `table` and `extra` flags. Returns the given options (API names, CLI text already parsed
 * into values; absent flags left out), the extra flags' values and the positional arguments. Unknown flags and
 * malformed values are InputErrors naming the flag.
 */
export function parseFlags(
  table: OptionTable,
  argv: string[],
  extra: ExtraFlag[] = [],
): { options: Record<string, unknown>; extra: Record<string, string | boolean | undefined>; positionals: string[] } {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string }> = {}
  for (const [key, decl] of entries(table)) {
    const flag = flagName(key)
    spec[onByDefault(decl) ? `no-${flag}` : flag] = { type: decl.boolean ? 'boolean' : 'string' }
  }
  for (const e of extra) spec[e.name] = { type: e.boolean ? 'boolean' : 'string', ...(e.short ? { short: e.short } : {}) }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: true })
  } catch (err) {
    throw new InputError('INVALID_OPTION', (err as Error).message, { cause: err })
  }
  const values = parsed.values as Record<string, string | boolean | undefined>
  const options: Record<string, unknown> = {}
  for (const [key, decl] of entries(table)) {
    const flag = flagName(key)
    if (onByDefault(decl)) {
      if (values[`no-${flag}`]) options[key] = false
      continue
    }
    const raw = values[flag]
    if (raw === undefined) continue
    options[key] = decl.boolean ? raw : decl.parse(raw as string, flag)
  }
  const extraValues = Object.fromEntries(extra.map((e) => [e.name, values[e.name]]))
  return { options, extra: extraValues, positionals: parsed.positionals }
}

function row(flag: string, help: string, shownDefault: string | undefined): string {
  const left = `  ${flag}`
  const right = shownDefault === undefined ? help : `${help} (default: ${shownDefault})`
  return left.length >= 30 ? `${left}\n${' '.repeat(30)}${right}` : `${left.padEnd(30)}${right}`
}

/** --help text: `usage`, then each group's flags with their help and defaults, then `extra`. */
export function helpText(usage: string, table: OptionTable, extra: ExtraFlag[] = []): string {
  const groups = new Map<OptionGroup, string[]>()
  for (const [key, decl] of entries(table)) {
    const flag = onByDefault(decl) ? `--no-${flagName(key)}` : `--${flagName(key)}${decl.metavar ? ` ${decl.metavar}` : ''}`
    const shown = onByDefault(decl) || (decl.boolean && decl.shownDefault === 'false') ? undefined : decl.shownDefault
    const list = groups.get(decl.group) ?? []
    list.push(row(flag, decl.help, shown))
    groups.set(decl.group, list)
  }
  const parts = [usage.trimEnd(), '']
  for (const group of Object.keys(GROUP_TITLES) as OptionGroup[]) {
    const list = groups.get(group)
    if (!list) continue
    parts.push(GROUP_TITLES[group], ...list, '')
  }
  if (extra.length > 0) {
    parts.push('other', ...extra.map((e) => row(`--${e.name}${e.metavar ? ` ${e.metavar}` : ''}`, e.help, undefined)), '')
  }
  return parts.join('\n')
}
