// Top losses and confusions: a run with a report records the test images its final model gets most wrong and the
// classes it confuses most, in history.json and at the top of report.html.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { Model, interpretPredictions, readImageFolder, referenceCnn, train } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('top-losses')
const dirs = cifarSubset()

test.serial('a run records its top losses and most confused pairs, and the report leads with results', async (t) => {
  const out = tmpdir()
  const { history } = await train({
    data: dirs.train,
    testData: dirs.test,
    epochs: 2,
    limitTrain: 600,
    limitTest: 300,
    batchSize: 64,
    device: 'cpu',
    seed: 3,
    quiet: true,
    out,
  })
  const saved = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8'))
  const interpretation = saved.interpretation
  t.truthy(interpretation, 'history.json has the interpretation')
  t.deepEqual(interpretation, history.interpretation)
  t.is(interpretation.images, 300)
  const losses = interpretation.topLosses as { loss: number; truthProbability: number; truth: string; predicted: string; file: string }[]
  t.is(losses.length, 12)
  for (let i = 1; i < losses.length; i++) t.true(losses[i - 1]!.loss >= losses[i]!.loss, 'highest loss first')
  for (const l of losses) {
    t.true(Math.abs(l.loss + Math.log(Math.max(l.truthProbability, 1e-12))) < 1e-6)
    t.not(l.truth, l.predicted, 'a top loss of a model this weak is a mistake')
    t.true(fs.existsSync(l.file), l.file)
  }
  // The pairs count what the final test evaluation counted (same weights, no test-time augmentation).
  const test = history.epochs.at(-1)!.test!
  const classes = history.classes
  for (const pair of interpretation.confused as { truth: string; predicted: string; count: number; examples: number[] }[]) {
    t.is(pair.count, test.confusion![classes.indexOf(pair.truth)]![classes.indexOf(pair.predicted)]!, `${pair.truth} → ${pair.predicted}`)
    t.true(pair.examples.length >= 1 && pair.examples.length <= 4)
  }
  const largest = Math.max(...test.confusion!.flatMap((row, i) => row.filter((_, j) => j !== i)))
  t.is(interpretation.confused[0].count, largest)

  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8')
  const at = (heading: string) => html.indexOf(`<h2>${heading}</h2>`)
  t.true(at('Final metrics') >= 0 && at('Final metrics') < at('Curves'))
  t.true(at('Curves') < at('Top losses') && at('Top losses') < at('Most confused'))
  t.true(at('Most confused') < at('Configuration'))
  // Each top loss has its Grad-CAM overlay for the class the model predicted, at the network's last feature map.
  const section = html.slice(at('Top losses'), at('Most confused'))
  t.is(section.match(/<img class="heatmap" src="data:image\/png;base64,/g)?.length, 12)
  t.regex(section, /Grad-CAM at layers\[\d+\]/)
  // The configuration: what the run changed, then everything folded.
  const changed = /<table class="changed"><tbody>(.*?)<\/tbody><\/table>\s*<details>/s.exec(html)?.[1] ?? ''
  const keys = [...changed.matchAll(/<tr><th>([^<]+)<\/th>/g)].map((m) => m[1])
  t.deepEqual(keys.sort(), ['batchSize', 'data', 'device', 'epochs', 'limitTest', 'limitTrain', 'seed', 'testData'].sort(), changed)
})

test('interpretPredictions ranks by the loss of the true class', async (t) => {
  const set = await readImageFolder(dirs.test)
  const model = Model.create(referenceCnn({ classes: 10, inputShape: [3, 32, 32] }), { device: 'cpu', seed: 5 })
  const indices = Int32Array.from({ length: 100 }, (_, i) => i * 10)
  const result = await interpretPredictions(model, set, indices, { topK: 5, pairs: 3, examples: 2, batchSize: 16 })
  t.is(result.images, 100)
  t.is(result.topLosses.length, 5)
  const probs = await model.predictPixels(set.pixels.slice(0), set.labels.length)
  const losses = Array.from(indices, (i) => -Math.log(Math.max(probs[i]![set.labels[i]!]!, 1e-12))).sort((a, b) => b - a)
  t.deepEqual(
    result.topLosses.map((l) => l.loss.toFixed(4)),
    losses.slice(0, 5).map((l) => l.toFixed(4)),
  )
  t.true(result.confused.length <= 3)
  t.true(result.confused.every((c) => c.examples.length <= 2 && c.count >= c.examples.length))
})
