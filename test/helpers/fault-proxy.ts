// The project's one fault-injecting HTTP proxy for the reliability tests: it listens on a free loopback port in
// front of a test registry (plain HTTP), so airpack can be pointed at it as if it were the registry
// (`--insecure-registry 127.0.0.1:PROXYPORT`, image references on the proxy's host), and it misbehaves the way
// real servers, links, CDNs and corporate proxies do.
//
// On a chosen fraction of blob GETs (FaultKind): 5xx or 429 (with Retry-After), a connection destroyed mid-blob,
// a FIN mid-body of a `Connection: close` response (undici #5360's trigger when the client applies backpressure),
// an RST mid-body, a body shorter or longer than its Content-Length, junk after a complete body, a stalled body,
// a flipped byte, and two transparent re-encodings: a chunked body and `Content-Encoding: gzip`.
//
// On every request (FaultPlan.routes): an HTML login page instead of the registry, a redirect loop on
// manifests or blobs, manifests whose bytes do not match their digest, the first N requests answered 503/429,
// Basic auth demanded by the proxy itself, a 401 loop (a token that the registry never accepts), and blob GETs
// redirected to a second "storage" origin that rejects any Authorization header, as presigned storage URLs do.
//
// Raw bytes: `startRawHttpServer` (below) answers at the socket level for tests of the transport alone.
//
// Determinism: whether the n-th GET of a given digest is faulted, and how, depends only on (seed, digest, n) —
// never on the order in which concurrent requests arrive — so a failing run can be reproduced with its seed.
// Counters record everything the proxy did, so tests can assert on what was (re-)downloaded.
//
// Everything that is not a blob GET (manifests, HEAD, uploads, /v2/ pings, token realms on the same host) is
// forwarded untouched, the Host header included, so Location headers the registry builds point back at the proxy.

import {createHash} from 'node:crypto'
import {EventEmitter} from 'node:events'
import http from 'node:http'
import net from 'node:net'
import {createGzip} from 'node:zlib'

/**
 * What happens to one blob GET: `status` an error answer; `cut` the connection destroyed mid-body; `fin` a
 * `Connection: close` body ended by a FIN mid-way; `rst` a TCP reset mid-body; `short` a keep-alive body that
 * stops before its Content-Length and a FIN; `long` a Content-Length smaller than the body sent (the rest is junk
 * on the connection); `junk` garbage after a complete body; `stall` a pause (then resume or cut); `flip` one
 * byte changed; `chunked` and `gzip` the same bytes chunked or gzip-encoded (faults of form, not of content).
 */
export type FaultKind =
  'status' | 'cut' | 'stall' | 'flip' | 'fin' | 'rst' | 'short' | 'long' | 'junk' | 'chunked' | 'gzip'

export const ALL_FAULT_KINDS: FaultKind[] = [
  'status',
  'cut',
  'stall',
  'flip',
  'fin',
  'rst',
  'short',
  'long',
  'junk',
  'chunked',
  'gzip',
]

/** Misbehaviour on every request, not only blob GETs. */
export interface RouteFaults {
  /** Every request answered with an HTML login page (200, text/html). */
  html?: boolean
  /** Manifest GETs/HEADs redirect back and forth between two URLs. */
  manifestRedirectLoop?: boolean
  /** Blob GETs redirect back and forth between two URLs. */
  blobRedirectLoop?: boolean
  /** Bytes appended to every manifest body (the Docker-Content-Digest then lies). */
  manifestSuffix?: string
  /** The first N requests other than the /v2/ ping are answered with `statusCodes` in turn and Retry-After: 0. */
  flaky?: number
  /** The proxy demands these Basic credentials on every request (and forwards anonymously). */
  basicAuth?: {username: string; password: string}
  /** A Bearer challenge on every request, a token endpoint on the proxy that always grants one, and a registry
   *  that never accepts it: a client that loops would never stop. */
  authLoop?: boolean
  /** Blob GETs answered with a 307 to the storage origin, which refuses (400) any request with Authorization. */
  blobsToStorage?: boolean
  /** Range headers dropped before forwarding (a server without Range support). */
  ignoreRange?: boolean
}

