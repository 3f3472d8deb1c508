import {rootCertificates} from 'node:tls'
import {Agent, fetch, type Dispatcher, type Response} from 'undici'

import {RegistryError, describeError, errorCode, isNetworkError, isTlsError} from './errors.js'
import type {HostTls} from './registries-config.js'

// HTTP for registries: one undici Agent per TLS setting (extra CA, client certificate, unverified TLS for
// --insecure-registry hosts only), redirects followed by hand so that Authorization never travels to another
// origin and a redirect loop is an error rather than twenty silent hops, and retries with exponential backoff
// and jitter on 429, 5xx and dropped connections.

export interface HttpOptions {
  extraCaPem?: string
  tls: Map<string, HostTls>
  insecureHosts: Set<string>
  /** Attempts per request (1 = no retry). */
  attempts: number
  retryBaseMs: number
}

export interface SendInit {
  method?: 'GET' | 'HEAD' | 'POST'
  headers?: Record<string, string>
  body?: string
  /** Sent to the first origin only; dropped when a redirect leaves it. */
  authorization?: string
}

const MAX_REDIRECTS = 10
// A stalled server fails (and is retried) after a minute rather than undici's five.
const TIMEOUTS = {keepAliveTimeout: 10_000, headersTimeout: 60_000, bodyTimeout: 60_000}

export class HttpClient {
  private readonly agents = new Map<string, Agent>()

  constructor(readonly options: HttpOptions) {}

  /** Whether TLS verification is off for this host (an --insecure-registry host or insecure_skip_verify). */
  isInsecure(host: string): boolean {
    return this.options.insecureHosts.has(host.toLowerCase()) || this.options.tls.get(host.toLowerCase())?.insecureSkipVerify === true
  }

  private dispatcher(url: URL): Dispatcher | undefined {
    if (url.protocol !== 'https:') return this.plainAgent()
    const host = url.host.toLowerCase()
    const key = `tls:${host}`
    let agent = this.agents.get(key)
    if (!agent) {
      const tls = this.options.tls.get(host)
      const extra = [this.options.extraCaPem, tls?.caPem].filter((x): x is string => Boolean(x))
      agent = new Agent({
        connect: {
          ...(extra.length > 0 ? {ca: [...rootCertificates, ...extra]} : {}),
          ...(tls?.certPem ? {cert: tls.certPem} : {}),
          ...(tls?.keyPem ? {key: tls.keyPem} : {}),
          rejectUnauthorized: !this.isInsecure(host),
          timeout: 15_000,
        },
        ...TIMEOUTS,
      })
      this.agents.set(key, agent)
    }
    return agent
  }

  private plainAgent(): Agent {
    let agent = this.agents.get('plain')
    if (!agent) {
      agent = new Agent({connect: {timeout: 15_000}, ...TIMEOUTS})
      this.agents.set('plain', agent)
    }
    return agent
  }

  /** One request with redirects followed by hand (no retry). Network failures become RegistryError. */
  async send(url: URL, init: SendInit = {}): Promise<Response> {
    const seen = new Set<string>()
    let current = url
    let authorization = init.authorization
    for (let hop = 0; ; hop++) {
      // identity: blobs and manifests are hashed as sent; a proxy's gzip would be undone by fetch and break digests.
      const headers: Record<string, string> = {'accept-encoding': 'identity', ...init.headers, 'user-agent': 'airpack'}
      if (authorization) headers.authorization = authorization
      let res: Response
      try {
        res = await fetch(current, {
          method: init.method ?? 'GET',
          headers,
          body: init.body,
          redirect: 'manual',
          dispatcher: this.dispatcher(current),
        })
      } catch (error) {
        throw networkFailure(current, error)
      }
      if (res.status < 300 || res.status >= 400 || res.status === 304) return res
      const location = res.headers.get('location')
      await res.body?.cancel().catch(() => {})
      if (!location) throw new RegistryError('protocol', `${current.host} answered ${res.status} without a Location header`, current.host, res.status)
      const next = new URL(location, current)
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
  async sendWithRetry(url: URL, init: SendInit = {}): Promise<Response> {
    return withRetry(this.options, async () => {
      const res = await this.send(url, init)
      if (res.status === 429 || res.status >= 500) {
        const retryAfter = Number.parseInt(res.headers.get('retry-after') ?? '', 10)
        await res.body?.cancel().catch(() => {})
        throw Object.assign(new RegistryError('http', `${url.host} answered ${res.status} ${res.statusText}`.trim(), url.host, res.status), {
          retryAfterMs: Number.isFinite(retryAfter) ? retryAfter * 1000 : undefined,
        })
      }
      return res
    })
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.close().catch(() => {})))
    this.agents.clear()
  }
}

export function networkFailure(url: URL, error: unknown): RegistryError {
  if (error instanceof RegistryError) return error
  if (isTlsError(error)) {
    return new RegistryError('tls', `TLS to ${url.host} failed: ${describeError(error)}`, url.host, undefined, {cause: error})
  }
  const code = errorCode(error)
  // A server that wants a client certificate and gets none just drops the connection after the handshake.
  const mtlsHint =
    url.protocol === 'https:' && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')
      ? ' (if it requires a client certificate, set cert_file and key_file under configs in --registries)'
      : ''
  return new RegistryError('unreachable', `cannot reach ${url.host}: ${describeError(error)}${mtlsHint}`, url.host, undefined, {cause: error})
}

/** Exponential backoff with full jitter: base·2^n·[0.5, 1.5), capped at 10 s; honours Retry-After up to 10 s. */
export function backoffMs(attempt: number, baseMs: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, 10_000)
  return Math.min(baseMs * 2 ** attempt * (0.5 + Math.random()), 10_000)
}

export function isTransient(error: unknown): boolean {
  if (error instanceof RegistryError) return error.transient
  return isNetworkError(error)
}

export async function withRetry<T>(o: {attempts: number; retryBaseMs: number}, fn: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (error) {
      if (attempt + 1 >= o.attempts || !isTransient(error)) throw error
      await new Promise((r) => setTimeout(r, backoffMs(attempt, o.retryBaseMs, (error as {retryAfterMs?: number}).retryAfterMs)))
    }
  }
}
