// Finds libtorch for the build and the addon, provisioning it from PyPI's torch wheel when it is missing: the ES
// module face of scripts/libtorch.cjs, which holds the implementation (CommonJS, so that the addon's loader can
// require it synchronously on first load). `node scripts/libtorch.mjs` finds or provisions it and says where.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import libtorch from './libtorch.cjs'

// Every name libtorch.cjs exports, listed once, there: Node reads them from its `module.exports = { … }` literal
// (keep it a literal of plain names, or they stop showing up here).
export * from './libtorch.cjs'

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  try {
    const found = libtorch.ensureLibtorch()
    console.log(`convkit: using libtorch ${libtorch.TORCH_VERSION} from ${found.dir} (${found.source})`)
  } catch (err) {
    console.error(`convkit: ${err.message}`)
    process.exit(1)
  }
}
