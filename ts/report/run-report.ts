// A run's pictures: samples.png before training; plots/ and report.html after it.
import fs from 'node:fs/promises'
import path from 'node:path'
import { writeFileAtomic } from '../util/atomic-write.ts'
import type { HistoryFile } from '../callbacks/history.ts'
import type { ImageSet } from '../data/image-set.ts'
import { InputError } from '../errors.ts'
import type { Explanation } from '../explain/explanation.ts'
import { heatmapOverlay } from '../explain/heatmap-overlay.ts'
import type { Model } from '../model/model.ts'
import { reportHtml, type ConfusedImages, type LossImage, type PredictedImage } from './html-report.ts'
import { balancedSample, IMAGE_SCALE, imageGrid, imagePng } from './image-grid.ts'
import { modelInputs } from './model-inputs.ts'
import { plotHistory } from './plot-history.ts'

/** Up to this many images per class, and at most 64 in all, in sample grids. */
function perClass(classes: number, wanted: number): number {
  return Math.max(1, Math.min(wanted, Math.floor(64 / classes)))
}

/** A grid of training images (decoded and resized, not normalized) with their class names. */
export async function samplesPng(set: ImageSet, indices: Int32Array): Promise<Buffer> {
  const picks = balancedSample(set.labels, set.classes.length, perClass(set.classes.length, 4), indices)
  const columns = Math.min(10, Math.max(4, set.classes.length))
  return imageGrid(
    set,
    picks.map((i) => ({ index: i, caption: [set.classes[set.labels[i]!]!] })),
    { columns, title: 'Training samples' },
  )
}

/**
 * Grad-CAM for the class the model predicts on each of `picks`; none for a network without a feature map to explain
 * (a model of only linear layers), which the report then leaves out.
 */
async function explainPredicted(model: Model, set: ImageSet, picks: number[]): Promise<Explanation[]> {
  if (picks.length === 0) return []
  try {
    return await model.explainPixels(modelInputs(set, picks, model), picks.length)
  } catch (err) {
    if (err instanceof InputError && err.code === 'INVALID_OPTION') return []
    throw err
  }
}

/** Writes plots/ (six charts, SVG and PNG) and report.html for a finished or stopped run. */
export async function writeRunReport(
  runDir: string,
  history: HistoryFile,
  model: Model,
  testSet: ImageSet,
  testIndices: Int32Array,
): Promise<void> {
  const charts = await plotHistory(history, path.join(runDir, 'plots'))
  const picks = balancedSample(testSet.labels, testSet.classes.length, perClass(testSet.classes.length, 3), testIndices)
  const probs = picks.length > 0 ? await model.predictPixels(modelInputs(testSet, picks, model), picks.length) : []
  const thresholds = testSet.targets ? model.multiLabel?.thresholds : undefined
  const k = testSet.classes.length
  const names = (chosen: (c: number) => boolean) => testSet.classes.filter((_, c) => chosen(c)).join(', ') || '(none)'
  const predictions: PredictedImage[] = await Promise.all(
    picks.map(async (index, j) => {
      const row = probs[j]!
      const best = row.indexOf(Math.max(...row))
      // Multi-label: the label sets, so that a caption matches exactly when every label is right.
      const [truth, predicted] = thresholds
        ? [names((c) => testSet.targets![index * k + c] === 1), names((c) => row[c]! >= thresholds[c]!)]
        : [testSet.classes[testSet.labels[index]!]!, testSet.classes[best] ?? String(best)]
      return { png: await imagePng(testSet, index), truth, predicted, probability: row[best]! }
    }),
  )
  const interpretation = history.interpretation
  const lossPicks = (interpretation?.topLosses ?? []).map((t) => t.index)
  const explained = await explainPredicted(model, testSet, lossPicks)
  const topLosses: LossImage[] = await Promise.all(
    (interpretation?.topLosses ?? []).map(async (t, j) => ({
      ...t,
      png: await imagePng(testSet, t.index),
      heatmapPng:
        explained[j] &&
        (await heatmapOverlay(explained[j], { scale: Math.max(1, Math.round((IMAGE_SCALE * testSet.shape[2]) / explained[j].width)) })),
    })),
  )
  const confused: ConfusedImages[] = await Promise.all(
    (interpretation?.confused ?? []).map(async (c) => ({ ...c, pngs: await Promise.all(c.examples.map((i) => imagePng(testSet, i))) })),
  )
  // samples.png was drawn when the run started (a resumed run keeps the first one).
  const samples = await fs.readFile(path.join(runDir, 'samples.png')).catch(() => undefined)
  const heatmapLayer = explained[0]?.layer
  const html = reportHtml({
    history,
    summary: model.summary(),
    samplesPng: samples,
    charts,
    predictions,
    topLosses,
    heatmapLayer,
    confused,
  })
  await writeFileAtomic(path.join(runDir, 'report.html'), html)
}
