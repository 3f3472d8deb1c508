import {TruncatedBlobError, type BlobStore, type IngestResult} from '../cache/store.js'
import {digestMismatch, IntegrityError, ResolveError} from '../errors.js'
import {lockedImageBlobs, type Lock} from '../lock/types.js'
import {uniqueByDigest, type Descriptor} from '../oci/descriptor.js'
import {isGraphType} from '../oci/media-types.js'
import {createRegistryClient, type RegistryAccessOptions, type RegistryClient} from '../registry/client.js'
import {RegistryError, describeError} from '../registry/errors.js'
import {isTransient} from '../registry/http.js'
import {
  CopyGraphError,
  CopySession,
  copyGraph,
  defaultSuccessors,
  type CopyEvent,
  type CopyOptions,
} from '../store/copy.js'
import {initStore} from '../resolve/store-init.js'
import {silentLogger} from '../util/log.js'
import {settleAll} from '../util/pool.js'
import {Progress} from './progress.js'
import {workOf, type Work} from './work.js'

// The fetch step: every blob a lock names is brought into the cache by digest only (tags are never read here, so
// a moved tag cannot change what is fetched). Blobs shared by several artifacts are downloaded once; downloads
// run in parallel up to `concurrency`, retry with backoff on transient failures and truncated bodies, and resume
// from the partial file with a Range request.

export interface FetchReport {
  /** `source`: the endpoints (mirror or upstream hosts) that served this artifact's downloaded bytes, comma
   *  separated; absent when nothing was downloaded for it. */
  artifacts: {
    kind: string
    reference: string
    source?: string
    bytes: number
    downloadedBytes: number
    cacheHit: boolean
    seconds: number
  }[]
  downloadedBytes: number
  cachedBytes: number
  seconds: number
}

export type FetchOptions = RegistryAccessOptions

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
  for (const image of Object.values(lock.images))
    for (const d of lockedImageBlobs(image)) if (!gates.has(d.digest)) gates.set(d.digest, gate())
  for (const chart of Object.values(lock.charts))
    for (const d of chart.blobs) if (!gates.has(d.digest)) gates.set(d.digest, gate())
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

/** What the copies gave, per digest, and how they failed. */
interface CopyOutcome {
  byDigest: Map<string, IngestResult>
  failures: string[]
  /** Digests already named in `failures`. */
  failed: Set<string>
  integrity: boolean
  /** Which artifact downloaded a shared blob: its bytes count for that artifact only. */
  owner: Map<string, number>
  perArtifactSeconds: number[]
}

/** What a transfer in progress needs from the fetch around it. */
interface CopyContext {
  store: BlobStore
  session: CopySession
  progress: Progress
  gates: Map<string, Gate>
  outcome: CopyOutcome
  /** The endpoint host that answered the latest read of each digest. */
  hosts: Map<string, string>
  /** When each transfer began (an artifact's seconds are those of the transfers it owns). */
  starts: Map<string, number>
  retry: CopyOptions['retry']
}

/** Manifests first (the writer plans from them), then by digest (the bundle's order). */
function fetchOrder(a: Descriptor, b: Descriptor): number {
  const ma = isManifestDescriptor(a)
  const mb = isManifestDescriptor(b)
  if (ma !== mb) return ma ? -1 : 1
  return a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0
}

/** Phase 1: every artifact's graph copied into the cache in one session (each blob once, `concurrency` at a time);
 *  each blob's gate opens as soon as it is in the cache. */
async function copyArtifacts(work: Work[], ctx: CopyContext): Promise<void> {
  const copies = work.flatMap((w, index) => {
    // Only what the lock pins: a sparse index descends into the platforms chosen, and a child is copied under
    // the lock's descriptor of it. Every pinned blob is also a root of its own, so all of them wait in the
    // session's queue from the start, in fetch order, instead of being discovered manifest by manifest.
    const pinned = new Map(w.blobs.map((d) => [d.digest, d]))
    const successors = async (d: Descriptor, bytes: Buffer) =>
      (await defaultSuccessors(d, bytes)).flatMap((c) => pinned.get(c.digest) ?? [])
    const roots = uniqueByDigest([w.root, ...w.blobs.filter((d) => !w.generated?.has(d.digest))])
    const options: CopyOptions = {
      session: ctx.session,
      order: 'parents-first',
      successors,
      retry: ctx.retry,
      onEvent: (e) => recordEvent(ctx, w, index, e),
    }
    return roots.map((root) => copyGraph(w.source, ctx.store, root, options).catch((e: unknown) => failed(ctx, w, e)))
  })
  await Promise.all(copies)
}

/** Progress, gates, report figures and the hosts that served an artifact, from one copy event. */
function recordEvent(ctx: CopyContext, w: Work, index: number, e: CopyEvent): void {
  const d = e.descriptor
  if (e.type === 'started') ctx.starts.set(d.digest, Date.now())
  else if (e.type === 'skipped') {
    ctx.outcome.byDigest.set(d.digest, {digest: d.digest, size: d.size, hit: true, transferred: 0, resumedFrom: 0})
    ctx.progress.add(d.digest, 0, d.size)
    ctx.gates.get(d.digest)?.resolve()
  } else if (e.type === 'copied') {
    const {outcome} = ctx
    outcome.owner.set(d.digest, index)
    outcome.byDigest.set(d.digest, {digest: d.digest, size: d.size, hit: false, transferred: e.bytes, resumedFrom: 0})
    const t0 = ctx.starts.get(d.digest) ?? Date.now()
    outcome.perArtifactSeconds[index] = (outcome.perArtifactSeconds[index] ?? 0) + (Date.now() - t0) / 1000
    const host = ctx.hosts.get(d.digest)
    if (host !== undefined) w.servedBy.add(host)
    ctx.progress.add(d.digest, e.bytes, Math.max(0, d.size - e.bytes))
    ctx.gates.get(d.digest)?.resolve()
  } else if (e.type === 'failed') ctx.gates.get(d.digest)?.reject(e.error)
}

