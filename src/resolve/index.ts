import {createHash} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {BlobStore} from '../cache/store.js'
import {digestMismatch, ExitCode, IntegrityError, ResolveError, isAirpackError} from '../errors.js'
import type {Lock, LockedChart, LockedImage} from '../lock/types.js'
import type {Platform} from '../oci/descriptor.js'
import {chartKey, lockedImageBlobs, registryOf} from '../lock/types.js'
import {createRegistryClient, type RegistryAccessOptions, type RegistryClient} from '../registry/client.js'
import {RegistryError} from '../registry/errors.js'
import {discard} from '../registry/http.js'
import {InvalidReferenceError, parseReference} from '../registry/reference.js'
import {settleAll} from '../util/pool.js'
import {
  ChartIndexCache,
  chartSourceKind,
  chartTag,
  indexUrl,
  lockedOciLocation,
  pickIndexEntry,
  resolveChart,
} from './charts.js'
import {resolveImage} from './images.js'
import {parseSupplyChainReference} from '../supply/cosign.js'
import {discoverSupplyChain, resolveListedSupplyChain, sortSupplyChain} from '../supply/discover.js'
import {initStore} from './store-init.js'
import {origin, type ChartRequestLike, type ImageRequestLike} from './requests.js'

export {readLock, writeLock, diffLocks, serializeLock, type LockChange} from '../lock/io.js'
export {fetchLock, type FetchReport, type FetchOptions} from '../fetch/index.js'
export type {RegistryAccessOptions} from '../registry/client.js'
export type {ImageRequestLike, ChartRequestLike} from './requests.js'

export type SupplyChainMode = 'carry' | 'skip'

export interface ResolveOptions extends RegistryAccessOptions {
  platform: Platform
  /** `carry` (default): pin each image's signatures, attestations, SBOMs and referrers too (PRODUCT.md §13). */
  supplyChain?: SupplyChainMode
  /** Receives every manifest read (exact bytes) and generated chart manifests; reports what is already cached. */
  store?: BlobStore
}

export interface PlannedArtifact {
  kind: 'image' | 'chart'
  reference: string
  digest: string
  platformManifest?: string
  /** Bytes of every blob the bundle carries for this artifact. */
  size: number
  /** Of those, bytes already in the cache. */
  cached: number
  source: string
  /** Images: the supply-chain artefacts pinned with it (their bytes count in `size`). */
  supplyChain?: {kind: string; subject: string; digest: string; tag?: string}[]
}

export interface ResolvePlan {
  artifacts: PlannedArtifact[]
  /** After deduplication of blobs shared between artifacts. */
  totalBytes: number
  uniqueBlobs: number
  cachedBytes: number
}

export const DEFAULT_CONCURRENCY = 8

interface Failure {
  what: string
  where: string
  error: unknown
}

function problemLine(f: Failure): string {
  const reason = f.error instanceof Error ? f.error.message : String(f.error)
  return `${f.what}${f.where ? ` [${f.where}]` : ''}: ${reason}`
}

/** One error for every failure: IntegrityError (exit 5) if any is a digest mismatch, else ResolveError (exit 4). */
function failuresError(failures: Failure[], total: number, verb = 'resolved'): Error {
  const integrity = failures.some(
    (f) => (f.error instanceof RegistryError && f.error.failure === 'integrity') || f.error instanceof IntegrityError,
  )
  const problems = failures.map(problemLine)
  const message = `${failures.length} of ${total} artifact${total === 1 ? '' : 's'} could not be ${verb}`
  const artifacts = failures.map((f) => ({
    artifact: f.what,
    ...(f.error instanceof RegistryError ? {registry: f.error.host, failure: f.error.failure} : {}),
  }))
  if (integrity) {
    return digestMismatch(message + ' (content does not match its digest)', {
      hint: 'A registry or mirror served bytes that do not match their digest; nothing unverified was kept. Check the mirror, then retry.',
      details: {problems, artifacts},
    })
  }
  const kinds = new Set(failures.map((f) => (f.error instanceof RegistryError ? f.error.failure : 'other')))
  const hints: string[] = []
  if (kinds.has('unauthorized') || kinds.has('denied'))
    hints.push('log in (docker login) or pass --docker-config / --cred-file / --registries with credentials')
  if (kinds.has('not-found')) hints.push('check the tag or version in the profile and that it was pushed')
  if (kinds.has('platform')) hints.push('pick an image that is published for the target --arch')
  if (kinds.has('unreachable') || kinds.has('tls'))
    hints.push('check the host, --registries mirrors, --ca-cert or --insecure-registry')
  return new ResolveError('UNRESOLVED', message, {
    hint: hints.length > 0 ? hints.join('; ') + '.' : 'Fix the references listed above, then run again.',
    details: {problems, artifacts},
  })
}

