// `npm install` hook: makes sure libtorch is there, then either builds the native addon (a checkout) or, in the
// published package, links libtorch beside the prebuilt addon, whose rpath looks in `$ORIGIN/libtorch/lib`.
// When install scripts are skipped, the addon's loader (ts/binding.ts) does the same through scripts/libtorch.cjs.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureLibtorch, isCheckout, linkPrebuilt, TORCH_VERSION } from './libtorch.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const log = (line) => console.log(`convkit: ${line}`)

function fail(message) {
  console.error(`convkit: ${message}`)
  process.exit(1)
}

function buildFromSource(libtorchDir) {
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
  if (cargo.status !== 0)
    fail('building from a checkout needs Rust; install it with rustup (https://rustup.rs) and run `npm install` again.')
  log('building the native addon (cargo, release; the first build takes a few minutes)')
  const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', env: { ...process.env, LIBTORCH: libtorchDir } })
  if (build.status !== 0) fail(`building the native addon failed (exit ${build.status}); the cargo output above says why.`)
}

try {
  if (isCheckout(root)) {
    const libtorch = ensureLibtorch(log)
    log(`libtorch ${TORCH_VERSION} from ${libtorch.dir} (${libtorch.source})`)
    buildFromSource(libtorch.dir)
  } else {
    linkPrebuilt(root, log)
  }
} catch (err) {
  fail(err.message)
}
