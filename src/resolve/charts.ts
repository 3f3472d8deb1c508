import {createReadStream} from 'node:fs'
import {pipeline} from 'node:stream/promises'
import {createGunzip} from 'node:zlib'
import {parse as parseYaml} from 'yaml'

import {TarParser} from '../bundle/tar.js'
import {semver} from '../util/semver.js'
import type {BlobStore} from '../cache/store.js'
import {byteCounter, checkDeclaredSize} from '../limits.js'
import type {LockedChart, Served} from '../lock/types.js'
import type {Descriptor} from '../oci/descriptor.js'
import type {RegistryClient} from '../registry/client.js'
import {readRemote} from '../registry/bounded-body.js'
import {RegistryError, describeError} from '../registry/errors.js'
import {discard} from '../registry/http.js'
import {redactUrl} from '../util/redact.js'
import {MediaType} from '../oci/media-types.js'
import {canonicalize} from '../util/canonical-json.js'
import {sha256Digest} from '../util/digest.js'
import type {ChartRequestLike} from './requests.js'

// Helm charts from the three places a profile can name them:
//  - an OCI registry (`oci://host/path` + name + version): the chart manifest as served, tag = version with
//    `+` → `_` (Helm's rule, since `+` is not allowed in a tag);
//  - a classic repository: `<repo>/index.yaml` → the entry's first URL, resolved relative to the index URL,
//    its sha256 checked when the index gives one;
//  - a direct `.tgz` URL.
// For the last two, the bundle still needs an OCI manifest, so one is generated deterministically from the chart
// archive (see chartManifest) and its reference is `<host>/<path>/<name>:<tag>` where host and path come from the
// repository URL (for a `.tgz` URL: its directory), each path component lowercased with characters not allowed
// in an OCI name replaced by `-`.

export type ChartSourceKind = 'oci' | 'classic' | 'tgz'

/** A direct archive URL is named by its path (`….tgz` or `….tar.gz`, a query string or fragment allowed: all nine
 *  trident packs of pack-central name a GitHub release `….tar.gz`); anything else over http(s) is a repository. */
