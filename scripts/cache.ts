// The cache CLI in a checkout: `npm run cache -- ls`, `npm run cache -- prune --max 1G`; see ts/cli/.
import { runCli } from '../ts/cli/run.ts'
import { cacheCommand } from '../ts/cli/cache-command.ts'

runCli(() => cacheCommand(process.argv.slice(2)))
