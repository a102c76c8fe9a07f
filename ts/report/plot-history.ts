// Writes a run's plots as SVG and PNG into `<run>/plots/`.
import path from 'node:path'
import { writeFileAtomic } from '../util/atomic-write.ts'
import type { HistoryFile } from '../callbacks/history.ts'
import { CHART_NAMES, historyCharts, type ChartName } from './history-charts.ts'
import { chartSvg, svgToPng } from './render-chart.ts'

export interface RenderedChart {
  name: ChartName
  svg: string
  png: Buffer
}

/** Renders the six plots of a history. */
export async function renderHistory(history: HistoryFile): Promise<RenderedChart[]> {
  const specs = historyCharts(history)
  const out: RenderedChart[] = []
  for (const name of CHART_NAMES) {
    const svg = await chartSvg(specs[name])
    out.push({ name, svg, png: await svgToPng(svg) })
  }
  return out
}

/**
 * Writes `top1`, `loss`, `top5`, `per-class-train`, `per-class-test` and `confusion`, each as `.svg` and `.png`,
 * into `outDir`; returns the charts.
 *
 * @example
 * await plotHistory(JSON.parse(fs.readFileSync('runs/x/history.json', 'utf8')), 'runs/x/plots')
 */
export async function plotHistory(history: HistoryFile, outDir: string): Promise<RenderedChart[]> {
  const charts = await renderHistory(history)
  for (const c of charts) {
    await writeFileAtomic(path.join(outDir, `${c.name}.svg`), c.svg)
    await writeFileAtomic(path.join(outDir, `${c.name}.png`), c.png)
  }
  return charts
}