export function chartSourceKind(repository: string): ChartSourceKind {
  if (repository.startsWith('oci://')) return 'oci'
  let path: string
  try {
    path = new URL(repository).pathname
  } catch {
    path = repository.replace(/[?#].*$/, '')
  }
  return /\.(tgz|tar\.gz)$/i.test(path) ? 'tgz' : 'classic'
}

export function chartTag(version: string): string {
  return version.replaceAll('+', '_')
}

function sanitizeComponent(c: string): string {
  const s = c
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '')
  return s || 'charts'
}

/** The OCI name a non-OCI chart gets in the bundle: `<host>/<path>/<name>:<tag>`. */
export function chartReference(repository: string, name: string, version: string): string {
  if (chartSourceKind(repository) === 'oci') {
    return `${repository.slice('oci://'.length).replace(/\/+$/, '')}/${name}:${chartTag(version)}`
  }
  const url = new URL(repository)
  let segments = url.pathname
    .split('/')
    .filter(Boolean)
    .map((c) => {
      try {
        return decodeURIComponent(c)
      } catch {
        return c
      }
    })
  if (chartSourceKind(repository) === 'tgz') segments = segments.slice(0, -1)
  return (
    [url.host.toLowerCase(), ...segments.map(sanitizeComponent), sanitizeComponent(name)].join('/') +
    `:${chartTag(version)}`
  )
}

export interface ChartMetadata {
  apiVersion?: string
  name: string
  version: string
  appVersion?: string
  description?: string
  type?: string
}

/** The generated OCI manifest and Helm config of a chart archive: same archive → same bytes, always. */
export function chartManifest(
  meta: ChartMetadata,
  archive: {digest: string; size: number},
): {config: Buffer; manifest: Buffer} {
  const configDoc: Record<string, unknown> = {
    apiVersion: meta.apiVersion ?? 'v2',
    name: meta.name,
    version: meta.version,
  }
  if (meta.appVersion) configDoc.appVersion = meta.appVersion
  if (meta.description) configDoc.description = meta.description
  if (meta.type) configDoc.type = meta.type
  const config = Buffer.from(JSON.stringify(canonicalize(configDoc)))
  const manifest = Buffer.from(
    JSON.stringify(
      canonicalize({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: {mediaType: MediaType.helmConfig, digest: sha256Digest(config), size: config.length},
        layers: [{mediaType: MediaType.helmChart, digest: archive.digest, size: archive.size}],
        annotations: {'org.opencontainers.image.title': meta.name, 'org.opencontainers.image.version': meta.version},
      }),
    ),
  )
  return {config, manifest}
}

/**
 * Chart.yaml of a chart archive (the `<dir>/Chart.yaml` at depth one), read by streaming the tgz. The whole
 * archive is read within Helm's own budgets (MaxDecompressedFileSize per file, MaxDecompressedChartSize in
 * total): a chart Helm would refuse to load is refused here, at the header of the entry that breaks the budget,
 * and the decompressed bytes are counted as they come out of gunzip.
 */
export async function readChartMetadata(file: string): Promise<ChartMetadata> {
  const text = (await readChartEntries(file, (path) => /^[^/]+\/Chart\.yaml$/.test(path))).values().next().value
  if (text === undefined) throw new Error('the archive has no <chart>/Chart.yaml')
  const doc = parseYaml(text) as Partial<ChartMetadata> | null
  if (!doc?.name || doc.version === undefined) throw new Error('its Chart.yaml has no name or version')
  return {...doc, name: String(doc.name), version: String(doc.version)} as ChartMetadata
}

/** Chart archives (`…/<name>-<version>.tgz`) inside an archive that is not itself a chart, for the error message. */
async function nestedChartArchives(file: string, name: string): Promise<string[]> {
  const found: string[] = []
  const pattern = new RegExp(`(^|/)${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-[^/]*\\.tgz$`)
  await readChartEntries(file, (path) => {
    if (pattern.test(path)) found.push(path)
    return false
  }).catch(() => {})
  return found
}

/** The text of the entries of a chart archive that `want` picks (the first of each path), streaming the tgz under
 *  the chart budgets (each file at most chartFile, the whole decompressed archive at most chartArchive). */
export async function readChartEntries(file: string, want: (path: string) => boolean): Promise<Map<string, string>> {
  const texts = new Map<string, string>()
  const count = byteCounter('chartArchive', 'the decompressed chart archive')
  const parser = new TarParser((entry) => {
    checkDeclaredSize('chartFile', entry.size, `entry ${JSON.stringify(entry.path)}`)
    if (entry.type !== 'file' || texts.has(entry.path) || !want(entry.path)) return undefined
    const chunks: Buffer[] = []
    return {
      data: (c) => chunks.push(Buffer.from(c)),
      end: () => texts.set(entry.path, Buffer.concat(chunks).toString('utf8')),
    }
  })
  // pipeline reports its own AbortError when the last stage throws; the budget's error is the one to tell.
  let stopped: unknown
  await pipeline(createReadStream(file), createGunzip(), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      try {
        count(chunk)
        parser.push(chunk)
      } catch (error) {
        stopped = error
        throw error
      }
    }
  }).catch((error: unknown) => {
    throw stopped ?? error
  })
  return texts
}

interface IndexEntry {
  version: string
  urls?: string[]
  digest?: string
}

/** Parsed index.yaml per repository URL, shared across the charts of one run (indexes can be tens of MB). */
export class ChartIndexCache {
  private readonly indexes = new Map<string, Promise<Record<string, IndexEntry[]>>>()

  constructor(private readonly client: RegistryClient) {}

  get(repository: string): Promise<Record<string, IndexEntry[]>> {
    const key = repository.replace(/\/+$/, '')
    let p = this.indexes.get(key)
    if (!p) {
      p = this.load(key)
      this.indexes.set(key, p)
    }
    return p
  }

