import type {BundleManifest} from '../bundle/format.js'
import type {Descriptor} from '../oci/descriptor.js'
import {MediaType} from '../oci/media-types.js'
import {siteRepositoryOf} from '../registry/reference.js'

// The OCI referrers API's answer (distribution-spec, `GET /v2/<name>/referrers/<digest>`) for a bundle: an image
// index of the referrers it carries for that subject in that repository, made from bundle.json (each referrer's
// digest, size and artifactType), so that `bundle serve` answers where cosign 3 and notation look first.

export interface ReferrersAnswer {
  index: {schemaVersion: 2; mediaType: string; manifests: Descriptor[]}
  /** Whether the `artifactType` filter was applied (the `OCI-Filters-Applied` header). */
  filtered: boolean
}

/** `repository` is `HOST/PATH`; an unknown subject has an empty list, never a 404 (as the spec requires). */
export function referrersOf(
  manifest: BundleManifest,
  repository: string,
  subject: string,
  artifactType?: string,
): ReferrersAnswer {
  const manifests = (manifest.artifacts ?? [])
    .filter((a) => a.kind === 'referrer' && a.subject === subject && siteRepositoryOf(a.reference) === repository)
    .filter((a) => !artifactType || a.artifactType === artifactType)
    .map((a) => ({
      mediaType: a.mediaType,
      digest: a.digest,
      size: a.size,
      ...(a.artifactType ? {artifactType: a.artifactType} : {}),
    }))
    .sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))
  return {index: {schemaVersion: 2, mediaType: MediaType.ociIndex, manifests}, filtered: Boolean(artifactType)}
}
