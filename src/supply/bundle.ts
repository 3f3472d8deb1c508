import {
  ANNOTATION_AIRPACK_REF,
  ANNOTATION_SUBJECT,
  ANNOTATION_SUPPLY_CHAIN_KIND,
  ANNOTATION_SUPPLY_CHAIN_TAG,
  type BundleArtifact,
} from '../bundle/format.js'
import {registryOf, type LockedImage} from '../lock/types.js'
import {plainDescriptor, type Descriptor} from '../oci/descriptor.js'
import {digestReference, isSupplyChainKind, repositoryOf, taggedReference} from './cosign.js'

// How an image's supply-chain artefacts enter a bundle (PRODUCT.md §13, docs/bundle-format.md): each is an artifact
// of bundle.json with its kind, subject and image, and a platform-less index.json entry named under airpack's own
// annotation, so that `ctr images import` keeps it as plain content and creates no image for it.

export interface SupplyChainEntry {
  artifact: BundleArtifact
  indexEntry: Descriptor
  blobs: Descriptor[]
}

/** The bundle entries of an image's supply-chain artefacts, in the lock's order. */
export function supplyChainEntries(image: LockedImage): SupplyChainEntry[] {
  return (image.supplyChain ?? []).map((s) => {
    // A cosign tag is the artefact's own name; a referrer is known by its digest (several share a fallback tag).
    const reference =
      s.tag && s.kind !== 'referrer'
        ? taggedReference(image.reference, s.tag)
        : digestReference(image.reference, s.manifest.digest)
    const manifest = plainDescriptor(s.manifest)
    const artifactType = s.manifest.artifactType
    return {
      artifact: {
        kind: s.kind,
        reference,
        ...manifest,
        source: registryOf(image.reference),
        omittedPlatforms: [],
        contentSize: s.blobs.reduce((sum, b) => sum + b.size, 0),
        subject: s.subject,
        image: image.reference,
        ...(s.tag ? {tag: s.tag} : {}),
        ...(artifactType ? {artifactType} : {}),
      },
      indexEntry: {
        ...manifest,
        ...(artifactType ? {artifactType} : {}),
        annotations: {
          [ANNOTATION_AIRPACK_REF]: reference,
          [ANNOTATION_SUBJECT]: s.subject,
          [ANNOTATION_SUPPLY_CHAIN_KIND]: s.kind,
          ...(s.tag ? {[ANNOTATION_SUPPLY_CHAIN_TAG]: s.tag} : {}),
        },
      },
      blobs: s.blobs,
    }
  })
}

/**
 * The supply-chain artefacts a bundle carries for one of its images: those of its repository whose subject is the
 * image's index or platform digest (two references to one image share them; bundle.json names the first).
 */
export function carriedFor(image: BundleArtifact, artifacts: readonly BundleArtifact[]): BundleArtifact[] {
  const subjects = new Set([image.digest, image.platformManifest?.digest])
  const repository = repositoryOf(image.reference)
  if (!repository) return []
  return artifacts.filter(
    (a) =>
      isSupplyChainKind(a.kind) && a.subject && subjects.has(a.subject) && repositoryOf(a.reference) === repository,
  )
}

/** What `inspect` and `verify` report of an artifact's supply chain: its subject (an artefact), or what it carries (an image). */
export function supplyChainFields(
  artifact: BundleArtifact,
  artifacts: readonly BundleArtifact[],
): {
  subject?: string
  image?: string
  tag?: string
  supplyChain?: {kind: string; reference: string; digest: string; subject: string}[]
} {
  if (isSupplyChainKind(artifact.kind))
    return {
      ...(artifact.subject ? {subject: artifact.subject} : {}),
      ...(artifact.image ? {image: artifact.image} : {}),
      ...(artifact.tag ? {tag: artifact.tag} : {}),
    }
  if (artifact.kind !== 'image') return {}
  const carried = carriedFor(artifact, artifacts)
  if (carried.length === 0) return {}
  return {
    supplyChain: carried.map((a) => ({kind: a.kind, reference: a.reference, digest: a.digest, subject: a.subject!})),
  }
}
