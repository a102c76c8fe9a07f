// Tests that need something outside the project (Chromium, a Python with torch, Debian's Fashion-MNIST):
// where it is missing they are reported as skipped, never as passed; under CI (CI=1) a missing one fails them.
import test, { type TestFn } from 'ava'

/** Whether the run is CI's: `.ci/run` sets CI=1, and there every dependency must be present. */
export const UNDER_CI = process.env.CI === '1' || process.env.CI === 'true'

/**
 * Ava's `test` when `missing` is null; otherwise a `test` whose tests are skipped (with the reason in the title's
 * skip note), or, under CI, fail with the reason. Choose it at load time:
 *
 * @example
 * const withTorch = needs(python ? null : 'a python with torch 2.11 (set CONVKIT_PYTHON; .ci/run installs one)')
 * withTorch('checkpoints load in PyTorch', async (t) => { ... })
 */
export function needs(missing: string | null): TestFn {
  if (missing === null) return test
  if (UNDER_CI) {
    const failing = ((title: string) => test(title, (t) => t.fail(`missing under CI: ${missing}`))) as unknown as TestFn
    return failing
  }
  const skipping = ((title: string) => test.skip(`${title} (skipped: needs ${missing})`, () => {})) as unknown as TestFn
  return skipping
}
