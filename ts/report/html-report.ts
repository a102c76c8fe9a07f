// report.html: one self-contained page for a run, results first (final metrics, curves side by side where the page is
// wide, top losses, confusions, per-class metrics, predictions), then samples, the configuration and the model folded;
// every image embedded, nothing fetched from a network.
import type { HistoryFile } from '../callbacks/history.ts'
import type { RenderedChart } from './plot-history.ts'
import type { ConfusedPair, TopLoss } from './top-losses.ts'
import { changedOptions } from '../train/train-options.ts'

export interface PredictedImage {
  /** PNG bytes of the image. */
  png: Buffer
  truth: string
  predicted: string
  probability: number
}

/** A top loss with its image, and where the model found the evidence for the class it predicted. */
export interface LossImage extends TopLoss {
  png: Buffer
  /** The Grad-CAM overlay for the predicted class, when the network has a feature map to explain. */
  heatmapPng?: Buffer
}

/** A confused pair with its example images. */
export interface ConfusedImages extends ConfusedPair {
  pngs: Buffer[]
}

export interface ReportInput {
  history: HistoryFile
  summary: string
  /** The grid of training samples, when there is one. */
  samplesPng?: Buffer
  charts: RenderedChart[]
  predictions: PredictedImage[]
  /** The test images with the highest loss (history.interpretation), highest first. */
  topLosses?: LossImage[]
  /** The layer the top losses' heatmaps weight. */
  heatmapLayer?: string
  /** The most confused pairs of classes, with examples. */
  confused?: ConfusedImages[]
}

export function esc(value: unknown): string {
  return String(value).replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

export const dataUri = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`
const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)} %`)

function metricsTable(history: HistoryFile): string {
  const epoch = history.epochs.find((e) => e.epoch === history.best?.epoch) ?? history.epochs.at(-1)
  if (!epoch) return '<p>No epoch finished.</p>'
  const splits = (['train', 'val', 'test'] as const).filter((s) => epoch[s])
  // Multi-label runs: mAP and micro-F1 beside the exact-match ratio (their top-1) and the share whose best score is a label.
  const multi = splits.some((s) => epoch[s]!.multiLabel)
  const head = multi
    ? ['loss', 'exact match', 'best score a label', 'mAP', 'macro-F1', 'micro-F1']
    : ['loss', 'top-1', 'top-5', 'balanced accuracy', 'macro-F1']
  const rows = splits.map((s) => {
    const m = epoch[s]!
    const cells = multi
      ? [m.loss.toFixed(4), pct(m.top1), pct(m.top5), pct(m.multiLabel?.mAP), pct(m.macroF1), pct(m.multiLabel?.microF1)]
      : [m.loss.toFixed(4), pct(m.top1), pct(m.top5), pct(m.balancedAccuracy), pct(m.macroF1)]
    return `<tr><th>${s}</th>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`
  })
  return `<p>At epoch ${epoch.epoch}${history.best ? ` (best by ${esc(history.best.monitor)})` : ''}; ${history.epochs.length} epoch(s) run${
    history.stoppedEarly ? `, stopped early: ${esc(history.stopReason)}` : ''
  }.</p>
<table><thead><tr><th></th>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`
}

/** The last test evaluation, class by class: how many images, precision, recall and F1. */
function testClassTable(history: HistoryFile): string {
  const epoch = [...history.epochs].reverse().find((e) => e.test?.classMetrics)
  if (!epoch) return ''
  const scores = epoch.test!.classMetrics!
  const ranked = epoch.test!.multiLabel
  const rows = history.classes.map((c, i) => {
    const m = scores[c]
    const extra = ranked ? `<td>${pct(ranked.averagePrecision[c])}</td><td>${ranked.thresholds[i]?.toFixed(3) ?? '–'}</td>` : ''
    return `<tr><th>${esc(c)}</th><td>${m?.count ?? '–'}</td><td>${pct(m?.precision)}</td><td>${pct(m?.recall)}</td><td>${pct(m?.f1)}</td>${extra}</tr>`
  })
  const summary = ranked
    ? `mAP ${pct(ranked.mAP)}, macro-F1 ${pct(epoch.test!.macroF1)}, micro-F1 ${pct(ranked.microF1)}; precision, recall and F1 at each class's threshold (chosen on the validation images to maximise its F1)`
    : `balanced accuracy ${pct(epoch.test!.balancedAccuracy)}, macro-F1 ${pct(epoch.test!.macroF1)}`
  return `<h2>Per-class test metrics</h2>
<p>The test evaluation of epoch ${epoch.epoch}: ${summary}.</p>
<table><thead><tr><th>class</th><th>${ranked ? 'images with it' : 'count'}</th><th>precision</th><th>recall</th><th>F1</th>${ranked ? '<th>AP</th><th>threshold</th>' : ''}</tr></thead><tbody>${rows.join('')}</tbody></table>`
}

