// The export CLI in a checkout: `npm run export -- --model <checkpoint> --out <file.onnx>`; see ts/cli/.
import { runCli } from '../ts/cli/run.ts'
import { exportCommand } from '../ts/cli/export-command.ts'

runCli(() => exportCommand(process.argv.slice(2)))
