// `npm install` hook: makes sure libtorch is there, then either builds the native addon (a checkout) or,
// in the published package, links libtorch beside the prebuilt addon, whose rpath looks in `$ORIGIN/libtorch/lib`.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureLibtorch, TORCH_VERSION } from './libtorch.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

function fail(message) {
  console.error(`convkit: ${message}`)
  process.exit(1)
}

function buildFromSource(libtorchDir) {
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
  if (cargo.status !== 0) fail('building from a checkout needs Rust; install it with rustup (https://rustup.rs) and run `npm install` again.')
  console.log('convkit: building the native addon (cargo, release; the first build takes a few minutes)')
  const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', env: { ...process.env, LIBTORCH: libtorchDir } })
  if (build.status !== 0) fail(`building the native addon failed (exit ${build.status}); the cargo output above says why.`)
}

function prebuiltPackage() {
  const glibc = process.report?.getReport().header.glibcVersionRuntime
  if (process.platform !== 'linux' || process.arch !== 'x64' || !glibc) {
    fail(`there is no prebuilt addon for ${process.platform}-${process.arch}${glibc ? '' : ' without glibc'}: ConvKit ships one for Linux x64 with glibc. ` +
      'Elsewhere, build from a git checkout (`npm install` there needs Rust and a libtorch for your platform in LIBTORCH).')
  }
  const name = `${manifest.name}-linux-x64-gnu`
  try {
    return path.dirname(fs.realpathSync(createRequire(path.join(root, 'package.json')).resolve(`${name}/package.json`)))
  } catch {
    fail(`the prebuilt addon package ${name} is not installed; it is an optional dependency, so \`npm install --omit=optional\` or ` +
      'a lockfile made on another platform leaves it out. Install it next to convkit.')
  }
}

/** Points `<addon package>/libtorch` at libtorch's root, replacing an older link in one rename. */
function linkLibtorch(libtorchDir) {
  const dir = prebuiltPackage()
  const link = path.join(dir, 'libtorch')
  const temp = `${link}.${process.pid}`
  fs.rmSync(temp, { force: true })
  fs.symlinkSync(libtorchDir, temp, 'dir')
  fs.renameSync(temp, link)
  console.log(`convkit: the prebuilt addon in ${dir} loads libtorch through ${link}`)
}

let libtorch
try {
  libtorch = ensureLibtorch()
} catch (err) {
  fail(err.message)
}
console.log(`convkit: libtorch ${TORCH_VERSION} from ${libtorch.dir} (${libtorch.source})`)

if (fs.existsSync(path.join(root, 'crates', 'node', 'Cargo.toml'))) buildFromSource(libtorch.dir)
else linkLibtorch(libtorch.dir)
