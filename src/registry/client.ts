import {createHash} from 'node:crypto'
import {Readable} from 'node:stream'

import type {BlobSource} from '../cache/store.js'
import {UsageError} from '../errors.js'
import type {Logger} from '../util/log.js'
import {silentLogger} from '../util/log.js'
import {basicAuthorization, parseChallenge, pullScope, withAuth, type Authorizer, type Challenge} from './auth.js'
import {CredentialStore, type Credential} from './credentials.js'
import {checkInputFile, readInputText} from '../util/read-input.js'
import {redactUrl} from '../util/redact.js'
import {readRemote} from './bounded-body.js'
import {RegistryError, describeError, errorCode} from './errors.js'
import {discard, HttpClient, retrying, withRetry, type HttpResponse, type RoundTrip, type SendInit} from './http.js'
import {splitUserinfo} from './url-credentials.js'
import {MANIFEST_ACCEPT, MediaType} from '../oci/media-types.js'
import {apiHost} from './reference.js'
import {
  canonicalHost,
  emptyRegistriesConfig,
  loadRegistriesConfig,
  rewriteRepository,
  type RegistriesConfig,
} from './registries-config.js'

// A pull-only OCI distribution client: endpoints (mirrors in order, then the upstream), /v2/ ping with the auth
// challenge it returns, Basic or Bearer (token per scope, cached until it expires), manifests read as the exact
// bytes served and digest-checked, and blobs exposed as a resumable BlobSource for the cache.

export interface RegistryAccessOptions {
  registriesFile?: string
  dockerConfigDir?: string
  credFile?: string
  caCertFile?: string
  insecureRegistries?: string[]
  concurrency?: number
  logger?: Logger
  env?: NodeJS.ProcessEnv
  /** Attempts per request on transient failures (default 4). */
  attempts?: number
  /** Base of the exponential backoff in ms (default 250). */
  retryBaseMs?: number
  /** A connection silent this long mid-request fails and is retried (default 60 s; tests use less). */
  idleTimeoutMs?: number
}

export interface Endpoint {
  /** API base, ending in `/v2` (`https://mirror.local:5000/v2`). */
  base: URL
  /** host[:port] of the endpoint, as recorded in `source`. */
  host: string
  /** Repository path at this endpoint (mirror rewrites applied). */
  repository: string
  mirror: boolean
  /** May fall back to plain HTTP (an --insecure-registry or loopback upstream without an explicit scheme). */
  httpFallback: boolean
}

export interface FetchedManifest {
  bytes: Buffer
  digest: string
  mediaType: string
  size: number
  json: ManifestJson
}

export interface ManifestJson {
  schemaVersion?: number
  mediaType?: string
  manifests?: {
    mediaType: string
    digest: string
    size: number
    platform?: {os: string; architecture: string; variant?: string}
    annotations?: Record<string, string>
  }[]
  config?: {mediaType: string; digest: string; size: number}
  layers?: {mediaType: string; digest: string; size: number; annotations?: Record<string, string>}[]
  artifactType?: string
}

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h)
}

export async function createRegistryClient(o: RegistryAccessOptions = {}): Promise<RegistryClient> {
  const config = o.registriesFile ? await loadRegistriesConfig(o.registriesFile) : emptyRegistriesConfig()
  let extraCaPem: string | undefined
  // Files named by flags are the user's own environment: missing or unreadable is exit 2 now, not a failure later.
  if (o.credFile)
    await checkInputFile(o.credFile, {
      code: 'CRED_FILE_UNREADABLE',
      what: 'the --cred-file',
      hint: "Pass the path of Palette's registry credentials JSON that this user can read.",
    })
  if (o.caCertFile) {
    extraCaPem = await readInputText(o.caCertFile, {
      code: 'CA_CERT_UNREADABLE',
      what: 'the --ca-cert file',
      hint: 'Pass the path of a PEM file with the CA certificate that this user can read.',
    })
    if (!extraCaPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new UsageError('CA_CERT_INVALID', `--ca-cert ${o.caCertFile} holds no PEM certificate`, {
        hint: 'Pass a PEM file with a BEGIN CERTIFICATE block.',
      })
    }
  }
  return new RegistryClient(config, o, extraCaPem)
}

interface PingResult {
  base: URL
  challenge?: Challenge
}