export interface FaultPlan {
  /** Seed of the decisions; the same seed and plan give the same faults. Default 1. */
  seed?: number
  /** Fraction (0..1) of blob GETs that get a fault. Default 0 (a transparent proxy). */
  rate?: number
  /** Kinds to draw from, uniformly (seeded). Default all four. */
  kinds?: FaultKind[]
  /** Restrict faults to these digests (`sha256:…`). Default: every blob. */
  digests?: string[]
  /** Fault every GET of a selected digest, not a `rate` fraction of them (e.g. a mirror that always serves a
   *  corrupt copy). Selection of the digest itself still follows `digests` / `rate`. */
  persistent?: boolean
  /** At most this many faults per digest; later GETs pass, so a client that retries enough succeeds. */
  maxFaultsPerDigest?: number
  /** Status codes for 'status' faults, drawn seeded. Default [500, 502, 503]. */
  statusCodes?: number[]
  /** 'cut', 'stall' and 'flip' act at this fraction of the body (0..1). Default: drawn seeded in [0.1, 0.9]. */
  at?: number
  /** 'stall': how long the body stops flowing (ms) before `afterStall`. Default 2000. */
  stallMs?: number
  /** 'stall': what happens after the pause. Default 'resume' (a slow link that recovers); 'hang' never goes on. */
  afterStall?: 'resume' | 'cut' | 'hang'
  /** Retry-After header of 'status' faults (e.g. '1'). */
  retryAfter?: string
  /** Misbehaviour on every request. */
  routes?: RouteFaults
}

export interface FaultEvent {
  digest: string
  /** 1 for the first GET of this digest through the proxy, 2 for the second, … */
  attempt: number
  kind: FaultKind | 'pass'
  /** Range header the client sent, if any (a resumed download). */
  range?: string
  status?: number
  /** Body offset at which the fault acted. */
  offset?: number
}

export interface DigestCounters {
  gets: number
  faults: number
  /** Body bytes the proxy sent to clients for this digest (all attempts). */
  bytesSent: number
  /** GETs that carried a Range header. */
  rangeGets: number
}

export interface RequestRecord {
  method: string
  path: string
  range?: string
  authorization?: string
  acceptEncoding?: string
}

export interface ProxyCounters {
  requests: number
  /** Every request the proxy received, in order. */
  log: RequestRecord[]
  /** Requests the storage origin received (blobsToStorage). */
  storageLog: RequestRecord[]
  blobGets: number
  passed: number
  faults: Record<FaultKind, number>
  bytesSent: number
  perDigest: Record<string, DigestCounters>
  events: FaultEvent[]
}

export interface FaultProxy {
  /** `127.0.0.1:PORT` — use as the registry host in image references and in `--insecure-registry`. */
  host: string
  url: string
  port: number
  counters: ProxyCounters
  setPlan(plan: FaultPlan): void
  resetCounters(): void
  /**
   * Hold the next blob GET(s) after `afterBytes` body bytes until `release()` (used to stop a build at a known
   * point in its fetch, then SIGKILL it). Resolves when the first response is held.
   */
  holdBlobs(options?: {afterBytes?: number; digests?: string[]}): Promise<FaultEvent>
  release(): void
  /** 'event' (FaultEvent) for every blob GET decision. */
  events: EventEmitter
  /** `127.0.0.1:PORT` of the storage origin blobs are redirected to (blobsToStorage). */
  storageHost: string
  stop(): Promise<void>
}

const BLOB_PATH = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/

/** A number in [0, 1) from (seed, digest, attempt, salt): sha256-based, so independent of request order. */
export function draw(seed: number, digest: string, attempt: number, salt: string): number {
  const h = createHash('sha256').update(`${seed}\0${digest}\0${attempt}\0${salt}`).digest()
  return h.readUInt32BE(0) / 2 ** 32
}

export interface FaultDecision {
  kind: FaultKind | 'pass'
  status?: number
  /** Fraction of the body at which the fault acts. */
  at: number
}

/** The pure decision for the `attempt`-th GET of `digest` under `plan`, given faults already done to it. */
export function decide(plan: FaultPlan, digest: string, attempt: number, faultsSoFar: number): FaultDecision {
  const seed = plan.seed ?? 1
  const kinds = plan.kinds && plan.kinds.length > 0 ? plan.kinds : (['status', 'cut', 'stall', 'flip'] as FaultKind[])
  const at = plan.at ?? 0.1 + 0.8 * draw(seed, digest, attempt, 'at')
  if (plan.digests && !plan.digests.includes(digest)) return {kind: 'pass', at}
  if (plan.maxFaultsPerDigest !== undefined && faultsSoFar >= plan.maxFaultsPerDigest) return {kind: 'pass', at}
  const rate = plan.rate ?? 0
  // Persistent: the digest is selected once (attempt 0's draw) and then faulted on every GET.
  const selected = plan.persistent
    ? draw(seed, digest, 0, 'select') < rate
    : draw(seed, digest, attempt, 'select') < rate
  if (!selected) return {kind: 'pass', at}
  const kind = kinds[Math.floor(draw(seed, digest, plan.persistent ? 0 : attempt, 'kind') * kinds.length)]!
  if (kind === 'status') {
    const codes = plan.statusCodes && plan.statusCodes.length > 0 ? plan.statusCodes : [500, 502, 503]
    return {kind, at, status: codes[Math.floor(draw(seed, digest, attempt, 'status') * codes.length)]!}
  }
  return {kind, at}
}

