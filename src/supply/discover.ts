import type {BlobStore} from '../cache/store.js'
import type {LockedImage, LockedSupplyArtifact} from '../lock/types.js'
import {plainDescriptor, uniqueByDigest, type Descriptor} from '../oci/descriptor.js'
import {MediaType} from '../oci/media-types.js'
import {readRemote} from '../registry/bounded-body.js'
import type {Endpoint, FetchedManifest, RegistryClient} from '../registry/client.js'
import {RegistryError} from '../registry/errors.js'
import {discard} from '../registry/http.js'
import {parseReference} from '../registry/reference.js'
import {isDigest} from '../util/digest.js'
import {
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SUFFIXES,
  digestReference,
  supplyChainTag,
  taggedReference,
  type CosignSuffix,
  type SupplyChainReference,
} from './cosign.js'

// The resolve side of `--supply-chain carry` (PRODUCT.md §13): for an image's index digest and platform manifest
// digest, the cosign tags `sha256-<hex>.sig|.att|.sbom` of its repository and its OCI referrers (the referrers API,
// or its fallback tag `sha256-<hex>` where the registry has none, as distribution 2.8). Only manifests are read
// (exact bytes, digest-checked, kept in the cache); their blobs are pinned in the lock and fetched like the image's.
// An artefact that is absent is fine; one that is there but broken is an error naming it.

/** Statuses of the referrers endpoint that mean "this registry has no referrers API": use the fallback tag. */
const NO_REFERRERS_API = new Set([404, 405])

/**
 * Endpoints (by API base) known to have no referrers API, per client: a registry with the API never answers 404 for
 * a repository that exists (distribution-spec), so one such answer holds for every later image of the run.
 */
const withoutReferrersApi = new WeakMap<RegistryClient, Set<string>>()

interface Lookup {
  client: RegistryClient
  /** The image the artefacts belong to, for their references and messages. */
  image: string
  store?: BlobStore
}

/**
 * Every supply-chain artefact of a resolved image, sorted (subject, kind, tag, digest) so that equal registries
 * give equal locks. One request at a time: images are resolved `--concurrency` at a time, and that stays the bound
 * on requests in flight.
 */
export async function discoverSupplyChain(
  client: RegistryClient,
  image: LockedImage,
  store?: BlobStore,
): Promise<LockedSupplyArtifact[]> {
  const lookup: Lookup = {client, image: image.reference, store}
  const found: LockedSupplyArtifact[] = []
  for (const subject of new Set([image.digest, image.platformManifest.digest])) {
    for (const suffix of Object.keys(COSIGN_SUFFIXES) as CosignSuffix[]) {
      const artifact = await cosignArtifact(lookup, subject, suffix)
      if (artifact) found.push(artifact)
    }
    found.push(...(await referrersOf(lookup, subject)))
  }
  return sortSupplyChain(found)
}

/**
 * A supply-chain reference listed by hand in a profile (`…:sha256-<hex>.sig`, or the referrers fallback tag): the
 * artefacts it names, marked as listed. Absent is an error here: the profile asks for it.
 */
export async function resolveListedSupplyChain(
  client: RegistryClient,
  image: LockedImage,
  listed: SupplyChainReference,
  store?: BlobStore,
): Promise<LockedSupplyArtifact[]> {
  const lookup: Lookup = {client, image: image.reference, store}
  const suffix = (Object.keys(COSIGN_SUFFIXES) as CosignSuffix[]).find((s) => listed.tag.endsWith(`.${s}`))
  const found = suffix
    ? [await cosignArtifact(lookup, listed.subject, suffix)].filter((a) => a !== undefined)
    : await onEndpoints(lookup, (ep) => referrersFromTag(lookup, ep, listed.subject))
  if (!found?.length)
    throw new RegistryError(
      'not-found',
      `${listed.reference} not found`,
      parseReference(listed.reference).registry,
      404,
    )
  return found.map((a) => ({...a, listed: true}))
}

