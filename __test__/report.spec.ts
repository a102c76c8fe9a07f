// Plots, the model summary, sample grids and report.html; the report is opened in headless Chromium.
import test from 'ava'
import { needs } from './helpers/needs.ts'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import sharp from 'sharp'
import type { HistoryFile } from '../ts/callbacks/history.ts'
import { CHART_NAMES } from '../ts/report/history-charts.ts'
import { reportHtml } from '../ts/report/html-report.ts'
import { balancedSample, imageGrid, imagePng } from '../ts/report/image-grid.ts'
import { plotHistory } from '../ts/report/plot-history.ts'
import { heatmapOverlay, Model, readImageFolder, referenceCnn } from '../ts/index.ts'
import { modelInputs } from '../ts/report/model-inputs.ts'
import { CHROMIUM, openPage } from './helpers/chromium.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const tmpdir = tempDirs('report')
/** A real 8-epoch CIFAR-10 run's history.json. */
const fixture = JSON.parse(fs.readFileSync(path.join(here, 'fixtures', 'history.json'), 'utf8')) as HistoryFile

/** Whether a picture has real content: several distinct grays, not one flat colour. */
async function nonTrivial(png: Buffer): Promise<{ width: number; height: number; spread: number }> {
  const { width, height } = await sharp(png).metadata()
  const stats = await sharp(png).stats()
  return { width: width!, height: height!, spread: Math.max(...stats.channels.map((c) => c.stdev)) }
}

test('the six plots are written as PNG (800×500, with content) and SVG, with titles and axis labels', async (t) => {
  const out = tmpdir()
  await plotHistory({ ...fixture, stoppedEarly: true, stopReason: 'val_loss has not improved for 5 epochs' }, out)
  t.deepEqual(fs.readdirSync(out).sort(), CHART_NAMES.flatMap((n) => [`${n}.png`, `${n}.svg`]).sort())
  for (const name of CHART_NAMES) {
    const png = await nonTrivial(fs.readFileSync(path.join(out, `${name}.png`)))
    t.deepEqual([png.width, png.height], [800, 500], name)
    t.true(png.spread > 20, `${name}.png has content (stdev ${png.spread})`)
    const svg = fs.readFileSync(path.join(out, `${name}.svg`), 'utf8')
    t.regex(svg, /<svg/)
  }
  const top1 = fs.readFileSync(path.join(out, 'top1.svg'), 'utf8')
  for (const text of [
    'Top-1 accuracy by epoch',
    'top-1 accuracy (%)',
    'epoch',
    'best (epoch 4)',
    'early stop (epoch 8)',
    'train',
    'val',
    'test',
  ])
    t.true(top1.includes(text), text)
  t.true(fs.readFileSync(path.join(out, 'per-class-test.svg'), 'utf8').includes('airplane'))
  t.true(fs.readFileSync(path.join(out, 'confusion.svg'), 'utf8').includes('predicted class'))
})

test('the model summary lists each layer, its output shape and parameters, and the totals', (t) => {
  const summary = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu' }).summary()
  t.regex(summary, /conv1 \(conv2d\)\s+\[32, 32, 32\]\s+896/)
  t.regex(summary, /fc1 \(linear\)\s+\[512\]\s+2,097,664/)
  t.regex(summary, /Total params: 2,122,186/)
  t.regex(summary, /Size: 8\.10 MiB/)
})

needs(CHROMIUM ? null : 'chromium (apt-get install chromium)')(
  'report.html is self-contained and loads in headless Chromium with no console errors and every image drawn',
  async (t) => {
    const set = await readImageFolder(cifarSubset().test)
    const picks = balancedSample(set.labels, 10, 2)
    const out = tmpdir()
    const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 1 })
    const lossPicks = picks.slice(0, 3)
    const heatmaps = await model.explainPixels(modelInputs(set, lossPicks, model), lossPicks.length)
    const charts = await plotHistory(fixture, path.join(out, 'plots'))
    const html = reportHtml({
      history: fixture,
      summary: model.summary(),
      samplesPng: await imageGrid(
        set,
        picks.map((i) => ({ index: i, caption: [set.classes[set.labels[i]!]!] })),
        { columns: 10 },
      ),
      charts,
      predictions: await Promise.all(
        picks.map(async (i) => ({ png: await imagePng(set, i), truth: set.classes[set.labels[i]!]!, predicted: 'cat', probability: 0.5 })),
      ),
      topLosses: await Promise.all(
        lossPicks.map(async (i, j) => ({
          index: i,
          truth: set.classes[set.labels[i]!]!,
          predicted: 'cat',
          probability: 0.9,
          truthProbability: 0.01,
          loss: -Math.log(0.01),
          png: await imagePng(set, i),
          heatmapPng: await heatmapOverlay(heatmaps[j]!, { scale: 3 }),
        })),
      ),
      heatmapLayer: heatmaps[0]!.layer,
      confused: [
        {
          truth: 'dog',
          predicted: 'cat',
          count: 7,
          examples: [picks[0]!, picks[1]!],
          pngs: [await imagePng(set, picks[0]!), await imagePng(set, picks[1]!)],
        },
      ],
    })
    t.notRegex(html, /(src|href)="(https?:)?\/\//, 'nothing is fetched from a network')
    const file = path.join(out, 'report.html')
    fs.writeFileSync(file, html)

    const { page, problems, close } = await openPage(`file://${file}`)
    try {
      // Evaluated in the page, so written as a string: this project's TypeScript has no DOM types.
      const images = (await page.evaluate(
        'Array.from(document.images, (img) => ({ alt: img.alt, ok: img.complete && img.naturalWidth > 0 }))',
      )) as { alt: string; ok: boolean }[]
      t.deepEqual(problems, [])
      t.is(images.length, 1 + CHART_NAMES.length + picks.length + 3 + 3 + 2)
      t.deepEqual(
        images.filter((i) => !i.ok),
        [],
      )
      t.regex(await page.title(), /ConvKit run report/)
    } finally {
      await close()
    }
  },
)
