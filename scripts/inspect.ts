// The inspect CLI in a checkout: `npm run inspect -- <data> [options]` or `node scripts/inspect.ts <data>`; see ts/cli/.
import { runCli } from '../ts/cli/run.ts'
import { inspectCommand } from '../ts/cli/inspect-command.ts'

runCli(() => inspectCommand(process.argv.slice(2)))
