import {writeFileAtomic} from '../util/atomic.js'
import path from 'node:path'

import {BundleStore} from '../bundle/store.js'
import {IntegrityError, ResolveError, UsageError} from '../errors.js'
import type {Descriptor} from '../oci/descriptor.js'
import {isIndexType} from '../oci/media-types.js'
import {createRegistryClient, type RegistryAccessOptions, type RegistryClient} from '../registry/client.js'
import {describeError} from '../registry/errors.js'
import {retrying} from '../registry/http.js'
import {hostsTomlFiles, mirrorsYaml, type MirrorTarget} from '../registry/mirror-config.js'
import {
  BlobPlacement,
  RegistryRefusal,
  WritableRegistryRepository,
  type PushCounters,
} from '../registry/writable-repository.js'
import {hostPathComponent, splitSiteReference} from '../registry/reference.js'
import {writeReferrersFallback} from '../supply/push.js'
import {copyGraph, CopyGraphError, CopySession, successorsWhere, type CopyEvent} from '../store/copy.js'
import {formatBytes} from '../util/format.js'
import type {Logger} from '../util/log.js'
import {redactUrl} from '../util/redact.js'

// `bundle push`: every artifact of a format 2 bundle into a site registry, read in place from the bundle and
// written through the one graph copy (src/store/copy.ts) into one WritableRegistryRepository per repository.
// Names keep the source host (`REGISTRY/PREFIX/docker.io/library/nginx`), so `docker.io/x` and `quay.io/x`
// never collide. Blobs every repository shares are uploaded once and mounted elsewhere; what the registry holds is
// skipped, so a second push uploads nothing.

export type IndexMode = 'sparse' | 'platform'

export interface PushOptions {
  bundle: string
  /** `REGISTRY[/PREFIX]`. */
  to: string
  index: IndexMode
  registriesOut?: string
  hostsDir?: string
  registry: RegistryAccessOptions
  concurrency: number
  logger: Logger
}

export interface PushedArtifact {
  kind: string
  reference: string
  /** Where it is now: `REGISTRY/PREFIX/HOST/PATH:TAG`. */
  pushedAs: string
  /** The digest the bundle (and the lock) knows it by. */
  digest: string
  /** The digest the tag points at in the registry: the platform manifest's with `--index platform`. */
  pushedDigest: string
  changed: boolean
}

export interface PushReport {
  bundle: string
  identity: string
  registry: string
  prefix: string
  index: IndexMode
  artifacts: PushedArtifact[]
  /** Artifacts whose tag now points at another digest than the bundle's (`--index platform`). */
  changedDigests: {reference: string; from: string; to: string}[]
  blobs: {uploaded: number; mounted: number}
  /** Blobs and manifests the registry already held (not counting mounts). */
  present: number
  bytesUploaded: number
  manifestsPushed: number
  tagsSet: number
  /** Referrers fallback tags written (`REGISTRY/REPOSITORY:sha256-<hex>`) for a registry without the referrers API. */
  referrersFallback: string[]
  seconds: number
  registriesOut?: string
  hostsDir?: string
}

const NAME_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/

/** `REGISTRY[/PREFIX]` → registry host and repository prefix. */
export function parseTarget(to: string): {registry: string; prefix: string} {
  const trimmed = to
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/+$/, '')
  const slash = trimmed.indexOf('/')
  const registry = slash === -1 ? trimmed : trimmed.slice(0, slash)
  const prefix = slash === -1 ? '' : trimmed.slice(slash + 1)
  const hostOk =
    /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::\d+)?$|^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(
      registry,
    )
  if (!hostOk || (prefix !== '' && !prefix.split('/').every((c) => NAME_COMPONENT.test(c)))) {
    throw new UsageError('USAGE', `--to ${JSON.stringify(to)} is not REGISTRY[/PREFIX]`, {
      hint: 'Write the registry host (and port), then an optional path prefix of lower-case name components: --to registry.site.local:5000/edge.',
    })
  }
  return {registry, prefix}
}

interface Job {
  kind: string
  reference: string
  /** Absent for a referrer (known by digest; the registry lists it by its subject). */
  tag?: string
  /** `HOST/PATH` of the reference in the bundle. */
  sourceRepository: string
  repository: string
  /** What the bundle names (the index for an image). */
  stored: Descriptor
  /** What is copied and tagged. */
  root: Descriptor
  writer: WritableRegistryRepository
}

