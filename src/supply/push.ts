import {Readable} from 'node:stream'

import type {BundleManifest} from '../bundle/format.js'
import type {Descriptor} from '../oci/descriptor.js'
import {MediaType} from '../oci/media-types.js'
import type {RegistryClient} from '../registry/client.js'
import {discard} from '../registry/http.js'
import type {WritableRegistryRepository} from '../registry/writable-repository.js'
import {sha256Digest} from '../util/digest.js'
import {siteRepositoryOf} from '../registry/reference.js'
import {supplyChainTag} from './cosign.js'
import {referrersOf} from './referrers.js'

// `bundle push` puts the carried referrers back where policy engines look (PRODUCT.md §13). An OCI 1.1 registry
// indexes a manifest's `subject` when it is pushed, and its referrers API lists it; a registry without that API
// (distribution 2.8 answers 404) gets the fallback tag `sha256-<hex>`, an image index of the subject's referrers,
// merged with what that tag already lists, as the distribution-spec tells clients to maintain it. (cosign's `.sig`,
// `.att` and `.sbom` tags need nothing here: they are ordinary tags, pushed and tagged with the rest.)

export interface ReferrersTarget {
  /** The site form of `HOST/PATH` of the referrer in the bundle (siteRepositoryOf: the port's `:` made `_`). */
  sourceRepository: string
  writer: WritableRegistryRepository
}

/** Writes the fallback tags the registry needs; returns them (`REGISTRY/REPOSITORY:sha256-<hex>`). */
export async function writeReferrersFallback(
  client: RegistryClient,
  manifest: BundleManifest,
  targets: ReferrersTarget[],
): Promise<string[]> {
  const written: string[] = []
  const done = new Set<string>()
  for (const {sourceRepository, writer} of targets) {
    const subjects = new Set(
      (manifest.artifacts ?? [])
        .filter((a) => a.kind === 'referrer' && a.subject && siteRepositoryOf(a.reference) === sourceRepository)
        .map((a) => a.subject!),
    )
    for (const subject of subjects) {
      const key = `${writer.repository}\0${subject}`
      if (done.has(key)) continue
      done.add(key)
      if (await hasReferrersApi(client, writer, subject)) continue
      const wanted = referrersOf(manifest, sourceRepository, subject).index.manifests
      const tag = supplyChainTag(subject)
      if (await mergeFallbackIndex(client, writer, tag, wanted))
        written.push(`${writer.registry}/${writer.repository}:${tag}`)
    }
  }
  return written
}

async function hasReferrersApi(
  client: RegistryClient,
  writer: WritableRegistryRepository,
  subject: string,
): Promise<boolean> {
  const endpoint = client.endpoints(writer.registry, writer.repository).find((e) => !e.mirror)!
  const res = await client.request(endpoint, `referrers/${subject}`, {
    headers: {accept: MediaType.ociIndex},
    scope: `repository:${writer.repository}:pull`,
  })
  await discard(res)
  return res.status === 200
}

/** The fallback index at `tag`: what it lists already, then the bundle's referrers it lacks. False: nothing to add. */
async function mergeFallbackIndex(
  client: RegistryClient,
  writer: WritableRegistryRepository,
  tag: string,
  wanted: Descriptor[],
): Promise<boolean> {
  const endpoint = client.endpoints(writer.registry, writer.repository).find((e) => !e.mirror)!
  const current = (await writer.tagged(tag)) ? (await client.getManifest(endpoint, tag)).json.manifests : undefined
  const listed = new Set((current ?? []).map((d) => d.digest))
  const missing = wanted.filter((d) => !listed.has(d.digest))
  if (current && missing.length === 0) return false
  const bytes = Buffer.from(
    JSON.stringify({schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...(current ?? []), ...missing]}),
  )
  const index: Descriptor = {mediaType: MediaType.ociIndex, digest: sha256Digest(bytes), size: bytes.length}
  await writer.push(index, Readable.from([bytes]))
  await writer.tag(index, tag)
  return true
}
