import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import {Readable, type Duplex} from 'node:stream'
import tls from 'node:tls'
import zlib from 'node:zlib'

import {redactUrl} from '../util/redact.js'
import {RegistryError, describeError, errorCode, isNetworkError, isTlsError} from './errors.js'
import {proxyFor, readProxyEnv, type ProxyEnv} from './proxy.js'
import type {HostTls} from './registries-config.js'

// HTTP for registries, token services and chart repositories, on Node's own http/https modules.
//
// Why not undici (the transport until issue 9): undici 7's HTTP/1.1 parser asserts `!this.paused` when a server
// closes a connection (FIN) while the body is paused for backpressure (nodejs/undici#5360, fixed only in undici
// 8, which needs Node >= 22.19). The assertion fires in a socket 'end' listener, outside any promise, so no
// try/catch in airpack can turn it into an error: the process dies with exit 1 and leaves a `.partial`. Node's
// own client destroys the response with ECONNRESET ('aborted') in that situation, which we turn into a transient
// RegistryError here, so every byte-level fault a server can produce ends in a retry or a clean exit 4.
//
// Also here: keep-alive agents per TLS setting (extra CA, client certificate, unverified TLS for
// --insecure-registry hosts only), HTTP(S)_PROXY / NO_PROXY (CONNECT tunnels for https), redirects followed by
// hand so that Authorization never travels to another origin and a redirect loop is an error rather than
// twenty silent hops, transparent decoding of a Content-Encoding a proxy added, idle timeouts, and retries with
// exponential backoff and jitter on 429, 5xx and dropped connections.

export interface HttpOptions {
  extraCaPem?: string
  tls: Map<string, HostTls>
  insecureHosts: Set<string>
  /** Attempts per request (1 = no retry). */
  attempts: number
  retryBaseMs: number
  /** Environment to read HTTP_PROXY, HTTPS_PROXY and NO_PROXY from (default process.env). */
  env?: NodeJS.ProcessEnv
  /** A connection that sends nothing for this long (waiting for headers or mid-body) fails; default 60 s. */
  idleTimeoutMs?: number
  /** Connecting (TCP, TLS, proxy CONNECT) may take this long; default 15 s. */
  connectTimeoutMs?: number
}

export interface SendInit {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  headers?: Record<string, string>
  /** A stream is sent as it comes (the caller sets content-length) and cannot be sent twice: no retry, no redirect. */
  body?: string | Buffer | Readable
  /** Sent to the first origin only; dropped when a redirect leaves it. */
  authorization?: string
}

/** A response body: a Node stream whose failures are RegistryErrors (transient for cut or stalled transfers). */
export type ResponseBody = Readable & {
  /** Stop reading and let the connection go (not reusable). Never rejects. */
  cancel(): Promise<void>
}

/**
 * A response's headers by name, case-insensitive; a repeated header's values joined with ", " (as fetch's Headers
 * does). Not the WHATWG Headers class: its first use loads Node's bundled undici, 60–100 ms of every build
 * (measured with --cpu-prof), for the one method airpack calls.
 */
export class ResponseHeaders {
  private readonly values = new Map<string, string>()

  constructor(raw: http.IncomingHttpHeaders) {
    for (const [name, value] of Object.entries(raw)) {
      if (value === undefined) continue
      this.values.set(name.toLowerCase(), (Array.isArray(value) ? value : [value]).map((v) => v.trim()).join(', '))
    }
  }

  get(name: string): string | null {
    return this.values.get(name.toLowerCase()) ?? null
  }
}

export interface HttpResponse {
  status: number
  statusText: string
  headers: ResponseHeaders
  /** Where the response came from, after redirects. */
  url: URL
  body: ResponseBody
  /** The whole body as UTF-8 text. */
  text(): Promise<string>
}

const MAX_REDIRECTS = 10
// A stalled server fails (and is retried) after a minute; connecting gets a quarter of that.
const IDLE_TIMEOUT_MS = 60_000
const CONNECT_TIMEOUT_MS = 15_000

export class HttpClient {
  private readonly agents = new Map<string, http.Agent>()
  private readonly proxies: ProxyEnv

  constructor(readonly options: HttpOptions) {
    this.proxies = readProxyEnv(options.env ?? process.env)
  }

