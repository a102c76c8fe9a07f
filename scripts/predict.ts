// The predict CLI in a checkout: `npm run predict -- --model <checkpoint> <images...>`; see ts/cli/.
import { runCli } from '../ts/cli/run.ts'
import { predictCommand } from '../ts/cli/predict-command.ts'

runCli(() => predictCommand(process.argv.slice(2)))
