// Accuracies from evaluation counts; no addon needed.
import test from 'ava'
import { metricsFromCounts } from '../ts/model/metrics.ts'

test('top-1, top-5, per-class and confusion follow from the counts', (t) => {
  const m = metricsFromCounts({ count: 8, lossSum: 4, top1Correct: 5, top5Correct: 8, classes: 2, confusion: [3, 1, 2, 2] }, ['cat', 'dog'])
  t.is(m.loss, 0.5)
  t.is(m.top1, 62.5)
  t.is(m.top5, 100)
  t.deepEqual(m.confusion, [
    [3, 1],
    [2, 2],
  ])
  t.deepEqual(m.perClass, { cat: 75, dog: 50 })
})

test('a class with no images has NaN accuracy, and unnamed classes use their index', (t) => {
  const m = metricsFromCounts({ count: 2, lossSum: 1, top1Correct: 2, top5Correct: 2, classes: 2, confusion: [2, 0, 0, 0] })
  t.is(m.perClass['0'], 100)
  t.true(Number.isNaN(m.perClass['1']))
})
