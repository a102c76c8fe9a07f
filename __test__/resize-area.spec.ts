// Area resampling of decoded images (the label-error network's input): block means when shrinking by a whole factor,
// fractional weights otherwise, blends when enlarging, and the set itself at its own size.
import test from 'ava'
import type { ImageSet } from '../ts/data/image-set.ts'
import { resizeArea } from '../ts/data/resize-area.ts'

const set = (channels: number, h: number, w: number, values: number[]): ImageSet => ({
  pixels: Uint8Array.from(values),
  labels: Int32Array.from({ length: values.length / (channels * h * w) }, () => 0),
  shape: [channels, h, w],
  classes: ['a'],
})

test('halving takes the mean of each 2×2 block, per channel and per image', (t) => {
  // Two images of two channels, 4×4 each: plane p holds p*16 + its index.
  const values = Array.from({ length: 2 * 2 * 16 }, (_, i) => i)
  const out = resizeArea(set(2, 4, 4, values), 2, 2)
  t.deepEqual(out.shape, [2, 2, 2])
  const block = (plane: number, y: number, x: number) =>
    Math.round(
      (values[plane * 16 + 2 * y * 4 + 2 * x]! +
        values[plane * 16 + 2 * y * 4 + 2 * x + 1]! +
        values[plane * 16 + (2 * y + 1) * 4 + 2 * x]! +
        values[plane * 16 + (2 * y + 1) * 4 + 2 * x + 1]!) /
        4,
    )
  t.deepEqual(
    [...out.pixels],
    Array.from({ length: 4 * 4 }, (_, i) => block(Math.floor(i / 4), Math.floor((i % 4) / 2), i % 2)),
  )
})

test('3 → 2 pixels weighs the middle pixel half to each side; 2 → 3 blends the two in the middle', (t) => {
  t.deepEqual([...resizeArea(set(1, 1, 3, [0, 90, 180]), 1, 2).pixels], [Math.round((0 + 45) / 1.5), Math.round((45 + 180) / 1.5)])
  t.deepEqual([...resizeArea(set(1, 1, 2, [0, 90]), 1, 3).pixels], [0, 45, 90])
})

test('a set already at the size is returned as it is', (t) => {
  const s = set(1, 2, 2, [1, 2, 3, 4])
  t.is(resizeArea(s, 2, 2), s)
})