export class RegistryClient {
  /** Public for tests that close the transport themselves. */
  readonly http: HttpClient
  private readonly credentials: CredentialStore
  private readonly logger: Logger
  private readonly insecure: Set<string>
  private readonly pings = new Map<string, Promise<PingResult>>()
  private readonly tokens = new Map<string, Promise<{token: string; expiresAt: number}>>()
  /** Credentials learned from URLs with userinfo (chart repositories), by host, for URLs of the same host. */
  private readonly urlCredentials = new Map<string, Credential>()
  private readonly attempts: number
  private readonly retryBaseMs: number
  /** Every request of this client goes through it: one exchange (redirects followed), retried. */
  private readonly transport: RoundTrip

  constructor(
    private readonly config: RegistriesConfig,
    o: RegistryAccessOptions,
    extraCaPem?: string,
  ) {
    this.insecure = new Set(
      (o.insecureRegistries ?? []).map((h) =>
        h
          .toLowerCase()
          .replace(/^[a-z]+:\/\//, '')
          .replace(/\/.*$/, ''),
      ),
    )
    this.attempts = o.attempts ?? 4
    this.retryBaseMs = o.retryBaseMs ?? 250
    this.http = new HttpClient({
      extraCaPem,
      tls: config.tls,
      insecureHosts: this.insecure,
      attempts: this.attempts,
      retryBaseMs: this.retryBaseMs,
      env: o.env,
      idleTimeoutMs: o.idleTimeoutMs,
    })
    this.transport = withRetry((url, init) => this.http.send(url, init), {
      attempts: this.attempts,
      retryBaseMs: this.retryBaseMs,
    })
    this.credentials = new CredentialStore({
      registries: config,
      credFile: o.credFile,
      dockerConfigDir: o.dockerConfigDir,
      env: o.env,
    })
    this.logger = o.logger ?? silentLogger
  }

  async close(): Promise<void> {
    await this.http.close()
  }

  /** Where to look for `registry/repository`: each mirror endpoint in order (rewrites applied), then upstream. */
  endpoints(registry: string, repository: string): Endpoint[] {
    const key = canonicalHost(registry)
    const mirror = this.config.mirrors.get(key) ?? this.config.mirrors.get('*')
    const out: Endpoint[] = []
    for (const url of mirror?.endpoints ?? []) {
      const base = new URL(url.href)
      const prefix = base.pathname.replace(/\/+$/, '').replace(/\/v2$/, '')
      base.pathname = `${prefix}/v2`
      base.search = ''
      out.push({
        base,
        host: base.host,
        repository: rewriteRepository(repository, mirror!.rewrites),
        mirror: true,
        httpFallback: false,
      })
    }
    const host = apiHost(key)
    if (!out.some((e) => e.host === host && e.repository === repository)) {
      // Like Docker and containerd, a loopback registry may speak plain HTTP without --insecure-registry: HTTPS
      // (verified) is tried first, and plain HTTP only when the server does not speak TLS at all.
      const insecure = this.insecure.has(host) || this.insecure.has(key) || isLoopback(host)
      out.push({base: new URL(`https://${host}/v2`), host, repository, mirror: false, httpFallback: insecure})
    }
    return out
  }

  /** Run `fn` against each endpoint in turn until one succeeds. All failures are reported together; a mirror that
   *  failed is warned about unless `quiet` (per-blob requests: the artifact's resolve already said it). */
  async withEndpoints<T>(
    registry: string,
    repository: string,
    fn: (ep: Endpoint) => Promise<T>,
    o: {quiet?: boolean} = {},
  ): Promise<{value: T; endpoint: Endpoint}> {
    const failures: {ep: Endpoint; error: unknown}[] = []
    const endpoints = this.endpoints(registry, repository)
    for (const ep of endpoints) {
      try {
        const value = await fn(ep)
        if (!o.quiet)
          for (const f of failures)
            this.logger.warn(`mirror ${f.ep.host} failed, used ${ep.host}: ${describeError(f.error)}`)
        return {value, endpoint: ep}
      } catch (error) {
        failures.push({ep, error})
      }
    }
    if (failures.length === 1) throw failures[0].error
    const integrity = failures.find((f) => f.error instanceof RegistryError && f.error.failure === 'integrity')
    const last = failures.at(-1)!.error
    const kind = integrity ? 'integrity' : last instanceof RegistryError ? last.failure : 'unreachable'
    throw new RegistryError(
      kind,
      failures.map((f) => `${f.ep.mirror ? 'mirror' : 'upstream'} ${f.ep.host}: ${describeError(f.error)}`).join('; '),
      failures.at(-1)!.ep.host,
    )
  }

  /** GET /v2/ once per endpoint: picks http or https and learns the auth challenge. */
  private ping(ep: Endpoint): Promise<PingResult> {
    const key = ep.base.href
    let p = this.pings.get(key)
    if (!p) {
      // A failed ping stays cached for the run (it was already retried): a dead mirror costs its retries once,
      // not once per artifact.
      p = this.doPing(ep)
      this.pings.set(key, p)
    }
    return p
  }

  private async doPing(ep: Endpoint): Promise<PingResult> {
    const attempt = async (base: URL, retry: boolean): Promise<PingResult> => {
      const url = new URL(`${base.pathname}/`, base)
      const res = retry ? await this.transport(url) : await this.http.send(url)
      await discard(res)
      if (res.status === 401) return {base, challenge: parseChallenge(res.headers.get('www-authenticate'))}
      return {base}
    }
    if (!ep.httpFallback) return attempt(ep.base, true)
    try {
      return await attempt(ep.base, false)
    } catch (error) {
      const code = errorCode(error) ?? ''
      const certProblem = /CERT|VERIFY|SELF_SIGNED|ALTNAME/.test(code) && !this.http.isInsecure(ep.host)
      if (certProblem) throw error
      // A proxy that wants other credentials would refuse plain HTTP just the same; say that, not what follows.
      if (error instanceof RegistryError && error.status === 407) throw error
      const plain = new URL(ep.base.href)
      plain.protocol = 'http:'
      try {
        return await attempt(plain, true)
      } catch (plainError) {
        // Neither worked: the HTTPS failure says more (a TLS server that dropped us) than plain HTTP's.
        throw code === 'ECONNREFUSED' ? plainError : error
      }
    }
  }

  /** Where the endpoint's API answered (https, or plain http after the fallback an insecure registry allows). */
  async apiBase(ep: Endpoint): Promise<URL> {
    return new URL((await this.ping(ep)).base.href)
  }

  private async credentialFor(host: string, kind: 'image' | 'helm'): Promise<Credential | undefined> {
    return this.credentials.forHost(host, kind)
  }

  private async authorization(
    ep: Endpoint,
    challenge: Challenge | undefined,
    scope: string,
    kind: 'image' | 'helm',
  ): Promise<string | undefined> {
    if (!challenge) return undefined
    const cred = await this.credentialFor(ep.host, kind)
    if (challenge.scheme === 'basic') {
      if (cred?.username === undefined) return undefined
      return basicAuthorization(cred.username, cred.password ?? '')
    }
    const token = await this.token(ep, challenge, scope, cred)
    return `Bearer ${token}`
  }

  private async token(
    ep: Endpoint,
    challenge: Extract<Challenge, {scheme: 'bearer'}>,
    scope: string,
    cred: Credential | undefined,
  ): Promise<string> {
    const key = `${challenge.realm}\0${challenge.service ?? ''}\0${scope}\0${ep.host}`
    const cached = this.tokens.get(key)
    if (cached) {
      const t = await cached.catch(() => undefined)
      if (t && t.expiresAt > Date.now() + 5000) return t.token
    }
    const p = this.fetchToken(ep, challenge, scope, cred)
    this.tokens.set(key, p)
    p.catch(() => this.tokens.delete(key))
    return (await p).token
  }

  private async fetchToken(
    ep: Endpoint,
    challenge: Extract<Challenge, {scheme: 'bearer'}>,
    scope: string,
    cred: Credential | undefined,
  ): Promise<{token: string; expiresAt: number}> {
    let realm: URL
    try {
      realm = new URL(challenge.realm)
    } catch {
      throw new RegistryError('protocol', `${ep.host} names a token realm that is not a URL`, ep.host)
    }
    // The request and the reading of its body are one attempt: a token response cut mid-body is retried too.
    const {res, text} = await this.retry(async () => {
      const res = await this.requestToken(realm, challenge, scope, cred)
      const what = `the answer of the token service ${realm.host}`
      return {res, text: (await readRemote(res.body, 'tokenResponse', what, ep.host)).toString('utf8')}
    })
    return tokenOf(res.status, text, {realm, host: ep.host, cred})
  }

  /** The token request: OAuth2 refresh-token grant (Docker `identitytoken`) POSTed to the realm, else a GET with
   *  Basic credentials when there are any. */
  private requestToken(
    realm: URL,
    challenge: Extract<Challenge, {scheme: 'bearer'}>,
    scope: string,
    cred: Credential | undefined,
  ): Promise<HttpResponse> {
    if (cred?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: cred.identityToken,
        client_id: 'airpack',
        scope,
      })
      if (challenge.service) form.set('service', challenge.service)
      return this.transport(realm, {
        method: 'POST',
        body: form.toString(),
        headers: {'content-type': 'application/x-www-form-urlencoded'},
      })
    }
    const url = new URL(realm.href)
    if (challenge.service) url.searchParams.set('service', challenge.service)
    // Several scopes (push to one repository, mount from another) are several scope parameters.
    for (const s of scope.split(' ')) url.searchParams.append('scope', s)
    const authorization =
      cred?.username !== undefined ? basicAuthorization(cred.username, cred.password ?? '') : undefined
    return this.transport(url, {authorization})
  }

  /**
   * An authenticated request to `<base>/<repo>/<path>`: ping first, then the retried transport authorised for the
   * repository's pull scope or `scope` (withAuth answers a 401 once from the fresh challenge); a 403 is a denial.
   */
  async request(
    ep: Endpoint,
    path: string,
    init: SendInit & {kind?: 'image' | 'helm'; scope?: string} = {},
  ): Promise<HttpResponse> {
    const ping = await this.ping(ep)
    return this.requestUrl(ep, new URL(`${ping.base.pathname}/${ep.repository}/${path}`, ping.base), init)
  }

  /** `request` to a URL the registry gave (an upload's Location), authorised the same way. */
  async requestUrl(
    ep: Endpoint,
    url: URL,
    init: SendInit & {kind?: 'image' | 'helm'; scope?: string} = {},
  ): Promise<HttpResponse> {
    const kind = init.kind ?? 'image'
    const ping = await this.ping(ep)
    // Pull unless the caller asks for more (push, and pull from the repository a blob is mounted from).
    const scope = init.scope ?? pullScope(ep.repository)
    // A stream body can be sent once: no retry and no second round after a 401 (the caller retries it whole).
    const once = init.body instanceof Readable
    const rt: RoundTrip = once ? (u, i) => this.http.send(u, i) : this.transport
    const res = await withAuth(rt, this.authorizer(ep, ping.challenge, {scope, kind, renew: !once}))(url, init)
    if (res.status === 403) {
      await discard(res)
      throw new RegistryError('denied', `${ep.host} denied access to ${ep.repository} (403)`, ep.host, 403)
    }
    return res
  }

  /** How requests to one endpoint's repository are authorised: from the ping's challenge, then a fresh one. */
  private authorizer(
    ep: Endpoint,
    pinged: Challenge | undefined,
    o: {scope: string; kind: 'image' | 'helm'; renew: boolean},
  ): Authorizer {
    const {scope, kind} = o
    let challenge = pinged
    return {
      authorization: () => this.authorization(ep, challenge, scope, kind),
      renew: async (headers, previous) => {
        const fresh = parseChallenge(headers.get('www-authenticate'))
        // Anonymous was refused, or the registry wants another scheme here: one more try with that.
        if (!o.renew || !fresh || (previous && fresh.scheme === challenge?.scheme)) return undefined
        challenge = fresh
        return this.authorization(ep, challenge, scope, kind)
      },
      refused: async () => {
        const cred = await this.credentialFor(ep.host, kind)
        return new RegistryError(
          'unauthorized',
          cred
            ? `${ep.host} rejected the credentials (from ${cred.origin}) for ${ep.repository}`
            : `${ep.host} requires authentication for ${ep.repository} and no credentials were found for it`,
          ep.host,
          401,
        )
      },
    }
  }

  /** GET a manifest by tag or digest; the bytes are exactly those served, and verified against every digest known. */
  async getManifest(ep: Endpoint, reference: string, kind: 'image' | 'helm' = 'image'): Promise<FetchedManifest> {
    // The request and the reading of its body are one attempt: a manifest cut mid-body is fetched again.
    return this.retry(() => this.getManifestOnce(ep, reference, kind))
  }

  private async getManifestOnce(ep: Endpoint, reference: string, kind: 'image' | 'helm'): Promise<FetchedManifest> {
    const res = await this.request(ep, `manifests/${reference}`, {headers: {accept: MANIFEST_ACCEPT}, kind})
    const where = `${ep.host}/${ep.repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`
    const contentType = await checkManifestAnswer(res, where, reference, ep.host)
    const bytes = await readRemote(res.body, 'manifest', `the manifest of ${where}`, ep.host)
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex')
    const served = res.headers.get('docker-content-digest')
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryError(
        'integrity',
        `${where}: the manifest bytes hash to ${digest}, not the digest asked for`,
        ep.host,
      )
    }
    if (served && served.startsWith('sha256:') && served !== digest) {
      throw new RegistryError(
        'integrity',
        `${where}: the manifest bytes hash to ${digest}, but the registry says ${served}`,
        ep.host,
      )
    }
    const {json, mediaType} = parseManifest(bytes, contentType, where, ep.host)
    return {bytes, digest, mediaType, size: bytes.length, json}
  }

  /** The digest a tag points at now (HEAD; GET when the registry sends no Docker-Content-Digest). */
  async headManifest(ep: Endpoint, reference: string, kind: 'image' | 'helm' = 'image'): Promise<string> {
    const res = await this.request(ep, `manifests/${reference}`, {
      method: 'HEAD',
      headers: {accept: MANIFEST_ACCEPT},
      kind,
    })
    await discard(res)
    const digest = res.headers.get('docker-content-digest')
    if (res.status === 200 && digest && /^sha256:[a-f0-9]{64}$/.test(digest)) return digest
    if (res.status === 404)
      throw new RegistryError('not-found', `${ep.host}/${ep.repository}:${reference} not found`, ep.host, 404)
    return (await this.getManifest(ep, reference, kind)).digest
  }

  /** A resumable source of one blob's bytes, for BlobStore.ingest. */
  blobSource(ep: Endpoint, digest: string, kind: 'image' | 'helm' = 'image'): BlobSource {
    return async (offset: number) => {
      const res = await this.request(ep, `blobs/${digest}`, {
        headers: offset > 0 ? {range: `bytes=${offset}-`} : {},
        kind,
      })
      return bodyFrom(res, offset, `${ep.host}/${ep.repository}@${digest}`, ep.host)
    }
  }

  /** A plain URL (classic Helm repository, chart archive): Basic credentials for its host when configured. */
  async getUrl(
    withUserinfo: URL,
    o: {range?: number; kind?: 'image' | 'helm'; compressed?: boolean} = {},
  ): Promise<HttpResponse> {
    const {url, credential: inUrl} = splitUserinfo(withUserinfo)
    if (inUrl) this.urlCredentials.set(url.host, inUrl)
    const cred = inUrl ?? this.urlCredentials.get(url.host) ?? (await this.credentialFor(url.host, o.kind ?? 'helm'))
    const authorization =
      cred?.username !== undefined ? basicAuthorization(cred.username, cred.password ?? '') : undefined
    const headers: Record<string, string> = {}
    if (o.range) headers.range = `bytes=${o.range}-`
    // A Helm index is text that is only parsed, never hashed: let it travel compressed.
    if (o.compressed) headers['accept-encoding'] = 'gzip, br'
    const res = await this.transport(url, {authorization, headers})
    if (res.status === 401 || res.status === 403) {
      await discard(res)
      throw new RegistryError(
        'unauthorized',
        cred
          ? `${url.host} rejected the credentials (from ${cred.origin})`
          : `${url.host} requires authentication and no credentials were found for it`,
        url.host,
        res.status,
      )
    }
    return res
  }

  /** A resumable BlobSource over a plain URL. */
  urlSource(url: URL): BlobSource {
    return async (offset: number) => {
      const res = await this.getUrl(url, {range: offset})
      return bodyFrom(res, offset, redactUrl(url.href), url.host)
    }
  }

  /** Retry wrapper with this client's policy (used around whole blob downloads). */
  /** `fn` under this client's retry policy; `retryable` widens or narrows which failures are retried. */
  retry<T>(fn: (attempt: number) => Promise<T>, retryable?: (error: unknown) => boolean): Promise<T> {
    return retrying({attempts: this.attempts, retryBaseMs: this.retryBaseMs, retryable}, fn)
  }
}

