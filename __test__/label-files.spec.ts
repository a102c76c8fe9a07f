// Label files as data sources: CSV (RFC 4180), TSV, JSON and JSON lines; their columns found by name or given; split
// columns; row errors that name the file, line and field (or rows skipped and counted); multi-label files read as such;
// the decoded cache keyed by content and labels; stratified splits; and a short train() on a CSV.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { TRAIN_HELP } from '../ts/cli/train-command.ts'
import { DelimitedReader, DelimitedSyntaxError, parseDelimited } from '../ts/data/csv.ts'
import { decodeImage } from '../ts/data/decode-image.ts'
import { loadData } from '../ts/data/load-data.ts'
import { selectImages, stratifiedSplit } from '../ts/data/split.ts'
import { DataError, InputError, type ConvkitError, type ErrorCode } from '../ts/errors.ts'
import { train } from '../ts/index.ts'
import { resolveConfig } from '../ts/train/resolve-config.ts'
import { prepareData } from '../ts/train/train-data.ts'
import type { TrainOptions } from '../ts/train/train-options.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'
import { decodedCounts } from './helpers/decoded-counts.ts'

const tmpdir = tempDirs('label-files')
const dirs = cifarSubset()

interface Row {
  /** Relative to the work folder, where the label file is written. */
  file: string
  label: string
}

/**
 * `perClass` CIFAR training JPEGs of each of `classes`, copied flat into `<work>/images/` under neutral names (so the
 * label can only come from the label file); returns the work folder and a row per image.
 */
function flatImages(classes: string[], perClass: number, from = 0): { work: string; rows: Row[] } {
  const work = tmpdir()
  fs.mkdirSync(path.join(work, 'images'))
  const rows: Row[] = []
  for (const cls of classes) {
    const names = fs
      .readdirSync(path.join(dirs.train, cls))
      .sort()
      .slice(from, from + perClass)
    for (const name of names) {
      const file = `images/${cls.slice(0, 3)}-${name}`
      fs.copyFileSync(path.join(dirs.train, cls, name), path.join(work, file))
      rows.push({ file, label: cls })
    }
  }
  return { work, rows }
}

