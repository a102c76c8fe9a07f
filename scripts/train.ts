// The train CLI in a checkout: `npm run train -- [options]` or `node scripts/train.ts [options]`; see ts/cli/.
import { runCli } from '../ts/cli/run.ts'
import { trainCommand } from '../ts/cli/train-command.ts'

runCli(() => trainCommand(process.argv.slice(2)))