async function withClient<T>(o: RegistryAccessOptions, fn: (client: RegistryClient) => Promise<T>): Promise<T> {
  const client = await createRegistryClient(o)
  try {
    return await fn(client)
  } finally {
    await client.close()
  }
}

/**
 * Resolve every request to digests (manifests only, no layers). Stores every manifest read (exact bytes,
 * digest-verified) into `store` when given. Lists all failures at once in one ResolveError (exit 4), or an
 * IntegrityError (exit 5) when any of them is a digest mismatch.
 */
export async function resolveArtifacts(
  req: {images: ImageRequestLike[]; charts: ChartRequestLike[]},
  o: ResolveOptions & {profiles?: Lock['profiles']},
): Promise<{lock: Lock; plan: ResolvePlan}> {
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY
  let tmpStoreDir: string | undefined
  let store = o.store
  if (!store) {
    // Classic charts have to be downloaded to learn their digest and Chart.yaml: use a throwaway store.
    tmpStoreDir = await mkdtemp(path.join(os.tmpdir(), 'airpack-resolve-'))
    store = new BlobStore(tmpStoreDir)
  }
  try {
    await initStore(store)
    return await withClient(o, async (client) => {
      const {jobs, listedSupply} = jobsOf(req)
      const ctx: JobContext = {client, o, store: store!, indexes: new ChartIndexCache(client), images: {}, charts: {}}
      // Which endpoint served each artifact (reference → host): for the plan, never for the lock.
      const servedBy = new Map<string, string>()
      const settled = await settleAll(jobs, concurrency, async (job) => {
        const served = await resolveJob(job, ctx)
        servedBy.set(served.reference, served.servedBy)
      })
      const failures = jobFailures(settled, jobs)
      if (failures.length === 0)
        failures.push(...(await attachListedSupplyChain(client, listedSupply, ctx.images, ctx.store)))
      if (failures.length > 0) throw failuresError(failures, jobs.length + listedSupply.length)
      const lock: Lock = {
        lockVersion: 1,
        platform: o.platform,
        // Sorted keys in memory too, so every consumer iterates artifacts in one order whatever finished first.
        images: sortedRecord(ctx.images),
        charts: sortedRecord(ctx.charts),
        files: {},
        profiles: o.profiles ?? [],
      }
      const plan = await planOf(lock, o.store, servedBy)
      return {lock, plan}
    })
  } finally {
    if (tmpStoreDir) await rm(tmpStoreDir, {recursive: true, force: true})
  }
}

type Job =
  {kind: 'image'; key: string; list: ImageRequestLike[]} | {kind: 'chart'; key: string; list: ChartRequestLike[]}

/** What the jobs of one resolve share: the client, options, store, chart indexes and the lock entries made. */
interface JobContext {
  client: RegistryClient
  o: ResolveOptions
  store: BlobStore
  indexes: ChartIndexCache
  images: Record<string, LockedImage>
  charts: Record<string, LockedChart>
}

/** One job per image and per chart, each with every place it is asked for; cosign tags listed by hand are
 *  artefacts of an image, not images: they are attached to it once it is resolved. */
