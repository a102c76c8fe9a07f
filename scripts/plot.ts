// Redraws a run's plots from its history.json: `npx tsx scripts/plot.ts <run-dir> [--out <dir>]`.
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { HistoryFile } from '../ts/callbacks/history.ts'
import { plotHistory } from '../ts/report/plot-history.ts'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } })
const runDir = positionals[0]
if (values.help || !runDir) {
  console.log('usage: npx tsx scripts/plot.ts <run-dir> [--out <dir>]\n\nWrites top1, loss, top5, per-class-train, per-class-test and confusion as PNG and SVG (default: <run-dir>/plots).')
  process.exit(values.help ? 0 : 2)
}
const file = path.join(runDir, 'history.json')
let history: HistoryFile
try {
  history = JSON.parse(fs.readFileSync(file, 'utf8')) as HistoryFile
} catch (err) {
  console.error(`plot: ${file} is missing or not valid JSON (${(err as Error).message})`)
  process.exit(1)
}
if (!Array.isArray(history.epochs) || !Array.isArray(history.classes)) {
  console.error(`plot: ${file} has no epochs or classes; expected a history.json written by train()`)
  process.exit(1)
}
const out = values.out ?? path.join(runDir, 'plots')
const charts = await plotHistory(history, out)
console.log(`wrote ${charts.length} plots (PNG and SVG) to ${out}`)
