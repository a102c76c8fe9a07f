// How every command ends: exit with its code, and print a ConvKit error as one line with its class and code.
import { isConvkitError } from '../errors.ts'

/** The exit code for bad flags or arguments, as most Unix tools use it. */
export const USAGE_ERROR = 2

/** Runs `main` and exits with its code; an error exits 1 (a bad flag or value, 2) after one line on stderr. */
export function runCli(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (isConvkitError(err)) {
        console.error(`convkit: ${err.name} [${err.code}]: ${err.message}`)
        process.exit(err.code === 'INVALID_OPTION' ? USAGE_ERROR : 1)
      }
      console.error(err)
      process.exit(1)
    },
  )
}