  private async load(repository: string): Promise<Record<string, IndexEntry[]>> {
    const url = indexUrl(repository)
    const res = await this.client.getUrl(url, {compressed: true})
    if (res.status === 404) {
      await discard(res)
      throw new RegistryError('not-found', `${url.href} not found: is ${repository} a Helm repository?`, url.host, 404)
    }
    if (res.status !== 200) {
      await discard(res)
      throw new RegistryError('http', `${url.href} answered ${res.status}`, url.host, res.status)
    }
    const contentType = (res.headers.get('content-type') ?? '').toLowerCase()
    const text = (await readRemote(res.body, 'repositoryIndex', redactUrl(url.href), url.host)).toString('utf8')
    if (contentType.startsWith('text/html') || /^\s*<(!doctype|html)/i.test(text)) {
      throw new RegistryError('protocol', `${url.href} is an HTML page, not a Helm repository index`, url.host)
    }
    let doc: {entries?: Record<string, IndexEntry[]>} | null
    try {
      doc = parseYaml(text) as typeof doc
    } catch (error) {
      throw new RegistryError('protocol', `${url.href} is not valid YAML: ${(error as Error).message}`, url.host)
    }
    if (!doc || typeof doc.entries !== 'object' || doc.entries === null) {
      throw new RegistryError('protocol', `${url.href} has no "entries": not a Helm repository index`, url.host)
    }
    return doc.entries
  }
}

/** `<repository>/index.yaml`, appended to the path (a query string, such as a signed token, stays a query string). */
export function indexUrl(repository: string): URL {
  const url = new URL(repository)
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/index.yaml`
  return url
}

/** The index entry for a version: exact match first, then the highest version satisfying a semver range. */
export function pickIndexEntry(entries: IndexEntry[], version: string): IndexEntry | undefined {
  const exact = entries.find((e) => String(e.version) === version || String(e.version) === version.replace(/^v/, ''))
  if (exact) return exact
  if (!semver.validRange(version)) return undefined
  const best = semver.maxSatisfying(
    entries.map((e) => String(e.version)).filter((v) => semver.valid(v)),
    version,
  )
  return best ? entries.find((e) => String(e.version) === best) : undefined
}

export interface ResolveChartContext {
  client: RegistryClient
  store: BlobStore
  indexes: ChartIndexCache
}

export async function resolveChart(req: ChartRequestLike, ctx: ResolveChartContext): Promise<Served<LockedChart>> {
  const kind = chartSourceKind(req.repository)
  if (kind === 'oci') return resolveOciChart(req, ctx)
  const {archiveUrl, expected} =
    kind === 'tgz' ? {archiveUrl: new URL(req.repository), expected: undefined} : await archiveFromIndex(req, ctx)
  const archive = await downloadArchive(archiveUrl, expected, ctx)
  const meta = await archiveMetadata(req, archiveUrl, ctx.store.blobPath(archive.digest), kind === 'tgz')
  const {config, manifest} = chartManifest(meta, archive)
  const configDigest = await ctx.store.putBytes(config)
  const manifestDigest = await ctx.store.putBytes(manifest)
  const manifestDesc: Descriptor = {mediaType: MediaType.ociManifest, digest: manifestDigest, size: manifest.length}
  // The lock, the plan and the report record the URLs masked: a password in them never leaves this process.
  const locked: LockedChart = {
    repository: redactUrl(req.repository),
    name: req.name,
    version: req.version,
    digest: archive.digest,
    size: archive.size,
    manifest: manifestDesc,
    blobs: [
      manifestDesc,
      {mediaType: MediaType.helmConfig, digest: configDigest, size: config.length},
      {mediaType: MediaType.helmChart, digest: archive.digest, size: archive.size},
    ],
    reference: chartReference(req.repository, req.name, meta.version),
    url: redactUrl(archiveUrl.href),
  }
  return {locked, servedBy: archiveUrl.host}
}

/** A classic repository's index entry for the chart: its archive URL and the digest the index gives it. */
async function archiveFromIndex(
  req: ChartRequestLike,
  ctx: ResolveChartContext,
): Promise<{archiveUrl: URL; expected: string | undefined}> {
  let base: URL
  try {
    base = indexUrl(req.repository)
  } catch {
    throw new RegistryError(
      'protocol',
      `chart repository ${JSON.stringify(req.repository)} is not a URL`,
      req.repository,
    )
  }
  const entries = (await ctx.indexes.get(req.repository))[req.name]
  if (!entries || entries.length === 0) {
    throw new RegistryError('not-found', `chart ${req.name} is not in ${base.href}`, base.host, 404)
  }
  const entry = pickIndexEntry(entries, req.version)
  if (!entry) {
    const known = entries
      .map((e) => String(e.version))
      .slice(0, 8)
      .join(', ')
    throw new RegistryError(
      'not-found',
      `chart ${req.name} has no version ${req.version} in ${base.href} (it has ${known}${entries.length > 8 ? ', …' : ''})`,
      base.host,
      404,
    )
  }
  if (!entry.urls?.[0])
    throw new RegistryError('protocol', `${base.href}: ${req.name} ${entry.version} has no urls`, base.host)
  const expected = entry.digest
    ? entry.digest.startsWith('sha256:')
      ? entry.digest
      : `sha256:${entry.digest}`
    : undefined
  return {archiveUrl: new URL(entry.urls[0], base), expected}
}

/** The Chart.yaml of a downloaded archive, checked to be the chart and version asked for. */
async function archiveMetadata(
  req: ChartRequestLike,
  archiveUrl: URL,
  file: string,
  direct: boolean,
): Promise<ChartMetadata> {
  let meta: ChartMetadata
  try {
    meta = await readChartMetadata(file)
  } catch (error) {
    const inner = direct ? await nestedChartArchives(file, req.name) : []
    // A release bundle (the trident packs' trident-installer-X.tar.gz) carries the chart one level down.
    const nested =
      inner.length > 0
        ? `; it is a bundle holding ${inner.slice(0, 3).join(', ')}: name that chart's own Helm repository or archive URL in the pack`
        : ''
    throw new RegistryError(
      'protocol',
      `${archiveUrl.href} is not a Helm chart archive: ${describeError(error)}${nested}`,
      archiveUrl.host,
    )
  }
  if (meta.name !== req.name) {
    throw new RegistryError('protocol', `${archiveUrl.href} holds chart ${meta.name}, not ${req.name}`, archiveUrl.host)
  }
  const versionMatches =
    meta.version === req.version ||
    meta.version === req.version.replace(/^v/, '') ||
    (semver.validRange(req.version) && semver.valid(meta.version) && semver.satisfies(meta.version, req.version))
  if (!versionMatches) {
    throw new RegistryError(
      'protocol',
      `${archiveUrl.href} holds ${meta.name} version ${meta.version}, not ${req.version}`,
      archiveUrl.host,
    )
  }
  return meta
}

