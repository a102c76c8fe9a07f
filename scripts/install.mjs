// `npm install` hook: makes sure libtorch is there, then builds the native addon from a checkout.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureLibtorch, TORCH_VERSION } from './libtorch.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

function fail(message) {
  console.error(`convkit: ${message}`)
  process.exit(1)
}

let libtorch
try {
  libtorch = ensureLibtorch()
} catch (err) {
  fail(err.message)
}
console.log(`convkit: libtorch ${TORCH_VERSION} from ${libtorch.dir} (${libtorch.source})`)

if (fs.existsSync(path.join(root, 'crates', 'node', 'Cargo.toml'))) {
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
  if (cargo.status !== 0) fail('building from a checkout needs Rust; install it with rustup (https://rustup.rs) and run `npm install` again.')
  console.log('convkit: building the native addon (cargo, release; the first build takes a few minutes)')
  const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', env: { ...process.env, LIBTORCH: libtorch.dir } })
  if (build.status !== 0) fail(`building the native addon failed (exit ${build.status}); the cargo output above says why.`)
}
