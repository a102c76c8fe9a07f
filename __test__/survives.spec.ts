// The process that receives bad input keeps running: nothing panics across the boundary or aborts Node.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

test('a process fed every bad input exits normally, each one a coded error', (t) => {
  const run = spawnSync(process.execPath, ['--import=tsx', path.join(here, 'fixtures', 'bad-inputs.ts')], {
    encoding: 'utf8',
    timeout: 120_000,
  })
  t.is(run.signal, null, run.stderr)
  t.is(run.status, 0, run.stderr)
  const lines = run.stdout.trim().split('\n')
  t.is(lines.at(-1), 'alive')
  for (const line of lines.slice(0, -1)) t.regex(line, /: \w+Error [A-Z_]+$/, line)
})
