// Runs a command with LIBTORCH pointing at the libtorch `npm install` found or provisioned,
// so cargo and napi build against the same one without the user exporting anything.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { findLibtorch, TORCH_VERSION } from './libtorch.mjs'

/** The environment to build with; exits with a message when libtorch is missing. */
export function libtorchEnv() {
  let found
  try {
    found = findLibtorch()
  } catch (err) {
    console.error(`convkit: ${err.message}`)
    process.exit(1)
  }
  if (!found) {
    console.error(`convkit: libtorch ${TORCH_VERSION} is not provisioned yet; run \`npm install\` (or set LIBTORCH).`)
    process.exit(1)
  }
  return { ...process.env, LIBTORCH: found.dir }
}

/** Runs `cmd args` with that environment and exits with its status. */
export function runWithLibtorch(cmd, args) {
  const result = spawnSync(cmd, args, { stdio: 'inherit', env: libtorchEnv() })
  if (result.error) {
    console.error(`convkit: could not run ${cmd}: ${result.error.message}`)
    process.exit(1)
  }
  process.exit(result.status ?? 1)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [cmd, ...args] = process.argv.slice(2)
  if (!cmd) {
    console.error('usage: node scripts/with-libtorch.mjs <command> [args...]')
    process.exit(2)
  }
  runWithLibtorch(cmd, args)
}