function jobsOf(req: {images: ImageRequestLike[]; charts: ChartRequestLike[]}): {
  jobs: Job[]
  listedSupply: ImageRequestLike[]
} {
  const listedSupply = req.images.filter((r) => parseSupplyChainReference(r.reference))
  const images = groupBy(
    req.images.filter((r) => !parseSupplyChainReference(r.reference)),
    (r) => r.reference,
  )
  const charts = groupBy(req.charts, (r) => chartKey(r.repository, r.name, r.version))
  const jobs: Job[] = [
    ...[...images].map(([key, list]) => ({kind: 'image' as const, key, list})),
    ...[...charts].map(([key, list]) => ({kind: 'chart' as const, key, list})),
  ]
  return {jobs, listedSupply}
}

/** One job's lock entry (an image with its supply chain unless skipped, or a chart); where it was served from. */
async function resolveJob(job: Job, ctx: JobContext): Promise<{reference: string; servedBy: string}> {
  const {client, o, store} = ctx
  if (job.kind === 'image') {
    const served = await resolveImage(client, job.key, o.platform, store)
    if ((o.supplyChain ?? 'carry') === 'carry') {
      const supplyChain = await discoverSupplyChain(client, served.locked, store)
      if (supplyChain.length > 0) served.locked.supplyChain = supplyChain
    }
    ctx.images[job.key] = served.locked
    return {reference: served.locked.reference, servedBy: served.servedBy}
  }
  const served = await resolveChart(job.list[0], {client, store, indexes: ctx.indexes})
  ctx.charts[job.key] = served.locked
  return {reference: served.locked.reference, servedBy: served.servedBy}
}

/** The failed jobs, each naming its artifact and where it is asked for; bad usage (an unreadable credentials
 *  file, a failing credential helper) is not an artifact problem and is thrown as is. */
function jobFailures(settled: PromiseSettledResult<void>[], jobs: Job[]): Failure[] {
  const failures: Failure[] = []
  const where = (list: {profile?: string; pack?: string; file?: string; line?: number}[]) =>
    origin(list[0]) + (list.length > 1 ? ` and ${list.length - 1} more` : '')
  for (const [i, r] of settled.entries()) {
    if (r.status === 'fulfilled') continue
    const job = jobs[i]
    if (isAirpackError(r.reason) && r.reason.exitCode === ExitCode.usage) throw r.reason
    const what =
      job.kind === 'image' ? job.key : `chart ${job.list[0].name} ${job.list[0].version} from ${job.list[0].repository}`
    const error =
      r.reason instanceof InvalidReferenceError ? new RegistryError('protocol', r.reason.message, '') : r.reason
    failures.push({what, where: where(job.list), error})
  }
  return failures
}

/**
 * Supply-chain references listed by hand in the profiles, each attached to the listed image it names (same
 * repository, its index or platform digest) and marked as listed. One that names no listed image, or that the
 * registry does not have, is a failure naming it.
 */
async function attachListedSupplyChain(
  client: RegistryClient,
  listed: ImageRequestLike[],
  images: Record<string, LockedImage>,
  store: BlobStore,
): Promise<Failure[]> {
  const failures: Failure[] = []
  for (const request of listed) {
    const ref = parseSupplyChainReference(request.reference)!
    const image = Object.values(images).find((i) => {
      const r = parseReference(i.reference)
      const sameRepository = r.registry === ref.registry && r.repository === ref.repository
      return sameRepository && (i.digest === ref.subject || i.platformManifest.digest === ref.subject)
    })
    try {
      if (!image)
        throw new RegistryError(
          'not-found',
          `a ${ref.kind} of ${ref.registry}/${ref.repository}@${ref.subject}, an image the profiles do not list: list that image too (a supply-chain tag is carried with its image, never as an image)`,
          ref.registry,
        )
      const found = await resolveListedSupplyChain(client, image, ref, store)
      image.supplyChain = sortSupplyChain([...(image.supplyChain ?? []), ...found])
    } catch (error) {
      failures.push({what: request.reference, where: origin(request), error})
    }
  }
  return failures
}

