#!/usr/bin/env node
// The `convkit` command (package.json `bin`): runs the compiled CLI in the installed package (lib/esm/cli), or
// the TypeScript source through tsx in a git checkout, where nothing is compiled.
import fs from 'node:fs'

const compiled = new URL('../lib/esm/cli/convkit.js', import.meta.url)
let cli
if (fs.existsSync(compiled)) {
  cli = await import(compiled.href)
} else {
  const { register } = await import('tsx/esm/api')
  register()
  cli = await import(new URL('../ts/cli/convkit.ts', import.meta.url).href)
}
cli.main()
