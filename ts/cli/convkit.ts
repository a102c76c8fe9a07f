// `convkit <command> [args]`: the package's command (`npx convkit`, bin/convkit.js), dispatching to the commands of
// ts/cli/*-command.ts. Adding a command is one entry in COMMANDS.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { runCli, USAGE_ERROR } from './run.ts'

/** One command: a line for `convkit --help` and its implementation, `(argv) => exit code`. */
export interface CommandEntry {
  summary: string
  /**
   * Imports the command when it runs, not before: most commands load the native addon (and, on a first load after
   * `npm i --ignore-scripts`, link libtorch), which `convkit --help` should not wait for.
   */
  load: () => Promise<(argv: string[]) => Promise<number>>
}

/** Every command, in the order `convkit --help` lists them. */
export const COMMANDS: Record<string, CommandEntry> = {
  train: {
    summary: 'train a CNN image classifier on a folder, an archive, MNIST files or CIFAR-10',
    load: async () => (await import('./train-command.ts')).trainCommand,
  },
  'lr-find': {
    summary: 'suggest a learning rate from a short sweep of growing rates (and plot its loss curve)',
    load: async () => (await import('./lr-find-command.ts')).lrFindCommand,
  },
  inspect: {
    summary: 'find unreadable files, duplicates, train/test leakage and likely label errors in a dataset',
    load: async () => (await import('./inspect-command.ts')).inspectCommand,
  },
  predict: {
    summary: 'predict the class of images with a trained checkpoint',
    load: async () => (await import('./predict-command.ts')).predictCommand,
  },
  export: {
    summary: 'export a trained checkpoint to ONNX, for onnxruntime and other runtimes',
    load: async () => (await import('./export-command.ts')).exportCommand,
  },
  plot: { summary: "redraw a run's plots from its history.json", load: async () => (await import('./plot-command.ts')).plotCommand },
  summary: {
    summary: "print a model's layers, output shapes and parameters",
    load: async () => (await import('./summary-command.ts')).summaryCommand,
  },
  cache: {
    summary: 'list the dataset cache (ls) or make it smaller (prune)',
    load: async () => (await import('./cache-command.ts')).cacheCommand,
  },
  shard: {
    summary: 'write an image folder as tar shards, for training on data larger than memory',
    load: async () => (await import('./shard-command.ts')).shardCommand,
  },
}

/** The version in convkit's package.json: two folders up in a checkout (ts/cli), three in the package (lib/esm/cli). */
function version(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let up = 0; up < 4; up++, dir = path.dirname(dir)) {
    try {
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string }
      if (manifest.name === 'convkit' && manifest.version) return manifest.version
    } catch {
      // No package.json here (or lib/cjs's, which only sets the module type): look further up.
    }
  }
  return 'unknown'
}

export function convkitHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length)) + 4
  return [
    'Train, evaluate and use convolutional image classifiers, with libtorch doing the math.',
    '',
    'usage: convkit <command> [options]',
    '       convkit <command> --help     the options of one command',
    '',
    'commands',
    ...Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(width)}${command.summary}`),
    '',
    'other',
    `  ${'--help, -h'.padEnd(width + 4)}this text`,
    `  ${'--version, -v'.padEnd(width + 4)}the version`,
    '',
  ].join('\n')
}

/** Runs `convkit` with `argv` (the arguments after the program); returns the exit code. */
export async function convkitCommand(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined) {
    console.error(convkitHelp())
    return USAGE_ERROR
  }
  // `convkit help train` is `convkit train --help`.
  if (first === 'help' && rest.length > 0) return convkitCommand([rest[0]!, '--help'])
  if (first === '--help' || first === '-h' || first === 'help') {
    console.log(convkitHelp())
    return 0
  }
  if (first === '--version' || first === '-v') {
    console.log(version())
    return 0
  }
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined
  if (!command) {
    const what = first.startsWith('-') ? `unknown option ${first}` : `unknown command ${JSON.stringify(first)}`
    console.error(`convkit: ${what}; the commands are ${Object.keys(COMMANDS).join(', ')} (convkit --help)`)
    return USAGE_ERROR
  }
  return (await command.load())(rest)
}

/** The command line of this process: what bin/convkit.js runs. */
export function main(argv: string[] = process.argv.slice(2)): void {
  runCli(() => convkitCommand(argv))
}