/**
 * Sizes of what a bundle of this lock carries, after deduplication, and how much of it is already cached. `source`
 * is the endpoint that served each artifact when `servedBy` knows it, else the registry its reference names.
 */
export async function planOf(
  lock: Lock,
  store?: BlobStore,
  servedBy?: ReadonlyMap<string, string>,
): Promise<ResolvePlan> {
  const cachedCache = new Map<string, boolean>()
  const isCached = async (digest: string) => {
    if (!store) return false
    let v = cachedCache.get(digest)
    if (v === undefined) {
      v = await store.has(digest)
      cachedCache.set(digest, v)
    }
    return v
  }
  const unique = new Map<string, number>()
  const artifacts: PlannedArtifact[] = []
  for (const e of planEntries(lock, servedBy)) {
    let size = 0
    let cached = 0
    for (const b of e.blobs) {
      size += b.size
      if (await isCached(b.digest)) cached += b.size
      unique.set(b.digest, b.size)
    }
    artifacts.push({
      kind: e.kind,
      reference: e.reference,
      digest: e.digest,
      ...(e.platformManifest ? {platformManifest: e.platformManifest} : {}),
      size,
      cached,
      source: e.source,
      ...(e.supplyChain ? {supplyChain: e.supplyChain} : {}),
    })
  }
  let totalBytes = 0
  let cachedBytes = 0
  for (const [digest, size] of unique) {
    totalBytes += size
    if (await isCached(digest)) cachedBytes += size
  }
  return {artifacts, totalBytes, uniqueBlobs: unique.size, cachedBytes}
}

/** Every artifact of the lock as the plan lists it (by reference), with its blobs and the endpoint that served it. */
function planEntries(lock: Lock, servedBy?: ReadonlyMap<string, string>) {
  const entries: {
    kind: 'image' | 'chart'
    reference: string
    digest: string
    platformManifest?: string
    blobs: {digest: string; size: number}[]
    source: string
    supplyChain?: PlannedArtifact['supplyChain']
  }[] = [
    ...Object.values(lock.images).map((i) => ({
      kind: 'image' as const,
      reference: i.reference,
      digest: i.digest,
      platformManifest: i.platformManifest.digest,
      blobs: lockedImageBlobs(i),
      source: servedBy?.get(i.reference) ?? registryOf(i.reference),
      ...(i.supplyChain?.length
        ? {
            supplyChain: i.supplyChain.map((s) => ({
              kind: s.kind,
              subject: s.subject,
              digest: s.manifest.digest,
              ...(s.tag ? {tag: s.tag} : {}),
            })),
          }
        : {}),
    })),
    ...Object.values(lock.charts).map((c) => ({
      kind: 'chart' as const,
      reference: c.reference,
      digest: c.digest,
      blobs: c.blobs,
      source: servedBy?.get(c.reference) ?? registryOf(c.reference),
    })),
  ]
  return entries.sort((a, b) => (a.reference < b.reference ? -1 : a.reference > b.reference ? 1 : 0))
}

/**
 * For `--locked`: re-resolve the lock's tags (HEAD, no downloads) and fail with a ResolveError naming every moved
 * reference (old → new digest). References pinned by digest cannot move and are not asked for.
 */
export async function checkLockCurrent(
  lock: Lock,
  o: RegistryAccessOptions & {supplyChain?: SupplyChainMode},
): Promise<void> {
  await withClient(o, async (client) => {
    const indexes = new ChartIndexCache(client)
    const checks: LockCheck[] = [
      ...Object.values(lock.images).flatMap((image) => imageChecks(image, client, o.supplyChain)),
      ...Object.values(lock.charts).map((chart) => chartCheck(chart, client, indexes)),
    ]
    const settled = await settleAll(checks, o.concurrency ?? DEFAULT_CONCURRENCY, (c) => c.run())
    const moved: string[] = []
    const failures: Failure[] = []
    for (const [i, r] of settled.entries()) {
      const c = checks[i]
      if (r.status === 'rejected') failures.push({what: c.what, where: '', error: r.reason})
      else if (r.value !== undefined && r.value !== c.locked) moved.push(`${c.what}: ${c.locked} → ${r.value}`)
    }
    if (moved.length > 0) {
      throw new ResolveError(
        'LOCK_OUTDATED',
        `${moved.length} reference${moved.length === 1 ? '' : 's'} moved since the lock was written`,
        {
          hint: 'Run without --locked (or `airpack profile resolve --lock-file`) to accept the new digests, or pin the old ones by digest.',
          details: {problems: [...moved, ...failures.map(problemLine)]},
        },
      )
    }
    if (failures.length > 0) throw failuresError(failures, checks.length, 'checked')
  })
}

