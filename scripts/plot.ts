// The plot CLI in a checkout: `npm run plot -- <run-dir> [--out <dir>]`; see ts/cli/.
import { runCli } from '../ts/cli/run.ts'
import { plotCommand } from '../ts/cli/plot-command.ts'

runCli(() => plotCommand(process.argv.slice(2)))
