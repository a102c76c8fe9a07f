// The training plots as Vega-Lite specs, built from history.json: curves per split, per class, and the confusion matrix.
import type { TopLevelSpec } from 'vega-lite'
import type { HistoryFile } from '../callbacks/history.ts'

/** Every plot is drawn at this size, axes and legend included. */
export const CHART_SIZE = { width: 800, height: 500 }

export type ChartName = 'top1' | 'loss' | 'top5' | 'per-class-train' | 'per-class-test' | 'confusion'
export const CHART_NAMES: ChartName[] = ['top1', 'loss', 'top5', 'per-class-train', 'per-class-test', 'confusion']

interface Marker {
  epoch: number
  label: string
  color: string
}

/** The best epoch, and the epoch early stopping ended on: drawn as labelled vertical rules. */
function markers(history: HistoryFile): Marker[] {
  const out: Marker[] = []
  if (history.best) out.push({ epoch: history.best.epoch, label: `best (epoch ${history.best.epoch})`, color: '#2ca02c' })
  const last = history.epochs.at(-1)?.epoch
  if (history.stoppedEarly && last !== undefined) out.push({ epoch: last, label: `early stop (epoch ${last})`, color: '#d62728' })
  return out
}

/** What every plot shares: the size, a white background, the fonts (the learning-rate sweep's plot too). */
export const CHART_BASE = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  ...CHART_SIZE,
  autosize: { type: 'fit', contains: 'padding' },
  background: 'white',
  config: {
    font: 'DejaVu Sans',
    title: { fontSize: 18 },
    axis: { labelFontSize: 12, titleFontSize: 14 },
    legend: { labelFontSize: 12, titleFontSize: 13 },
  },
} as const

function curves(
  title: string,
  yTitle: string,
  rows: { epoch: number; series: string; value: number }[],
  seriesTitle: string,
  history: HistoryFile,
): TopLevelSpec {
  const epochs = history.epochs.length
  const x = {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    scale: { domain: [1, Math.max(2, epochs)], nice: false },
    axis: { tickMinStep: 1, format: 'd' },
  } as const
  const layers: unknown[] = [
    {
      data: { values: rows.filter((r) => Number.isFinite(r.value)) },
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: {
        x,
        y: { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: false } },
        color: { field: 'series', type: 'nominal', title: seriesTitle },
      },
    },
  ]
  const marks = markers(history)
  if (marks.length > 0) {
    layers.push({
      data: { values: marks },
      mark: { type: 'rule', strokeDash: [6, 4], strokeWidth: 1.5 },
      encoding: { x: { field: 'epoch', type: 'quantitative' }, color: { field: 'color', type: 'nominal', scale: null } },
    })
    // The best epoch is labelled at the foot of its rule, early stopping at the head, so the two never collide;
    // each label sits on the side of its rule away from the plot's right edge.
    for (const [i, m] of marks.entries()) {
      const side = m.epoch >= epochs ? 'right' : 'left'
      const atTop = i > 0
      layers.push({
        data: { values: [m] },
        mark: {
          type: 'text',
          align: side,
          baseline: atTop ? 'top' : 'bottom',
          dx: side === 'left' ? 4 : -4,
          dy: atTop ? 4 : -4,
          fontSize: 12,
        },
        encoding: {
          x: { field: 'epoch', type: 'quantitative' },
          y: { value: atTop ? 0 : { expr: 'height' } },
          text: { field: 'label' },
          color: { field: 'color', type: 'nominal', scale: null },
        },
      })
    }
  }
  return { ...CHART_BASE, title, layer: layers } as unknown as TopLevelSpec
}

function splitRows(history: HistoryFile, metric: 'top1' | 'top5' | 'loss') {
  return history.epochs.flatMap((e) =>
    (['train', 'val', 'test'] as const).flatMap((split) => (e[split] ? [{ epoch: e.epoch, series: split, value: e[split]![metric] }] : [])),
  )
}

function classRows(history: HistoryFile, split: 'train' | 'test') {
  return history.epochs.flatMap((e) =>
    Object.entries(e[split]?.perClass ?? {}).map(([series, value]) => ({ epoch: e.epoch, series, value })),
  )
}

/** The epoch whose test metrics the matrix plots show: the best one when it was tested (see testEvery), else the last tested. */
function testedEpoch(history: HistoryFile) {
  const tested = history.epochs.filter((e) => e.test)
  return tested.find((e) => e.epoch === history.best?.epoch) ?? tested.at(-1)
}

