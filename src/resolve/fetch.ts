import {Readable} from 'node:stream'

import {BlobStore, TruncatedBlobError, type BlobSource, type IngestResult} from '../cache/store.js'
import {digestMismatch, IntegrityError, ResolveError} from '../errors.js'
import type {Lock} from '../lock/types.js'
import type {Descriptor} from '../oci/descriptor.js'
import {createRegistryClient, type RegistryAccessOptions, type RegistryClient} from '../registry/client.js'
import {RegistryError, describeError} from '../registry/errors.js'
import {isTransient, backoffMs} from '../registry/http.js'
import {isGraphType} from '../oci/media-types.js'
import {parseReference} from '../registry/reference.js'
import {silentLogger, type Logger} from '../util/log.js'
import {settleAll} from '../util/pool.js'
import {chartManifest, chartSourceKind, lockedOciLocation, readChartMetadata} from './charts.js'
import {initStore} from './store-init.js'

// The fetch step: every blob a lock names is brought into the cache by digest only (tags are never read here, so
// a moved tag cannot change what is fetched). Blobs shared by several artifacts are downloaded once; downloads
// run in parallel up to `concurrency`, retry with backoff on transient failures and truncated bodies, and resume
// from the partial file with a Range request.

export interface FetchReport {
  /** `source`: the endpoints (mirror or upstream hosts) that served this artifact's downloaded bytes, comma
   *  separated; absent when nothing was downloaded for it. */
  artifacts: {kind: string; reference: string; source?: string; bytes: number; downloadedBytes: number; cacheHit: boolean; seconds: number}[]
  downloadedBytes: number
  cachedBytes: number
  seconds: number
}

export type FetchOptions = RegistryAccessOptions

interface Work {
  kind: 'image' | 'chart'
  reference: string
  /** Hosts that served a downloaded blob of this artifact (for the report; never for the lock or the bundle). */
  servedBy: Set<string>
  blobs: Descriptor[]
  /** Downloads one blob (not yet in the cache). */
  fetchBlob: (d: Descriptor) => Promise<IngestResult>
  /** Blobs that are generated, not downloaded (classic chart manifest and config). */
  generated?: Set<string>
  regenerate?: () => Promise<void>
}

/**
 * A fetch in progress. `ready(digest)` settles once that blob is verified and published in the cache (or at once
 * for a digest this fetch does not bring in), and rejects if it could not be fetched: a writer can stream each
 * blob while later ones are still downloading. Blobs are fetched in digest order (the bundle's blob order), the
 * small manifests first since the writer reads index manifests before its first byte.
 */
export interface FetchInProgress {
  ready(digest: string): Promise<void>
  done: Promise<FetchReport>
}

/** Thrown by `ready()` for blobs still pending when the fetch as a whole failed; the fetch's own error explains. */
export class FetchAbandonedError extends Error {
  constructor(digest: string) {
    super(`blob ${digest} was not fetched: the fetch failed`)
    this.name = 'FetchAbandonedError'
  }
}

interface Gate {
  promise: Promise<void>
  resolve: () => void
  reject: (error: unknown) => void
}

