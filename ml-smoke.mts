import { writeMosaics } from './__test__/helpers/mosaics.ts'
import { cifarSubset } from './__test__/helpers/cifar-subset.ts'
import { train } from './ts/index.ts'
const dirs = cifarSubset()
const t0 = Date.now()
const csv = await writeMosaics('/tmp/ml-smoke', [{ from: dirs.train, count: 1500, split: 'train' }, { from: dirs.test, count: 500, split: 'test' }], 7)
console.log('mosaics', Date.now() - t0, 'ms')
const run = await train({ data: csv, epochs: 3, size: [64, 64], batchSize: 64, device: 'cpu', seed: 1, out: '/tmp/ml-smoke-run', augment: true })
console.log(JSON.stringify(run.history.epochs.at(-1)!.test!.multiLabel, null, 0).slice(0, 600))
console.log(run.model.multiLabel)
const preds = await run.model.predict(['/tmp/ml-smoke/test/00000.png', '/tmp/ml-smoke/test/00001.png'])
console.log(JSON.stringify(preds.map((p) => p.labels)))