export async function pushBundle(o: PushOptions): Promise<PushReport> {
  const started = Date.now()
  const {registry, prefix} = parseTarget(o.to)
  const store = await BundleStore.open(o.bundle)
  try {
    const client = await createRegistryClient({...o.registry, logger: o.logger})
    try {
      const placement = new BlobPlacement()
      const jobs = planJobs(store, client, registry, prefix, o.index, placement)
      await copyAll(store, jobs, o, placement.counters)
      const artifacts = await tagAll(jobs, registry, o.logger)
      // Referrers: the registry's referrers API lists them, or they get its fallback tag (PRODUCT.md §13).
      const referrersFallback = await writeReferrersFallback(
        client,
        store.manifest,
        jobs.filter((j) => j.kind === 'referrer'),
      )
      const mirrors = await mirrorTargets(client, registry, prefix, jobs)
      if (o.registriesOut) await writeFileAtomic(o.registriesOut, mirrorsYaml(mirrors, mirrorTls(o, registry)))
      if (o.hostsDir) {
        for (const [file, text] of hostsTomlFiles(mirrors, mirrorTls(o, registry)))
          await writeFileAtomic(path.join(o.hostsDir, file), text)
      }
      const c = placement.counters
      return {
        bundle: o.bundle,
        identity: `sha256:${store.identity}`,
        registry,
        prefix,
        index: o.index,
        artifacts,
        changedDigests: artifacts
          .filter((a) => a.changed)
          .map((a) => ({reference: a.reference, from: a.digest, to: a.pushedDigest})),
        blobs: {uploaded: c.blobsUploaded, mounted: c.blobsMounted},
        present: c.present - c.blobsMounted,
        bytesUploaded: c.bytesUploaded,
        manifestsPushed: c.manifestsPushed,
        tagsSet: c.tagsSet,
        referrersFallback,
        seconds: Math.round((Date.now() - started) / 100) / 10,
        ...(o.registriesOut ? {registriesOut: o.registriesOut} : {}),
        ...(o.hostsDir ? {hostsDir: o.hostsDir} : {}),
      }
    } finally {
      await client.close()
    }
  } finally {
    await store.close()
  }
}

/** One job per tagged reference of index.json; the platform manifest instead of the index with `--index platform`. */
function planJobs(
  store: BundleStore,
  client: RegistryClient,
  registry: string,
  prefix: string,
  mode: IndexMode,
  placement: BlobPlacement,
): Job[] {
  const writers = new Map<string, WritableRegistryRepository>()
  const jobs: Job[] = []
  for (const {reference, descriptor} of store.references) {
    const split = splitSiteReference(reference)
    const artifact = store.manifest.artifacts.find((a) => a.reference === reference)
    if (!split || (!split.tag && artifact?.kind !== 'referrer')) continue
    const repository = prefix ? `${prefix}/${split.repository}` : split.repository
    let writer = writers.get(repository)
    if (!writer) {
      writer = new WritableRegistryRepository(client, registry, repository, placement)
      writers.set(repository, writer)
    }
    const platform = artifact?.platformManifest
    const root =
      mode === 'platform' && isIndexType(descriptor.mediaType) && platform
        ? {mediaType: platform.mediaType, digest: platform.digest, size: platform.size}
        : descriptor
    jobs.push({
      kind: artifact?.kind ?? 'artifact',
      reference,
      tag: split.tag,
      sourceRepository: split.repository,
      repository,
      stored: descriptor,
      root,
      writer,
    })
  }
  return jobs
}

/** Every job's graph through one copy session (children first, shared blobs once, bounded transfers). */
async function copyAll(store: BundleStore, jobs: Job[], o: PushOptions, counters: PushCounters): Promise<void> {
  const session = new CopySession({concurrency: o.concurrency})
  const total = store.manifest.totals?.blobBytes ?? 0
  let moved = 0
  let lastLine = Date.now()
  const onEvent = (e: CopyEvent) => {
    // Held already, or mounted from another repository (which the writer counts): nothing crossed.
    if (e.type === 'skipped') counters.present++
    if (e.type !== 'bytes') return
    moved += e.bytes
    const now = Date.now()
    if (o.logger.interactive && o.logger.status && now - lastLine > 200) {
      lastLine = now
      o.logger.status(`push: ${formatBytes(moved)} of at most ${formatBytes(total)} sent`)
    } else if (!o.logger.interactive && now - lastLine > 10_000) {
      lastLine = now
      o.logger.info(`push: ${formatBytes(moved)} sent`)
    }
  }
  const retry = (_d: Descriptor, transfer: () => Promise<void>) => retrying({attempts: 4, retryBaseMs: 500}, transfer)
  // A sparse index: only the children the bundle carries are copied (the others are other platforms).
  const successors = successorsWhere((child) => store.exists(child))
  const settled = await Promise.allSettled(
    jobs.map(async (job) => {
      await copyGraph(store, job.writer, job.root, {session, successors, existing: 'prune', onEvent, retry})
      o.logger.info(`pushed ${job.reference} → ${job.writer.registry}/${job.repository}@${job.root.digest}`)
    }),
  )
  o.logger.status?.('')
  const failed = settled.flatMap((s, i) =>
    s.status === 'rejected' ? [{job: jobs[i], error: s.reason as unknown}] : [],
  )
  if (failed.length > 0) throw pushFailure(failed, o, counters)
}