  /** Whether TLS verification is off for this host (an --insecure-registry host or insecure_skip_verify). */
  isInsecure(host: string): boolean {
    return (
      this.options.insecureHosts.has(host.toLowerCase()) ||
      this.options.tls.get(host.toLowerCase())?.insecureSkipVerify === true
    )
  }

  /** The proxy a request to `url` goes through, if any (for messages: credentials masked). */
  proxyFor(url: URL): URL | undefined {
    return proxyFor(url, this.proxies)
  }

  private tlsOptions(host: string): tls.ConnectionOptions {
    const settings = this.options.tls.get(host)
    const extra = [this.options.extraCaPem, settings?.caPem].filter((x): x is string => Boolean(x))
    return {
      ...(extra.length > 0 ? {ca: [...tls.rootCertificates, ...extra]} : {}),
      ...(settings?.certPem ? {cert: settings.certPem} : {}),
      ...(settings?.keyPem ? {key: settings.keyPem} : {}),
      rejectUnauthorized: !this.isInsecure(host),
    }
  }

  /** One keep-alive agent per (scheme, TLS settings of the host, proxy). */
  private agent(url: URL, proxy: URL | undefined): http.Agent {
    const host = url.host.toLowerCase()
    const secure = url.protocol === 'https:'
    const key = `${secure ? `tls:${host}` : 'plain'}|${proxy?.href ?? ''}`
    const existing = this.agents.get(key)
    if (existing) return existing
    const common = {keepAlive: true, scheduling: 'lifo' as const}
    const agent = !secure
      ? new http.Agent(common)
      : proxy
        ? new TunnelAgent(proxy, this.options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS, {
            ...common,
            ...this.tlsOptions(host),
          })
        : new https.Agent({...common, ...this.tlsOptions(host)})
    this.agents.set(key, agent)
    return agent
  }

  /** One request/response exchange, no redirects, no retries. */
  private exchange(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: SendInit['body'],
  ): Promise<HttpResponse> {
    const proxy = this.proxyFor(url)
    const secure = url.protocol === 'https:'
    const agent = this.agent(url, proxy)
    const idleMs = this.options.idleTimeoutMs ?? IDLE_TIMEOUT_MS
    const connectMs = this.options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    const outHeaders: Record<string, string> = {...headers, host: url.host}
    if (body !== undefined && !(body instanceof Readable))
      outHeaders['content-length'] = String(Buffer.byteLength(body))
    const target = requestTarget(url, proxy, outHeaders)
    const via = proxy ? ` (through the proxy ${redactUrl(proxy.href).replace(/\/$/, '')})` : ''
    return new Promise<HttpResponse>((resolve, reject) => {
      let settled = false
      let phase = 'connecting'
      let timedOut: RegistryError | undefined
      const req = (secure ? https : http).request({...target, method, headers: outHeaders, agent})
      const fail = (error: unknown) => {
        if (settled) return
        settled = true
        reject(error instanceof RegistryError ? error : networkFailure(url, error, via))
      }
      // Kept for the whole life of the request: a late parse error (junk after a body) must not be unhandled.
      req.on('error', fail)
      req.setTimeout(idleMs, () => {
        timedOut = new RegistryError(
          'unreachable',
          `${url.host} sent nothing for ${duration(idleMs)} while ${phase}${via}`,
          url.host,
        )
        req.destroy(timedOut)
      })
      req.on('socket', (socket: net.Socket) =>
        limitConnect(req, socket, {url, ms: connectMs, via, tlsDirect: secure && !proxy}),
      )
      req.on('response', (res) => {
        phase = 'receiving the body'
        if (res.statusCode === 407 && proxy) {
          // The proxy's answer, not the registry's: say so (and never with the proxy's password).
          res.resume()
          fail(proxyRefused(proxy, url, res.statusMessage))
          return
        }
        settled = true
        resolve(toResponse(url, method, res, req, via, () => timedOut))
      })
      if (body instanceof Readable) {
        phase = 'sending the body'
        // A body that fails (its bytes did not match their digest) aborts the request: the server keeps nothing.
        body.once('error', (error) => req.destroy(error))
        body.once('end', () => (phase = 'waiting for the response headers'))
        body.pipe(req)
        return
      }
      phase = 'waiting for the response headers'
      req.end(body)
    })
  }

