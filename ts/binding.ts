// The only importer of the napi loader: loads the addon and turns its errors into ConvkitErrors.
import { createRequire } from 'node:module'
import type * as Native from '../native/index.cjs'
import { fromNative } from './errors.ts'

const require = createRequire(import.meta.url)

function load(): typeof Native {
  try {
    return require('../native/index.cjs') as typeof Native
  } catch (err) {
    throw new Error(
      'convkit: the native addon is not built or cannot load libtorch. Run `npm install` in the package (it provisions libtorch ' +
        'and builds the addon), or set LIBTORCH to a libtorch 2.11.0.',
      { cause: err },
    )
  }
}

export const native = load()

export type { Native }

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