/** Resolves on 'drain' or 'close', whichever comes first, and leaves no listener behind. */
function drained(stream: http.ServerResponse | net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}

function emptyCounters(): ProxyCounters {
  const faults = Object.fromEntries(ALL_FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>
  return {requests: 0, log: [], storageLog: [], blobGets: 0, passed: 0, faults, bytesSent: 0, perDigest: {}, events: []}
}

function recordOf(req: http.IncomingMessage): RequestRecord {
  return {
    method: req.method ?? '',
    path: req.url ?? '',
    ...(req.headers.range ? {range: req.headers.range} : {}),
    ...(req.headers.authorization ? {authorization: req.headers.authorization} : {}),
    ...(req.headers['accept-encoding'] ? {acceptEncoding: String(req.headers['accept-encoding'])} : {}),
  }
}

/** Write to a raw socket, waiting for 'drain' when the client applies backpressure. */
async function writeRaw(socket: net.Socket, bytes: Buffer): Promise<void> {
  if (socket.destroyed) return
  if (!socket.write(bytes)) await drained(socket)
}

/** Headers of an upstream response for a raw answer (hop-by-hop ones dropped). */
function endToEnd(headers: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || ['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(k)) continue
    out[k] = Array.isArray(v) ? v.join(', ') : v
  }
  return out
}

export async function startFaultProxy(upstreamUrl: string, initialPlan: FaultPlan = {}): Promise<FaultProxy> {
  const upstream = new URL(upstreamUrl)
  if (upstream.protocol !== 'http:') throw new Error('fault proxy: only a plain-HTTP upstream is supported')
  let plan = initialPlan
  let counters = emptyCounters()
  const attempts = new Map<string, number>()
  const events = new EventEmitter()
  const sockets = new Set<net.Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let hold: {afterBytes: number; digests?: string[]; resolve: (e: FaultEvent) => void; first?: FaultEvent} | undefined
  let releaseWaiters: (() => void)[] = []
  let held = false
  let flakyDone = 0
  let storageHost = ''

  const perDigest = (digest: string): DigestCounters =>
    (counters.perDigest[digest] ??= {gets: 0, faults: 0, bytesSent: 0, rangeGets: 0})

  const record = (event: FaultEvent) => {
    counters.events.push(event)
    events.emit('event', event)
  }

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t)
        resolve()
      }, ms)
      timers.add(t)
    })

  const upstreamHeaders = (req: http.IncomingMessage): http.OutgoingHttpHeaders => {
    const headers = {...req.headers}
    const routes = plan.routes ?? {}
    // The proxy's own auth (basicAuth, authLoop) is not the registry's: the upstream is anonymous.
    if (routes.basicAuth || routes.authLoop) delete headers.authorization
    if (routes.ignoreRange) delete headers.range
    return headers
  }

  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    onResponse?: (up: http.IncomingMessage) => void,
    pathname = req.url,
  ) => {
    const upReq = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: pathname,
        headers: upstreamHeaders(req),
      },
      (up) => {
        if (onResponse) return onResponse(up)
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      },
    )
    upReq.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end()
      else res.destroy()
    })
    req.pipe(upReq)
  }

  /** A body answer written byte by byte on the raw socket (for faults no HTTP library would commit). */
  const serveRaw = async (
    req: http.IncomingMessage,
    up: http.IncomingMessage,
    kind: 'fin' | 'rst' | 'short' | 'long' | 'junk',
    faultOffset: number,
    length: number,
    count: (n: number) => void,
  ) => {
    const socket = req.socket
    const declared = kind === 'long' ? faultOffset : length
    const headers = {
      ...endToEnd(up.headers),
      'content-length': String(declared),
      ...(kind === 'fin' ? {connection: 'close'} : {}),
    }
    await writeRaw(socket, responseHead(up.statusCode ?? 200, headers))
    let sent = 0
    const stopAt = kind === 'fin' || kind === 'rst' || kind === 'short' ? faultOffset : Infinity
    for await (const raw of up) {
      const chunk = raw as Buffer
      const piece = chunk.subarray(0, Math.max(0, Math.min(chunk.length, stopAt - sent)))
      if (piece.length > 0) {
        count(piece.length)
        await writeRaw(socket, piece)
      }
      sent += piece.length
      if (sent >= stopAt || socket.destroyed) break
    }
    up.destroy()
    if (kind === 'rst') return void socket.resetAndDestroy()
    if (kind === 'fin' || kind === 'short') return void socket.end()
    // 'long' sent the whole body past its Content-Length; 'junk' sends garbage after a complete one. Either way
    // the bytes sit on a connection the client believes idle, then the server gives up on it.
    if (kind === 'junk')
      await writeRaw(socket, Buffer.from('\u0000\u0001garbage that is not a status line\r\n\r\n', 'latin1'))
    await wait(50)
    socket.end()
  }

  const serveBlob = (req: http.IncomingMessage, res: http.ServerResponse, digest: string, pathname: string) => {
    const attempt = (attempts.get(digest) ?? 0) + 1
    attempts.set(digest, attempt)
    const counter = perDigest(digest)
    counter.gets++
    counters.blobGets++
    const range = typeof req.headers.range === 'string' && !plan.routes?.ignoreRange ? req.headers.range : undefined
    if (range) counter.rangeGets++
    const decision = decide(plan, digest, attempt, counter.faults)
    const event: FaultEvent = {digest, attempt, kind: decision.kind, ...(range ? {range} : {})}

    if (decision.kind === 'status') {
      counters.faults.status++
      counter.faults++
      record({...event, status: decision.status})
      req.resume()
      res.writeHead(decision.status!, {
        'content-type': 'application/json',
        ...(plan.retryAfter !== undefined ? {'retry-after': plan.retryAfter} : {}),
      })
      res.end(JSON.stringify({errors: [{code: 'UNAVAILABLE', message: 'injected fault'}]}))
      return
    }

    forward(
      req,
      res,
      (up) => {
        const status = up.statusCode ?? 502
        if (status !== 200 && status !== 206) {
          // Not a body we can meddle with (404, 401, redirect): pass it through as is.
          counters.passed++
          record({...event, kind: 'pass', status})
          res.writeHead(status, up.headers)
          up.pipe(res)
          return
        }
        const length = Number(up.headers['content-length'] ?? NaN)
        const faultOffset = Number.isFinite(length) ? Math.floor(length * decision.at) : 0
        if (decision.kind === 'pass') counters.passed++
        else {
          counters.faults[decision.kind]++
          counter.faults++
        }
        const count = (n: number) => {
          counter.bytesSent += n
          counters.bytesSent += n
        }
        record({...event, status, ...(decision.kind !== 'pass' ? {offset: faultOffset} : {})})
        const kind = decision.kind
        if (kind === 'fin' || kind === 'rst' || kind === 'short' || kind === 'long' || kind === 'junk') {
          void serveRaw(req, up, kind, faultOffset, length, count).catch(() => req.socket.destroy())
          return
        }
        // A candidate for the hold; the first response to reach `afterBytes` takes it (a blob smaller than that
        // never does, so it cannot use the hold up).
        const holdHere = hold && !held && (!hold.digests || hold.digests.includes(digest)) ? hold : undefined
        const headers = {...up.headers}
        let out: NodeJS.WritableStream & {write(chunk: Buffer): boolean} = res
        if (kind === 'chunked' || (kind === 'gzip' && status === 200)) {
          delete headers['content-length']
          if (kind === 'gzip') {
            headers['content-encoding'] = 'gzip'
            const gz = createGzip()
            gz.pipe(res)
            out = gz
          }
        }
        res.writeHead(status, headers)
        let sent = 0
        let acted = false
        const send = (chunk: Buffer) => {
          sent += chunk.length
          count(chunk.length)
          return out.write(chunk)
        }
        const pump = async () => {
          try {
            for await (const raw of up) {
              let chunk = raw as Buffer
              if (
                holdHere &&
                hold === holdHere &&
                !held &&
                sent + chunk.length > holdHere.afterBytes &&
                sent <= holdHere.afterBytes
              ) {
                held = true
                const head = chunk.subarray(0, Math.max(0, holdHere.afterBytes - sent))
                if (head.length > 0) send(head)
                chunk = chunk.subarray(head.length)
                const heldEvent = {...event, kind: 'stall' as const, offset: sent}
                holdHere.resolve(heldEvent)
                await new Promise<void>((resolve) => releaseWaiters.push(resolve))
                if (res.destroyed) return
              }
              if (
                !acted &&
                (kind === 'cut' || kind === 'flip' || kind === 'stall') &&
                sent + chunk.length > faultOffset
              ) {
                acted = true
                const cutPoint = faultOffset - sent
                if (kind === 'cut') {
                  if (cutPoint > 0) send(chunk.subarray(0, cutPoint))
                  await new Promise<void>((resolve) => res.write('', () => resolve()))
                  up.destroy()
                  res.socket?.destroy()
                  return
                }
                if (kind === 'flip') {
                  chunk = Buffer.from(chunk)
                  chunk[cutPoint] = chunk[cutPoint]! ^ 0x01
                }
                if (kind === 'stall') {
                  if (cutPoint > 0) send(chunk.subarray(0, cutPoint))
                  chunk = chunk.subarray(cutPoint)
                  const after = plan.afterStall ?? 'resume'
                  if (after === 'hang') return
                  await wait(plan.stallMs ?? 2000)
                  if (res.destroyed) return
                  if (after === 'cut') {
                    up.destroy()
                    res.socket?.destroy()
                    return
                  }
                }
              }
              if (chunk.length > 0 && !send(chunk)) await drained(res)
              if (res.destroyed) {
                up.destroy()
                return
              }
            }
            out.end()
          } catch {
            res.destroy()
          }
        }
        void pump()
      },
      pathname,
    )
  }

  const routeFaults = (req: http.IncomingMessage, res: http.ServerResponse, pathname: string): boolean => {
    const routes = plan.routes ?? {}
    if (routes.html) {
      req.resume()
      res.writeHead(200, {'content-type': 'text/html'})
      res.end('<html><body>Sign in to continue</body></html>')
      return true
    }
    if (routes.basicAuth) {
      const want =
        'Basic ' + Buffer.from(`${routes.basicAuth.username}:${routes.basicAuth.password}`).toString('base64')
      if (req.headers.authorization !== want) {
        req.resume()
        res.writeHead(401, {'www-authenticate': 'Basic realm="fault proxy"'})
        res.end()
        return true
      }
    }
    if (routes.authLoop) {
      req.resume()
      if (pathname === '/token') {
        res.writeHead(200, {'content-type': 'application/json'})
        res.end(JSON.stringify({token: 'never-accepted', expires_in: 300}))
        return true
      }
      const host = req.headers.host ?? ''
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="http://${host}/token",service="fault-proxy",scope="repository:x:pull"`,
      })
      res.end()
      return true
    }
    if (routes.flaky !== undefined && pathname !== '/v2/' && flakyDone < routes.flaky) {
      const codes = plan.statusCodes && plan.statusCodes.length > 0 ? plan.statusCodes : [503, 429]
      req.resume()
      res.writeHead(codes[flakyDone++ % codes.length]!, {'retry-after': '0'})
      res.end('try later')
      return true
    }
    const loop =
      (routes.manifestRedirectLoop && pathname.includes('/manifests/')) ||
      (routes.blobRedirectLoop && BLOB_PATH.test(pathname))
    if (loop) {
      req.resume()
      const url = req.url ?? '/'
      res.writeHead(302, {location: url.includes('?') ? pathname : `${pathname}?again=1`})
      res.end()
      return true
    }
    if (routes.blobsToStorage && req.method === 'GET' && BLOB_PATH.test(pathname)) {
      req.resume()
      res.writeHead(307, {location: `http://${storageHost}/storage${pathname}?X-Signature=presigned`})
      res.end()
      return true
    }
    if (routes.manifestSuffix !== undefined && req.method === 'GET' && pathname.includes('/manifests/')) {
      forward(req, res, (up) => {
        const chunks: Buffer[] = []
        up.on('data', (c: Buffer) => chunks.push(c))
        up.on('end', () => {
          const body = Buffer.concat([...chunks, Buffer.from(routes.manifestSuffix!)])
          res.writeHead(up.statusCode ?? 502, {...endToEnd(up.headers), 'content-length': String(body.length)})
          res.end(body)
        })
      })
      return true
    }
    return false
  }

  const server = http.createServer((req, res) => {
    counters.requests++
    counters.log.push(recordOf(req))
    const pathname = (req.url ?? '/').split('?')[0]!
    if (routeFaults(req, res, pathname)) return
    const match = req.method === 'GET' ? BLOB_PATH.exec(pathname) : null
    if (match) serveBlob(req, res, match[2]!, req.url ?? pathname)
    else forward(req, res)
  })
  // Presigned-URL storage: the signature is in the URL, and a request that also carries Authorization is refused.
  const storage = http.createServer((req, res) => {
    counters.storageLog.push(recordOf(req))
    if (req.headers.authorization) {
      req.resume()
      res.writeHead(400, {'content-type': 'application/xml'})
      res.end('<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>')
      return
    }
    const pathname = (req.url ?? '/').split('?')[0]!.replace(/^\/storage/, '')
    const match = BLOB_PATH.exec(pathname)
    if (!match) {
      req.resume()
      res.writeHead(404).end()
      return
    }
    serveBlob(req, res, match[2]!, pathname)
  })
  for (const s of [server, storage]) {
    s.on('connection', (socket) => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.listen(0, '127.0.0.1', () => resolve())
    })
  }
  const {port} = server.address() as net.AddressInfo
  const host = `127.0.0.1:${port}`
  storageHost = `127.0.0.1:${(storage.address() as net.AddressInfo).port}`

  return {
    host,
    port,
    url: `http://${host}`,
    storageHost,
    get counters() {
      return counters
    },
    events,
    setPlan(next) {
      plan = next
      flakyDone = 0
    },
    resetCounters() {
      counters = emptyCounters()
      attempts.clear()
      flakyDone = 0
    },
    holdBlobs(options = {}) {
      held = false
      return new Promise<FaultEvent>((resolve) => {
        hold = {afterBytes: options.afterBytes ?? 0, digests: options.digests, resolve}
      })
    },
    release() {
      hold = undefined
      held = false
      const waiters = releaseWaiters
      releaseWaiters = []
      for (const w of waiters) w()
    },
    async stop() {
      for (const t of timers) clearTimeout(t)
      const waiters = releaseWaiters
      releaseWaiters = []
      for (const w of waiters) w()
      for (const s of sockets) s.destroy()
      await Promise.all([server, storage].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
    },
  }
}

