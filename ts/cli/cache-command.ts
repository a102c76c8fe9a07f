// `convkit cache ls|prune` (and `npm run cache -- …`): what the dataset cache holds, and making it smaller.
import { InputError } from '../errors.ts'
import { listCache, parseSize, pruneCache, type CacheEntry } from '../data/cache-index.ts'
import { boolean, optionalText, text, type OptionTable } from '../options/option.ts'
import { formatBytes } from '../util/progress.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'

const CACHE_OPTIONS = {
  cacheDir: optionalText({
    help: 'the dataset cache',
    group: 'data',
    default: null,
    shownDefault: '~/.cache/convkit/datasets',
    metavar: '<dir>',
  }),
  max: text({
    help: 'prune: evict least recently used entries until the cache fits this size (2G, 500M, 0, none)',
    group: 'data',
    default: '2G',
    shownDefault: '$CONVKIT_CACHE_MAX, else 10G',
    metavar: '<size>',
    ok: (v) => parseSize(v) !== undefined,
    expected: 'a size such as 2G, 500M or 1073741824',
  }),
  all: boolean({ help: 'prune: remove every entry not in use', group: 'data', default: false }),
} satisfies OptionTable

const EXTRA: ExtraFlag[] = [
  { name: 'json', boolean: true, help: 'ls: the listing as one JSON object' },
  { name: 'help', boolean: true, help: 'this text', short: 'h' },
]

export const CACHE_HELP = helpText(
  `List or prune the dataset cache: decoded image folders, extracted archives, downloads and the content hashes that
key them (not libtorch, the Python venv or pretrained weights, which live beside it). After each write the cache is
held under its limit, least recently used entries going first: $CONVKIT_CACHE_MAX (e.g. 5G, or none), else 10G.

usage: convkit cache ls [--cache-dir <dir>] [--json]
       convkit cache prune [--max <size> | --all] [--cache-dir <dir>]
       npm run cache -- ls`,
  CACHE_OPTIONS,
  EXTRA,
)

function when(ms: number): string {
  const d = new Date(ms)
  const two = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`
}

function table(entries: CacheEntry[]): string[] {
  const rows = entries.map((e) => [e.kind, formatBytes(e.bytes), when(e.lastUsed), e.path, e.source])
  const head = ['kind', 'size', 'last used', 'entry', 'source']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (r: string[]) =>
    r.map((c, i) => (i === 1 ? c.padStart(widths[i]!) : i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')
  return [line(head), ...rows.map(line)]
}

export async function cacheCommand(argv: string[]): Promise<number> {
  const { options, extra, positionals } = parseFlags(CACHE_OPTIONS, argv, EXTRA)
  if (extra.help) {
    console.log(CACHE_HELP)
    return 0
  }
  const [action, ...more] = positionals
  if (action !== 'ls' && action !== 'prune') {
    throw new InputError(
      'INVALID_OPTION',
      `${action === undefined ? 'no action given' : `unknown action ${JSON.stringify(action)}`}: expected convkit cache ls or convkit cache prune (see --help)`,
    )
  }
  if (more.length > 0)
    throw new InputError('INVALID_OPTION', `unexpected argument ${JSON.stringify(more[0])} after cache ${action} (see --help)`)
  const cacheDir = (options.cacheDir as string | undefined) ?? undefined

  if (action === 'ls') {
    if (options.max !== undefined || options.all)
      throw new InputError('INVALID_OPTION', '--max and --all belong to convkit cache prune, not ls')
    const listing = await listCache({ cacheDir })
    if (extra.json) {
      console.log(JSON.stringify(listing))
      return 0
    }
    const limit = Number.isFinite(listing.maxBytes) ? formatBytes(listing.maxBytes) : 'none'
    console.log(`${listing.dir}: ${formatBytes(listing.totalBytes)} in ${listing.entries.length} entries (limit ${limit})`)
    if (listing.entries.length > 0) for (const line of table(listing.entries)) console.log(line)
    return 0
  }

  if (options.all && options.max !== undefined) throw new InputError('INVALID_OPTION', '--max and --all: pass one of them')
  const maxBytes = options.max === undefined ? undefined : parseSize(CACHE_OPTIONS.max.check(options.max as string, 'max'))
  const result = await pruneCache({ cacheDir, maxBytes, all: options.all === true })
  const freed = result.removed.reduce((sum, e) => sum + e.bytes, 0)
  if (result.removed.length > 0) for (const line of table(result.removed)) console.log(line)
  for (const k of result.kept) console.log(`kept ${k.path} (${formatBytes(k.bytes)}): ${k.why}`)
  console.log(`removed ${result.removed.length} entries (${formatBytes(freed)}); the cache holds ${formatBytes(result.totalBytes)}`)
  return 0
}
