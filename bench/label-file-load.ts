// Reading a label file against reading the same images as folders, with a warm cache: the 60 000 shared CIFAR-10
// JPEGs extracted as `train/<class>` and `test/<class>`, and a CSV of 60 000 rows (path, label, split) beside them.
// Each source is read once to fill the decoded cache, then read again `--rounds` times, alternating which goes first,
// each in this process (the cache is on disk; nothing is kept in memory between reads). Prints the medians, their
// ratio (issue 24's target: the CSV within 10 % of the folders) and the median of each round's ratio.
//
// npm run bench:label-file -- [--rounds 5] [--root <folder with train/ and test/>]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { loadData } from '../ts/index.ts'
import { extractedCifar } from './cifar-folder.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string' }, root: { type: 'string' } } })
const rounds = Number(values.rounds ?? 5)

/** `labels.csv` in the folder's parent: one row per image, paths relative to the CSV, the split in a column. */
function writeCsv(root: string): string {
  const file = path.join(path.dirname(root), 'labels.csv')
  const rows = ['path,label,split']
  for (const split of ['train', 'test']) {
    for (const label of fs.readdirSync(path.join(root, split)).sort()) {
      for (const name of fs.readdirSync(path.join(root, split, label)).sort())
        rows.push(`${path.basename(root)}/${split}/${label}/${name},${label},${split}`)
    }
  }
  fs.writeFileSync(file, `${rows.join('\n')}\n`)
  return file
}

const root = values.root ? path.resolve(values.root) : extractedCifar()
const csv = writeCsv(root)
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-bench-labels-cache-'))
const options = { cacheDir, quiet: true, cacheMaxBytes: 8 * 2 ** 30 }
const sources = { folder: root, csv }

async function timeRead(source: string): Promise<{ seconds: number; images: number }> {
  const start = performance.now()
  const data = await loadData(source, options)
  const images = data.train.labels.length + (data.test?.labels.length ?? 0)
  return { seconds: (performance.now() - start) / 1000, images }
}

console.log(`${root} and ${csv}; ${os.cpus().length} cores; ${new Date().toISOString()}`)
for (const [name, source] of Object.entries(sources)) {
  const cold = await timeRead(source)
  console.log(`${name}: first read (decoding into the cache) ${cold.seconds.toFixed(1)} s, ${cold.images} images`)
}
const times: Record<keyof typeof sources, number[]> = { folder: [], csv: [] }
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? (['folder', 'csv'] as const) : (['csv', 'folder'] as const)
  for (const name of order) times[name].push((await timeRead(sources[name])).seconds)
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!
const folder = median(times.folder)
const labels = median(times.csv)
// Each round's own ratio too: its two reads ran back to back, so a slower stretch of the machine slows both.
const paired = median(times.csv.map((t, i) => t / times.folder[i]!))
console.log(
  `warm reads (median of ${rounds}): folders ${(1000 * folder).toFixed(0)} ms, CSV ${(1000 * labels).toFixed(0)} ms; ` +
    `CSV / folders = ${(labels / folder).toFixed(3)}× (median of each round's ratio ${paired.toFixed(3)}×)`,
)
fs.rmSync(cacheDir, { recursive: true, force: true })