/** A manifest answer's status and content type checked before its body is read; returns the content type. */
async function checkManifestAnswer(res: HttpResponse, where: string, reference: string, host: string): Promise<string> {
  if (res.status === 404) {
    await discard(res)
    throw new RegistryError(
      'not-found',
      `${where} not found (no such ${reference.startsWith('sha256:') ? 'digest' : 'tag'} or repository)`,
      host,
      404,
    )
  }
  if (res.status !== 200) {
    await discard(res)
    throw new RegistryError('http', `${where}: the registry answered ${res.status}`, host, res.status)
  }
  const contentType = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase()
  if (contentType === 'text/html') {
    await discard(res)
    throw new RegistryError(
      'protocol',
      `${host} answered an HTML page instead of the manifest of ${where}; is it a registry (or a login portal)?`,
      host,
    )
  }
  return contentType
}

/** A manifest's JSON and media type: an image index or manifest, never schema 1. */
function parseManifest(
  bytes: Buffer,
  contentType: string,
  where: string,
  host: string,
): {json: ManifestJson; mediaType: string} {
  let json: ManifestJson
  try {
    json = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new RegistryError(
      'protocol',
      `${where}: the registry answered ${contentType || 'a body'} that is not a JSON manifest`,
      host,
    )
  }
  if (json === null || typeof json !== 'object')
    throw new RegistryError('protocol', `${where}: the manifest is not a JSON object`, host)
  if (json.schemaVersion === 1 || contentType.startsWith(MediaType.dockerSchema1)) {
    throw new RegistryError(
      'protocol',
      `${where} is a Docker schema 1 manifest, which airpack does not support; re-push the image with a current client`,
      host,
    )
  }
  const mediaType = json.mediaType ?? (contentType || (json.manifests ? MediaType.ociIndex : MediaType.ociManifest))
  if (!json.manifests && !json.config)
    throw new RegistryError('protocol', `${where}: the document is neither an image index nor an image manifest`, host)
  return {json, mediaType}
}