async function downloadArchive(
  url: URL,
  expected: string | undefined,
  ctx: ResolveChartContext,
): Promise<{digest: string; size: number}> {
  const result = await ctx.client
    .retry(async () => {
      return ctx.store.ingestUnknown(async () => {
        const res = await ctx.client.getUrl(url)
        if (res.status === 404) {
          await discard(res)
          throw new RegistryError('not-found', `chart archive ${url.href} not found`, url.host, 404)
        }
        if (res.status !== 200) {
          await discard(res)
          throw new RegistryError(
            'http',
            `chart archive ${url.href}: the server answered ${res.status}`,
            url.host,
            res.status,
          )
        }
        if ((res.headers.get('content-type') ?? '').toLowerCase().startsWith('text/html')) {
          await discard(res)
          throw new RegistryError('protocol', `${url.href} answered an HTML page, not a chart archive`, url.host)
        }
        return res.body as unknown as AsyncIterable<Uint8Array>
      }, expected)
    })
    .catch((error) => {
      if ((error as {code?: string}).code === 'ERR_AIRPACK_DIGEST_MISMATCH') {
        throw new RegistryError('integrity', `chart archive ${url.href}: ${(error as Error).message}`, url.host)
      }
      throw error
    })
  return {digest: result.digest, size: result.size}
}

/** Where an OCI chart lives: `oci://host/path` + name → registry `host`, repository `path/name`. */
export function ociChartLocation(ociRepository: string, name: string): {registry: string; repository: string} {
  const path = ociRepository.slice('oci://'.length).replace(/\/+$/, '')
  const slash = path.indexOf('/')
  return {
    registry: slash === -1 ? path : path.slice(0, slash),
    repository: [slash === -1 ? '' : path.slice(slash + 1), name].filter(Boolean).join('/'),
  }
}