  /** One request with redirects followed by hand (no retry). Network failures become RegistryError. */
  async send(url: URL, init: SendInit = {}): Promise<HttpResponse> {
    const seen = new Set<string>()
    let current = url
    let authorization = init.authorization
    for (let hop = 0; ; hop++) {
      // identity: ranges index the stored bytes; a Content-Encoding a proxy adds anyway is decoded in toResponse.
      const headers: Record<string, string> = {
        'accept-encoding': 'identity',
        ...lowerKeys(init.headers),
        'user-agent': 'airpack',
      }
      if (authorization) headers.authorization = authorization
      const res = await this.exchange(current, init.method ?? 'GET', headers, init.body)
      if (res.status < 300 || res.status >= 400 || res.status === 304 || init.body instanceof Readable) return res
      const location = res.headers.get('location')
      await res.body.cancel()
      if (!location)
        throw new RegistryError(
          'protocol',
          `${current.host} answered ${res.status} without a Location header`,
          current.host,
          res.status,
        )
      let next: URL
      try {
        next = new URL(location, current)
      } catch {
        throw new RegistryError(
          'protocol',
          `${current.host} answered ${res.status} with a Location that is not a URL`,
          current.host,
          res.status,
        )
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new RegistryError(
          'redirect',
          `${current.host} redirects to a ${next.protocol} URL`,
          current.host,
          res.status,
        )
      }
      seen.add(current.href)
      if (seen.has(next.href) || hop + 1 >= MAX_REDIRECTS) {
        throw new RegistryError(
          'redirect',
          `${url.host} ${seen.has(next.href) ? 'redirects in a loop' : 'redirects too many times'} (${hop + 1} hops, last to ${next.origin}${next.pathname})`,
          url.host,
          res.status,
        )
      }
      // Credentials are for the registry that asked for them; storage backends get pre-signed URLs instead.
      if (next.origin !== current.origin) authorization = undefined
      current = next
    }
  }

  /** `send` with retries on transient failures; the response of the last attempt is returned or thrown. */
  sendWithRetry(url: URL, init: SendInit = {}): Promise<HttpResponse> {
    return withRetry((u, i) => this.send(u, i), this.options)(url, init)
  }

  async close(): Promise<void> {
    for (const agent of this.agents.values()) agent.destroy()
    this.agents.clear()
  }
}

/** A CONNECT tunnel through an HTTP proxy to each https origin, then TLS to the origin inside it. */
class TunnelAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    private readonly connectTimeoutMs: number,
    options: https.AgentOptions,
  ) {
    super(options)
  }

  // Node's Agent accepts an asynchronous createConnection: return nothing and call back with the socket.
  override createConnection(
    requestOptions: https.RequestOptions,
    callback?: (error: Error | null, socket: Duplex) => void,
  ): undefined {
    const options = requestOptions as tls.ConnectionOptions & {host?: string; port?: number; servername?: string}
    const target = `${options.host?.includes(':') ? `[${options.host}]` : options.host}:${options.port}`
    const headers: Record<string, string> = {host: target}
    const auth = proxyAuthorization(this.proxy)
    if (auth) headers['proxy-authorization'] = auth
    const where = `the proxy ${redactUrl(this.proxy.href).replace(/\/$/, '')}`
    const connect = http.request({
      host: this.proxy.hostname.replace(/^\[|\]$/g, ''),
      port: this.proxy.port || 80,
      method: 'CONNECT',
      path: target,
      headers,
      agent: false,
      timeout: this.connectTimeoutMs,
    })
    let done = false
    const finish = (error: Error | null, socket?: Duplex) => {
      if (done) return
      done = true
      callback?.(error, socket as Duplex)
    }
    connect.on('timeout', () =>
      connect.destroy(
        new RegistryError(
          'unreachable',
          `${where} did not open a tunnel to ${target} within ${Math.round(this.connectTimeoutMs / 1000)} s`,
          target,
        ),
      ),
    )
    connect.on('error', (error) =>
      finish(
        error instanceof RegistryError
          ? error
          : new RegistryError('unreachable', `cannot reach ${where}: ${describeError(error)}`, target, undefined, {
              cause: error,
            }),
      ),
    )
    connect.on('connect', (res, socket, head) => finish(...this.throughTunnel(res, socket, head, options, target)))
    connect.end()
    return undefined
  }

  /** The CONNECT answer: TLS to the origin inside the tunnel, or the proxy's refusal named. */
  private throughTunnel(
    res: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    options: tls.ConnectionOptions & {host?: string; servername?: string},
    target: string,
  ): [Error | null, Duplex?] {
    if (res.statusCode !== 200) {
      socket.destroy()
      const status = res.statusCode ?? 0
      // 407 is the standard answer to missing or wrong proxy credentials; some proxies (tinyproxy) send 401.
      const credentials = status === 407 || status === 401
      const failure = credentials ? 'unauthorized' : status >= 500 ? 'unreachable' : 'http'
      const hint = credentials ? ' (check the credentials in HTTPS_PROXY)' : ''
      const where = `the proxy ${redactUrl(this.proxy.href).replace(/\/$/, '')}`
      const message = `${where} refused the tunnel to ${target}: ${status} ${res.statusMessage ?? ''}`.trim() + hint
      return [new RegistryError(failure, message, target, credentials ? 407 : status)]
    }
    ;(socket as net.Socket).setTimeout(0)
    if (head.length > 0) socket.unshift(head)
    const {host, port, ...rest} = options as typeof options & {port?: number}
    void port
    const servername = options.servername ?? (host && !/^[\d.]+$|:/.test(host) ? host : undefined)
    return [null, tls.connect({...rest, socket, ...(servername ? {servername} : {})})]
  }
}