/** One locked reference to look up again: what it is, the digest the lock pins, the digest it has now. */
type LockCheck = {what: string; run: () => Promise<string | undefined>; locked: string}

/** An image's tag (not a digest reference) and its cosign tags (they move when the image is signed again). */
function imageChecks(image: LockedImage, client: RegistryClient, supplyChain?: SupplyChainMode): LockCheck[] {
  const ref = parseReference(image.reference)
  const head = (tag: string) => async () =>
    (await client.withEndpoints(ref.registry, ref.repository, (ep) => client.headManifest(ep, tag))).value
  const checks: LockCheck[] = []
  for (const s of image.supplyChain ?? []) {
    if (!s.tag || s.kind === 'referrer' || (supplyChain === 'skip' && !s.listed)) continue
    checks.push({
      what: `${s.kind} ${ref.registry}/${ref.repository}:${s.tag}`,
      locked: s.manifest.digest,
      run: head(s.tag),
    })
  }
  if (!ref.digest) checks.push({what: image.reference, locked: image.digest, run: head(ref.tag!)})
  return checks
}

/** An OCI chart's tag; a classic chart's index entry (its digest, or the archive hashed as it streams by, not
 *  stored; a moved entry, another URL, counts too); a direct .tgz URL's archive. */
function chartCheck(chart: LockedChart, client: RegistryClient, indexes: ChartIndexCache): LockCheck {
  const kind = chartSourceKind(chart.repository)
  const what = `chart ${chart.name} ${chart.version} from ${chart.repository}`
  if (kind === 'oci') {
    const {registry, repository} = lockedOciLocation(chart)
    const run = async () =>
      (
        await client.withEndpoints(registry, repository, (ep) =>
          client.headManifest(ep, chartTag(chart.version), 'helm'),
        )
      ).value
    return {what, locked: chart.manifest.digest, run}
  }
  const run = async () => {
    let url = chart.url ? new URL(chart.url) : new URL(chart.repository)
    if (kind === 'classic') {
      const entries = (await indexes.get(chart.repository))[chart.name] ?? []
      const entry = pickIndexEntry(entries, chart.version)
      if (!entry)
        throw new RegistryError(
          'not-found',
          `${chart.name} ${chart.version} is no longer in ${indexUrl(chart.repository).href}`,
          indexUrl(chart.repository).host,
          404,
        )
      if (entry.digest) return entry.digest.startsWith('sha256:') ? entry.digest : `sha256:${entry.digest}`
      if (entry.urls?.[0]) url = new URL(entry.urls[0], indexUrl(chart.repository))
    }
    return hashUrl(client, url)
  }
  return {what, locked: chart.digest, run}
}

async function hashUrl(client: RegistryClient, url: URL): Promise<string> {
  const res = await client.getUrl(url)
  if (res.status !== 200) {
    await discard(res)
    throw new RegistryError(
      res.status === 404 ? 'not-found' : 'http',
      `${url.href} answered ${res.status}`,
      url.host,
      res.status,
    )
  }
  const hash = createHash('sha256')
  for await (const chunk of res.body ?? []) hash.update(chunk)
  return `sha256:${hash.digest('hex')}`
}

function sortedRecord<T>(r: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>()
  for (const item of items) {
    const k = key(item)
    const list = out.get(k)
    if (list) list.push(item)
    else out.set(k, [item])
  }
  return out
}
