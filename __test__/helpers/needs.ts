// Tests that need something outside the project (Chromium, a Python with torch, Debian's Fashion-MNIST):
// where it is missing they are reported as skipped, never as passed; under CI (CI=1) a missing one fails them.
import test, { type TestFn } from 'ava'

/** Whether the run is CI's: `.ci/run` sets CI=1, and there every dependency must be present. */
export const UNDER_CI = process.env.CI === '1' || process.env.CI === 'true'

/** The one command that installs every reference the tests compare against (what `.ci/run` runs too). */
export const SETUP_COMMAND = 'npm run test:setup'

/** Ava's test modifiers that declare a test; hooks (`before`, `after`, …) are left out on purpose. */
const DECLARING = new Set(['serial', 'only', 'skip', 'failing'])

/**
 * A `test` that declares each test through `declare` whatever modifier chain the spec uses (`t.serial(...)`,
 * `t.serial.skip(...)`): a plain function would lack `.serial` and throw at load time, failing the whole file.
 */
function declaringWith(declare: (title: string) => void): TestFn {
  const fn = (title: string) => declare(title)
  const proxy: TestFn = new Proxy(fn, {
    get(target, prop) {
      if (typeof prop === 'string' && DECLARING.has(prop)) return proxy
      if (prop === 'meta') return test.meta
      // Hooks of a file whose tests cannot run would only do setup for nothing.
      if (typeof prop === 'string' && /^(before|after)/.test(prop)) return () => {}
      return Reflect.get(target, prop)
    },
  }) as unknown as TestFn
  return proxy
}

/**
 * Ava's `test` when `missing` is null; otherwise a `test` whose tests are skipped (with the reason and the setup
 * command in the title), or, under CI, fail with the reason. Choose it at load time:
 *
 * @example
 * const withTorch = needs(missingPython())
 * withTorch('checkpoints load in PyTorch', async (t) => { ... })
 * withTorch.serial('a slow comparison', async (t) => { ... })
 */
export function needs(missing: string | null): TestFn {
  if (missing === null) return test
  if (UNDER_CI) return declaringWith((title) => test(title, (t) => t.fail(`missing under CI: ${missing}`)))
  return declaringWith((title) => test.skip(`${title} (skipped: needs ${missing}; \`${SETUP_COMMAND}\` installs it)`, () => {}))
}