/** Where a request goes: the origin, or (plain HTTP through a proxy) the proxy with the absolute URL as the
 *  request target and the proxy's credentials added to `headers`. */
function requestTarget(url: URL, proxy: URL | undefined, headers: Record<string, string>): http.RequestOptions {
  if (proxy && url.protocol !== 'https:') {
    const auth = proxyAuthorization(proxy)
    if (auth) headers['proxy-authorization'] = auth
    return {host: proxy.hostname.replace(/^\[|\]$/g, ''), port: proxy.port || 80, path: url.href}
  }
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port || (url.protocol === 'https:' ? 443 : 80),
    path: url.pathname + url.search,
  }
}

/** A new connection that is not up (TCP, or TLS when it is direct) within `ms` fails the request. */
function limitConnect(
  req: http.ClientRequest,
  socket: net.Socket,
  o: {url: URL; ms: number; via: string; tlsDirect: boolean},
): void {
  if (!socket.connecting) return
  const message = `cannot reach ${o.url.host}: no connection within ${duration(o.ms)}${o.via}`
  const timer = setTimeout(() => req.destroy(new RegistryError('unreachable', message, o.url.host)), o.ms)
  socket.once(o.tlsDirect ? 'secureConnect' : 'connect', () => clearTimeout(timer))
  socket.once('close', () => clearTimeout(timer))
}

/** A 407 from the proxy for a plain-HTTP request: the proxy's answer, named without its password. */
function proxyRefused(proxy: URL, url: URL, statusMessage: string | undefined): RegistryError {
  return new RegistryError(
    'unauthorized',
    `the proxy ${redactUrl(proxy.href).replace(/\/$/, '')} refused ${url.host}: 407 ${statusMessage ?? ''}`.trim() +
      ' (check the credentials in HTTP_PROXY)',
    url.host,
    407,
  )
}

function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username && !proxy.password) return undefined
  return (
    'Basic ' +
    Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')
  )
}

function lowerKeys(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers ?? {})) out[k.toLowerCase()] = v
  return out
}

const DECODERS: Record<string, () => NodeJS.ReadWriteStream> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
}