/**
 * The registry repositories an `oci://` chart may live at, in the order they are tried. pack-central writes both
 * Helm's repository form (`oci://ghcr.io/xenitab/helm-charts` + `name: spegel`) and the chart's full reference
 * (`oci://ghcr.io/spegel-org/helm-charts/spegel` + `name: spegel`, as `helm install spegel oci://…/spegel` takes it).
 * When the repo already ends in the chart name, the repo as written comes first, then with the name appended (a chart
 * may really live at `…/spegel/spegel`); otherwise the name is appended, as Helm does. The lock records which one
 * served the chart (`ociRepository`).
 */
export function ociChartCandidates(ociRepository: string, name: string): {registry: string; repository: string}[] {
  const appended = ociChartLocation(ociRepository, name)
  const path = ociRepository.slice('oci://'.length).replace(/\/+$/, '')
  const slash = path.indexOf('/')
  if (slash === -1 || path.slice(path.lastIndexOf('/') + 1) !== name) return [appended]
  return [{registry: path.slice(0, slash), repository: path.slice(slash + 1)}, appended]
}

/** Where a locked OCI chart is fetched from: the repository that served it at resolve time. */
export function lockedOciLocation(chart: Pick<LockedChart, 'repository' | 'name' | 'ociRepository'>): {
  registry: string
  repository: string
} {
  const appended = ociChartLocation(chart.repository, chart.name)
  return chart.ociRepository ? {registry: appended.registry, repository: chart.ociRepository} : appended
}

/** Failures after which the next candidate location is worth asking: the repository is not there (registries
 *  that hide private repositories answer 401/403 for one that does not exist). */
function tryNextLocation(error: unknown): boolean {
  return (
    error instanceof RegistryError &&
    (error.failure === 'not-found' || error.failure === 'unauthorized' || error.failure === 'denied')
  )
}

async function resolveOciChart(req: ChartRequestLike, ctx: ResolveChartContext): Promise<Served<LockedChart>> {
  const tag = chartTag(req.version)
  const candidates = ociChartCandidates(req.repository, req.name)
  const misses: string[] = []
  for (const [i, location] of candidates.entries()) {
    try {
      return await resolveOciChartAt(req, location, tag, ctx)
    } catch (error) {
      if (!tryNextLocation(error)) throw error
      misses.push((error as RegistryError).message)
      if (i === candidates.length - 1) {
        if (misses.length === 1) throw error
        const last = error as RegistryError
        throw new RegistryError(
          last.failure,
          `${misses.join('; ')} (tried the repo as written, then with the chart name appended)`,
          last.host,
          last.status,
        )
      }
    }
  }
  throw new Error('unreachable: no candidate location')
}

async function resolveOciChartAt(
  req: ChartRequestLike,
  location: {registry: string; repository: string},
  tag: string,
  ctx: ResolveChartContext,
): Promise<Served<LockedChart>> {
  const {registry, repository} = location
  const {value: m, endpoint} = await ctx.client.withEndpoints(registry, repository, (ep) =>
    ctx.client.getManifest(ep, tag, 'helm'),
  )
  const where = `oci://${registry}/${repository}:${tag}`
  if (m.json.config?.mediaType !== MediaType.helmConfig) {
    throw new RegistryError(
      'protocol',
      `${where} is not a Helm chart (config media type ${m.json.config?.mediaType ?? 'none'})`,
      endpoint.host,
    )
  }
  const chart = m.json.layers?.find((l) => l.mediaType === MediaType.helmChart)
  if (!chart) throw new RegistryError('protocol', `${where} has no ${MediaType.helmChart} layer`, endpoint.host)
  await ctx.store.putBytes(m.bytes, m.digest)
  const manifest: Descriptor = {mediaType: m.mediaType, digest: m.digest, size: m.size}
  const blobs: Descriptor[] = [
    manifest,
    {mediaType: m.json.config.mediaType, digest: m.json.config.digest, size: m.json.config.size},
  ]
  for (const l of m.json.layers ?? []) blobs.push({mediaType: l.mediaType, digest: l.digest, size: l.size})
  const locked: LockedChart = {
    repository: req.repository,
    name: req.name,
    version: req.version,
    digest: chart.digest,
    size: chart.size,
    manifest,
    blobs,
    reference: `${registry}/${repository}:${tag}`,
    ociRepository: repository,
  }
  return {locked, servedBy: endpoint.host}
}
