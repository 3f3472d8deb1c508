import type {BlobStore} from '../cache/store.js'
import type {LockedImage, Served} from '../lock/types.js'
import {plainDescriptor, uniqueByDigest, type Descriptor, type Platform} from '../oci/descriptor.js'
import type {Endpoint, FetchedManifest, RegistryClient} from '../registry/client.js'
import {limitBytes} from '../limits.js'
import {RegistryError} from '../registry/errors.js'
import {isIndexType} from '../oci/media-types.js'
import {formatPlatform, normalizePlatform, platformMatches, selectPlatform} from '../oci/platform.js'
import {parseReference} from '../registry/reference.js'

// One image reference → the pinned LockedImage for one platform: the root manifest (index / manifest list, or a
// single manifest) exactly as served, the platform manifest chosen from it, and every blob the bundle needs.
// Attestation entries (`unknown/unknown`) are neither chosen nor listed: they are not platforms, and their
// manifests are not carried (the index bytes still name them, unchanged).

export async function resolveImage(
  client: RegistryClient,
  reference: string,
  platform: Platform,
  store?: BlobStore,
): Promise<Served<LockedImage>> {
  const ref = parseReference(reference)
  const target = ref.digest ?? ref.tag ?? 'latest'
  const {value, endpoint} = await client.withEndpoints(ref.registry, ref.repository, (ep) =>
    chooseManifests(client, ep, {reference, target, platform, store}),
  )
  const {root, platformManifest: pm, omitted, chosenPlatform} = value
  if (store) {
    await store.putBytes(root.bytes, root.digest)
    await store.putBytes(pm.bytes, pm.digest)
  }
  const pmDesc: Descriptor = {
    mediaType: pm.mediaType,
    digest: pm.digest,
    size: pm.size,
    ...(chosenPlatform ? {platform: normalizePlatform(chosenPlatform)} : {}),
  }
  if (!pm.json.config)
    throw new RegistryError('protocol', `${reference}: the platform manifest has no config`, endpoint.host)
  const blobs = uniqueByDigest([root, pm, pm.json.config, ...(pm.json.layers ?? [])].map(plainDescriptor))
  const locked: LockedImage = {
    reference,
    digest: root.digest,
    mediaType: root.mediaType,
    size: root.size,
    platformManifest: pmDesc,
    blobs,
    omittedPlatforms: omitted,
  }
  return {locked, servedBy: endpoint.host}
}

/** The root manifest at one endpoint and the platform manifest chosen from it (the root itself when single). */
async function chooseManifests(
  client: RegistryClient,
  ep: Endpoint,
  o: {reference: string; target: string; platform: Platform; store?: BlobStore},
) {
  const {reference, platform} = o
  const root = await client.getManifest(ep, o.target)
  if (!isIndexType(root.mediaType) && !root.json.manifests) {
    const config = await checkSinglePlatform(client, ep, root, reference, platform, o.store)
    return {root, platformManifest: root, omitted: [] as Platform[], chosenPlatform: config}
  }
  const {chosen, omitted, available} = selectPlatform(root.json.manifests ?? [], platform)
  if (!chosen) {
    throw new RegistryError(
      'platform',
      `${reference} has no manifest for ${formatPlatform(platform)} (it has ${available.map(formatPlatform).join(', ') || 'no platforms'})`,
      ep.host,
    )
  }
  const pm = await client.getManifest(ep, chosen.digest)
  if (pm.json.manifests)
    throw new RegistryError(
      'protocol',
      `${reference}: the ${formatPlatform(platform)} entry is itself an index; nested indexes are not supported`,
      ep.host,
    )
  if (pm.size !== chosen.size) {
    throw new RegistryError(
      'integrity',
      `${reference}: the ${formatPlatform(platform)} manifest is ${pm.size} bytes, the index says ${chosen.size}`,
      ep.host,
    )
  }
  return {root, platformManifest: pm, omitted, chosenPlatform: chosen.platform}
}

/**
 * A single-manifest image names its platform only in its config: read it (small, digest-checked, kept in the
 * cache when there is one) so that an amd64-only image is refused for arm64 before any layer is fetched.
 */
async function checkSinglePlatform(
  client: RegistryClient,
  ep: Endpoint,
  manifest: FetchedManifest,
  reference: string,
  platform: Platform,
  store?: BlobStore,
): Promise<Platform | undefined> {
  const config = manifest.json.config
  if (!config || config.size > limitBytes('imageConfig') || !/image\.config|container\.image/.test(config.mediaType))
    return undefined
  let bytes: Buffer
  if (store) {
    await client.retry(() => store.ingest(config.digest, config.size, client.blobSource(ep, config.digest)))
    bytes = await store.readBytes(config.digest)
  } else {
    const {body} = await client.blobSource(ep, config.digest)(0)
    const chunks: Buffer[] = []
    let total = 0
    for await (const c of body) {
      total += (c as Buffer).length
      if (total > config.size) break
      chunks.push(c as Buffer)
    }
    bytes = Buffer.concat(chunks)
    const {sha256Digest} = await import('../util/digest.js')
    if (sha256Digest(bytes) !== config.digest) {
      throw new RegistryError('integrity', `${reference}: its config blob does not hash to ${config.digest}`, ep.host)
    }
  }
  let doc: {os?: string; architecture?: string; variant?: string}
  try {
    doc = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  if (!doc.os || !doc.architecture) return undefined
  const have = normalizePlatform(doc)
  if (!platformMatches(have, platform)) {
    throw new RegistryError(
      'platform',
      `${reference} is a single-platform image for ${formatPlatform(have)}, not ${formatPlatform(platform)}`,
      ep.host,
    )
  }
  return have
}
