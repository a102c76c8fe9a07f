// Out-of-sample class probabilities from a network trained on the images themselves, for confident learning: the
// airbench94 network and recipe at 32×32, cross-validated over two folds, each fold's network trained briefly on the
// other fold. On the shared CIFAR-10 with 10 % of the training labels changed, its probabilities flag them with F1 0.84,
// where a linear probe on pretrained embeddings of the same images reaches 0.66 (bench/RESULTS.md). A network trained
// from scratch needs many images, so the probe stays for smaller data (see NETWORK_MIN_IMAGES).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Callback } from '../callbacks/callback.ts'
import type { ImageSet } from '../data/image-set.ts'
import { resizeArea } from '../data/resize-area.ts'
import { CancelledError } from '../errors.ts'
import { train } from '../train/train.ts'
import type { TrainOptions } from '../train/train-options.ts'
import { cpuBf16Flags } from '../train/precision.ts'
import { AIRBENCH94 } from '../recipes/airbench94.ts'
import { runtimeInfo, type Device } from '../util/device.ts'
import { ProgressBar } from '../util/progress.ts'

/** Side the network sees images at: airbench94's own 32 pixels, which keeps its training within minutes. */
const SIDE = 32

export interface NetworkProbeOptions {
  /** Folds: `foldOf` holds 0 … folds − 1. */
  folds: number
  /** Epochs each fold's network trains for. */
  epochs: number
  seed: number
  device: Device | 'auto'
  quiet: boolean
  signal?: AbortSignal
}

/**
 * `rows × classes` probabilities: row `i` from the network trained on every row whose `foldOf` entry differs from
 * `foldOf[i]`. `set` holds every row (three channels); the network sees them resized to 32×32 by area.
 */
export async function networkProbabilities(set: ImageSet, foldOf: Int32Array, o: NetworkProbeOptions): Promise<Float32Array> {
  const images = resizeArea(set, SIDE, SIDE)
  const classes = set.classes.length
  const n = images.labels.length
  const out = new Float32Array(n * classes)
  // As the embeddings: bf16 where the run is on a CPU with native bf16 (the probe that 'auto' runs costs a fold's time).
  const onCpu = o.device === 'cpu' || (o.device === 'auto' && !runtimeInfo().cudaAvailable)
  const precision = onCpu && cpuBf16Flags().length > 0 ? 'bf16' : 'auto'
  const bar = new ProgressBar('label-error network', { total: o.folds * o.epochs, quiet: o.quiet, rateUnit: ' epochs/s' })
  let epochsDone = 0
  const progress: Callback = { onEpochEnd: () => bar.update(++epochsDone) }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-label-network-'))
  try {
    for (let fold = 0; fold < o.folds; fold++) {
      const held: number[] = []
      const rest: number[] = []
      for (let i = 0; i < n; i++) (foldOf[i] === fold ? held : rest).push(i)
      const batch = batchSize(rest.length)
      const { model, interrupted } = await train({
        // train() tests once, after the last epoch: a slice of the held fold keeps that cheap, the probabilities come
        // from the whole fold below.
        data: { train: rows(images, rest), test: rows(images, held.slice(0, 1024)) },
        recipe: 'airbench94',
        epochs: o.epochs,
        batchSize: batch,
        ...decayFor(batch),
        testEvery: 0,
        tta: 'none',
        seed: o.seed + fold,
        device: o.device,
        precision,
        report: false,
        quiet: true,
        out: path.join(dir, `fold-${fold}`),
        callbacks: [progress],
        ...(o.signal ? { signal: o.signal } : {}),
      })
      // An interrupted run returns what it has; the inspection stops with it.
      if (interrupted || o.signal?.aborted)
        throw new CancelledError('CANCELLED', 'the label-error network was cancelled', { cause: o.signal?.reason })
      // In chunks: one forward pass over a whole fold would hold every image's activations at once.
      for (let start = 0; start < held.length; start += PREDICT_CHUNK) {
        const chunk = rows(images, held.slice(start, start + PREDICT_CHUNK))
        const probabilities = await model.predictPixels(chunk.pixels, chunk.labels.length, { tta: 'mirror' })
        probabilities.forEach((p, k) => out.set(p, held[start + k]! * classes))
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
    bar.done()
  }
  return out
}

/** Images per forward pass when predicting a held fold. */
const PREDICT_CHUNK = 1024

/**
 * The recipe's weight decay for `batch` images a step. airbench scales its decay with the batch size (it is set per
 * 1 024 images), so that an epoch decays the weights as much at any batch size; the recipe's numbers are for 1 024.
 */
function decayFor(batch: number): Pick<TrainOptions, 'weightDecay' | 'paramGroups'> {
  const scale = batch / AIRBENCH94.batchSize!
  return {
    weightDecay: AIRBENCH94.weightDecay! * scale,
    paramGroups: AIRBENCH94.paramGroups!.map((g) => ({
      ...g,
      ...(g.weightDecay !== undefined ? { weightDecay: g.weightDecay * scale } : {}),
    })),
  }
}

/**
 * The recipe's 1 024 where a fold has the images for it; smaller folds get a power of two (16 at least) that makes 8
 * steps an epoch where there are 128 images or more (`MIN_NETWORK_FOLD_IMAGES`). The recipe's loss is summed over the
 * batch, so its learning rate is per image and carries over; its decay is scaled (`decayFor`).
 */
function batchSize(images: number): number {
  return Math.min(AIRBENCH94.batchSize!, 2 ** Math.max(4, Math.floor(Math.log2(images / 8))))
}

/** The images at `indices`, as a set of their own. */
function rows(set: ImageSet, indices: readonly number[]): ImageSet {
  const size = set.shape[0] * set.shape[1] * set.shape[2]
  const pixels = new Uint8Array(indices.length * size)
  indices.forEach((row, k) => pixels.set(set.pixels.subarray(row * size, (row + 1) * size), k * size))
  return { pixels, labels: Int32Array.from(indices, (row) => set.labels[row]!), shape: set.shape, classes: set.classes }
}
