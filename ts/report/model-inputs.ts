// Test images as the model evaluates them, for predictions drawn into reports.
import type { ImageSet } from '../data/image-set.ts'
import type { Model } from '../model/model.ts'

/** The images at `picks` as the model evaluates them: the centre of each at its evaluation input size. */
export function modelInputs(set: ImageSet, picks: readonly number[], model: Model): Uint8Array {
  const [c, h, w] = set.shape
  const [mh, mw] = model.evalInputSize
  const [top, left] = [Math.floor((h - mh) / 2), Math.floor((w - mw) / 2)]
  const out = new Uint8Array(picks.length * c * mh * mw)
  picks.forEach((src, dst) => {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < mh; y++) {
        const from = ((src * c + ch) * h + top + y) * w + left
        out.set(set.pixels.subarray(from, from + mw), ((dst * c + ch) * mh + y) * mw)
      }
    }
  })
  return out
}
