// The lr-find CLI in a checkout: `npm run lr-find -- [options]` or `node scripts/lr-find.ts [options]`; see ts/cli/.
import { runCli } from '../ts/cli/run.ts'
import { lrFindCommand } from '../ts/cli/lr-find-command.ts'

runCli(() => lrFindCommand(process.argv.slice(2)))
