// The only importer of the napi loader: loads the addon and turns its errors into ConvkitErrors.
import { createRequire } from 'node:module'
import type * as Native from '../native/index.cjs'
import { fromNative } from './errors.ts'

const require = createRequire(import.meta.url)

/** What each place the loader tried said, e.g. "libtorch_cpu.so: cannot open shared object file". */
function loadReasons(err: unknown): string {
  const reasons: string[] = []
  for (let e: unknown = err; e instanceof Error && reasons.length < 8; e = e.cause) reasons.push(e.message.split('\n')[0]!)
  const specific = reasons.filter((r) => !r.startsWith('Cannot find native binding'))
  return (specific.length > 0 ? specific : reasons).join('; ')
}

function load(): typeof Native {
  try {
    return require('../native/index.cjs') as typeof Native
  } catch (err) {
    throw new Error(
      `convkit: the native addon could not be loaded (${loadReasons(err)}). In a checkout, run \`npm install\`: it provisions ` +
        'libtorch and builds the addon. In an installed package, run `npm rebuild convkit`: it finds or provisions libtorch and ' +
        'links it beside the prebuilt addon; set LIBTORCH to a libtorch 2.11.0 first to use your own.',
      { cause: err },
    )
  }
}

export const native = load()

export type { Native }
export type { OptimizerConfig, ParamGroup } from '../native/index.cjs'

/** Runs a native call, sync or async, rethrowing its error as the matching ConvkitError. */
export async function call<T>(context: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw fromNative(err, context)
  }
}

export function callSync<T>(context: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err, context)
  }
}
