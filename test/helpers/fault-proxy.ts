// A fault-injecting HTTP proxy for the reliability tests: it listens on a free loopback port in front of a test
// registry (plain HTTP), so airpack can be pointed at it as if it were the registry
// (`--insecure-registry 127.0.0.1:PROXYPORT`, image references on the proxy's host), and it misbehaves on a
// chosen fraction of blob GETs the way real links and mirrors do: 5xx answers, connections cut mid-blob, stalled
// reads, a flipped byte in a blob body.
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

export type FaultKind = 'status' | 'cut' | 'stall' | 'flip'

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
  /** 'stall': what happens after the pause. Default 'resume' (a slow link that recovers). */
  afterStall?: 'resume' | 'cut'
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

export interface ProxyCounters {
  requests: number
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
  const selected = plan.persistent ? draw(seed, digest, 0, 'select') < rate : draw(seed, digest, attempt, 'select') < rate
  if (!selected) return {kind: 'pass', at}
  const kind = kinds[Math.floor(draw(seed, digest, plan.persistent ? 0 : attempt, 'kind') * kinds.length)]!
  if (kind === 'status') {
    const codes = plan.statusCodes && plan.statusCodes.length > 0 ? plan.statusCodes : [500, 502, 503]
    return {kind, at, status: codes[Math.floor(draw(seed, digest, attempt, 'status') * codes.length)]!}
  }
  return {kind, at}
}

/** Resolves on 'drain' or 'close', whichever comes first, and leaves no listener behind. */
function drained(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

function emptyCounters(): ProxyCounters {
  return {requests: 0, blobGets: 0, passed: 0, faults: {status: 0, cut: 0, stall: 0, flip: 0}, bytesSent: 0, perDigest: {}, events: []}
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

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, onResponse?: (up: http.IncomingMessage) => void) => {
    const upReq = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
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

  const serveBlob = (req: http.IncomingMessage, res: http.ServerResponse, digest: string) => {
    const attempt = (attempts.get(digest) ?? 0) + 1
    attempts.set(digest, attempt)
    const counter = perDigest(digest)
    counter.gets++
    counters.blobGets++
    const range = typeof req.headers.range === 'string' ? req.headers.range : undefined
    if (range) counter.rangeGets++
    const decision = decide(plan, digest, attempt, counter.faults)
    const event: FaultEvent = {digest, attempt, kind: decision.kind, ...(range ? {range} : {})}

    if (decision.kind === 'status') {
      counters.faults.status++
      counter.faults++
      record({...event, status: decision.status})
      req.resume()
      res.writeHead(decision.status!, {'content-type': 'application/json'})
      res.end(JSON.stringify({errors: [{code: 'UNAVAILABLE', message: 'injected fault'}]}))
      return
    }

    forward(req, res, (up) => {
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
      // A candidate for the hold; the first response to reach `afterBytes` takes it (a blob smaller than that
      // never does, so it cannot use the hold up).
      const holdHere = hold && !held && (!hold.digests || hold.digests.includes(digest)) ? hold : undefined
      record({...event, status, ...(decision.kind !== 'pass' ? {offset: faultOffset} : {})})

      res.writeHead(status, up.headers)
      let sent = 0
      let acted = false
      const send = (chunk: Buffer) => {
        sent += chunk.length
        counter.bytesSent += chunk.length
        counters.bytesSent += chunk.length
        return res.write(chunk)
      }
      const pump = async () => {
        try {
          for await (const raw of up) {
            let chunk = raw as Buffer
            if (holdHere && hold === holdHere && !held && sent + chunk.length > holdHere.afterBytes && sent <= holdHere.afterBytes) {
              held = true
              const head = chunk.subarray(0, Math.max(0, holdHere.afterBytes - sent))
              if (head.length > 0) send(head)
              chunk = chunk.subarray(head.length)
              const heldEvent = {...event, kind: 'stall' as const, offset: sent}
              holdHere.resolve(heldEvent)
              await new Promise<void>((resolve) => releaseWaiters.push(resolve))
              if (res.destroyed) return
            }
            if (!acted && decision.kind !== 'pass' && sent + chunk.length > faultOffset) {
              acted = true
              const cutPoint = faultOffset - sent
              if (decision.kind === 'cut') {
                if (cutPoint > 0) send(chunk.subarray(0, cutPoint))
                await new Promise<void>((resolve) => res.write('', () => resolve()))
                up.destroy()
                res.socket?.destroy()
                return
              }
              if (decision.kind === 'flip') {
                chunk = Buffer.from(chunk)
                chunk[cutPoint] = chunk[cutPoint]! ^ 0x01
              }
              if (decision.kind === 'stall') {
                if (cutPoint > 0) send(chunk.subarray(0, cutPoint))
                chunk = chunk.subarray(cutPoint)
                await wait(plan.stallMs ?? 2000)
                if (res.destroyed) return
                if ((plan.afterStall ?? 'resume') === 'cut') {
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
          res.end()
        } catch {
          res.destroy()
        }
      }
      void pump()
    })
  }

  const server = http.createServer((req, res) => {
    counters.requests++
    const pathname = (req.url ?? '/').split('?')[0]!
    const match = req.method === 'GET' ? BLOB_PATH.exec(pathname) : null
    if (match) serveBlob(req, res, match[2]!)
    else forward(req, res)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const {port} = server.address() as net.AddressInfo
  const host = `127.0.0.1:${port}`

  return {
    host,
    port,
    url: `http://${host}`,
    get counters() {
      return counters
    },
    events,
    setPlan(next) {
      plan = next
    },
    resetCounters() {
      counters = emptyCounters()
      attempts.clear()
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
      await new Promise<void>((resolve) => server.close(() => resolve()))
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
export async function startRawHttpServer(respond: (socket: net.Socket, request: RawRequest) => Promise<boolean | void> | boolean | void): Promise<RawServer> {
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
  const lines = [`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`.trim(), ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
}
