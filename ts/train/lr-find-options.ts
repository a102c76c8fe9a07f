// The options of a learning-rate sweep, declared once: `findLearningRate()` and `convkit lr-find` take them as they
// are, train() as its `lrFind` option (for `lr: 'find'`).
import { InputError } from '../errors.ts'
import { bad, int, number, type InputsOf, type ResolvedOf } from '../options/option.ts'

export const LR_FIND_OPTIONS = {
  /** The rate of the sweep's first batch. @default 1e-7 */
  startLr: number({
    help: "the learning-rate sweep's first rate",
    group: 'optimization',
    default: 1e-7,
    ok: (v) => v > 0,
    expected: 'a number > 0',
  }),
  /** The rate of the sweep's last batch, unless the loss diverges before. @default 10 */
  endLr: number({
    help: "the learning-rate sweep's last rate",
    group: 'optimization',
    default: 10,
    ok: (v) => v > 0,
    expected: 'a number > 0',
  }),
  /** Training batches the sweep runs (fewer when the loss diverges). @default 100 */
  steps: int({ help: 'training batches of the learning-rate sweep', group: 'optimization', default: 100, min: 2 }),
} as const

/** What callers may pass: any of LR_FIND_OPTIONS. */
export type LrFindOptions = InputsOf<typeof LR_FIND_OPTIONS>

/** A sweep's settings, every default applied. */
export type LrFindSettings = ResolvedOf<typeof LR_FIND_OPTIONS>

/**
 * Applies the defaults and checks each setting, and that the rates rise. With a `prefix` (`lrFind.`), the settings
 * are an option of their own, an object or its JSON text, that holds nothing else. Throws an InputError naming the
 * first bad setting.
 */
export function resolveLrFind(given: unknown, prefix = ''): LrFindSettings {
  const option = prefix.replace(/\.$/, '')
  let parsed = given
  if (prefix && typeof given === 'string') {
    try {
      parsed = JSON.parse(given)
    } catch {
      throw bad(option, 'JSON such as {"steps":50}', given)
    }
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw bad(option, '{ startLr?, endLr?, steps? }', given)
  const values = parsed as Record<string, unknown>
  const unknown = Object.keys(values).filter((k) => !Object.hasOwn(LR_FIND_OPTIONS, k))
  if (prefix && unknown.length > 0) throw bad(option, `only the keys ${Object.keys(LR_FIND_OPTIONS).join(', ')}`, unknown)
  const out: Record<string, unknown> = {}
  for (const [key, decl] of Object.entries(LR_FIND_OPTIONS)) {
    const v = values[key]
    out[key] = v === undefined ? decl.fallback(out) : (decl.check as (v: unknown, field: string) => unknown)(v, `${prefix}${key}`)
  }
  const settings = out as LrFindSettings
  if (settings.startLr >= settings.endLr) {
    throw new InputError(
      'INVALID_OPTION',
      `option ${prefix}startLr: expected a rate below ${prefix}endLr (${settings.endLr}), got ${settings.startLr}`,
    )
  }
  return settings
}