function toResponse(
  url: URL,
  method: string,
  res: http.IncomingMessage,
  req: http.ClientRequest,
  via: string,
  timedOut: () => RegistryError | undefined,
): HttpResponse {
  const headers = new ResponseHeaders(res.headers)
  const encoding = (headers.get('content-encoding') ?? 'identity').trim().toLowerCase()
  const decoder = method === 'HEAD' || encoding === 'identity' || encoding === '' ? undefined : DECODERS[encoding]
  const declared = decoder ? undefined : Number.parseInt(headers.get('content-length') ?? '', 10)
  const body = new ResponseStream(
    url,
    req,
    res,
    decoder,
    Number.isFinite(declared) && method !== 'HEAD' ? declared : undefined,
    via,
    encoding,
    timedOut,
  )
  // A body that fails before anyone reads it must not be an unhandled 'error': reading it still throws.
  body.on('error', () => {})
  if (encoding !== 'identity' && encoding !== '' && !decoder && method !== 'HEAD') {
    body.destroy(
      new RegistryError(
        'protocol',
        `${url.host} sent a body in an unknown Content-Encoding "${encoding}"${via}`,
        url.host,
      ),
    )
  }
  return {
    status: res.statusCode ?? 0,
    statusText: res.statusMessage ?? '',
    headers,
    url,
    body,
    async text() {
      const chunks: Buffer[] = []
      for await (const chunk of body) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks).toString('utf8')
    },
  }
}

/**
 * The body of one response as a plain Readable, with backpressure passed to the socket. Whatever the connection
 * does — closed early (FIN or RST), stalled past the idle timeout, more or fewer bytes than Content-Length, junk
 * the decoder cannot read — the stream ends in a RegistryError naming the host and how many bytes arrived.
 */
class ResponseStream extends Readable implements ResponseBody {
  private received = 0
  private readonly source: Readable

  constructor(
    private readonly url: URL,
    private readonly req: http.ClientRequest,
    private readonly res: http.IncomingMessage,
    decoder: (() => NodeJS.ReadWriteStream) | undefined,
    private readonly declared: number | undefined,
    private readonly via: string,
    encoding: string,
    private readonly timedOut: () => RegistryError | undefined,
  ) {
    super({highWaterMark: 1 << 18})
    if (decoder) {
      const d = decoder() as unknown as Readable & NodeJS.WritableStream
      res.on('error', (error) => d.destroy(error))
      d.on('error', (error) => {
        if (!res.destroyed) res.destroy()
        const raw =
          (error as {code?: string}).code?.startsWith('Z_') ||
          /incorrect header|invalid|unexpected end/i.test((error as Error).message)
        this.fail(
          raw
            ? new RegistryError(
                'unreachable',
                `${this.url.host} sent a ${encoding} body that does not decode: ${(error as Error).message}${this.via}`,
                this.url.host,
              )
            : error,
        )
      })
      res.pipe(d)
      this.source = d
    } else {
      res.on('error', (error) => this.fail(error))
      this.source = res
    }
    this.source.on('data', (chunk: Buffer) => {
      this.received += chunk.length
      if (!this.push(chunk)) this.source.pause()
    })
    this.source.on('end', () => {
      if (this.declared !== undefined && this.received !== this.declared) {
        this.fail(new RegistryError('unreachable', this.shortMessage('ended the body'), this.url.host))
        return
      }
      this.push(null)
    })
    this.source.pause()
  }

  private shortMessage(what: string): string {
    const of = this.declared !== undefined ? ` of ${this.declared}` : ''
    return `${this.url.host} ${what} after ${this.received}${of} bytes${this.via}`
  }

  private fail(error: unknown): void {
    if (this.destroyed) return
    if (error instanceof RegistryError) {
      this.destroy(error)
      return
    }
    // The idle timer destroys the request with its own message; anything else is a cut connection.
    const timedOut = this.timedOut()
    if (timedOut) {
      this.destroy(timedOut)
      return
    }
    const code = errorCode(error)
    const how =
      code === 'ECONNRESET' || /aborted/i.test(describeError(error))
        ? 'closed the connection'
        : `failed (${describeError(error)})`
    this.destroy(new RegistryError('unreachable', this.shortMessage(how), this.url.host, undefined, {cause: error}))
  }

  override _read(): void {
    this.source.resume()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.res.complete || this.source !== this.res) {
      this.res.destroy()
      this.req.destroy()
    }
    if (this.source !== this.res) this.source.destroy()
    callback(error)
  }

  async cancel(): Promise<void> {
    if (this.res.complete && this.readableEnded) return
    this.on('error', () => {})
    this.destroy()
  }
}

/** Let a response go unread (its connection is not reused). Never rejects. */
export function discard(res: HttpResponse): Promise<void> {
  return res.body ? res.body.cancel().catch(() => {}) : Promise.resolve()
}

