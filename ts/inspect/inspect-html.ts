// inspect.html: one self-contained page of what `convkit inspect` found, each finding with its images side by side;
// and inspect.json beside it.
import path from 'node:path'
import type { ImageSet } from '../data/image-set.ts'
import type { ImageSplit } from '../data/exclude-list.ts'
import { imagePng } from '../report/image-grid.ts'
import { dataUri, esc } from '../report/html-report.ts'
import { writeFileAtomic } from '../util/atomic-write.ts'
import type { InspectImage, InspectReport } from './inspect-data.ts'
import { summaryRows } from './inspect-summary.ts'

/** Findings of each kind drawn on the page (inspect.json lists them all): enough to judge, few enough to load. */
export const SHOWN_PER_FINDING = 120

/** Writes `<dir>/inspect.json` and `<dir>/inspect.html` (atomically); returns their paths. */
export async function writeInspection(
  report: InspectReport,
  sets: Partial<Record<ImageSplit, ImageSet>>,
  dir: string,
): Promise<{ json: string; html: string }> {
  const json = path.join(dir, 'inspect.json')
  const html = path.join(dir, 'inspect.html')
  await writeFileAtomic(json, `${JSON.stringify(report, null, 1)}\n`)
  await writeFileAtomic(html, await inspectHtml(report, sets))
  return { json, html }
}

/** Thumbnails at about 96 pixels, nearest-neighbour so that small images stay crisp. */
function scaleFor(set: ImageSet): number {
  return Math.max(1, Math.round(96 / Math.max(set.shape[1], set.shape[2])))
}

async function thumb(sets: Partial<Record<ImageSplit, ImageSet>>, image: InspectImage, caption: string): Promise<string> {
  const set = sets[image.split]!
  const png = await imagePng(set, image.index, scaleFor(set))
  return `<figure><img src="${dataUri(png)}" alt="${esc(image.label)}" title="${esc(image.id)}"><figcaption>${caption}</figcaption></figure>`
}

const where = (i: InspectImage) => `${esc(i.split)} · ${esc(path.basename(i.id))}`

/** The page. */
export async function inspectHtml(report: InspectReport, sets: Partial<Record<ImageSplit, ImageSet>>): Promise<string> {
  const shown = <T>(items: readonly T[]) => items.slice(0, SHOWN_PER_FINDING)
  const more = (n: number) =>
    n > SHOWN_PER_FINDING ? `<p class="note">The first ${SHOWN_PER_FINDING} of ${n}; inspect.json lists every one.</p>` : ''

  const issues: string[] = []
  for (const i of shown(report.labelIssues))
    issues.push(
      await thumb(
        sets,
        i.image,
        `${where(i.image)}<br>given <b>${esc(i.image.label)}</b> (${(100 * i.selfConfidence).toFixed(1)} %)<br>likely <b>${esc(i.suggested)}</b> (${(100 * i.suggestedProbability).toFixed(0)} %)`,
      ),
    )
  const exact: string[] = []
  for (const g of shown(report.exactDuplicates)) {
    const figures = await Promise.all(g.images.map((i) => thumb(sets, i, `${where(i)}<br>${esc(i.label)}`)))
    exact.push(
      `<div class="group${g.leakage ? ' leak' : ''}">${figures.join('')}${g.leakage ? '<span class="tag">across splits</span>' : ''}</div>`,
    )
  }
  const near: string[] = []
  for (const p of shown(report.nearDuplicates)) {
    const figures = [
      await thumb(sets, p.a, `${where(p.a)}<br>${esc(p.a.label)}`),
      await thumb(sets, p.b, `${where(p.b)}<br>${esc(p.b.label)}`),
    ]
    near.push(
      `<div class="group${p.leakage ? ' leak' : ''}">${figures.join('')}<span class="tag">match ${p.match.toFixed(3)} · similarity ${p.similarity.toFixed(3)}${p.leakage ? ' · across splits' : ''}</span></div>`,
    )
  }
  const splits = Object.keys(report.counts) as ImageSplit[]
  const countRows = report.classes
    .map((c, k) => `<tr><th>${esc(c)}</th>${splits.map((s) => `<td>${report.counts[s]![k]}</td>`).join('')}</tr>`)
    .join('')
  const s = report.sizes
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>convkit inspect: ${esc(path.basename(report.source))}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; } th, td { padding: 2px 10px; text-align: left; border-bottom: 1px solid #eee; }
td { text-align: right; } table.summary td { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
.group { display: inline-flex; gap: 4px; padding: 6px; border: 1px solid #ddd; border-radius: 6px; align-items: flex-start; position: relative; }
.group.leak { border-color: #d33; }
.tag { font-size: 12px; color: #555; align-self: center; padding: 0 4px; } .leak .tag { color: #c00; }
figure { margin: 0; width: 120px; } figure img { image-rendering: pixelated; display: block; max-width: 120px; }
figcaption { font-size: 11px; color: #444; word-break: break-all; }
.note { color: #666; font-size: 12px; }
</style></head><body>
<h1>Inspection of ${esc(report.source)}</h1>
<table class="summary"><tbody>${summaryRows(report)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
    .join('')}</tbody></table>
<h2>Likely label errors</h2>
<p class="note">Ranked by the out-of-sample probability of the given label (confident learning on ${labelModelNote(report)}).</p>
<div class="grid">${issues.join('') || '<p>None found.</p>'}</div>${more(report.labelIssues.length)}
<h2>Exact duplicates</h2>
<div class="grid">${exact.join('') || '<p>None.</p>'}</div>${more(report.exactDuplicates.length)}
<h2>Near-duplicates</h2>
<p class="note">Nearest neighbours by embedding whose pictures match (detail correlated at least ${report.matchThreshold} at the best shift of up to 2 pixels of 32) or whose embeddings are at least ${report.nearThreshold} similar; red: across splits.</p>
<div class="grid">${near.join('') || '<p>None.</p>'}</div>${more(report.nearDuplicates.length)}
<h2>Classes</h2>
<table><thead><tr><th></th>${splits.map((sp) => `<th>${sp}</th>`).join('')}</tr></thead><tbody>${countRows}</tbody></table>
<h2>Image sizes</h2>
<p>${s.read} read${s.unreadable ? `, ${s.unreadable} unreadable headers` : ''}: width ${s.width.min}–${s.width.max} (median ${s.width.median}), height ${s.height.min}–${s.height.max} (median ${s.height.median}); ${s.aspect.landscape} landscape, ${s.aspect.square} square, ${s.aspect.portrait} portrait. Most common: ${s.common.map((c) => `${c.size} (${c.count})`).join(', ')}.</p>
${report.unreadable.length ? `<h2>Unreadable</h2><ul>${report.unreadable.map((u) => `<li>${esc(u)}</li>`).join('')}</ul>` : ''}
</body></html>
`
}

/** What the label findings' probabilities came from, in words. */
function labelModelNote(report: InspectReport): string {
  const model =
    report.labelModel === 'network'
      ? 'a network trained on the images, cross-validated'
      : `a cross-validated linear probe of ${esc(report.embedding.model)} embeddings`
  const accuracy =
    report.labelModelAccuracy === undefined ? '' : `, ${(100 * report.labelModelAccuracy).toFixed(1)} % accurate against the given labels`
  return model + accuracy
}
