// A file server on 127.0.0.1 for download tests: Range support, redirects, and connections that drop or stall on demand.
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ServeOptions {
  /** Answer `Range: bytes=N-` with 206. Defaults to true. */
  ranges?: boolean
  /** Send only this many body bytes, then drop the connection. Defaults to never. */
  dropAfter?: number
  /** How many responses drop (the rest are whole). Defaults to all of them. */
  drops?: number
  /** Send only this many body bytes, then keep the connection open and silent. Defaults to never. */
  stallAfter?: number
}

export interface Served {
  /** `http://127.0.0.1:<port>/`. */
  url: string
  /** Every request's path and Range header, in order. */
  requests: { path: string; range?: string }[]
  close(): Promise<void>
}

/**
 * Serves `files` by name. `/redirect/<name>` answers 302 to `/<name>`, so redirects can be tested too.
 */
export async function serve(files: Record<string, Uint8Array>, options: ServeOptions = {}): Promise<Served> {
  const requests: Served['requests'] = []
  let dropped = 0
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    requests.push({ path: urlPath, range: req.headers.range })
    if (urlPath.startsWith('/redirect/')) {
      res.writeHead(302, { Location: `/${urlPath.slice('/redirect/'.length)}` }).end()
      return
    }
    const body = files[urlPath.slice(1)]
    if (!body) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found')
      return
    }
    let start = 0
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    if (range && options.ranges !== false) {
      start = Number(range[1])
      if (start >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end()
        return
      }
      res.writeHead(206, { 'Content-Length': body.length - start, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` })
    } else {
      res.writeHead(200, { 'Content-Length': body.length })
    }
    const rest = body.subarray(start)
    const cut = options.dropAfter ?? options.stallAfter
    if (cut !== undefined && cut < rest.length && dropped < (options.drops ?? Infinity)) {
      dropped++
      res.write(rest.subarray(0, cut), () => {
        // Dropping mid-body is what a flaky network does; stalling is what a hung server does.
        if (options.dropAfter !== undefined) res.socket?.destroy()
      })
      return
    }
    res.end(rest)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Deterministic bytes that do not compress, so transfers arrive in several chunks. */
export function pseudoRandomBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    // xorshift32
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}
