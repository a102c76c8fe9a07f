// How every command ends (exit with its code, a ConvKit error printed as one line with its class and code) and how
// Ctrl-C stops one.
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

/**
 * An AbortController that the first Ctrl-C aborts, after saying `what` happens then on stderr (nothing when null);
 * a second Ctrl-C quits at once.
 */
export function abortOnInterrupt(what: string | null): AbortController {
  const controller = new AbortController()
  process.on('SIGINT', () => {
    if (controller.signal.aborted) process.exit(130)
    if (what !== null) console.error(`\nconvkit: interrupted; ${what} (Ctrl-C again to quit at once)`)
    controller.abort()
  })
  return controller
}
