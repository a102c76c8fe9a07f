// The learning-rate sweep's plot: training loss against rate on a log axis, raw and smoothed, with the smoothed loss's lowest
// point and the suggested rate (a tenth of its rate) marked. Written as SVG and PNG like a run's other plots.
import path from 'node:path'
import type { TopLevelSpec } from 'vega-lite'
import { DIVERGENCE_FACTOR, type LrSweep } from '../train/lr-sweep.ts'
import { writeFileAtomic } from '../util/atomic-write.ts'
import { CHART_BASE } from './history-charts.ts'
import { chartSvg, svgToPng } from './render-chart.ts'

/** The plot as a Vega-Lite spec. */
export function lrFindChart(sweep: LrSweep): TopLevelSpec {
  const rows = sweep.rates.flatMap((lr, i) => [
    { lr, series: 'loss', value: sweep.losses[i]! },
    { lr, series: 'smoothed loss', value: sweep.smoothed[i]! },
  ])
  const finite = rows.filter((r) => Number.isFinite(r.value))
  // Up to where the sweep stops for divergence: the last batches' losses, far above, would flatten the curve.
  const best = Math.min(...sweep.smoothed.filter(Number.isFinite))
  const shown = finite.filter((r) => r.series === 'loss' || r.value <= DIVERGENCE_FACTOR * best).map((r) => r.value)
  const top = Math.max(...finite.filter((r) => r.series === 'smoothed loss' && r.value <= DIVERGENCE_FACTOR * best).map((r) => r.value))
  const scale =
    shown.length > 0
      ? { domain: [Math.min(...shown) * 0.95, (Number.isFinite(top) ? top : Math.max(...shown)) * 1.05], nice: false }
      : { zero: false }
  const { suggestion } = sweep
  // Ticks and grid lines at powers of ten only: a log axis's default puts one at every multiple of them.
  const decades = Array.from({ length: 41 }, (_, i) => 10 ** (i - 30)).filter((d) => d >= sweep.startLr * 0.999 && d <= sweep.endLr * 1.001)
  const x = {
    field: 'lr',
    type: 'quantitative',
    scale: { type: 'log', domain: [sweep.startLr, sweep.endLr] },
    title: 'learning rate (log scale)',
    axis: { format: '.0e', values: decades },
  } as const
  const layers: unknown[] = [
    {
      data: { values: finite },
      mark: { type: 'line', strokeWidth: 2, clip: true },
      encoding: {
        x,
        y: { field: 'value', type: 'quantitative', title: 'training loss (nats per image)', scale },
        color: {
          field: 'series',
          type: 'nominal',
          title: null,
          scale: { domain: ['loss', 'smoothed loss'], range: ['#9ecae1', '#1f77b4'] },
        },
      },
    },
  ]
  if (suggestion.rule === 'minimum' && Number.isFinite(suggestion.lr)) {
    const lowest = sweep.rates[suggestion.minimum]!
    // The band from the suggestion to the lowest point it is a tenth of.
    layers.unshift({
      data: { values: [{ from: suggestion.lr, to: lowest }] },
      mark: { type: 'rect', color: '#2ca02c', opacity: 0.08 },
      encoding: { x: { ...x, field: 'from' }, x2: { field: 'to' } },
    })
    const marker = (lr: number, value: number, label: string, color: string) => {
      const values = [{ lr, value, label }]
      const y = { field: 'value', type: 'quantitative' }
      return [
        { data: { values }, mark: { type: 'point', filled: true, size: 140, color }, encoding: { x, y } },
        {
          data: { values },
          mark: { type: 'text', align: 'left', dx: 8, dy: -10, fontSize: 13, color },
          encoding: { x, y, text: { field: 'label' } },
        },
      ]
    }
    layers.push(
      ...marker(lowest, sweep.smoothed[suggestion.minimum]!, 'lowest', '#7f7f7f'),
      ...marker(suggestion.lr, sweep.smoothed[suggestion.index]!, `suggested ${suggestion.lr.toExponential(1)}`, '#d62728'),
    )
  }
  const stop = sweep.stoppedEarly ? ' (stopped: the loss diverged)' : ''
  return { ...CHART_BASE, title: `Learning-rate sweep, ${sweep.rates.length} batches${stop}`, layer: layers } as unknown as TopLevelSpec
}

/** Writes `lr-find.svg` and `lr-find.png` into `dir`; returns their paths. */
export async function plotLrFind(sweep: LrSweep, dir: string): Promise<{ svg: string; png: string }> {
  const svg = await chartSvg(lrFindChart(sweep))
  const files = { svg: path.join(dir, 'lr-find.svg'), png: path.join(dir, 'lr-find.png') }
  await writeFileAtomic(files.svg, svg)
  await writeFileAtomic(files.png, await svgToPng(svg))
  return files
}
