// download(): served from 127.0.0.1 — MD5 checks, redirects, dropped and stalled connections, resume, cancel.
import test from 'ava'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { download } from '../ts/data/download.ts'
import { CancelledError, DataError, InputError } from '../ts/errors.ts'
import type { ConvkitError } from '../ts/errors.ts'
import { pseudoRandomBytes, serve } from './helpers/serve.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const body = pseudoRandomBytes(300_000)
const md5 = createHash('md5').update(body).digest('hex')

const tmpdir = tempDirs('download')

test('downloads through a redirect, checks the MD5, reports progress and leaves only the file', async (t) => {
  const server = await serve({ 'data.bin': body })
  t.teardown(() => server.close())
  const dir = tmpdir()
  const dest = path.join(dir, 'sub', 'data.bin')
  const seen: number[] = []
  const result = await download(`${server.url}redirect/data.bin`, dest, {
    md5,
    quiet: true,
    onProgress: (received, total) => seen.push(received, total ?? -1),
  })
  t.is(result, dest)
  t.deepEqual(new Uint8Array(fs.readFileSync(dest)), body)
  t.deepEqual(fs.readdirSync(path.dirname(dest)), ['data.bin'])
  t.is(seen.at(-2), body.length)
  t.is(seen.at(-1), body.length)
  t.deepEqual(
    server.requests.map((r) => r.path),
    ['/redirect/data.bin', '/data.bin'],
  )
})

test('a wrong MD5 deletes the download, then fails with CHECKSUM_MISMATCH', async (t) => {
  const server = await serve({ 'data.bin': body })
  t.teardown(() => server.close())
  const dir = tmpdir()
  const dest = path.join(dir, 'data.bin')
  const err = (await t.throwsAsync(download(`${server.url}data.bin`, dest, { md5: '0'.repeat(32), quiet: true }), {
    instanceOf: DataError,
  })) as ConvkitError
  t.is(err.code, 'CHECKSUM_MISMATCH')
  t.regex(err.message, new RegExp(`MD5 ${md5}, expected 0{32}`))
  t.deepEqual(fs.readdirSync(dir), [])
})

test('a dropped connection is DOWNLOAD_FAILED, leaves only the .partial, and the next call resumes it with Range', async (t) => {
  const flaky = await serve({ 'data.bin': body }, { dropAfter: 100_000 })
  t.teardown(() => flaky.close())
  const dir = tmpdir()
  const dest = path.join(dir, 'data.bin')
  const err = (await t.throwsAsync(download(`${flaky.url}data.bin`, dest, { md5, quiet: true, retries: 0 }), {
    instanceOf: DataError,
  })) as ConvkitError
  t.is(err.code, 'DOWNLOAD_FAILED')
  t.regex(err.message, /data\.bin was interrupted after \d+ of 300000 bytes/)
  t.deepEqual(fs.readdirSync(dir), ['data.bin.partial'])
  // What arrived before the drop is kept, and it is the file's beginning.
  const kept = fs.readFileSync(`${dest}.partial`)
  t.true(kept.length > 0 && kept.length <= 100_000, `kept ${kept.length} bytes`)
  t.deepEqual(new Uint8Array(kept), body.subarray(0, kept.length))

  const healthy = await serve({ 'data.bin': body })
  t.teardown(() => healthy.close())
  await download(`${healthy.url}data.bin`, dest, { md5, quiet: true })
  t.deepEqual(healthy.requests, [{ path: '/data.bin', range: `bytes=${kept.length}-` }])
  t.deepEqual(new Uint8Array(fs.readFileSync(dest)), body)
  t.deepEqual(fs.readdirSync(dir), ['data.bin'])
})

test('within one call, a dropped connection is retried from where it stopped', async (t) => {
  const server = await serve({ 'data.bin': body }, { dropAfter: 120_000, drops: 1 })
  t.teardown(() => server.close())
  const dest = path.join(tmpdir(), 'data.bin')
  await download(`${server.url}data.bin`, dest, { md5, quiet: true })
  t.is(server.requests.length, 2)
  t.is(server.requests[0]!.range, undefined)
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(server.requests[1]!.range ?? '')?.[1])
  t.true(resumedAt > 0 && resumedAt <= 120_000, `resumed at ${server.requests[1]!.range}`)
  t.deepEqual(new Uint8Array(fs.readFileSync(dest)), body)
})

