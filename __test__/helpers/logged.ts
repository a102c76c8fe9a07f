// Captures what a run prints through console.log, for tests that check the lines a user would see.

/** Runs `fn` with console.log captured; returns its result and the lines. */
export async function logged<T>(fn: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = []
  const log = console.log
  console.log = (...args: unknown[]) => void lines.push(args.join(' '))
  try {
    return { result: await fn(), lines }
  } finally {
    console.log = log
  }
}
