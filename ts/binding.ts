// The only importer of the napi loader: loads the addon and turns its errors into ConvkitErrors.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type * as Native from '../native/index.cjs'
import { fromNative } from './errors.ts'

const require = createRequire(import.meta.url)

/** What the loader uses of scripts/libtorch.cjs, the code `npm install` runs too. */
interface LibtorchSetup {
  linkPrebuiltIfMissing(root: string, log: (line: string) => void): unknown
}

/**
 * The package's root: the nearest folder above this module that holds scripts/libtorch.cjs (one up from ts/ in a
 * checkout, two up from lib/esm or lib/cjs in the package). Null when bundled away from it.
 */
function packageRoot(): string | null {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let up = 0; up < 3; up++, dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'scripts', 'libtorch.cjs'))) return dir
  }
  return null
}

/**
 * Does the install script's work when it did not run (`npm i --ignore-scripts`; npm 12 skips dependency install
 * scripts by default): finds or provisions libtorch, the same way and with the same messages, on stderr, and links it
 * beside the prebuilt addon. Costs a few file checks once the link is there, and nothing in a checkout.
 */
function linkLibtorchIfMissing(): void {
  const root = packageRoot()
  if (root === null) return
  const setup = require(path.join(root, 'scripts', 'libtorch.cjs')) as LibtorchSetup
  try {
    setup.linkPrebuiltIfMissing(root, (line) => console.error(`convkit: ${line}`))
  } catch (err) {
    throw new Error(`convkit: the native addon could not be loaded: ${(err as Error).message}`, { cause: err })
  }
}

/** What each place the loader tried said, e.g. "libtorch_cpu.so: cannot open shared object file". */
function loadReasons(err: unknown): string {
  const reasons: string[] = []
  for (let e: unknown = err; e instanceof Error && reasons.length < 8; e = e.cause) reasons.push(e.message.split('\n')[0]!)
  const specific = reasons.filter((r) => !r.startsWith('Cannot find native binding'))
  return (specific.length > 0 ? specific : reasons).join('; ')
}

function load(): typeof Native {
  linkLibtorchIfMissing()
  try {
    return require('../native/index.cjs') as typeof Native
  } catch (err) {
    throw new Error(
      `convkit: the native addon could not be loaded (${loadReasons(err)}). In a checkout, run \`npm install\`: it provisions ` +
        'libtorch and builds the addon. In an installed package, run `npm rebuild convkit`: it finds or provisions libtorch again and ' +
        'links it beside the prebuilt addon; set LIBTORCH to a libtorch 2.11.0 first to use your own.',
      { cause: err },
    )
  }
}

export const native = load()

export type { Native }
// The types that cross the boundary, declared once in Rust (napi generates their declarations) and re-exported here
// so the rest of ts/ never imports the loader.
export type {
  AugmentOptions,
  AveragingOptions,
  BindingStep,
  EvalCounts,
  LayerRow,
  LossOptions,
  MetadataKeys,
  OptimizerConfig,
  ParamGroup,
  ResizedCropOptions,
  StepOptions,
} from '../native/index.cjs'

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
