import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import {pipeline} from 'node:stream/promises'

import type {BundleStore} from '../bundle/store.js'
import {isAirpackError} from '../errors.js'
import type {Descriptor} from '../oci/descriptor.js'
import {isGraphType, MediaType} from '../oci/media-types.js'
import {referrersOf} from '../supply/referrers.js'
import {isDigest} from '../util/digest.js'
import type {Logger} from '../util/log.js'
import type {BundleRepositories, Repository} from './repositories.js'

// The read-only OCI distribution API (distribution-spec "pull" and "content discovery") over a bundle store:
// `/v2/`, manifests and blobs by tag or digest (GET, HEAD, blob Range), tags/list, _catalog and the referrers of a
// digest (the supply-chain artefacts carried, PRODUCT.md §13; cosign's `.sig` tags are ordinary tags). Manifests
// are served with the media type and exact bytes stored (a sparse index byte for byte), each read whole and
// verified before a byte is sent; blobs stream straight from the seekable file with backpressure, verified as they
// go (a blob whose bytes turn out wrong ends its connection before the last byte, so no client keeps it). Anything
// that would write answers 405.

export interface ServerOptions {
  host: string
  port: number
  tls?: {cert: string | Buffer; key: string | Buffer}
  logger: Logger
}

export interface ServeStats {
  requests: number
  /** Body bytes sent. */
  bytes: number
}

export interface RunningServer {
  /** `http://127.0.0.1:5000` (the bound port, also when 0 was asked for). */
  url: string
  stats: ServeStats
  /** Stops accepting, lets transfers in progress finish for up to `graceMs`, then ends them. */
  close(graceMs?: number): Promise<void>
}

type ErrorCode = 'NAME_UNKNOWN' | 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN' | 'UNSUPPORTED' | 'DIGEST_INVALID' | 'NOT_FOUND'

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly detail?: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** `bytes=START-END`, `bytes=START-`, `bytes=-SUFFIX` (one range), as [start, end) of `size` bytes. */
export function parseRange(header: string, size: number): {start: number; end: number} | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!m || (m[1] === '' && m[2] === '')) return undefined
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0) return 'unsatisfiable'
    return {start: Math.max(0, size - suffix), end: size}
  }
  const start = Number(m[1])
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  if (start >= size || last < start) return 'unsatisfiable'
  return {start, end: last + 1}
}

export class DistributionApi {
  readonly stats: ServeStats = {requests: 0, bytes: 0}