function perClassTable(history: HistoryFile): string {
  const epoch = history.epochs.find((e) => e.epoch === history.best?.epoch) ?? history.epochs.at(-1)
  if (!epoch) return ''
  const splits = (['train', 'val', 'test'] as const).filter((s) => epoch[s])
  const rows = history.classes.map(
    (c) => `<tr><th>${esc(c)}</th>${splits.map((s) => `<td>${pct(epoch[s]!.perClass[c])}</td>`).join('')}</tr>`,
  )
  const metric = splits.some((s) => epoch[s]!.multiLabel) ? 'recall' : 'top-1'
  return `<table><thead><tr><th>class</th>${splits.map((s) => `<th>${s} ${metric}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`
}

/** The top losses, each image with its true and predicted class and the loss. */
function topLossesSection(input: ReportInput): string {
  const losses = input.topLosses ?? []
  if (losses.length === 0) return ''
  const n = input.history.interpretation?.images
  const figures = losses
    .map(
      (t) =>
        `<figure class="pred bad"><img src="${dataUri(t.png)}" alt="${esc(t.truth)}"${t.file ? ` title="${esc(t.file)}"` : ''}>${t.heatmapPng ? `<img class="heatmap" src="${dataUri(t.heatmapPng)}" alt="Grad-CAM for ${esc(t.predicted)}">` : ''}<figcaption>true: ${esc(t.truth)} (${(100 * t.truthProbability).toFixed(0)} %)<br>predicted: ${esc(t.predicted)} (${(100 * t.probability).toFixed(0)} %)<br>loss ${t.loss.toFixed(2)}</figcaption></figure>`,
    )
    .join('\n')
  return `<h2>Top losses</h2>
<p>The ${losses.length} test images with the highest loss under the final model${n ? `, of ${n} predicted` : ''}: wrong labels, odd images, or classes the model has not learned.${input.heatmapLayer ? ` Beside each, Grad-CAM: where the model found the evidence for the class it predicted (red strongest; Grad-CAM at ${esc(input.heatmapLayer)}).` : ''}</p>
${figures}`
}

/** The most confused pairs of classes, each with examples. */
function confusedSection(input: ReportInput): string {
  const pairs = input.confused ?? []
  if (pairs.length === 0) return ''
  const rows = pairs
    .map(
      (c) =>
        `<tr><th>${esc(c.truth)}</th><th>${esc(c.predicted)}</th><td>${c.count}</td><td class="examples">${c.pngs.map((png) => `<img src="${dataUri(png)}" alt="${esc(c.truth)} as ${esc(c.predicted)}">`).join('')}</td></tr>`,
    )
    .join('')
  return `<h2>Most confused</h2>
<table><thead><tr><th>true</th><th>predicted</th><th>images</th><th>examples (highest loss first)</th></tr></thead><tbody>${rows}</tbody></table>`
}

/** The page's HTML. */
export function reportHtml(input: ReportInput): string {
  const { history } = input
  const row = ([k, v]: [string, unknown]) => `<tr><th>${esc(k)}</th><td>${esc(JSON.stringify(v))}</td></tr>`
  const config = Object.entries(history.config)
    .filter(([k]) => k !== 'model')
    .map(row)
    .join('')
  const changed = changedOptions(history.config)
    .filter((k) => k !== 'model' && k in history.config)
    .map((k) => row([k, history.config[k]]))
    .join('')
  const charts = input.charts
    .map((c) => `<figure><img src="${dataUri(c.png)}" width="800" height="500" alt="${esc(c.name)} plot"></figure>`)
    .join('\n')
  const predictions = input.predictions
    .map((p) => {
      const ok = p.truth === p.predicted
      return `<figure class="pred ${ok ? 'ok' : 'bad'}"><img src="${dataUri(p.png)}" alt="${esc(p.truth)}"><figcaption>true: ${esc(p.truth)}<br>predicted: ${esc(p.predicted)} (${(100 * p.probability).toFixed(0)} %)</figcaption></figure>`
    })
    .join('\n')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ConvKit run report</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1, h2 { font-weight: 600; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th { background: #f4f4f4; text-align: left; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
figure { display: inline-block; margin: 0.4em; }
.pred { width: 140px; text-align: center; font-size: 0.8em; }
.pred img { width: 96px; height: 96px; image-rendering: pixelated; }
.pred.ok figcaption { color: #2a7a2a; }
.pred.bad figcaption { color: #b22222; }
.charts { display: flex; flex-wrap: wrap; }
.charts figure { max-width: 100%; }
.charts img { max-width: 100%; height: auto; }
@media (min-width: 1300px) { .charts figure { width: 600px; } }
.examples img { width: 64px; height: 64px; image-rendering: pixelated; margin-right: 4px; }
</style>
</head>
<body>
<h1>ConvKit run report</h1>
<p>${history.classes.length} classes: ${history.classes.map(esc).join(', ')}.</p>
<h2>Final metrics</h2>
${metricsTable(history)}
<h2>Curves</h2>
<div class="charts">
${charts}
</div>
${topLossesSection(input)}
${confusedSection(input)}
<h2>Per-class accuracy</h2>
${perClassTable(history)}
${testClassTable(history)}
<h2>Test images: predicted vs true</h2>
${predictions}
${input.samplesPng ? `<h2>Training samples</h2>\n<figure><img src="${dataUri(input.samplesPng)}" alt="training samples"></figure>` : ''}
<h2>Configuration</h2>
<p>What this run set differently from ConvKit's defaults (a recipe's values included):</p>
<table class="changed"><tbody>${changed}</tbody></table>
<details><summary>All ${Object.keys(history.config).length - ('model' in history.config ? 1 : 0)} options of the run</summary>
<table><tbody>${config}</tbody></table>
</details>
<h2>Model</h2>
<details><summary>Layers</summary>
<pre>${esc(input.summary)}</pre>
</details>
</body>
</html>
`
}