function gate(): Gate {
  let resolve!: () => void
  let reject!: (error: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  // A blob nobody waits for may fail: that must not be an unhandled rejection.
  promise.catch(() => {})
  return {promise, resolve, reject}
}

const isManifestDescriptor = (d: Descriptor) => isGraphType(d.mediaType)

export async function fetchLock(lock: Lock, store: BlobStore, o: FetchOptions = {}): Promise<FetchReport> {
  return startFetch(lock, store, o).done
}

export function startFetch(lock: Lock, store: BlobStore, o: FetchOptions = {}): FetchInProgress {
  const gates = new Map<string, Gate>()
  for (const image of Object.values(lock.images)) for (const d of image.blobs) if (!gates.has(d.digest)) gates.set(d.digest, gate())
  for (const chart of Object.values(lock.charts)) for (const d of chart.blobs) if (!gates.has(d.digest)) gates.set(d.digest, gate())
  const done = runFetch(lock, store, o, gates).then(
    (report) => {
      for (const g of gates.values()) g.resolve()
      return report
    },
    (error: unknown) => {
      for (const [digest, g] of gates) g.reject(new FetchAbandonedError(digest))
      throw error
    },
  )
  return {ready: (digest) => gates.get(digest)?.promise ?? Promise.resolve(), done}
}

async function runFetch(lock: Lock, store: BlobStore, o: FetchOptions, gates: Map<string, Gate>): Promise<FetchReport> {
  const logger = o.logger ?? silentLogger
  const started = Date.now()
  await initStore(store)
  const client = await createRegistryClient(o)
  const concurrency = o.concurrency ?? 8
  try {
    const work = workOf(lock, client, store)
    const totalBytes = sumUnique(work.flatMap((w) => w.blobs))
    const progress = new Progress(logger, totalBytes, work)
    // Which artifact downloaded a shared blob: its bytes count for that artifact only.
    const owner = new Map<string, number>()
    const perArtifactSeconds: number[] = []

    // Phase 1: every downloadable blob, deduplicated, bounded. Phase 2 (per artifact): the generated ones.
    const unique = new Map<string, {d: Descriptor; w: Work; index: number}>()
    for (const [index, w] of work.entries()) {
      for (const d of w.blobs) if (!w.generated?.has(d.digest) && !unique.has(d.digest)) unique.set(d.digest, {d, w, index})
    }
    const jobs = [...unique.values()].sort((a, b) => {
      const ma = isManifestDescriptor(a.d)
      const mb = isManifestDescriptor(b.d)
      if (ma !== mb) return ma ? -1 : 1
      return a.d.digest < b.d.digest ? -1 : a.d.digest > b.d.digest ? 1 : 0
    })
    const blobResults = await settleAll(jobs, concurrency, async ({d, w, index}) => {
      try {
        const cached = await store.size(d.digest)
        if (cached !== undefined) {
          progress.add(d.digest, 0, cached)
          gates.get(d.digest)?.resolve()
          return {digest: d.digest, size: cached, hit: true, transferred: 0, resumedFrom: 0} satisfies IngestResult
        }
        owner.set(d.digest, index)
        const t0 = Date.now()
        const r = await w.fetchBlob(d)
        progress.add(d.digest, r.transferred, Math.max(0, r.size - r.transferred))
        perArtifactSeconds[index] = (perArtifactSeconds[index] ?? 0) + (Date.now() - t0) / 1000
        gates.get(d.digest)?.resolve()
        return r
      } catch (error) {
        gates.get(d.digest)?.reject(error)
        throw error
      }
    })
    const byDigest = new Map<string, IngestResult>()
    const failures: string[] = []
    let integrity = false
    for (const [i, r] of blobResults.entries()) {
      const {d, w} = jobs[i]
      if (r.status === 'fulfilled') byDigest.set(d.digest, r.value)
      else {
        if (r.reason instanceof IntegrityError || (r.reason instanceof RegistryError && r.reason.failure === 'integrity')) integrity = true
        failures.push(`${w.reference}: blob ${d.digest} (${d.mediaType}): ${describeError(r.reason)}`)
      }
    }
    // Generated chart manifests need their archive; skip those whose archive failed (already reported).
    const regen = await settleAll(work, concurrency, async (w) => {
      const archive = w.blobs.find((d) => !w.generated?.has(d.digest))
      if (w.regenerate && archive && byDigest.has(archive.digest)) {
        await w.regenerate()
        for (const g of w.generated ?? []) gates.get(g)?.resolve()
      }
    })
    for (const [i, r] of regen.entries()) {
      if (r.status === 'rejected') {
        if (r.reason instanceof IntegrityError) integrity = true
        failures.push(`${work[i].reference}: ${describeError(r.reason)}`)
      }
    }
    progress.done()
    if (failures.length > 0) {
      const message = `${failures.length} blob${failures.length === 1 ? '' : 's'} could not be fetched`
      const details = {problems: failures}
      if (integrity) throw digestMismatch(message, {details, hint: 'Nothing unverified was kept in the cache. Check the registry or mirror, then retry.'})
      throw new ResolveError('FETCH_FAILED', message, {details, hint: 'Check that the registries are reachable and the credentials valid; a retry resumes partial downloads.'})
    }

    const report: FetchReport = {artifacts: [], downloadedBytes: 0, cachedBytes: 0, seconds: 0}
    for (const [index, w] of work.entries()) {
      let bytes = 0
      let downloaded = 0
      for (const d of w.blobs) {
        bytes += d.size
        const r = byDigest.get(d.digest)
        if (r && !r.hit && owner.get(d.digest) === index) downloaded += r.transferred
      }
      report.artifacts.push({
        kind: w.kind,
        reference: w.reference,
        ...(w.servedBy.size > 0 ? {source: [...w.servedBy].sort().join(', ')} : {}),
        bytes,
        downloadedBytes: downloaded,
        cacheHit: downloaded === 0,
        seconds: round3(perArtifactSeconds[index] ?? 0),
      })
    }
    for (const r of byDigest.values()) {
      if (r.hit) report.cachedBytes += r.size
      else {
        report.downloadedBytes += r.transferred
        report.cachedBytes += Math.max(0, r.size - r.transferred)
      }
    }
    report.seconds = round3((Date.now() - started) / 1000)
    return report
  } finally {
    await client.close()
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000
}

function sumUnique(ds: Descriptor[]): number {
  const m = new Map<string, number>()
  for (const d of ds) m.set(d.digest, d.size)
  let t = 0
  for (const s of m.values()) t += s
  return t
}

/** One blob from the endpoints in order (mirrors first, as configured), each with retries and resume. */
async function ingestFromEndpoints(
  client: RegistryClient,
  store: BlobStore,
  registry: string,
  repository: string,
  d: Descriptor,
  kind: 'image' | 'helm',
  served: Set<string>,
): Promise<IngestResult> {
  const endpoints = client.endpoints(registry, repository)
  const errors: string[] = []
  let lastError: unknown
  for (const ep of endpoints) {
    try {
      if (isGraphType(d.mediaType)) {
        // Manifests are served under /manifests/<digest>, not /blobs/ (getManifest checks the digest); going
        // through ingest still gives them the cross-process lock, so two builds fetch each one once.
        const source: BlobSource = async (offset) => {
          const m = await client.getManifest(ep, d.digest, kind)
          return {body: Readable.from([m.bytes.subarray(offset)]), start: offset}
        }
        return await ingestCounted(client, store, d, source, ep.host, served)
      }
      return await ingestCounted(client, store, d, client.blobSource(ep, d.digest, kind), ep.host, served)
    } catch (error) {
      if (error instanceof IntegrityError) throw error
      lastError = error
      errors.push(`${ep.mirror ? 'mirror' : 'upstream'} ${ep.host}: ${describeError(error)}`)
    }
  }
  if (errors.length === 1) throw lastError
  throw new RegistryError(lastError instanceof RegistryError ? lastError.failure : 'unreachable', errors.join('; '), endpoints.at(-1)!.host)
}

/** ingest with retries, reporting as `transferred` every byte received in this run, cut attempts included. */
async function ingestCounted(client: RegistryClient, store: BlobStore, d: Descriptor, source: BlobSource, host: string, served: Set<string>): Promise<IngestResult> {
  let received = 0
  const counting: BlobSource = async (offset) => {
    const {body, start} = await source(offset)
    // The generator below reads the body only when the cache starts consuming it, after a few awaits: an error
    // the response stream emits meanwhile (a cut connection) must not be an unhandled 'error' event. It is not
    // lost: iterating an errored stream throws it (and a short body fails the size check in any case).
    if (body instanceof Readable) body.on('error', () => {})
    async function* count() {
      for await (const chunk of body) {
        received += (chunk as Uint8Array).length
        yield chunk as Uint8Array
      }
    }
    return {body: count(), start}
  }
  const r = await ingestWithRetry(client, () => store.ingest(d.digest, d.size, counting), host)
  if (!r.hit) served.add(host)
  return r.hit ? r : {...r, transferred: received}
}

/** Retries transient failures and truncated bodies; each retry resumes from what the cache's partial file holds. */
async function ingestWithRetry(client: RegistryClient, fn: () => Promise<IngestResult>, host = ''): Promise<IngestResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn()
    } catch (error) {
      const retryable = error instanceof TruncatedBlobError || isTransient(error)
      if (!retryable || attempt + 1 >= client.attempts) {
        if (error instanceof TruncatedBlobError) {
          throw new RegistryError('unreachable', `${error.message}, after ${attempt + 1} attempts${host ? ` from ${host}` : ''}`, host)
        }
        throw error
      }
      await new Promise((r) => setTimeout(r, backoffMs(attempt, client.retryBaseMs)))
    }
  }
}