export interface RawRequest {
  method: string
  path: string
  headers: Record<string, string>
}

export interface RawServer {
  host: string
  url: string
  /** Every request head seen, in order. */
  requests: RawRequest[]
  stop(): Promise<void>
}

/**
 * A server that answers at the byte level: `respond` gets the socket and the parsed request head and writes
 * whatever it likes (a status line and headers that lie, part of a body, junk) and ends or resets the socket —
 * what no well-behaved HTTP library would let a test do. Keep-alive: after `respond` resolves `true`, the next
 * request on the same socket is read.
 */
export async function startRawHttpServer(
  respond: (socket: net.Socket, request: RawRequest) => Promise<boolean | void> | boolean | void,
): Promise<RawServer> {
  const requests: RawRequest[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buffered = Buffer.alloc(0)
    let busy = false
    const next = async (): Promise<void> => {
      if (busy) return
      const end = buffered.indexOf('\r\n\r\n')
      if (end === -1) return
      busy = true
      const lines = buffered.subarray(0, end).toString('latin1').split('\r\n')
      buffered = buffered.subarray(end + 4)
      const [method = '', target = ''] = lines[0]!.split(' ')
      const headers: Record<string, string> = {}
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':')
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      const length = Number(headers['content-length'] ?? 0)
      while (buffered.length < length) await new Promise((r) => socket.once('data', r))
      buffered = buffered.subarray(length)
      const request = {method, path: target, headers}
      requests.push(request)
      const keep = await respond(socket, request)
      busy = false
      if (keep === true && !socket.destroyed) await next()
    }
    socket.on('data', (chunk: Buffer) => {
      // A TLS ClientHello (a client trying https first): close, as a plain-HTTP server does.
      if (buffered.length === 0 && chunk[0] === 0x16) return void socket.destroy()
      buffered = Buffer.concat([buffered, chunk])
      void next()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as net.AddressInfo
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    async stop() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** `HTTP/1.1 <status>` and headers, as bytes. */
export function responseHead(status: number, headers: Record<string, string | number>): Buffer {
  const lines = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`.trim(),
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ]
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
}