/** A copy's failures, each blob once (under the first artifact that needed it), as the fetch reports them. */
function failed(ctx: CopyContext, w: Work, error: unknown): void {
  const {outcome} = ctx
  if (!(error instanceof CopyGraphError)) {
    outcome.failures.push(`${w.reference}: ${describeError(error)}`)
    return
  }
  for (const f of error.failures) {
    const d = f.descriptor
    if (outcome.failed.has(d.digest)) continue
    outcome.failed.add(d.digest)
    if (f.integrity) outcome.integrity = true
    outcome.failures.push(`${w.reference}: blob ${d.digest} (${d.mediaType}): ${describeError(f.reason)}`)
  }
}

/**
 * Each blob's transfer under the client's retry policy: transient failures and truncated bodies are retried, each
 * retry resuming from what the cache's partial file holds; a body still short after the last attempt names the
 * host that served it.
 */
function retryOf(client: RegistryClient, hosts: Map<string, string>): CopyOptions['retry'] {
  return async (d, transfer) => {
    let attempts = 0
    const retryable = (error: unknown) => error instanceof TruncatedBlobError || isTransient(error)
    try {
      await client.retry((attempt) => {
        attempts = attempt + 1
        return transfer()
      }, retryable)
    } catch (error) {
      if (!(error instanceof TruncatedBlobError)) throw error
      const host = hosts.get(d.digest) ?? ''
      throw new RegistryError(
        'unreachable',
        `${error.message}, after ${attempts} attempts${host ? ` from ${host}` : ''}`,
        host,
      )
    }
  }
}

/** Phase 2: generated chart manifests need their archive; skip those whose archive failed (already reported). */
async function regenerate(
  work: Work[],
  concurrency: number,
  outcome: CopyOutcome,
  gates: Map<string, Gate>,
): Promise<void> {
  const results = await settleAll(work, concurrency, async (w) => {
    const archive = w.blobs.find((d) => !w.generated?.has(d.digest))
    if (w.regenerate && archive && outcome.byDigest.has(archive.digest)) {
      await w.regenerate()
      for (const g of w.generated ?? []) gates.get(g)?.resolve()
    }
  })
  for (const [i, r] of results.entries()) {
    if (r.status === 'rejected') {
      if (r.reason instanceof IntegrityError) outcome.integrity = true
      outcome.failures.push(`${work[i].reference}: ${describeError(r.reason)}`)
    }
  }
}

function throwFailures({failures, integrity}: CopyOutcome): void {
  if (failures.length === 0) return
  const message = `${failures.length} blob${failures.length === 1 ? '' : 's'} could not be fetched`
  const details = {problems: failures}
  if (integrity)
    throw digestMismatch(message, {
      details,
      hint: 'Nothing unverified was kept in the cache. Check the registry or mirror, then retry.',
    })
  throw new ResolveError('FETCH_FAILED', message, {
    details,
    hint: 'Check that the registries are reachable and the credentials valid; a retry resumes partial downloads.',
  })
}

function reportOf(work: Work[], outcome: CopyOutcome, started: number): FetchReport {
  const {byDigest, owner, perArtifactSeconds} = outcome
  const report: FetchReport = {artifacts: [], downloadedBytes: 0, cachedBytes: 0, seconds: 0}
  for (const [index, w] of work.entries()) {
    let bytes = 0
    let downloaded = 0
    for (const d of w.blobs) {
      bytes += d.size
      const r = byDigest.get(d.digest)
      if (r && !r.hit && owner.get(d.digest) === index) downloaded += r.transferred
    }
    const seconds = round3(perArtifactSeconds[index] ?? 0)
    report.artifacts.push({
      kind: w.kind,
      reference: w.reference,
      ...(w.servedBy.size > 0 ? {source: [...w.servedBy].sort().join(', ')} : {}),
      bytes,
      downloadedBytes: downloaded,
      cacheHit: downloaded === 0,
      seconds,
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
}

async function runFetch(lock: Lock, store: BlobStore, o: FetchOptions, gates: Map<string, Gate>): Promise<FetchReport> {
  const started = Date.now()
  await initStore(store)
  const client = await createRegistryClient(o)
  const concurrency = o.concurrency ?? 8
  try {
    const hosts = new Map<string, string>()
    const work = workOf(lock, client, store, (host, d) => hosts.set(d.digest, host))
    const progress = new Progress(o.logger ?? silentLogger, sumUnique(work.flatMap((w) => w.blobs)), work)
    const outcome: CopyOutcome = {
      byDigest: new Map(),
      failures: [],
      failed: new Set(),
      integrity: false,
      owner: new Map(),
      perArtifactSeconds: [],
    }
    const session = new CopySession({concurrency, order: fetchOrder})
    await copyArtifacts(work, {
      store,
      session,
      progress,
      gates,
      outcome,
      hosts,
      starts: new Map(),
      retry: retryOf(client, hosts),
    })
    await regenerate(work, concurrency, outcome, gates)
    progress.done()
    throwFailures(outcome)
    return reportOf(work, outcome, started)
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
