import type {BlobStore, IngestResult} from '../cache/store.js'
import {digestMismatch, IntegrityError, ResolveError} from '../errors.js'
import {lockedImageBlobs, type Lock} from '../lock/types.js'
import type {Descriptor} from '../oci/descriptor.js'
import {isGraphType} from '../oci/media-types.js'
import {createRegistryClient, type RegistryAccessOptions} from '../registry/client.js'
import {RegistryError, describeError} from '../registry/errors.js'
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

/** One blob to download, the artifact (index into the work list) that downloads it on behalf of all. */
interface BlobJob {
  d: Descriptor
  w: Work
  index: number
}

/** What the downloads gave, per digest, and how they failed. */
interface CopyOutcome {
  byDigest: Map<string, IngestResult>
  failures: string[]
  integrity: boolean
  /** Which artifact downloaded a shared blob: its bytes count for that artifact only. */
  owner: Map<string, number>
  perArtifactSeconds: number[]
}

const isIntegrityFailure = (e: unknown) =>
  e instanceof IntegrityError || (e instanceof RegistryError && e.failure === 'integrity')

/** Every downloadable blob once, manifests first, then by digest (the bundle's order). */
function blobJobs(work: Work[]): BlobJob[] {
  const unique = new Map<string, BlobJob>()
  for (const [index, w] of work.entries()) {
    for (const d of w.blobs)
      if (!w.generated?.has(d.digest) && !unique.has(d.digest)) unique.set(d.digest, {d, w, index})
  }
  return [...unique.values()].sort((a, b) => {
    const ma = isManifestDescriptor(a.d)
    const mb = isManifestDescriptor(b.d)
    if (ma !== mb) return ma ? -1 : 1
    return a.d.digest < b.d.digest ? -1 : a.d.digest > b.d.digest ? 1 : 0
  })
}

/** Phase 1: the downloads, deduplicated and bounded; each blob's gate opens as soon as it is in the cache. */
async function copyBlobs(
  jobs: BlobJob[],
  store: BlobStore,
  concurrency: number,
  progress: Progress,
  gates: Map<string, Gate>,
): Promise<CopyOutcome> {
  const outcome: CopyOutcome = {
    byDigest: new Map(),
    failures: [],
    integrity: false,
    owner: new Map(),
    perArtifactSeconds: [],
  }
  const results = await settleAll(jobs, concurrency, async ({d, w, index}) => {
    try {
      const cached = await store.size(d.digest)
      if (cached !== undefined) {
        progress.add(d.digest, 0, cached)
        gates.get(d.digest)?.resolve()
        return {digest: d.digest, size: cached, hit: true, transferred: 0, resumedFrom: 0} satisfies IngestResult
      }
      outcome.owner.set(d.digest, index)
      const t0 = Date.now()
      const r = await w.fetchBlob(d)
      progress.add(d.digest, r.transferred, Math.max(0, r.size - r.transferred))
      outcome.perArtifactSeconds[index] = (outcome.perArtifactSeconds[index] ?? 0) + (Date.now() - t0) / 1000
      gates.get(d.digest)?.resolve()
      return r
    } catch (error) {
      gates.get(d.digest)?.reject(error)
      throw error
    }
  })
  for (const [i, r] of results.entries()) {
    const {d, w} = jobs[i]
    if (r.status === 'fulfilled') outcome.byDigest.set(d.digest, r.value)
    else {
      if (isIntegrityFailure(r.reason)) outcome.integrity = true
      outcome.failures.push(`${w.reference}: blob ${d.digest} (${d.mediaType}): ${describeError(r.reason)}`)
    }
  }
  return outcome
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
    const work = workOf(lock, client, store)
    const progress = new Progress(o.logger ?? silentLogger, sumUnique(work.flatMap((w) => w.blobs)), work)
    const outcome = await copyBlobs(blobJobs(work), store, concurrency, progress, gates)
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