export function sortSupplyChain(artifacts: LockedSupplyArtifact[]): LockedSupplyArtifact[] {
  const key = (a: LockedSupplyArtifact) => `${a.subject}\0${a.kind}\0${a.tag ?? ''}\0${a.manifest.digest}`
  const unique = new Map(artifacts.map((a) => [key(a), a]))
  return [...unique.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}

/**
 * `fn` on the image repository's endpoints (mirrors, then upstream) until one has the artefact. Unlike an image,
 * an artefact may be absent: an endpoint that answers 404 says so, and then an unreachable or refusing one after
 * it does not fail the build (a mirror that holds the image but not its signatures is common). Content that is
 * broken (a digest mismatch, a malformed document) always fails.
 */
async function onEndpoints<T>(lookup: Lookup, fn: (ep: Endpoint) => Promise<T | undefined>): Promise<T | undefined> {
  const ref = parseReference(lookup.image)
  let absent = false
  let firstError: unknown
  for (const ep of lookup.client.endpoints(ref.registry, ref.repository)) {
    try {
      const value = await fn(ep)
      if (value !== undefined) return value
      absent = true
    } catch (error) {
      const broken = error instanceof RegistryError && (error.failure === 'integrity' || error.failure === 'protocol')
      if (broken) throw error
      firstError ??= error
    }
  }
  if (absent || firstError === undefined) return undefined
  throw firstError
}

/**
 * A manifest by tag, or undefined when the registry answers 404. Asked with HEAD first: most images have no such
 * tag, and registries that rate-limit pulls (Docker Hub) count manifest GETs, not HEADs.
 */
async function optionalManifest(
  client: RegistryClient,
  ep: Endpoint,
  tag: string,
): Promise<FetchedManifest | undefined> {
  try {
    const digest = await client.headManifest(ep, tag)
    return await client.getManifest(ep, digest)
  } catch (error) {
    if (error instanceof RegistryError && error.failure === 'not-found') return undefined
    throw error
  }
}

async function cosignArtifact(
  lookup: Lookup,
  subject: string,
  suffix: CosignSuffix,
): Promise<LockedSupplyArtifact | undefined> {
  const tag = supplyChainTag(subject, suffix)
  const reference = taggedReference(lookup.image, tag)
  return onEndpoints(lookup, async (ep) => {
    const m = await optionalManifest(lookup.client, ep, tag)
    if (!m) return undefined
    const broken = (why: string) =>
      new RegistryError('protocol', `${COSIGN_SUFFIXES[suffix]} ${reference} of ${lookup.image}: ${why}`, ep.host)
    checkArtifactManifest(m, broken)
    if (suffix === 'sig') {
      for (const layer of m.json.layers ?? []) {
        if (layer.mediaType !== MediaType.cosignSimpleSigning)
          throw broken(`layer ${layer.digest} is ${layer.mediaType}, not a cosign simple-signing payload`)
        if (!layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION])
          throw broken(`layer ${layer.digest} has no ${COSIGN_SIGNATURE_ANNOTATION} annotation`)
      }
    }
    await lookup.store?.putBytes(m.bytes, m.digest)
    return artifactOf(COSIGN_SUFFIXES[suffix], subject, m, tag)
  })
}

/** The referrers of `subject`: from the referrers API, or from the fallback tag where the registry has no API. */
async function referrersOf(lookup: Lookup, subject: string): Promise<LockedSupplyArtifact[]> {
  let noApi = withoutReferrersApi.get(lookup.client)
  if (!noApi) withoutReferrersApi.set(lookup.client, (noApi = new Set()))
  const found = await onEndpoints(lookup, async (ep) => {
    if (noApi.has(ep.base.href)) return referrersFromTag(lookup, ep, subject)
    const res = await lookup.client.request(ep, `referrers/${subject}`, {headers: {accept: MediaType.ociIndex}})
    if (NO_REFERRERS_API.has(res.status)) {
      await discard(res)
      noApi.add(ep.base.href)
      return referrersFromTag(lookup, ep, subject)
    }
    if (res.status !== 200) {
      await discard(res)
      throw new RegistryError(
        'http',
        `the referrers of ${digestReference(lookup.image, subject)}: the registry answered ${res.status}`,
        ep.host,
        res.status,
      )
    }
    const what = `the referrers of ${digestReference(lookup.image, subject)}`
    const bytes = await readRemote(res.body, 'manifest', what, ep.host)
    return referrerArtifacts(lookup, ep, subject, listedDescriptors(bytes, what, ep.host))
  })
  return found ?? []
}

