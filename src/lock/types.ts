// The lock file of PRODUCT.md §5 and the resolved-artifact model shared by `profile resolve`, the fetch step and
// `bundle build`. The registry side produces it; the bundle side consumes it together with the blob cache.
// Canonical JSON (sorted keys) makes two locks diff cleanly. It records canonical references only: which mirror,
// proxy or pull-through cache served an artifact, and where the profiles lay on disk, are not part of it (they go
// to the report), so the same inputs give the same lock bytes on every machine and through every mirror.

import {uniqueByDigest, type Descriptor, type Platform} from '../oci/descriptor.js'
import type {SupplyChainKind} from '../supply/cosign.js'
import {redactUrl} from '../util/redact.js'

export interface LockedImage {
  /** The reference as the profile names it, normalised (`docker.io/library/nginx:1.27`). */
  reference: string
  /** Digest of what the reference points at: an index / manifest list, or a single manifest. */
  digest: string
  mediaType: string
  size: number
  /** The manifest chosen for the target platform (equals digest/mediaType/size for a single-platform image). */
  platformManifest: Descriptor
  /** Every blob the bundle must carry for this image, in no particular order: the root manifest, the platform
   *  manifest, its config and layers. */
  blobs: Descriptor[]
  /** Platforms of the index that are deliberately left out of the bundle. */
  omittedPlatforms: Platform[]
  /** Its cosign signatures, attestations, SBOMs and OCI referrers (`--supply-chain carry`, or listed by hand).
   *  Absent when there are none, when resolved with `--supply-chain skip`, and in locks of earlier versions. */
  supplyChain?: LockedSupplyArtifact[]
}

/** One supply-chain artefact of an image (PRODUCT.md §13), pinned by digest like the image itself. */
export interface LockedSupplyArtifact {
  kind: SupplyChainKind
  /** The image content it is about: the image's index digest or its platform manifest digest. */
  subject: string
  /** The tag of the image's repository it was found under: a cosign tag (`sha256-<hex>.sig`) or, for a referrer,
   *  the referrers fallback tag (`sha256-<hex>`); absent for a referrer the referrers API listed. */
  tag?: string
  /** Its manifest (with its artifactType, when it has one). */
  manifest: Descriptor
  /** Every blob it needs: the manifest, its config and layers. */
  blobs: Descriptor[]
  /** Listed by hand in a profile: carried even with `--supply-chain skip`. */
  listed?: boolean
}

export interface LockedChart {
  /** Repository as the profile names it: an `https://` classic repo, an `oci://` repository, or a `.tgz` URL. */
  repository: string
  name: string
  version: string
  /** sha256 of the chart archive (.tgz). */
  digest: string
  size: number
  /** The OCI manifest that carries the chart in the bundle (from the registry, or generated deterministically
   *  for classic repositories), its config and chart layer. */
  manifest: Descriptor
  blobs: Descriptor[]
  /** `<host>/<path>/<name>:<version>` — the name annotated in index.json. */
  reference: string
  /** Classic repositories and direct `.tgz` charts: the archive's URL, so a fetch by digest needs no index. */
  url?: string
  /** `oci://` charts: the registry repository that served the chart — the repo as written when it already ends in
   *  the chart name, or with the name appended (see ociChartCandidates). Absent in older locks: appended. */
  ociRepository?: string
}

export interface LockedFile {
  url: string
  sha256: string
  size: number
}

export interface Lock {
  lockVersion: 1
  platform: Platform
  /** Keyed by normalised reference. */
  images: Record<string, LockedImage>
  /** Keyed by `<repository>#<name>@<version>`. */
  charts: Record<string, LockedChart>
  /** Keyed by URL. */
  files: Record<string, LockedFile>
  /** Input profiles the lock was made from, by content (no path: the lock is the same in every checkout). */
  profiles: {name: string; version: string; sha256: string}[]
}

/** A resolver's answer: the lock entry, and beside it the endpoint (mirror or upstream host) that served it — for
 *  the resolve plan and the build report, never for the lock. */
export type Served<T> = {locked: T; servedBy: string}

/** Every blob a lock entry for an image asks for: the image's own, then its supply-chain artefacts'. */
export function lockedImageBlobs(image: LockedImage): Descriptor[] {
  if (!image.supplyChain?.length) return image.blobs
  return uniqueByDigest([...image.blobs, ...image.supplyChain.flatMap((s) => s.blobs)])
}

/** What a lock pins under `--supply-chain skip`: only the supply-chain artefacts listed by hand in the profiles. */
export function withoutCarriedSupplyChain(lock: Lock): Lock {
  const images: Record<string, LockedImage> = {}
  for (const [key, image] of Object.entries(lock.images)) {
    const {supplyChain, ...rest} = image
    const listed = (supplyChain ?? []).filter((s) => s.listed)
    images[key] = listed.length > 0 ? {...rest, supplyChain: listed} : rest
  }
  return {...lock, images}
}

/** The registry host a canonical reference names (`docker.io/library/nginx:1.27` → `docker.io`). */
export function registryOf(reference: string): string {
  const slash = reference.indexOf('/')
  return slash === -1 ? reference : reference.slice(0, slash)
}

export function chartKey(repository: string, name: string, version: string): string {
  // A repository URL's password never enters a lock (its keys included).
  return `${redactUrl(repository)}#${name}@${version}`
}
