// Shared ending of the CLIs: exit with main's code, and print a ConvKit error as one line with its class and code.
import { isConvkitError } from '../ts/errors.ts'

export function runCli(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (isConvkitError(err)) console.error(`convkit: ${err.name} [${err.code}]: ${err.message}`)
      else console.error(err)
      process.exit(1)
    },
  )
}