/** The registry's own answer, when a copy failed because the registry refused a write. */
function refusalOf(error: unknown): RegistryRefusal | undefined {
  if (error instanceof RegistryRefusal) return error
  if (error instanceof CopyGraphError) {
    for (const f of error.failures) if (f.reason instanceof RegistryRefusal) return f.reason
  }
  return undefined
}

function pushFailure(failed: {job: Job; error: unknown}[], o: PushOptions, counters: PushCounters): Error {
  const problems = failed.flatMap(({job, error}) =>
    error instanceof CopyGraphError
      ? error.failures.map((f) => `${job.reference}: ${f.message}`)
      : [`${job.reference}: ${describeError(error)}`],
  )
  const details = {problems, pushed: {...counters}}
  const first = failed[0]
  if (failed.some((f) => f.error instanceof IntegrityError || (f.error as CopyGraphError).exitCode === 5)) {
    return new IntegrityError(
      'BUNDLE_INVALID',
      `${o.bundle}: content does not match its digest; nothing wrong was kept`,
      {
        hint: 'Run `airpack bundle verify` on the bundle; copy it again from the original, or rebuild it.',
        details,
      },
    )
  }
  const refusal = failed.map((f) => refusalOf(f.error)).find((r) => r !== undefined)
  if (refusal?.projectMissing) {
    return new ResolveError('REGISTRY_PROJECT_MISSING', refusal.message, {
      hint: 'Create the project in the registry (Harbor: Projects → New project) or push under an existing one with --to REGISTRY/PROJECT; this is not an authentication problem.',
      details,
    })
  }
  if (refusal?.answer.code === 'MANIFEST_BLOB_UNKNOWN' && o.index === 'sparse') {
    return new ResolveError(
      'INDEX_REFUSED',
      `the registry refused the sparse index of ${failed.find((f) => refusalOf(f.error) === refusal)?.job.reference ?? first.job.reference}: ${refusal.answer.status} ${refusal.answer.code}: ${refusal.answer.message}`,
      {
        hint: 'This registry (distribution 2.8, Harbor) refuses an index whose other platforms are absent. Push with --index platform: the tag then points at the platform manifest (its digest is reported), or use a registry that accepts sparse indexes.',
        details,
      },
    )
  }
  return new ResolveError(
    'PUSH_FAILED',
    `${failed.length} artifact(s) could not be pushed to ${redactUrl(o.to)}: ${problems[0]}`,
    {
      hint: 'Check the registry address, credentials (--docker-config, --cred-file, --registries) and TLS (--ca-cert, --insecure-registry); a retry pushes only what is missing.',
      details,
    },
  )
}

async function tagAll(jobs: Job[], registry: string, logger: Logger): Promise<PushedArtifact[]> {
  const out: PushedArtifact[] = []
  for (const job of jobs) {
    if (job.tag) await job.writer.tag(job.root, job.tag)
    const changed = job.root.digest !== job.stored.digest
    if (changed)
      logger.info(
        `${job.reference}: the tag now points at ${job.root.digest} (platform manifest), not ${job.stored.digest}`,
      )
    out.push({
      kind: job.kind,
      reference: job.reference,
      pushedAs: `${registry}/${job.repository}${job.tag ? `:${job.tag}` : `@${job.root.digest}`}`,
      digest: job.stored.digest,
      pushedDigest: job.root.digest,
      changed,
    })
  }
  return out
}

/** One mirror per source host of the bundle, to the registry's API as it answered (https, or http when allowed). */
async function mirrorTargets(
  client: RegistryClient,
  registry: string,
  prefix: string,
  jobs: Job[],
): Promise<MirrorTarget[]> {
  const hosts = [...new Set(jobs.map((j) => splitSiteReference(j.reference)!.host))].sort()
  const endpoint = client.endpoints(registry, prefix || 'library').find((e) => !e.mirror)!
  const base = await client.apiBase(endpoint)
  const origin = `${base.protocol}//${base.host}`
  return hosts.map((host) => {
    const component = hostPathComponent(host)
    return {host, endpoint: origin, pathPrefix: prefix ? `${prefix}/${component}` : component}
  })
}

function mirrorTls(o: PushOptions, registry: string): {caFile?: string; insecureSkipVerify?: boolean} {
  const insecure = (o.registry.insecureRegistries ?? []).some(
    (h) => h.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '') === registry,
  )
  return {
    ...(o.registry.caCertFile ? {caFile: path.resolve(o.registry.caCertFile)} : {}),
    ...(insecure ? {insecureSkipVerify: true} : {}),
  }
}
