// `convkit inspect <data>` (and `npm run inspect`): inspectData() with its options as flags; writes inspect.json and
// inspect.html and prints what it found.
import path from 'node:path'
import { INSPECT_OPTIONS } from '../inspect/inspect-options.ts'
import { inspectData } from '../inspect/inspect-data.ts'
import { writeInspection } from '../inspect/inspect-html.ts'
import { summaryRows } from '../inspect/inspect-summary.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'
import { abortOnInterrupt } from './run.ts'

const USAGE = `Inspect a dataset before training on it: unreadable files, exact and near-duplicates (inside each split and
across train and test: leakage), likely label errors (confident learning on cross-validated probabilities: from a
network trained on the images, or a probe of a pretrained network's embeddings; see --label-model), class counts and image sizes. Writes inspect.json and inspect.html; train
--exclude inspect.json then leaves out the images it lists under "exclude".

usage: convkit inspect <data> [options]
       npm run inspect -- <data> [options]`

const EXTRA: ExtraFlag[] = [
  { name: 'out', boolean: false, help: 'where inspect.json and inspect.html go (default: inspect)', metavar: '<dir>' },
  { name: 'help', boolean: true, help: 'this text', short: 'h' },
]

export const INSPECT_HELP = helpText(USAGE, INSPECT_OPTIONS, EXTRA)

/** Runs the inspect command on `argv`; returns the exit code. */
export async function inspectCommand(argv: string[]): Promise<number> {
  const { options, extra, positionals } = parseFlags(INSPECT_OPTIONS, argv, EXTRA)
  if (extra.help) {
    console.log(INSPECT_HELP)
    return 0
  }
  if (positionals.length !== 1) {
    console.error(
      `convkit inspect: expected one data source (a folder, an archive, a label file or cifar10), got ${positionals.length}\n\n${INSPECT_HELP}`,
    )
    return 2
  }
  const controller = abortOnInterrupt('stopping after the current batch')
  const started = performance.now()
  const { report, sets } = await inspectData(positionals[0]!, { ...options, signal: controller.signal })
  const out = (extra.out as string | undefined) ?? 'inspect'
  const files = await writeInspection(report, sets, out)
  const rows = summaryRows(report)
  const width = Math.max(...rows.map(([k]) => k.length))
  const lines = [
    `inspected in ${((performance.now() - started) / 1000).toFixed(1)} s (${Object.entries(report.seconds)
      .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
      .join(', ')})`,
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
    `wrote ${path.relative('.', files.html) || files.html} and ${path.relative('.', files.json) || files.json}; ${report.exclude.length} image(s) to exclude with --exclude ${path.relative('.', files.json) || files.json}`,
  ]
  console.log(lines.join('\n'))
  return 0
}