/** The referrers fallback tag `sha256-<hex>`: an index of the referrers (absent: none). */
async function referrersFromTag(
  lookup: Lookup,
  ep: Endpoint,
  subject: string,
): Promise<LockedSupplyArtifact[] | undefined> {
  const tag = supplyChainTag(subject)
  const index = await optionalManifest(lookup.client, ep, tag)
  if (!index) return undefined
  if (!Array.isArray(index.json.manifests))
    throw new RegistryError(
      'protocol',
      `referrers ${taggedReference(lookup.image, tag)} of ${lookup.image}: the fallback tag holds a manifest, not an index of referrers`,
      ep.host,
    )
  return referrerArtifacts(lookup, ep, subject, index.json.manifests, tag)
}

function listedDescriptors(bytes: Buffer, what: string, host: string): Descriptor[] {
  let doc: {manifests?: unknown}
  try {
    doc = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new RegistryError('protocol', `${what}: the registry answered something that is not a JSON index`, host)
  }
  if (!Array.isArray(doc?.manifests))
    throw new RegistryError('protocol', `${what}: the registry answered an index without manifests`, host)
  return doc.manifests as Descriptor[]
}

/** Each listed referrer's manifest, checked: the size listed, and a `subject` that is the image. */
async function referrerArtifacts(
  lookup: Lookup,
  ep: Endpoint,
  subject: string,
  listed: Descriptor[],
  tag?: string,
): Promise<LockedSupplyArtifact[]> {
  const out: LockedSupplyArtifact[] = []
  for (const d of listed) {
    const reference = digestReference(lookup.image, String(d?.digest))
    const broken = (why: string) =>
      new RegistryError('protocol', `referrer ${reference} of ${lookup.image}: ${why}`, ep.host)
    if (typeof d?.digest !== 'string' || !isDigest(d.digest)) throw broken('it is not named by a sha256 digest')
    const m = await lookup.client.getManifest(ep, d.digest)
    if (m.size !== d.size) throw broken(`its manifest is ${m.size} bytes, the referrers list says ${d.size}`)
    checkArtifactManifest(m, broken)
    const named = (m.json as {subject?: {digest?: unknown}}).subject?.digest
    if (named !== subject)
      throw broken(
        named === undefined
          ? `it has no subject, so it is not a referrer of ${subject}`
          : `its subject is ${String(named)}, not the image's ${subject}`,
      )
    await lookup.store?.putBytes(m.bytes, m.digest)
    out.push(artifactOf('referrer', subject, m, tag))
  }
  return out
}

/** A supply-chain artefact is one manifest (not an index) whose config and layers are named by sha256 digests. */
function checkArtifactManifest(m: FetchedManifest, broken: (why: string) => Error): void {
  if (m.json.manifests) throw broken('it is an index, not an artifact manifest')
  for (const d of [m.json.config, ...(m.json.layers ?? [])]) {
    if (!d || typeof d.digest !== 'string' || !isDigest(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0)
      throw broken('a descriptor in its manifest has no valid sha256 digest and size')
  }
}

function artifactOf(
  kind: LockedSupplyArtifact['kind'],
  subject: string,
  m: FetchedManifest,
  tag: string | undefined,
): LockedSupplyArtifact {
  const artifactType = m.json.artifactType
  return {
    kind,
    subject,
    ...(tag ? {tag} : {}),
    manifest: {...plainDescriptor(m), ...(typeof artifactType === 'string' ? {artifactType} : {})},
    blobs: uniqueByDigest([m, m.json.config!, ...(m.json.layers ?? [])].map(plainDescriptor)),
  }
}
