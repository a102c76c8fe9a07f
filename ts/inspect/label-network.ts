// Out-of-sample class probabilities from a network trained on the images themselves, for confident learning: the
// airbench94 network and recipe, cross-validated over two folds, each fold's network trained briefly on the other
// fold. On CIFAR-10's 50 000 training images with 10 % of the labels wrong, its probabilities give the true class of
// 82 % of the images, and they rank the wrong labels far better than a linear probe on pretrained embeddings of the
// same 32-pixel images (bench/RESULTS.md). A network trained from scratch needs many images, so the probe stays for
// smaller data.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Callback } from '../callbacks/callback.ts'
import type { ImageSet } from '../data/image-set.ts'
import { CancelledError } from '../errors.ts'
import { train } from '../train/train.ts'
import { cpuBf16Flags } from '../train/precision.ts'
import type { Device } from '../util/device.ts'
import { ProgressBar } from '../util/progress.ts'

/**
 * Labelled images from which `labelModel: 'auto'` trains the network instead of fitting the probe: about where the two
 * are even. Measured on CIFAR-10 training images with 10 % of the labels changed (bench/RESULTS.md): on 25 000, the
 * network's out-of-sample probabilities agreed with the given labels 65 % of the time and flagged label errors with
 * F1 0.67; the probe's, on all 60 000 images, 67 % and F1 0.66. The network gains more from more images: on 50 000 it
 * agreed 74 % of the time, with F1 0.83.
 */
export const NETWORK_MIN_IMAGES = 25_000

/**
 * Two folds: k folds cost k − 1 trainings on all the images, so two give each image an out-of-sample prediction for
 * the price of one training.
 */
export const NETWORK_FOLDS = 2

/** Side the network sees images at: airbench94's own 32 pixels, which keeps its training within minutes. */
const SIDE = 32

export interface NetworkProbeOptions {
  /** Epochs each fold's network trains for. */
  epochs: number
  seed: number
  device: Device | 'auto'
  quiet: boolean
  signal?: AbortSignal
}

/**
 * `rows × classes` probabilities: row `i` from the network trained on every row whose `foldOf` entry differs from
 * `foldOf[i]`. `set` holds every row (three channels), resized to 32×32 first (see `resizeArea`).
 */
export async function networkProbabilities(set: ImageSet, foldOf: Int32Array, o: NetworkProbeOptions): Promise<Float32Array> {
  const images = resizeArea(set, SIDE)
  const classes = set.classes.length
  const n = images.labels.length
  const folds = Math.max(...foldOf) + 1
  const out = new Float32Array(n * classes)
  const bar = new ProgressBar('label-error network', { total: folds * o.epochs, quiet: o.quiet, rateUnit: ' epochs/s' })
  let epochsDone = 0
  const progress: Callback = { onEpochEnd: () => bar.update(++epochsDone) }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-label-network-'))
  try {
    for (let fold = 0; fold < folds; fold++) {
      const held: number[] = []
      const rest: number[] = []
      for (let i = 0; i < n; i++) (foldOf[i] === fold ? held : rest).push(i)
      const heldSet = rows(images, held)
      const { model, interrupted } = await train({
        // train() tests once, after the last epoch: a slice of the held fold keeps that cheap, the probabilities come
        // from the whole fold below.
        data: { train: rows(images, rest), test: rows(images, held.slice(0, 1024)) },
        recipe: 'airbench94',
        epochs: o.epochs,
        batchSize: batchSize(rest.length),
        testEvery: 0,
        tta: 'none',
        seed: o.seed + fold,
        device: o.device,
        // As the embeddings: bf16 where the CPU has it natively (the probe that 'auto' runs would cost a fold's time).
        precision: o.device !== 'cuda' && cpuBf16Flags().length > 0 ? 'bf16' : 'auto',
        report: false,
        quiet: true,
        out: path.join(dir, `fold-${fold}`),
        callbacks: [progress],
        ...(o.signal ? { signal: o.signal } : {}),
      })
      // An interrupted run returns what it has; the inspection stops with it.
      if (interrupted) throw new CancelledError('CANCELLED', 'the label-error network was cancelled', { cause: o.signal?.reason })
      const probabilities = await model.predictPixels(heldSet.pixels, held.length, { tta: 'mirror' })
      held.forEach((row, k) => out.set(probabilities[k]!, row * classes))
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  bar.done()
  return out
}

/**
 * The recipe's 1 024 where a fold has the images for it; smaller folds get a power of two (16 at least) that still
 * makes 8 steps an epoch, since a fold of 650 images would otherwise take none. The recipe's loss is summed over the
 * batch, so its learning rate is per image and carries over to the smaller batch.
 */
function batchSize(images: number): number {
  return Math.min(1024, 2 ** Math.max(4, Math.floor(Math.log2(images / 8))))
}

/** The images at `indices`, as a set of their own. */
function rows(set: ImageSet, indices: readonly number[]): ImageSet {
  const size = set.shape[0] * set.shape[1] * set.shape[2]
  const pixels = new Uint8Array(indices.length * size)
  indices.forEach((row, k) => pixels.set(set.pixels.subarray(row * size, (row + 1) * size), k * size))
  return { pixels, labels: Int32Array.from(indices, (row) => set.labels[row]!), shape: set.shape, classes: set.classes }
}

/**
 * The images resized to `side`×`side`: each output pixel the mean of the input pixels it covers (the nearest one where
 * the input is smaller).
 */
export function resizeArea(set: ImageSet, side: number): ImageSet {
  const [c, h, w] = set.shape
  if (h === side && w === side) return set
  const n = set.labels.length
  const pixels = new Uint8Array(n * c * side * side)
  const span = (o: number, from: number) => [
    Math.floor((o * from) / side),
    Math.max(Math.floor((o * from) / side) + 1, Math.floor(((o + 1) * from) / side)),
  ]
  const ys = Array.from({ length: side }, (_, o) => span(o, h))
  const xs = Array.from({ length: side }, (_, o) => span(o, w))
  for (let plane = 0; plane < n * c; plane++) {
    const src = plane * h * w
    for (let oy = 0; oy < side; oy++) {
      const [y0, y1] = ys[oy]!
      for (let ox = 0; ox < side; ox++) {
        const [x0, x1] = xs[ox]!
        let sum = 0
        for (let y = y0!; y < y1!; y++) for (let x = x0!; x < x1!; x++) sum += set.pixels[src + y * w + x]!
        pixels[(plane * side + oy) * side + ox] = Math.round(sum / ((y1! - y0!) * (x1! - x0!)))
      }
    }
  }
  return { ...set, pixels, shape: [c, side, side] }
}
