// The shard CLI in a checkout: `npx tsx scripts/shard.ts <folder> <out-pattern>`; see ts/cli/shard-command.ts.
import { runCli } from '../ts/cli/run.ts'
import { shardCommand } from '../ts/cli/shard-command.ts'

runCli(() => shardCommand(process.argv.slice(2)))
