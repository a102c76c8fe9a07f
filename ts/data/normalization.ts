// Per-channel mean and standard deviation of a training set, for `normalize: 'dataset'`.
import type { ImageSet, Normalization } from './image-set.ts'

/** Mean and std of each channel over `indices` of the set (all images when omitted), on the [0, 1] scale. */
export function datasetNormalization(set: ImageSet, indices?: Int32Array): Normalization {
  const [channels, h, w] = set.shape
  const plane = h * w
  const sums = new Float64Array(channels)
  const squares = new Float64Array(channels)
  const count = indices ? indices.length : set.labels.length
  for (let k = 0; k < count; k++) {
    const image = indices ? indices[k]! : k
    for (let c = 0; c < channels; c++) {
      const base = (image * channels + c) * plane
      let s = 0
      let q = 0
      for (let i = 0; i < plane; i++) {
        const v = set.pixels[base + i]!
        s += v
        q += v * v
      }
      sums[c]! += s
      squares[c]! += q
    }
  }
  const n = count * plane
  const mean = Array.from(sums, (s) => s / n / 255)
  const std = Array.from(squares, (q, c) => Math.sqrt(Math.max(q / n / 255 ** 2 - mean[c]! ** 2, 1e-12)))
  return { mean, std }
}

/** Normalizations by name: CIFAR-10's training statistics (as airbench uses them) and ImageNet's (torchvision's). */
export const NAMED_NORMALIZATIONS = {
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
} as const satisfies Record<string, Normalization>
