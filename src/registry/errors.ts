// Low-level registry failures. They carry what went wrong and where (host, never credentials); the resolve layer
// turns them into a ResolveError (exit 4) or IntegrityError (exit 5) that also names the artifact.

export type RegistryFailure =
  | 'not-found'
  | 'unauthorized'
  | 'denied'
  | 'unreachable'
  | 'tls'
  | 'protocol'
  | 'integrity'
  | 'redirect'
  | 'http'
  | 'platform'

export class RegistryError extends Error {
  constructor(
    readonly failure: RegistryFailure,
    message: string,
    readonly host: string,
    readonly status?: number,
    options?: {cause?: unknown},
  ) {
    super(message, options)
    this.name = 'RegistryError'
  }

  /** Worth another attempt at the same endpoint (rate limit, server error, dropped connection). */
  get transient(): boolean {
    return (
      this.failure === 'unreachable' || (this.failure === 'http' && (this.status === 429 || (this.status ?? 0) >= 500))
    )
  }
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
])

/** The innermost `code` of an error chain (fetch wraps socket errors as `TypeError: fetch failed`). */
export function errorCode(error: unknown): string | undefined {
  let e: unknown = error
  for (let depth = 0; e && depth < 6; depth++) {
    const code = (e as {code?: unknown}).code
    if (typeof code === 'string' && code !== 'ERR_AIRPACK_UNEXPECTED') return code
    e = (e as {cause?: unknown}).cause
  }
  return undefined
}

export function isNetworkError(error: unknown): boolean {
  const code = errorCode(error)
  if (code && NETWORK_CODES.has(code)) return true
  const text = describeError(error)
  return /terminated|other side closed|socket hang up|fetch failed/i.test(text)
}

export function isTlsError(error: unknown): boolean {
  const code = errorCode(error) ?? ''
  return (
    /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_SSL/i.test(code) || /certificate|ssl|tls/i.test(describeError(error))
  )
}

/** A one-line description of an error chain, for messages. */
export function describeError(error: unknown): string {
  const parts: string[] = []
  let e: unknown = error
  for (let depth = 0; e && depth < 6; depth++) {
    const msg = e instanceof Error ? e.message : String(e)
    const code = (e as {code?: unknown}).code
    const item = typeof code === 'string' && !msg.includes(code) ? `${msg} (${code})` : msg
    // A wrapper usually repeats its cause in its own message ("cannot reach h: fetch failed: getaddrinfo …" over
    // "fetch failed" over "getaddrinfo …"): say each cause once.
    const said = parts.join(': ')
    if (!said.includes(msg)) parts.push(item)
    else if (item !== msg && !said.includes(`(${code as string})`) && !said.includes(code as string))
      parts[parts.length - 1] += ` (${code as string})`
    e = (e as {cause?: unknown}).cause
  }
  return parts.join(': ')
}
