import {createHash} from 'node:crypto'
import {gzipSync} from 'node:zlib'
import {afterEach, describe, expect, it} from 'vitest'

import {RegistryError} from '../../src/registry/errors.js'
import {HttpClient} from '../../src/registry/http.js'
import {RegistryClient} from '../../src/registry/client.js'
import {emptyRegistriesConfig} from '../../src/registry/registries-config.js'
import {responseHead, startRawHttpServer, type RawServer} from '../helpers/fault-proxy.js'

// The transport against servers that misbehave at the byte level (a raw socket server, not an HTTP library):
// every fault ends in a RegistryError that says what happened, and never in an exception outside the request's
// promise. The first case is nodejs/undici#5360, which killed `bundle build` with exit 1 under undici 7: a FIN
// in the middle of a `Connection: close` body while the reader applies backpressure.

const servers: RawServer[] = []
const clients: HttpClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close()
  for (const s of servers.splice(0)) await s.stop()
})

async function serve(respond: Parameters<typeof startRawHttpServer>[0]): Promise<RawServer> {
  const s = await startRawHttpServer(respond)
  servers.push(s)
  return s
}

function client(o: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}): HttpClient {
  const c = new HttpClient({tls: new Map(), insecureHosts: new Set(), attempts: 1, retryBaseMs: 1, env: {}, ...o})
  clients.push(c)
  return c
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const body = Buffer.alloc(4 << 20, 0x61)

/** Read like the cache does when the disk is slower than the network: a pause after every chunk. */
async function slowRead(stream: AsyncIterable<unknown>, pauseMs = 15): Promise<number> {
  let n = 0
  for await (const chunk of stream) {
    n += (chunk as Buffer).length
    await sleep(pauseMs)
  }
  return n
}

function writeThen(socket: import('node:net').Socket, bytes: Buffer, then: () => void): void {
  socket.write(bytes, () => then())
}

describe('HTTP transport: byte-level faults', () => {
  it('FIN mid-body of a Connection: close response while the reader applies backpressure (undici #5360): a transient RegistryError, five times in a row', async () => {
    const s = await serve((socket) => {
      socket.write(responseHead(200, {'content-length': body.length, connection: 'close'}))
      writeThen(socket, body.subarray(0, 1 << 20), () => socket.end())
    })
    const http = client()
    for (let i = 0; i < 5; i++) {
      const res = await http.send(new URL(`${s.url}/v2/x/blobs/sha256:a`))
      const error = await slowRead(res.body).catch((e) => e)
      expect(error).toBeInstanceOf(RegistryError)
      expect(error.transient).toBe(true)
      expect(error.message).toMatch(new RegExp(`^${s.host} closed the connection after \\d+ of ${body.length} bytes$`))
    }
  })

  it('RST mid-body: a transient RegistryError', async () => {
    const s = await serve((socket) => {
      socket.write(responseHead(200, {'content-length': body.length}))
      writeThen(socket, body.subarray(0, 300_000), () => socket.resetAndDestroy())
    })
    const res = await client().send(new URL(`${s.url}/blob`))
    const error = await slowRead(res.body, 1).catch((e) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect(error.transient).toBe(true)
    expect(error.message).toContain(`${s.host} closed the connection after`)
  })

  it('a body shorter than its Content-Length, then a FIN on a keep-alive connection: a transient RegistryError', async () => {
    const s = await serve((socket) => {
      socket.write(responseHead(200, {'content-length': 1000}))
      writeThen(socket, body.subarray(0, 600), () => socket.end())
    })
    const res = await client().send(new URL(`${s.url}/short`))
    const error = await res.text().catch((e) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect(error.transient).toBe(true)
    expect(error.message).toBe(`${s.host} closed the connection after 600 of 1000 bytes`)
  })

  it('a body longer than its Content-Length: exactly Content-Length bytes, and the next request on that connection fails cleanly', async () => {
    const s = await serve((socket, req) => {
      if (req.path === '/long') {
        socket.write(
          Buffer.concat([
            responseHead(200, {'content-length': 10}),
            Buffer.from('0123456789EXTRA BYTES THAT ARE NOT HTTP'),
          ]),
        )
        return true
      }
      socket.end(Buffer.concat([responseHead(200, {'content-length': 2, connection: 'close'}), Buffer.from('ok')]))
    })
    const http = client()
    const first = await http.send(new URL(`${s.url}/long`))
    expect(await first.text()).toBe('0123456789')
    // Whatever the pool does with the poisoned connection, the next exchange is either clean or a RegistryError.
    const second = await http
      .send(new URL(`${s.url}/next`))
      .then((r) => r.text())
      .catch((e) => e)
    if (second instanceof Error) {
      expect(second).toBeInstanceOf(RegistryError)
      expect((second as RegistryError).transient).toBe(true)
    } else expect(second).toBe('ok')
  })

  it('junk after a complete body on a keep-alive connection: the body is intact and nothing escapes', async () => {
    const s = await serve((socket) => {
      socket.write(Buffer.concat([responseHead(200, {'content-length': 5}), Buffer.from('hello')]))
      setTimeout(() => socket.write('\x00\x01garbage that is not a status line\r\n\r\n'), 20)
      return true
    })
    const http = client()
    const res = await http.send(new URL(`${s.url}/a`))
    expect(await res.text()).toBe('hello')
    await sleep(100)
    const again = await http
      .send(new URL(`${s.url}/b`))
      .then((r) => r.text())
      .catch((e) => e)
    if (again instanceof Error) expect(again).toBeInstanceOf(RegistryError)
    else expect(again).toBe('hello')
  })

  it('a chunked body is read whole; one cut inside a chunk is a transient RegistryError', async () => {
    const chunked = (parts: Buffer[], complete: boolean) =>
      Buffer.concat([
        ...parts.flatMap((p) => [Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]),
        Buffer.from(complete ? '0\r\n\r\n' : ''),
      ])
    const parts = [body.subarray(0, 70_000), body.subarray(70_000, 200_000), body.subarray(200_000, 210_000)]
    const s = await serve((socket, req) => {
      socket.write(responseHead(200, {'transfer-encoding': 'chunked'}))
      if (req.path === '/whole') {
        socket.write(chunked(parts, true))
        return true
      }
      writeThen(socket, chunked(parts, false).subarray(0, 150_000), () => socket.end())
    })
    const http = client()
    const whole = await http.send(new URL(`${s.url}/whole`))
    expect(await slowRead(whole.body, 1)).toBe(210_000)
    const cut = await http.send(new URL(`${s.url}/cut`))
    const error = await slowRead(cut.body, 1).catch((e) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect(error.transient).toBe(true)
  })

  it('Content-Encoding: gzip added by a proxy although identity was asked for: decoded to the original bytes', async () => {
    const original = Buffer.from(JSON.stringify({schemaVersion: 2, layers: []}).repeat(50))
    const s = await serve((socket, req) => {
      expect(req.headers['accept-encoding']).toBe('identity')
      const gz = gzipSync(original)
      socket.write(Buffer.concat([responseHead(200, {'content-encoding': 'gzip', 'content-length': gz.length}), gz]))
      return true
    })
    const res = await client().send(new URL(`${s.url}/m`))
    const bytes: Buffer[] = []
    for await (const c of res.body) bytes.push(c as Buffer)
    expect(createHash('sha256').update(Buffer.concat(bytes)).digest('hex')).toBe(
      createHash('sha256').update(original).digest('hex'),
    )
  })

  it('a gzip body that does not decode is a transient RegistryError', async () => {
    const s = await serve((socket) => {
      socket.end(
        Buffer.concat([
          responseHead(200, {'content-encoding': 'gzip', 'content-length': 20, connection: 'close'}),
          Buffer.alloc(20, 7),
        ]),
      )
    })
    const res = await client().send(new URL(`${s.url}/m`))
    const error = await res.text().catch((e) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect(error.message).toContain('gzip body that does not decode')
  })

  it('a stalled body fails after the idle timeout with a transient RegistryError', async () => {
    const s = await serve((socket) => {
      socket.write(responseHead(200, {'content-length': 1000}))
      socket.write(body.subarray(0, 100))
      return new Promise<void>(() => {})
    })
    const res = await client({idleTimeoutMs: 300}).send(new URL(`${s.url}/stall`))
    const started = Date.now()
    const error = await res.text().catch((e) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect(error.transient).toBe(true)
    expect(error.message).toBe(`${s.host} sent nothing for 300 ms while receiving the body`)
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
  })

  it('headers that never come fail after the idle timeout', async () => {
    const s = await serve(() => new Promise<void>(() => {}))
    const error = await client({idleTimeoutMs: 200})
      .send(new URL(`${s.url}/nothing`), {method: 'HEAD'})
      .catch((e) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect(error.transient).toBe(true)
    expect(error.message).toContain('while waiting for the response headers')
  })

  it('a HEAD answered with a Content-Length and then a FIN is a clean answer', async () => {
    const s = await serve((socket) => {
      socket.end(
        responseHead(200, {
          'content-length': 12345,
          'docker-content-digest': 'sha256:' + 'a'.repeat(64),
          connection: 'close',
        }),
      )
    })
    const res = await client().send(new URL(`${s.url}/v2/x/manifests/1`), {method: 'HEAD'})
    expect(res.status).toBe(200)
    expect(res.headers.get('docker-content-digest')).toBe('sha256:' + 'a'.repeat(64))
    expect(await res.text()).toBe('')
  })

  it('a FIN before any response is a transient RegistryError naming the host', async () => {
    const s = await serve((socket) => void socket.end())
    const error = await client()
      .send(new URL(`${s.url}/x`))
      .catch((e) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect(error.transient).toBe(true)
    expect(error.message).toContain(`cannot reach ${s.host}`)
  })

  it('429 with Retry-After is waited for, then retried', async () => {
    let n = 0
    const s = await serve((socket) => {
      if (n++ === 0) socket.write(responseHead(429, {'retry-after': '1', 'content-length': 0}))
      else socket.write(Buffer.concat([responseHead(200, {'content-length': 2}), Buffer.from('ok')]))
      return true
    })
    const started = Date.now()
    const res = await client({attempts: 3, retryBaseMs: 1}).sendWithRetry(new URL(`${s.url}/x`))
    expect(await res.text()).toBe('ok')
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
  })
})

describe('registry client: token, manifest and HEAD responses cut mid-body are retried', () => {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:' + '0'.repeat(64), size: 2},
      layers: [],
    }),
  )
  const digest = 'sha256:' + createHash('sha256').update(manifest).digest('hex')

  /** A registry that cuts the first `cuts` answers of each path with a FIN mid-body, then behaves. */
  async function flakyRegistry(cuts: number) {
    const seen = new Map<string, number>()
    const s = await serve((socket, req) => {
      const pathname = req.path.split('?')[0]!
      const n = (seen.get(pathname) ?? 0) + 1
      seen.set(pathname, n)
      const send = (status: number, headers: Record<string, string | number>, payload: Buffer) => {
        if (n <= cuts && payload.length > 0 && req.method !== 'HEAD') {
          writeThen(
            socket,
            Buffer.concat([
              responseHead(status, {...headers, 'content-length': payload.length, connection: 'close'}),
              payload.subarray(0, payload.length >> 1),
            ]),
            () => socket.end(),
          )
          return false
        }
        socket.write(
          Buffer.concat([
            responseHead(status, {...headers, 'content-length': payload.length}),
            req.method === 'HEAD' ? Buffer.alloc(0) : payload,
          ]),
        )
        return true
      }
      if (pathname === '/token')
        return send(
          200,
          {'content-type': 'application/json'},
          Buffer.from(JSON.stringify({token: 'tok-' + 'x'.repeat(200)})),
        )
      if (!req.headers.authorization) {
        return send(
          401,
          {'www-authenticate': `Bearer realm="http://${s.host}/token",service="raw"`},
          Buffer.from('{"errors":[]}'),
        )
      }
      return send(
        200,
        {'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': digest},
        manifest,
      )
    })
    return {s, seen}
  }

  function registryClient(attempts: number): RegistryClient {
    const c = new RegistryClient(emptyRegistriesConfig(), {attempts, retryBaseMs: 1, env: {}, insecureRegistries: []})
    clients.push(c.http)
    return c
  }

  it('a token response and a manifest cut once each: fetched again, the manifest verified', async () => {
    const {s, seen} = await flakyRegistry(1)
    const c = registryClient(3)
    const [ep] = c.endpoints(s.host, 'team/app')
    const m = await c.getManifest(ep!, '1')
    expect(m.digest).toBe(digest)
    expect(seen.get('/token')).toBe(2)
    expect(seen.get('/v2/team/app/manifests/1')).toBe(2)
    expect(await c.headManifest(ep!, '1')).toBe(digest)
  })

  it('cut every time: a RegistryError after the attempts, never an exception outside the promise', async () => {
    const {s} = await flakyRegistry(1000)
    const c = registryClient(2)
    const [ep] = c.endpoints(s.host, 'team/app')
    const error = await c.getManifest(ep!, '1').catch((e) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect(error.message).toMatch(/closed the connection after \d+ of \d+ bytes/)
  })
})
