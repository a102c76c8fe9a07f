// Runs `cargo <subcommand> ...` against the provisioned libtorch and for the host target named explicitly,
// as `napi build` does, so clippy and tests reuse the addon's compiled dependencies instead of building twice.
import { execFileSync } from 'node:child_process'
import { runWithLibtorch } from './with-libtorch.mjs'

const [subcommand, ...rest] = process.argv.slice(2)
if (!subcommand) {
  console.error('usage: node scripts/cargo.mjs <subcommand> [args...]')
  process.exit(2)
}
const host = /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1]
runWithLibtorch('cargo', [subcommand, ...(host ? ['--target', host] : []), ...rest])
