// Where a trained model goes wrong: the held-out images with the highest loss, and the pairs of classes it confuses
// most, each with example images (fastai's plot_top_losses and most_confused). The model predicts every image once
// more, a batch at a time, as it evaluates them (the centre at its evaluation size, no test-time augmentation).
import type { ImageSet } from '../data/image-set.ts'
import type { Model } from '../model/model.ts'
import { modelInputs } from './model-inputs.ts'

/** One image the model got most wrong. */
export interface TopLoss {
  /** The image's index in its set. */
  index: number
  /** The file it came from, when known. */
  file?: string
  truth: string
  predicted: string
  /** The probability of the predicted class. */
  probability: number
  /** The probability of the true class. */
  truthProbability: number
  /** Cross-entropy of the true class: −ln(truthProbability). */
  loss: number
}

/** A pair of classes the model confuses: images of `truth` predicted as `predicted`. */
export interface ConfusedPair {
  truth: string
  predicted: string
  count: number
  /** Up to `examples` of those images, highest loss first (indices into the set). */
  examples: number[]
}

export interface Interpretation {
  /** The split it looked at. */
  split: 'test'
  /** Images predicted. */
  images: number
  topLosses: TopLoss[]
  confused: ConfusedPair[]
}

export interface InterpretOptions {
  /** How many top losses. Defaults to 12. */
  topK?: number
  /** How many confused pairs. Defaults to 6. */
  pairs?: number
  /** Example images per pair. Defaults to 4. */
  examples?: number
  /** Images per prediction call. Defaults to 64. */
  batchSize?: number
}

/** The top losses and most confused pairs of `model` on the images of `set` at `indices`. */
export async function interpretPredictions(
  model: Model,
  set: ImageSet,
  indices: Int32Array,
  options: InterpretOptions = {},
): Promise<Interpretation> {
  const topK = options.topK ?? 12
  const batchSize = options.batchSize ?? 64
  const name = (c: number) => set.classes[c] ?? String(c)
  const scored: { index: number; truth: number; predicted: number; probability: number; truthProbability: number; loss: number }[] = []
  for (let start = 0; start < indices.length; start += batchSize) {
    const picks = Array.from(indices.subarray(start, start + batchSize))
    const rows = await model.predictPixels(modelInputs(set, picks, model), picks.length, { tta: 'none' })
    picks.forEach((index, j) => {
      const row = rows[j]!
      let predicted = 0
      for (let c = 1; c < row.length; c++) if (row[c]! > row[predicted]!) predicted = c
      const truth = set.labels[index]!
      const truthProbability = row[truth] ?? 0
      // Probabilities round to 0 in float32 for a confident mistake; 1e-12 keeps the loss finite (27.6).
      scored.push({
        index,
        truth,
        predicted,
        probability: row[predicted]!,
        truthProbability,
        loss: -Math.log(Math.max(truthProbability, 1e-12)),
      })
    })
  }
  scored.sort((a, b) => b.loss - a.loss || a.index - b.index)
  const topLosses = scored.slice(0, topK).map((s) => ({
    index: s.index,
    ...(set.files?.[s.index] ? { file: set.files[s.index] } : {}),
    truth: name(s.truth),
    predicted: name(s.predicted),
    probability: s.probability,
    truthProbability: s.truthProbability,
    loss: s.loss,
  }))
  const pairs = new Map<string, ConfusedPair>()
  for (const s of scored) {
    if (s.predicted === s.truth) continue
    const key = `${s.truth}→${s.predicted}`
    const pair = pairs.get(key) ?? pairs.set(key, { truth: name(s.truth), predicted: name(s.predicted), count: 0, examples: [] }).get(key)!
    pair.count++
    // `scored` runs from the highest loss down: the first examples are the worst.
    if (pair.examples.length < (options.examples ?? 4)) pair.examples.push(s.index)
  }
  const confused = [...pairs.values()]
    .sort((a, b) => b.count - a.count || a.truth.localeCompare(b.truth) || a.predicted.localeCompare(b.predicted))
    .slice(0, options.pairs ?? 6)
  return { split: 'test', images: scored.length, topLosses, confused }
}