function workOf(lock: Lock, client: RegistryClient, store: BlobStore): Work[] {
  const work: Work[] = []
  for (const image of Object.values(lock.images)) {
    const ref = parseReference(image.reference)
    const servedBy = new Set<string>()
    work.push({
      kind: 'image',
      reference: image.reference,
      servedBy,
      blobs: image.blobs,
      fetchBlob: (d) => ingestFromEndpoints(client, store, ref.registry, ref.repository, d, 'image', servedBy),
    })
  }
  for (const chart of Object.values(lock.charts)) {
    const kind = chartSourceKind(chart.repository)
    if (kind === 'oci') {
      const {registry, repository} = lockedOciLocation(chart)
      const servedBy = new Set<string>()
      work.push({
        kind: 'chart',
        reference: chart.reference,
        servedBy,
        blobs: chart.blobs,
        fetchBlob: (d) => ingestFromEndpoints(client, store, registry, repository, d, 'helm', servedBy),
      })
      continue
    }
    if (!chart.url) throw new ResolveError('LOCK_INCOMPLETE', `lock entry for chart ${chart.name} ${chart.version} has no archive url`, {hint: 'Regenerate the lock with `airpack profile resolve --lock-file`.'})
    const url = new URL(chart.url)
    const generated = new Set(chart.blobs.filter((b) => b.digest !== chart.digest).map((b) => b.digest))
    const servedBy = new Set<string>()
    const w: Work = {
      kind: 'chart',
      reference: chart.reference,
      servedBy,
      blobs: chart.blobs,
      generated,
      fetchBlob: (d) => ingestCounted(client, store, d, client.urlSource(url), url.host, servedBy),
    }
    w.regenerate = async () => {
      if ((await Promise.all([...generated].map((g) => store.has(g)))).every(Boolean)) return
      const meta = await readChartMetadata(store.blobPath(chart.digest))
      const {config, manifest} = chartManifest(meta, {digest: chart.digest, size: chart.size})
      const want = (mt: string) => chart.blobs.find((b) => b.mediaType === mt)?.digest
      await store.putBytes(config, want('application/vnd.cncf.helm.config.v1+json'))
      await store.putBytes(manifest, chart.manifest.digest)
    }
    work.push(w)
  }
  return work
}

