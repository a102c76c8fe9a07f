// `convkit plot <run-dir>` (and `npm run plot`): redraws a run's plots from its history.json.
import fs from 'node:fs'
import path from 'node:path'
import type { HistoryFile } from '../callbacks/history.ts'
import { DataError, InputError } from '../errors.ts'
import { optionalText, type OptionTable } from '../options/option.ts'
import { plotHistory } from '../report/plot-history.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'

const PLOT_OPTIONS = {
  out: optionalText({ help: 'where the plots go', group: 'output', default: null, shownDefault: '<run-dir>/plots', metavar: '<dir>' }),
} satisfies OptionTable

const EXTRA: ExtraFlag[] = [{ name: 'help', boolean: true, help: 'this text', short: 'h' }]

export const PLOT_HELP = helpText(
  `Redraw a run's plots from its history.json: top1, loss, top5, per-class-train, per-class-test and confusion, as PNG and SVG.

usage: convkit plot <run-dir> [--out <dir>]
       npm run plot -- <run-dir> [--out <dir>]`,
  PLOT_OPTIONS,
  EXTRA,
)

export async function plotCommand(argv: string[]): Promise<number> {
  const { options, extra, positionals } = parseFlags(PLOT_OPTIONS, argv, EXTRA)
  if (extra.help) {
    console.log(PLOT_HELP)
    return 0
  }
  const runDir = positionals[0]
  if (!runDir) throw new InputError('INVALID_OPTION', 'no run directory given: convkit plot <run-dir> (see --help)')
  const file = path.join(runDir, 'history.json')
  let history: HistoryFile
  try {
    history = JSON.parse(fs.readFileSync(file, 'utf8')) as HistoryFile
  } catch (err) {
    throw new DataError('DATA_NOT_FOUND', `${file} is missing or not valid JSON (${(err as Error).message})`, { cause: err, files: [file] })
  }
  if (!Array.isArray(history.epochs) || !Array.isArray(history.classes)) {
    throw new DataError('DATA_CORRUPT', `${file} has no epochs or classes; expected a history.json written by train()`, { files: [file] })
  }
  const out = (options.out as string | undefined) ?? path.join(runDir, 'plots')
  const charts = await plotHistory(history, out)
  console.log(`wrote ${charts.length} plots (PNG and SVG) to ${out}`)
  return 0
}