/** A heatmap of `rows` (`x` across, `y` down, `value` as colour and text). */
function heatmap(
  title: string,
  rows: { x: string; y: string; value: number }[],
  axes: { x: { title: string; order: string[] }; y: { title: string; order: string[] }; value: string; format?: string },
): TopLevelSpec {
  const x = { field: 'x', type: 'ordinal', sort: axes.x.order, title: axes.x.title, axis: { labelAngle: -40 } } as const
  const y = { field: 'y', type: 'ordinal', sort: axes.y.order, title: axes.y.title } as const
  return {
    ...CHART_BASE,
    title,
    data: { values: rows },
    layer: [
      { mark: 'rect', encoding: { x, y, color: { field: 'value', type: 'quantitative', title: axes.value, scale: { scheme: 'blues' } } } },
      {
        mark: { type: 'text', fontSize: 11 },
        encoding: {
          x,
          y,
          text: { field: 'value', type: 'quantitative', ...(axes.format ? { format: axes.format } : {}) },
          color: { condition: { test: `datum.value > ${Math.max(...rows.map((r) => r.value), 1) / 2}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  } as unknown as TopLevelSpec
}

function confusion(history: HistoryFile): TopLevelSpec {
  const at = testedEpoch(history)
  const matrix = at?.test?.confusion ?? []
  const name = (c: number) => history.classes[c] ?? String(c)
  const rows = matrix.flatMap((row, t) => row.map((count, p) => ({ x: name(p), y: name(t), value: count })))
  const classes = { order: history.classes }
  return heatmap(`Test confusion matrix at epoch ${at?.epoch} (images)`, rows, {
    x: { title: 'predicted class', ...classes },
    y: { title: 'true class', ...classes },
    value: 'images',
  })
}

/** Multi-label runs: each class's precision, recall, F1 (at its threshold) and average precision on the test data. */
function classTable(history: HistoryFile): TopLevelSpec {
  const at = testedEpoch(history)
  const m = at?.test
  const columns = ['precision', 'recall', 'F1', 'AP']
  const rows = history.classes.flatMap((c) => {
    const scores = m?.classMetrics?.[c]
    const values = [scores?.precision, scores?.recall, scores?.f1, m?.multiLabel?.averagePrecision[c]]
    return columns.map((x, i) => ({ x, y: c, value: values[i] ?? Number.NaN })).filter((r) => Number.isFinite(r.value))
  })
  return heatmap(`Test metrics per class at epoch ${at?.epoch} (%)`, rows, {
    x: { title: 'metric', order: columns },
    y: { title: 'class', order: history.classes },
    value: '%',
    format: '.1f',
  })
}

function mapRows(history: HistoryFile) {
  return history.epochs.flatMap((e) =>
    (['val', 'test'] as const).flatMap((split) => {
      const mAP = e[split]?.multiLabel?.mAP
      return mAP === undefined ? [] : [{ epoch: e.epoch, series: split, value: mAP }]
    }),
  )
}

function apRows(history: HistoryFile) {
  return history.epochs.flatMap((e) =>
    Object.entries(e.test?.multiLabel?.averagePrecision ?? {}).map(([series, value]) => ({ epoch: e.epoch, series, value })),
  )
}

/** The six plots of a multi-label run, under the same names: set and ranking metrics where top-1 and top-5 go. */
function multiLabelCharts(history: HistoryFile): Record<ChartName, TopLevelSpec> {
  return {
    top1: curves('Exact-match ratio by epoch', 'images with every label right (%)', splitRows(history, 'top1'), 'data', history),
    loss: curves('Binary cross-entropy by epoch', 'mean loss (nats per class and image)', splitRows(history, 'loss'), 'data', history),
    top5: curves('Mean average precision by epoch', 'mAP (%)', mapRows(history), 'data', history),
    'per-class-train': curves('Per-class recall on training data', 'recall (%)', classRows(history, 'train'), 'class', history),
    'per-class-test': curves('Per-class average precision on test data', 'average precision (%)', apRows(history), 'class', history),
    confusion: classTable(history),
  }
}

/** The six plots of a run. */
export function historyCharts(history: HistoryFile): Record<ChartName, TopLevelSpec> {
  if (history.epochs.some((e) => e.val?.multiLabel || e.test?.multiLabel)) return multiLabelCharts(history)
  return {
    top1: curves('Top-1 accuracy by epoch', 'top-1 accuracy (%)', splitRows(history, 'top1'), 'data', history),
    loss: curves('Cross-entropy loss by epoch', 'mean loss (nats per image)', splitRows(history, 'loss'), 'data', history),
    top5: curves('Top-5 accuracy by epoch', 'top-5 accuracy (%)', splitRows(history, 'top5'), 'data', history),
    'per-class-train': curves(
      'Per-class top-1 accuracy on training data',
      'top-1 accuracy (%)',
      classRows(history, 'train'),
      'class',
      history,
    ),
    'per-class-test': curves('Per-class top-1 accuracy on test data', 'top-1 accuracy (%)', classRows(history, 'test'), 'class', history),
    confusion: confusion(history),
  }
}