/** Progress on stderr (bytes, rate, artifacts done): a status line rewritten 4 times a second on a terminal, a
 *  plain line every 5 s in logs (CI), and a closing line. */
class Progress {
  private downloaded = 0
  private present = 0
  private artifactsDone = 0
  private readonly started = Date.now()
  private readonly timer: NodeJS.Timeout | undefined
  /** Per artifact, the downloadable blobs not yet in the cache; and which artifacts wait for each digest. */
  private readonly remaining: number[]
  private readonly waiting = new Map<string, number[]>()

  constructor(
    private readonly logger: Logger,
    private readonly total: number,
    private readonly work: Work[],
  ) {
    this.remaining = work.map((w, i) => {
      const digests = new Set(w.blobs.filter((d) => !w.generated?.has(d.digest)).map((d) => d.digest))
      for (const d of digests) this.waiting.set(d, [...(this.waiting.get(d) ?? []), i])
      return digests.size
    })
    if (total > 0 && logger !== silentLogger) {
      this.timer = setInterval(() => this.line(), logger.interactive ? 250 : 5000)
      this.timer.unref()
    }
  }

  add(digest: string, downloaded: number, present: number): void {
    this.downloaded += downloaded
    this.present += present
    for (const i of this.waiting.get(digest) ?? []) if (--this.remaining[i] === 0) this.artifactsDone++
  }

  private line(final = false): void {
    const secs = Math.max((Date.now() - this.started) / 1000, 0.001)
    const rate = this.downloaded / secs
    const text = `fetch${final ? ' done' : ''}: ${this.artifactsDone}/${this.work.length} artifacts, ${mib(this.downloaded + this.present)} of ${mib(this.total)} (${mib(this.downloaded)} downloaded, ${mib(rate)}/s)`
    // A terminal gets one line rewritten in place; logs get a plain line every few seconds.
    if (this.logger.interactive && this.logger.status) {
      this.logger.status(final ? '' : text)
      if (final) this.logger.info(text)
    } else this.logger.info(text)
  }

  done(): void {
    if (this.timer) clearInterval(this.timer)
    if (this.logger !== silentLogger) this.line(true)
  }
}

function mib(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`
}