  constructor(
    private readonly store: BundleStore,
    private readonly repositories: BundleRepositories,
    private readonly logger: Logger,
  ) {}

  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.stats.requests++
    res.setHeader('docker-distribution-api-version', 'registry/2.0')
    this.route(req, res).catch((error: unknown) => this.fail(req, res, error))
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const pathname = new URL(req.url ?? '/', 'http://serve').pathname
    if (method !== 'GET' && method !== 'HEAD')
      throw new ApiError(405, 'UNSUPPORTED', 'this registry serves a bundle and is read-only', undefined, {
        allow: 'GET, HEAD',
      })
    if (pathname === '/v2/' || pathname === '/v2') return this.json(req, res, 200, {})
    if (pathname === '/v2/_catalog') return this.json(req, res, 200, {repositories: this.repositories.names()})
    const tags = /^\/v2\/(.+)\/tags\/list$/.exec(pathname)
    if (tags) {
      const repo = this.repository(tags[1])
      return this.json(req, res, 200, {name: repo.name, tags: [...repo.tags.keys()].sort()})
    }
    const referrers = /^\/v2\/(.+)\/referrers\/([^/]+)$/.exec(pathname)
    if (referrers) return this.referrers(req, res, this.repository(referrers[1]), decodeURIComponent(referrers[2]))
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(pathname)
    if (!m) throw new ApiError(404, 'NOT_FOUND', `no such endpoint: ${pathname}`)
    const repo = this.repository(m[1])
    const reference = decodeURIComponent(m[3])
    if (m[2] === 'manifests') return this.manifest(req, res, repo, reference)
    return this.blob(req, res, repo, reference)
  }

  private repository(encoded: string): Repository {
    const name = decodeURIComponent(encoded)
    const repo = this.repositories.get(name)
    if (!repo)
      throw new ApiError(404, 'NAME_UNKNOWN', 'repository name not known to registry', {
        name,
        hint: 'repositories are named HOST/PATH of the original reference',
      })
    return repo
  }

  private async manifest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    repo: Repository,
    reference: string,
  ): Promise<void> {
    const d = isDigest(reference) ? repo.content.get(reference) : repo.tags.get(reference)
    if (!d || !isGraphType(d.mediaType) || !(await this.store.exists(d)))
      throw new ApiError(404, 'MANIFEST_UNKNOWN', 'manifest unknown', {
        name: repo.name,
        reference,
        ...(d && isDigest(reference) ? {why: 'the bundle does not carry it (another platform of a sparse index)'} : {}),
      })
    const bytes = await this.store.fetchBytes(d)
    res.writeHead(200, {
      'content-type': d.mediaType,
      'content-length': String(bytes.length),
      'docker-content-digest': d.digest,
      etag: `"${d.digest}"`,
    })
    this.stats.bytes += req.method === 'HEAD' ? 0 : bytes.length
    res.end(req.method === 'HEAD' ? undefined : bytes)
  }

  /** The OCI referrers API: the carried referrers of a subject (cosign 3 signatures, SBOMs), as an image index. */
  private referrers(req: http.IncomingMessage, res: http.ServerResponse, repo: Repository, digest: string): void {
    if (!isDigest(digest)) throw new ApiError(400, 'DIGEST_INVALID', 'invalid digest')
    const artifactType = new URL(req.url ?? '/', 'http://serve').searchParams.get('artifactType') ?? undefined
    const {index, filtered} = referrersOf(this.store.manifest, repo.name, digest, artifactType)
    const bytes = Buffer.from(JSON.stringify(index))
    res.writeHead(200, {
      'content-type': MediaType.ociIndex,
      'content-length': String(bytes.length),
      ...(filtered ? {'oci-filters-applied': 'artifactType'} : {}),
    })
    res.end(req.method === 'HEAD' ? undefined : bytes)
  }

  private async blob(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    repo: Repository,
    digest: string,
  ): Promise<void> {
    if (!isDigest(digest)) throw new ApiError(400, 'DIGEST_INVALID', 'provided digest did not match uploaded content')
    const known = repo.content.get(digest)
    const size = this.store.sizeOf(digest)
    if (!known || size === undefined)
      throw new ApiError(404, 'BLOB_UNKNOWN', 'blob unknown to registry', {name: repo.name, digest})
    const d: Descriptor = {mediaType: known.mediaType, digest, size}
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'docker-content-digest': digest,
      'accept-ranges': 'bytes',
      etag: `"${digest}"`,
    }
    const rangeHeader = req.headers.range
    const range = rangeHeader ? parseRange(rangeHeader, size) : undefined
    if (range === 'unsatisfiable')
      throw new ApiError(
        416,
        'BLOB_UNKNOWN',
        'requested range not satisfiable',
        {digest, size},
        {
          'content-range': `bytes */${size}`,
        },
      )
    if (req.method === 'HEAD') {
      res.writeHead(200, {...headers, 'content-length': String(size)})
      res.end()
      return
    }
    if (range) {
      res.writeHead(206, {
        ...headers,
        'content-length': String(range.end - range.start),
        'content-range': `bytes ${range.start}-${range.end - 1}/${size}`,
      })
      await this.send(res, this.store.fetchRange(d, range.start, range.end))
      return
    }
    res.writeHead(200, {...headers, 'content-length': String(size)})
    await this.send(res, await this.store.fetch(d))
  }

  private async send(res: http.ServerResponse, body: NodeJS.ReadableStream): Promise<void> {
    body.on('data', (chunk: Buffer) => (this.stats.bytes += chunk.length))
    await pipeline(body, res)
  }

  private json(req: http.IncomingMessage, res: http.ServerResponse, status: number, value: unknown): void {
    const bytes = Buffer.from(JSON.stringify(value))
    res.writeHead(status, {'content-type': 'application/json', 'content-length': String(bytes.length)})
    res.end(req.method === 'HEAD' ? undefined : bytes)
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, error: unknown): void {
    if (res.headersSent) {
      // Mid-body (a blob that failed its digest check, or a client that went away): end the connection so the
      // client sees a short body, never a complete wrong one.
      if (!(error as NodeJS.ErrnoException)?.code?.startsWith('ERR_STREAM_PREMATURE_CLOSE'))
        this.logger.warn(`${req.method} ${req.url}: ${(error as Error).message}`)
      res.destroy()
      return
    }
    if (error instanceof ApiError) {
      const body = JSON.stringify({errors: [{code: error.code, message: error.message, detail: error.detail ?? {}}]})
      res.writeHead(error.status, {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        ...error.headers,
      })
      res.end(req.method === 'HEAD' ? undefined : body)
      return
    }
    // A bundle that fails its checks (exit 5 in a command) is the server's problem, not the client's.
    this.logger.warn(`${req.method} ${req.url}: ${(error as Error).message}`)
    const code = isAirpackError(error) ? error.code : 'ERR_AIRPACK_UNEXPECTED'
    const body = JSON.stringify({errors: [{code: 'UNKNOWN', message: (error as Error).message, detail: {code}}]})
    res.writeHead(500, {'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body))})
    res.end(req.method === 'HEAD' ? undefined : body)
  }
}

/** Listens on `host:port` (plain HTTP, or HTTPS with `tls`) and answers with `api`. */
export async function listen(api: DistributionApi, options: ServerOptions): Promise<RunningServer> {
  const server = options.tls
    ? https.createServer({cert: options.tls.cert, key: options.tls.key}, api.handle)
    : http.createServer(api.handle)
  // A client that stops reading must not hold a connection forever; large blobs over slow links keep flowing.
  server.keepAliveTimeout = 5000
  server.headersTimeout = 30_000
  server.requestTimeout = 0
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as net.AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${address.port}`,
    stats: api.stats,
    async close(graceMs = 5000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const timer = setTimeout(() => server.closeAllConnections(), graceMs)
      await closed
      clearTimeout(timer)
    },
  }
}