function writeCsv(file: string, header: string[], rows: string[][], delimiter = ','): string {
  const quote = (f: string) => (delimiter === ',' && /[",\r\n]/.test(f) ? `"${f.replace(/"/g, '""')}"` : f)
  fs.writeFileSync(file, [header, ...rows].map((r) => r.map(quote).join(delimiter)).join('\r\n'))
  return file
}

const quiet = { quiet: true } as const

test('the CSV reader: quoted fields with commas, doubled quotes and line breaks, CRLF, a BOM, blank lines, and its errors', (t) => {
  const text = '\ufeffpath,label\r\n"a, b.jpg","say ""hi"""\r\n"two\nlines.jpg",x\r\n\r\nplain.jpg,  spaced  \n'
  t.deepEqual(parseDelimited(text, ','), [
    { fields: ['path', 'label'], line: 1 },
    { fields: ['a, b.jpg', 'say "hi"'], line: 2 },
    // The quoted line break is text; the record after it starts on line 5 (line 5 is blank and skipped).
    { fields: ['two\nlines.jpg', 'x'], line: 3 },
    { fields: ['plain.jpg', '  spaced  '], line: 6 },
  ])
  t.deepEqual(parseDelimited('a\tb,c\n"x\ty"\tz', '\t'), [
    { fields: ['a', 'b,c'], line: 1 },
    { fields: ['x\ty', 'z'], line: 2 },
  ])
  t.deepEqual(parseDelimited('a,b,\n', ','), [{ fields: ['a', 'b', ''], line: 1 }])
  // Lines without quotes are split whole; a quote inside an unquoted field, a lone CR and a last line without a break
  // read as the field-by-field reader reads them.
  t.deepEqual(parseDelimited('p,q\r\nsay "hi",x\na\rb,c\nlast,1', ','), [
    { fields: ['p', 'q'], line: 1 },
    { fields: ['say "hi"', 'x'], line: 2 },
    { fields: ['a'], line: 3 },
    { fields: ['b', 'c'], line: 4 },
    { fields: ['last', '1'], line: 5 },
  ])
  const unclosed = t.throws(() => parseDelimited('a,b\n1,"open\n2,3\n', ','), { instanceOf: DelimitedSyntaxError })
  t.is(unclosed?.line, 2)
  const after = t.throws(() => parseDelimited('a,b\n"x"y,1\n', ','), { instanceOf: DelimitedSyntaxError })
  t.is(after?.line, 2)
  // One record at a time: the records before a fault are read, the fault is thrown when the reader reaches it, and
  // after the last record the reader gives undefined.
  const reader = new DelimitedReader('a,b\n1,2\n"x"y,1\n', ',')
  t.deepEqual(reader.next(), { fields: ['a', 'b'], line: 1 })
  t.deepEqual(reader.next(), { fields: ['1', '2'], line: 2 })
  t.is(t.throws(() => reader.next(), { instanceOf: DelimitedSyntaxError })?.line, 3)
  const done = new DelimitedReader('a\n\n', ',')
  t.deepEqual(done.next(), { fields: ['a'], line: 1 })
  t.is(done.next(), undefined)
  t.is(done.next(), undefined)
})

test('a CSV label file: quoted paths and labels, paths relative to its folder or absolute, sorted classes, the images decoded', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog', 'frog'], 4)
  // A file name with a comma and a quote, and a label with a space (one label: the column is named label).
  fs.renameSync(path.join(work, rows[0]!.file), path.join(work, 'images', 'odd, "name".jpg'))
  rows[0]!.file = 'images/odd, "name".jpg'
  rows[5]!.file = path.join(work, rows[5]!.file)
  const labelled = rows.map((r) => [r.file, r.label === 'dog' ? 'golden retriever' : r.label])
  const csv = writeCsv(path.join(work, 'labels.csv'), ['filename', 'label'], labelled)
  const loaded = await loadData(csv, { cacheDir: tmpdir(), ...quiet })
  t.is(loaded.format, 'label-file')
  t.is(loaded.source, csv)
  t.deepEqual(loaded.train.classes, ['cat', 'frog', 'golden retriever'])
  t.deepEqual(
    Array.from(loaded.train.labels),
    labelled.map((r) => loaded.train.classes.indexOf(r[1]!)),
  )
  t.deepEqual(
    loaded.train.files,
    rows.map((r) => path.resolve(work, r.file)),
  )
  t.is(loaded.test, undefined)
  t.is(loaded.val, undefined)
  // The pixels are the decoder's for that file.
  const first = await decodeImage(path.join(work, rows[0]!.file), { size: [32, 32], channels: 3 })
  t.deepEqual(loaded.train.pixels.subarray(0, first.length), first)

  // A label file in another folder reaches the images through '../'; read cold and then from the cache, the images
  // are named by their resolved paths.
  fs.mkdirSync(path.join(work, 'meta'))
  const beside = writeCsv(
    path.join(work, 'meta', 'labels.csv'),
    ['filename', 'label'],
    labelled.map(([file, label]) => [path.isAbsolute(file!) ? file! : `../${file}`, label!]),
  )
  const cacheDir = tmpdir()
  for (const run of ['cold', 'warm']) {
    const again = await loadData(beside, { cacheDir, ...quiet })
    t.deepEqual(again.train.files, loaded.train.files, run)
    t.deepEqual(again.train.pixels, loaded.train.pixels, run)
  }
})

test('TSV, JSON (an array of records) and JSON lines read the same rows as CSV; a JSON label may be a number', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog'], 3)
  const cacheDir = tmpdir()
  const csv = await loadData(
    writeCsv(
      path.join(work, 'l.csv'),
      ['file', 'label'],
      rows.map((r) => [r.file, r.label]),
    ),
    { cacheDir, ...quiet },
  )
  const records = rows.map((r) => ({ file: r.file, label: r.label, note: 'x' }))
  const sources = {
    tsv: writeCsv(
      path.join(work, 'l.tsv'),
      ['file', 'label'],
      rows.map((r) => [r.file, r.label]),
      '\t',
    ),
    json: path.join(work, 'l.json'),
    jsonl: path.join(work, 'l.jsonl'),
  }
  fs.writeFileSync(sources.json, JSON.stringify(records, null, 2))
  fs.writeFileSync(sources.jsonl, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`)
  for (const [format, file] of Object.entries(sources)) {
    const loaded = await loadData(file, { cacheDir, ...quiet })
    t.deepEqual(loaded.train.classes, csv.train.classes, format)
    t.deepEqual(loaded.train.labels, csv.train.labels, format)
    t.deepEqual(loaded.train.files, csv.train.files, format)
    t.deepEqual(loaded.train.pixels, csv.train.pixels, format)
  }
  // The same images with the same labels share one decoded file, whatever the format.
  t.deepEqual(decodedCounts(cacheDir), [6])

  // Errors in JSON name the line the record starts on: the third record of this pretty-printed array is on line 12.
  const missing = path.join(work, 'missing.json')
  fs.writeFileSync(
    missing,
    JSON.stringify(
      records.map((r, i) => (i === 2 ? { ...r, file: 'images/nope.jpg' } : r)),
      null,
      2,
    ),
  )
  const err = (await t.throwsAsync(loadData(missing, { cacheDir }), { instanceOf: DataError })) as ConvkitError
  t.true(err.message.startsWith(`${missing} line 12, field file: images/nope.jpg does not exist`), err.message)
  const invalid = path.join(work, 'invalid.jsonl')
  fs.writeFileSync(invalid, `${JSON.stringify(records[0])}\n{"file": "x.jpg",\n`)
  const syntax = (await t.throwsAsync(loadData(invalid, { cacheDir }), { instanceOf: DataError })) as ConvkitError
  t.is(syntax.code, 'DATA_CORRUPT')
  t.true(syntax.message.startsWith(`${invalid} line 2: invalid JSON`), syntax.message)

  const numbered = path.join(work, 'numbered.json')
  fs.writeFileSync(numbered, JSON.stringify(rows.map((r) => ({ image: r.file, class: r.label === 'cat' ? 3 : 5 }))))
  t.deepEqual((await loadData(numbered, { cacheDir, ...quiet })).train.classes, ['3', '5'])
})

test('columns: found by common names in any case, or given; a missing one lists the columns found and the names looked for', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog'], 2)
  const cacheDir = tmpdir()
  const detected = writeCsv(
    path.join(work, 'detected.csv'),
    ['ID', 'Image_Path', 'Category'],
    rows.map((r, i) => [String(i), r.file, r.label]),
  )
  t.deepEqual((await loadData(detected, { cacheDir, ...quiet })).train.classes, ['cat', 'dog'])

  const custom = writeCsv(
    path.join(work, 'custom.csv'),
    ['img', 'breed'],
    rows.map((r) => [r.file, r.label]),
  )
  const given = await loadData(custom, { cacheDir, pathColumn: 'IMG', labelColumn: 'breed', ...quiet })
  t.is(given.train.labels.length, 4)

  const noPath = (await t.throwsAsync(loadData(custom, { cacheDir, labelColumn: 'breed' }), { instanceOf: InputError })) as ConvkitError
  t.is(noPath.code, 'INVALID_OPTION')
  t.true(noPath.message.includes(custom), noPath.message)
  t.regex(
    noPath.message,
    /no image path column; the columns found are "img", "breed", the names looked for file, filename, path, image, image_path, fname/,
  )
  const noLabel = (await t.throwsAsync(loadData(custom, { cacheDir, pathColumn: 'img' }), { instanceOf: InputError })) as ConvkitError
  t.regex(noLabel.message, /no label column; .*"img", "breed".*label, labels, class, category, tags/)
  const wrong = (await t.throwsAsync(loadData(custom, { cacheDir, pathColumn: 'img', labelColumn: 'kind' }), {
    instanceOf: InputError,
  })) as ConvkitError
  t.regex(wrong.message, /option labelColumn.*no column "kind"; the columns found are "img", "breed"/)
})

test('split columns: split values (any case) and fastai is_valid booleans put rows in the validation and test sets', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog'], 6)
  const cacheDir = tmpdir()
  const values = ['train', 'Valid', 'val', 'TEST', 'validation', 'Train']
  const split = writeCsv(
    path.join(work, 'split.csv'),
    ['file', 'label', 'split'],
    rows.map((r, i) => [r.file, r.label, values[i % 6]!]),
  )
  const loaded = await loadData(split, { cacheDir, ...quiet })
  // Per class of six: train, Train; Valid, val, validation; TEST.
  t.is(loaded.train.labels.length, 4)
  t.is(loaded.val?.labels.length, 6)
  t.is(loaded.test?.labels.length, 2)
  t.deepEqual(loaded.val!.classes, loaded.train.classes)
  t.deepEqual(
    loaded.test!.files,
    rows.filter((_, i) => i % 6 === 3).map((r) => path.join(work, r.file)),
  )

  const fastai = path.join(work, 'fastai.jsonl')
  const flags = [false, true, 'True', 'false', 1, 0]
  fs.writeFileSync(fastai, rows.map((r, i) => JSON.stringify({ fname: r.file, labels: r.label, is_valid: flags[i % 6] })).join('\n'))
  const fromFlags = await loadData(fastai, { cacheDir, ...quiet })
  t.is(fromFlags.train.labels.length, 6)
  t.is(fromFlags.val?.labels.length, 6)
  t.is(fromFlags.test, undefined)

  // A column given by name; an unknown value names the line and the value.
  const fold = writeCsv(
    path.join(work, 'fold.csv'),
    ['file', 'label', 'fold'],
    rows.map((r, i) => [r.file, r.label, i === 4 ? 'holdout' : 'train']),
  )
  const err = (await t.throwsAsync(loadData(fold, { cacheDir, splitColumn: 'fold' }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_CORRUPT')
  t.true(err.message.startsWith(`${fold} line 6, field fold: unknown split "holdout"`), err.message)
})

test('a row whose file is missing, whose label is empty or whose file repeats fails naming the file, line and field', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog'], 3)
  const cacheDir = tmpdir()
  const cases: [string, (r: string[][]) => void, ErrorCode, RegExp][] = [
    [
      'missing',
      (r) => (r[2]![0] = 'images/nope.jpg'),
      'DATA_NOT_FOUND',
      /line 4, field file: images\/nope\.jpg does not exist \(looked for .*nope\.jpg\)/,
    ],
    ['empty label', (r) => (r[3]![1] = '  '), 'DATA_CORRUPT', /line 5, field label: no label for images\/dog-0000\.jpg/],
    [
      'duplicate',
      (r) => (r[4]![0] = r[1]![0]!),
      'DATA_CORRUPT',
      /line 6, field file: images\/cat-0001\.jpg is listed again \(first on line 3\)/,
    ],
    [
      'the same file by another path',
      (r) => (r[4]![0] = `./images/../${r[1]![0]!}`),
      'DATA_CORRUPT',
      /line 6, field file: \.\/images\/\.\.\/images\/cat-0001\.jpg is listed again \(first on line 3\)/,
    ],
    [
      'a hard link',
      (r) => {
        fs.linkSync(path.join(work, r[1]![0]!), path.join(work, 'images', 'linked.jpg'))
        r[4]![0] = 'images/linked.jpg'
      },
      'DATA_CORRUPT',
      /line 6, field file: images\/linked\.jpg is the same file as images\/cat-0001\.jpg \(first on line 3\)/,
    ],
    ['URL', (r) => (r[0]![0] = 'https://example.org/a.jpg'), 'DATA_CORRUPT', /line 2, field file: https:\/\/example\.org\/a\.jpg is a URL/],
  ]
  for (const [name, change, code, expected] of cases) {
    const table = rows.map((r) => [r.file, r.label])
    change(table)
    const file = writeCsv(path.join(work, `${name}.csv`), ['file', 'label'], table)
    const err = (await t.throwsAsync(loadData(file, { cacheDir }), { instanceOf: DataError }, name)) as ConvkitError
    t.is(err.code, code, name)
    t.true(err.message.startsWith(`${file} line`), err.message)
    t.regex(err.message, expected, name)
  }

  // An image that cannot be decoded is named by its line too.
  fs.writeFileSync(path.join(work, rows[4]!.file), 'not a jpeg')
  const broken = writeCsv(
    path.join(work, 'broken.csv'),
    ['file', 'label'],
    rows.map((r) => [r.file, r.label]),
  )
  const err = (await t.throwsAsync(loadData(broken, { cacheDir }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_BAD_IMAGE')
  t.true(
    err.message.startsWith(`${broken} line 6, field file: 1 image(s) could not be decoded: ${path.join(work, rows[4]!.file)}`),
    err.message,
  )
})

test('with skipBadImages, unusable rows and undecodable images are skipped and listed by line', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog'], 4)
  const cacheDir = tmpdir()
  fs.writeFileSync(path.join(work, rows[6]!.file), 'not a jpeg')
  const table = rows.map((r) => [r.file, r.label])
  table[1]![0] = 'images/gone.jpg'
  table[2]![1] = ''
  table[5]![0] = table[4]![0]!
  const file = writeCsv(path.join(work, 'bad.csv'), ['file', 'label'], table)
  for (let run = 0; run < 2; run++) {
    // The second run reads the decoded cache, which remembers what it skipped.
    const loaded = await loadData(file, { cacheDir, skipBadImages: true, ...quiet })
    t.is(loaded.train.labels.length, 4)
    t.deepEqual(loaded.skipped, [
      `${file}:3: images/gone.jpg does not exist (looked for ${path.join(work, 'images/gone.jpg')})`,
      `${file}:4: no label for images/cat-0002.jpg`,
      `${file}:7: images/dog-0000.jpg is listed again (first on line 6)`,
      `${file}:8: images/dog-0002.jpg could not be decoded`,
    ])
    t.deepEqual(
      loaded.train.files,
      [0, 3, 4, 7].map((i) => path.join(work, rows[i]!.file)),
    )
  }
})

test('several labels in a row make multi-label data (targets, the union of labels as classes); multiLabel false refuses them naming the line; a label with spaces is one label unless the column says otherwise', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog'], 2)
  const cacheDir = tmpdir()
  const write = (name: string, header: string, labels: string[]) =>
    writeCsv(
      path.join(work, name),
      ['file', header],
      rows.map((r, i) => [r.file, labels[i]!]),
    )
  const spaced = write('spaced.csv', 'label', ['golden retriever', 'cat', 'golden retriever', 'cat'])
  const single = (await loadData(spaced, { cacheDir, ...quiet })).train
  t.deepEqual(single.classes, ['cat', 'golden retriever'])
  t.is(single.targets, undefined, 'one label per row: single-label data')
  // Repeating a label is still one label.
  t.is((await loadData(write('twice.csv', 'label', ['cat;cat', 'cat', 'dog', 'dog']), { cacheDir, ...quiet })).train.labels.length, 4)

  const cases: [string, string, string[], { labelDelimiter?: string }, string[], number[][], RegExp][] = [
    [
      'semicolon.csv',
      'label',
      ['cat', 'cat; dog', 'dog', 'dog'],
      {},
      ['cat', 'dog'],
      [
        [1, 0],
        [1, 1],
        [0, 1],
        [0, 1],
      ],
      /line 3, field label: 2 labels \(cat, dog\)/,
    ],
    // fastai's multi-label columns are split on spaces too.
    [
      'tags.csv',
      'tags',
      ['cat', 'cat', 'dog', 'clear primary water'],
      {},
      ['cat', 'clear', 'dog', 'primary', 'water'],
      [
        [1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 1, 0, 1, 1],
      ],
      /line 5, field tags: 3 labels \(clear, primary, water\)/,
    ],
    [
      'pipe.csv',
      'label',
      ['a|b', 'c|d', 'golden retriever', 'x'],
      { labelDelimiter: '|' },
      ['a', 'b', 'c', 'd', 'golden retriever', 'x'],
      [
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
      ],
      /line 2, field label: 2 labels \(a, b\), and 1 more row/,
    ],
  ]
  for (const [name, header, labels, options, classes, targets, refused] of cases) {
    const file = write(name, header, labels)
    const { train: set } = await loadData(file, { cacheDir, ...options, ...quiet })
    t.deepEqual(set.classes, classes, name)
    t.deepEqual(Array.from(set.targets ?? []), targets.flat(), name)
    // Each image's first label is its `labels` entry (what stratified splits go by).
    t.deepEqual(
      Array.from(set.labels),
      targets.map((row) => row.indexOf(1)),
      name,
    )
    const err = (await t.throwsAsync(
      loadData(file, { cacheDir, ...options, multiLabel: false }),
      { instanceOf: InputError },
      name,
    )) as ConvkitError
    t.is(err.code, 'MULTI_LABEL')
    t.true(err.message.startsWith(`${file} line`), err.message)
    t.regex(err.message, refused)
    t.regex(err.message, /but multiLabel is false/)
  }
})

test('the decoded cache is keyed by content and labels: a warm read decodes nothing, relabelled rows are another entry', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog'], 3)
  const cacheDir = tmpdir()
  const table = rows.map((r) => [r.file, r.label])
  const file = writeCsv(path.join(work, 'labels.csv'), ['file', 'label'], table)
  const cold = await loadData(file, { cacheDir, ...quiet })
  const warm = await loadData(file, { cacheDir, ...quiet })
  t.deepEqual(warm.train, cold.train)
  t.deepEqual(decodedCounts(cacheDir), [6])
  // Two rows swap labels: the same images, other labels.
  writeCsv(
    file,
    ['file', 'label'],
    table.map((r, i) => [r[0]!, i === 0 ? 'dog' : i === 3 ? 'cat' : r[1]!]),
  )
  const relabelled = await loadData(file, { cacheDir, ...quiet })
  t.is(relabelled.train.labels[0], 1)
  t.is(relabelled.train.labels[3], 0)
  t.deepEqual(decodedCounts(cacheDir), [6, 6])
})

test('stratified splits: each class keeps its proportion, seeded, and the total is what an unstratified split holds', (t) => {
  // 60, 30 and 10 images of three classes, interleaved.
  const labels = Int32Array.from({ length: 100 }, (_, i) => (i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2))
  const { kept, held } = stratifiedSplit(labels, 0.2, 7)
  t.is(held.length, 20)
  t.is(kept.length + held.length, 100)
  const count = (indices: Int32Array, c: number) => Array.from(indices).filter((i) => labels[i] === c).length
  t.deepEqual(
    [0, 1, 2].map((c) => count(held, c)),
    [12, 6, 2],
  )
  t.deepEqual(stratifiedSplit(labels, 0.2, 7), { kept, held })
  t.notDeepEqual(stratifiedSplit(labels, 0.2, 8).held, held)
  // Shares that do not divide evenly: 7 of 3 × 7 images held, the largest remainders first, one class taking two.
  const even = stratifiedSplit(
    Int32Array.from({ length: 21 }, (_, i) => i % 3),
    1 / 3,
    1,
  )
  t.is(even.held.length, 7)
  t.deepEqual(
    [0, 1, 2].map((c) => Array.from(even.held).filter((i) => i % 3 === c).length),
    [3, 2, 2],
  )
  t.deepEqual(selectImages(100, undefined, { seed: 3, testSplit: 0.2, labels }).test.length, 20)
})

test('an image folder and a label file are split per class: test and validation hold each class in proportion', async (t) => {
  const cacheDir = tmpdir()
  // 200 images per class: 40 held out for testing, then 16 of the other 160 for validation.
  const options = { data: dirs.train, testSplit: 0.2, valSplit: 0.1, seed: 4, cacheDir, quiet: true } as TrainOptions
  const data = await prepareData(options, resolveConfig(options))
  const perClass = (set: { labels: Int32Array }, indices: Int32Array) => {
    const counts = new Array(10).fill(0)
    for (const i of indices) counts[set.labels[i]!]++
    return counts
  }
  t.deepEqual(perClass(data.testSet, data.test), new Array(10).fill(40))
  t.deepEqual(perClass(data.valSet, data.val), new Array(10).fill(16))
  t.deepEqual(perClass(data.trainSet, data.train), new Array(10).fill(144))
  // The same split chosen from the listing before decoding (limits) as after it.
  const limited = { ...options, limitTrain: 1600 } as TrainOptions
  const picked = await prepareData(limited, resolveConfig(limited))
  t.deepEqual(
    Array.from(picked.test, (i) => picked.testSet.files![i]),
    Array.from(data.test, (i) => data.testSet.files![i]),
  )

  // A label file with 20, 10 and 5 images of three classes, rows interleaved: 4, 2 and 1 held out for testing, then a
  // quarter of the other 16, 8 and 4 for validation.
  const { work, rows } = flatImages(['cat', 'dog', 'frog'], 20)
  const unbalanced = rows.filter((r, i) => r.label === 'cat' || (r.label === 'dog' ? i % 20 < 10 : i % 20 < 5))
  const order = unbalanced.map((_, i) => i).sort((a, b) => (a % 7) - (b % 7) || a - b)
  const file = writeCsv(
    path.join(work, 'labels.csv'),
    ['file', 'label'],
    order.map((i) => [unbalanced[i]!.file, unbalanced[i]!.label]),
  )
  const fromFile = { data: file, testSplit: 0.2, valSplit: 0.25, seed: 4, cacheDir, quiet: true } as TrainOptions
  const split = await prepareData(fromFile, resolveConfig(fromFile))
  const counts = (set: { labels: Int32Array }, indices: Int32Array) => perClass(set, indices).slice(0, 3)
  t.deepEqual(counts(split.testSet, split.test), [4, 2, 1])
  t.deepEqual(counts(split.valSet, split.val), [4, 2, 1])
  t.deepEqual(counts(split.trainSet, split.train), [12, 6, 3])
})

test('an archive is split per class before decoding too, from the class sizes it remembers (or lists again)', async (t) => {
  const cacheDir = tmpdir()
  const work = tmpdir()
  for (const cls of fs.readdirSync(dirs.train)) {
    fs.mkdirSync(path.join(work, 'set', cls), { recursive: true })
    for (const f of fs.readdirSync(path.join(dirs.train, cls)).sort().slice(0, 20))
      fs.copyFileSync(path.join(dirs.train, cls, f), path.join(work, 'set', cls, f))
  }
  const archive = path.join(work, 'set.tar')
  execFileSync('tar', ['-cf', archive, '-C', work, 'set'])
  const testFiles = async (options: Partial<TrainOptions>) => {
    const all = { data: archive, testSplit: 0.2, seed: 2, cacheDir, quiet: true, ...options } as TrainOptions
    const data = await prepareData(all, resolveConfig(all))
    return Array.from(data.test, (i) => data.testSet.files![i]!)
  }
  // Decoded whole: 4 of each class's 20 held out; the archive's layout is remembered with its class sizes.
  const whole = await testFiles({})
  t.deepEqual(
    fs.readdirSync(dirs.train).map((cls) => whole.filter((f) => f.includes(`/${cls}/`)).length),
    new Array(10).fill(4),
  )
  const memoFile = path.join(cacheDir, 'hashes', 'archives.json')
  const memo = () => JSON.parse(fs.readFileSync(memoFile, 'utf8')) as { contents: Record<string, { splits: { classCounts?: number[] }[] }> }
  t.deepEqual(Object.values(memo().contents)[0]!.splits[0]!.classCounts, new Array(10).fill(20))
  // A limit picks from the remembered listing, and holds out the same test images.
  t.deepEqual(await testFiles({ limitTrain: 100 }), whole)
  // What an older version remembered has no class sizes: the archive is listed again, and they are remembered.
  const old = memo()
  for (const c of Object.values(old.contents)) for (const s of c.splits) delete s.classCounts
  fs.writeFileSync(memoFile, JSON.stringify(old))
  t.deepEqual(await testFiles({ limitTrain: 100 }), whole)
  t.deepEqual(Object.values(memo().contents)[0]!.splits[0]!.classCounts, new Array(10).fill(20))
})

test('a label file with validation rows: valSplit takes nothing more from training; test rows are the test set; limits decode only the rows used', async (t) => {
  const { work, rows } = flatImages(['cat', 'dog', 'frog'], 10)
  const cacheDir = tmpdir()
  const split = (i: number) => (i % 10 === 8 ? 'valid' : i % 10 === 9 ? 'test' : 'train')
  const file = writeCsv(
    path.join(work, 'labels.csv'),
    ['file', 'label', 'split'],
    rows.map((r, i) => [r.file, r.label, split(i)]),
  )
  const options = { data: file, valSplit: 0.25, seed: 1, cacheDir, quiet: true } as TrainOptions
  const data = await prepareData(options, resolveConfig(options))
  const names = (set: { files?: string[] }, indices: Int32Array) => Array.from(indices, (i) => path.relative(work, set.files![i]!))
  t.is(data.train.length, 24)
  t.deepEqual(
    names(data.valSet, data.val),
    rows.filter((_, i) => split(i) === 'valid').map((r) => r.file),
  )
  t.deepEqual(
    names(data.testSet, data.test),
    rows.filter((_, i) => split(i) === 'test').map((r) => r.file),
  )
  t.deepEqual(decodedCounts(cacheDir), [3, 3, 24])

  // limitTrain chooses 12 of the 24 training rows before decoding; the validation and test rows are decoded whole.
  const limitedCache = tmpdir()
  const limited = { ...options, limitTrain: 12, cacheDir: limitedCache } as TrainOptions
  const few = await prepareData(limited, resolveConfig(limited))
  t.is(few.train.length, 12)
  t.is(few.val.length, 3)
  t.deepEqual(decodedCounts(limitedCache), [3, 3, 12])

  // With valSplit 0 the rows still validate, and the default monitor follows them.
  const run = await train({ ...options, valSplit: 0, epochs: 1, report: false, out: tmpdir() })
  t.is(run.history.config.monitor, 'val_loss')
  t.truthy(run.history.epochs[0]!.val, 'validated on the rows')
})

test('the CLI has --path-column, --label-column, --split-column and --label-delimiter, and --data names label files', (t) => {
  for (const flag of ['--path-column', '--label-column', '--split-column', '--label-delimiter']) t.true(TRAIN_HELP.includes(flag), flag)
  t.regex(TRAIN_HELP, /\.csv\/\.tsv\/\.json\/\.jsonl label file/)
})

test('train() on a CSV of 300 images learns in three epochs', async (t) => {
  const { work, rows } = flatImages(['airplane', 'frog', 'truck'], 100)
  const file = writeCsv(
    path.join(work, 'labels.csv'),
    ['file', 'label'],
    rows.map((r) => [r.file, r.label]),
  )
  const { history } = await train({
    data: file,
    model: {
      inputShape: [3, 32, 32],
      layers: [
        { type: 'conv2d', outChannels: 16, kernelSize: 3, padding: 1 },
        { type: 'relu' },
        { type: 'maxpool2d', kernelSize: 4 },
        { type: 'flatten' },
        { type: 'linear', outFeatures: 3 },
      ],
    },
    epochs: 3,
    batchSize: 32,
    lr: 3e-3,
    device: 'cpu',
    seed: 1,
    quiet: true,
    report: false,
    cacheDir: tmpdir(),
    out: tmpdir(),
  })
  t.deepEqual(history.classes, ['airplane', 'frog', 'truck'])
  const [first, last] = [history.epochs[0]!, history.epochs.at(-1)!]
  t.true(last.train.loss < first.train.loss * 0.9, `training loss ${first.train.loss} → ${last.train.loss}`)
  // Chance is 33 %; the 60 held-out test images (20 per class) separate these three classes well above it.
  t.true(last.test!.top1 > 50, `test top-1 ${last.test!.top1}`)
})
