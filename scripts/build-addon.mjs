// Builds the native addon with napi into a scratch folder, then renames each output into native/:
// a process still running the previous addon keeps its file, instead of crashing as it is overwritten.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnSync } from 'node:child_process'
import { libtorchEnv } from './with-libtorch.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const out = path.join(root, 'native')
const scratch = path.join(root, 'target', 'napi-out')
fs.rmSync(scratch, { recursive: true, force: true })
fs.mkdirSync(scratch, { recursive: true })
const napi = path.join(root, 'node_modules', '.bin', 'napi')
const args = [
  'build',
  '--platform',
  '--release',
  '--manifest-path',
  'crates/node/Cargo.toml',
  '--output-dir',
  scratch,
  '--js',
  'index.cjs',
  '--dts',
  'index.d.cts',
  ...process.argv.slice(2),
]
const build = spawnSync(napi, args, { cwd: root, stdio: 'inherit', env: libtorchEnv() })
if (build.status !== 0) process.exit(build.status ?? 1)
fs.mkdirSync(out, { recursive: true })
for (const file of fs.readdirSync(scratch)) fs.renameSync(path.join(scratch, file), path.join(out, file))