test('a server without Range support restarts a stale .partial from zero', async (t) => {
  const server = await serve({ 'data.bin': body }, { ranges: false })
  t.teardown(() => server.close())
  const dest = path.join(tmpdir(), 'data.bin')
  // Bytes that are not the file's prefix: appending to them would corrupt it.
  fs.writeFileSync(`${dest}.partial`, Buffer.alloc(5000, 7))
  await download(`${server.url}data.bin`, dest, { md5, quiet: true })
  t.deepEqual(new Uint8Array(fs.readFileSync(dest)), body)
})

test('a .partial as long as the file (416 from the server) starts over', async (t) => {
  const server = await serve({ 'data.bin': body })
  t.teardown(() => server.close())
  const dest = path.join(tmpdir(), 'data.bin')
  fs.writeFileSync(`${dest}.partial`, Buffer.alloc(body.length + 10))
  await download(`${server.url}data.bin`, dest, { md5, quiet: true })
  t.deepEqual(new Uint8Array(fs.readFileSync(dest)), body)
  t.deepEqual(
    server.requests.map((r) => r.range),
    [`bytes=${body.length + 10}-`, undefined],
  )
})

test('an HTTP error status is DOWNLOAD_FAILED naming the URL and the status', async (t) => {
  const server = await serve({})
  t.teardown(() => server.close())
  const dir = tmpdir()
  const err = (await t.throwsAsync(download(`${server.url}missing.bin`, path.join(dir, 'x'), { quiet: true }), {
    instanceOf: DataError,
  })) as ConvkitError
  t.is(err.code, 'DOWNLOAD_FAILED')
  t.regex(err.message, /missing\.bin answered 404/)
  t.deepEqual(fs.readdirSync(dir), [])
})

test('a server that stalls mid-body times out instead of hanging', async (t) => {
  const server = await serve({ 'data.bin': body }, { stallAfter: 50_000 })
  t.teardown(() => server.close())
  const dest = path.join(tmpdir(), 'data.bin')
  const started = Date.now()
  const err = (await t.throwsAsync(
    download(`${server.url}data.bin`, dest, { quiet: true, retries: 0, idleTimeoutMs: 300 }),
  )) as ConvkitError
  t.is(err.code, 'DOWNLOAD_FAILED')
  t.regex(err.message, /no data for 0\.3 s/)
  t.true(Date.now() - started < 5000)
  t.false(fs.existsSync(dest))
})

test('an AbortSignal cancels with CancelledError and keeps the .partial', async (t) => {
  const server = await serve({ 'data.bin': body }, { stallAfter: 50_000 })
  t.teardown(() => server.close())
  const dest = path.join(tmpdir(), 'data.bin')
  const controller = new AbortController()
  const err = (await t.throwsAsync(
    download(`${server.url}data.bin`, dest, {
      quiet: true,
      signal: controller.signal,
      onProgress: (received) => {
        if (received >= 50_000) controller.abort()
      },
    }),
    { instanceOf: CancelledError },
  )) as ConvkitError
  t.is(err.code, 'CANCELLED')
  t.false(fs.existsSync(dest))
  t.true(fs.existsSync(`${dest}.partial`))
})

test('bad arguments are INVALID_OPTION before any request', async (t) => {
  const dest = path.join(tmpdir(), 'x')
  const ftp = (await t.throwsAsync(download('ftp://127.0.0.1/x', dest), { instanceOf: InputError })) as ConvkitError
  t.is(ftp.code, 'INVALID_OPTION')
  t.regex(ftp.message, /ftp:.*expected http/)
  const badMd5 = (await t.throwsAsync(download('http://127.0.0.1:9/x', dest, { md5: 'abc' }), { instanceOf: InputError })) as ConvkitError
  t.regex(badMd5.message, /32 hex digits/)
})