export function networkFailure(url: URL, error: unknown, via = ''): RegistryError {
  if (error instanceof RegistryError) return error
  const code = errorCode(error) ?? ''
  // A server that wants a client certificate and gets none either says so in a TLS alert or just drops the
  // connection after the handshake.
  const mtlsHint =
    url.protocol === 'https:' && /^(ECONNRESET|EPIPE)$|CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/.test(code)
      ? ' (if it requires a client certificate, set cert_file and key_file under configs in --registries)'
      : ''
  if (isTlsError(error)) {
    return new RegistryError(
      'tls',
      `TLS to ${url.host} failed: ${describeError(error)}${via}${mtlsHint}`,
      url.host,
      undefined,
      {cause: error},
    )
  }
  // A malformed response (junk instead of a status line, a bad Content-Length) is the link's fault as often as
  // the server's: worth another attempt like a cut connection.
  const what = code.startsWith('HPE_')
    ? `${url.host} sent a malformed response: ${describeError(error)}`
    : `cannot reach ${url.host}: ${describeError(error)}`
  return new RegistryError('unreachable', `${what}${via}${mtlsHint}`, url.host, undefined, {cause: error})
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`
}

/** Retry-After in seconds or as an HTTP date, in ms (undefined when absent or unreadable). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const at = Date.parse(trimmed)
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined
}

/** Exponential backoff with full jitter: base·2^n·[0.5, 1.5), capped at 10 s; honours Retry-After up to 10 s. */
export function backoffMs(attempt: number, baseMs: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, 10_000)
  return Math.min(baseMs * 2 ** attempt * (0.5 + Math.random()), 10_000)
}

const RETRIES_SPENT = Symbol('airpack.retriesSpent')

/** Worth another attempt: a transient failure that no retry loop has already given up on. */
export function isTransient(error: unknown): boolean {
  if (error && typeof error === 'object' && (error as {[RETRIES_SPENT]?: boolean})[RETRIES_SPENT]) return false
  if (error instanceof RegistryError) return error.transient
  return isNetworkError(error)
}

/** The retry policy: how many attempts, the backoff base, and which failures are worth another attempt. */
export interface RetryPolicy {
  attempts: number
  retryBaseMs: number
  /** Default: isTransient. */
  retryable?: (error: unknown) => boolean
}

/** `fn` under the retry policy: attempts with backoff while the failure is retryable. */
export async function retrying<T>(o: RetryPolicy, fn: (attempt: number) => Promise<T>): Promise<T> {
  const retryable = o.retryable ?? isTransient
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (error) {
      if (attempt + 1 >= o.attempts || !retryable(error)) {
        // An outer retry loop (a whole download around a request) must not multiply these attempts.
        if (attempt > 0 && error && typeof error === 'object') Object.assign(error, {[RETRIES_SPENT]: true})
        throw error
      }
      await new Promise((r) =>
        setTimeout(r, backoffMs(attempt, o.retryBaseMs, (error as {retryAfterMs?: number}).retryAfterMs)),
      )
    }
  }
}

/**
 * One HTTP exchange, request in, response out: go-containerregistry's `http.RoundTripper` shape. Behaviour is
 * added by wrapping one (`withRetry` here, `withAuth` in ./auth.ts), so each concern is written once and the
 * client composes them: `withAuth(withRetry(send, policy), authorizer)`.
 */
export type RoundTrip = (url: URL, init?: SendInit) => Promise<HttpResponse>

/** `rt` retried with backoff on transient failures and on 429 and 5xx answers (Retry-After honoured); the answer
 *  of the last attempt is returned, or its failure thrown. */
export function withRetry(rt: RoundTrip, policy: RetryPolicy): RoundTrip {
  return (url, init = {}) =>
    retrying(policy, async () => {
      const res = await rt(url, init)
      if (res.status === 429 || res.status >= 500) {
        const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'))
        await res.body.cancel()
        const error = new RegistryError(
          'http',
          `${url.host} answered ${res.status} ${res.statusText}`.trim(),
          url.host,
          res.status,
        )
        throw Object.assign(error, {retryAfterMs})
      }
      return res
    })
}