/** The token in a token service's answer, and until when to use it (60 s when it does not say). */
function tokenOf(
  status: number,
  text: string,
  o: {realm: URL; host: string; cred: Credential | undefined},
): {token: string; expiresAt: number} {
  const {realm, host, cred} = o
  if (status === 401 || status === 403) {
    throw new RegistryError(
      'unauthorized',
      cred
        ? `the token service ${realm.host} rejected the credentials for ${host} (from ${cred.origin})`
        : `the token service ${realm.host} refused anonymous access to ${host}; no credentials found for it`,
      host,
      status,
    )
  }
  if (status !== 200)
    throw new RegistryError('protocol', `the token service ${realm.host} answered ${status}`, host, status)
  let body: {token?: string; access_token?: string; expires_in?: number}
  try {
    body = JSON.parse(text)
  } catch {
    throw new RegistryError('protocol', `the token service ${realm.host} did not answer JSON`, host)
  }
  const token = body.token ?? body.access_token
  if (!token) throw new RegistryError('protocol', `the token service ${realm.host} answered without a token`, host)
  const lifetime = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60
  return {token, expiresAt: Date.now() + lifetime * 1000}
}

function bodyFrom(res: HttpResponse, offset: number, what: string, host: string): {body: Readable; start: number} {
  if (res.status === 404) {
    void discard(res)
    throw new RegistryError('not-found', `${what} not found`, host, 404)
  }
  if (res.status !== 200 && res.status !== 206) {
    void discard(res)
    throw new RegistryError('http', `${what}: the server answered ${res.status}`, host, res.status)
  }
  const contentType = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase()
  if (contentType === 'text/html') {
    void discard(res)
    throw new RegistryError('protocol', `${host} answered an HTML page instead of ${what}`, host)
  }
  let start = 0
  if (res.status === 206 && (res.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity') {
    // A range of an encoded representation cannot be appended to the stored bytes.
    void discard(res)
    throw new RegistryError(
      'protocol',
      `${what}: ${host} (or a proxy) compressed a partial response; cannot resume from it`,
      host,
    )
  }
  if (res.status === 206) {
    const range = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')
    start = range ? Number(range[1]) : offset
  }
  return {body: res.body, start}
}
