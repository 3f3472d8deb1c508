import type {Platform} from '../oci/descriptor.js'
import {formatPlatform, samePlatform} from '../oci/platform.js'
import type {ArtifactRecord, BundleContent} from './content.js'

// The difference between two bundles' contents, by digest (PRODUCT.md §11): never by reference string. The
// same reference with a new digest is `changed`; a reference that is new but whose digest OLD already held under
// another reference (a moved or renamed tag) is `retagged` and costs no bytes; the blob figures are what a
// blob-level delta would carry. Pure: `--delta-from`, `patch` and `verify --base` build on the same sets.

export interface DiffSide {
  input: string
  from: BundleContent['from']
  name: string
  formatVersion: number
  platform: Platform
  identity?: string
  bundleJsonSha256: string
}

export interface ArtifactRow {
  kind: string
  reference: string
  digest: string
}

export interface BlobTally {
  count: number
  bytes: number
}

export interface BundleDiff {
  old: DiffSide
  new: DiffSide
  artifacts: {
    added: ArtifactRow[]
    removed: ArtifactRow[]
    changed: {kind: string; reference: string; oldDigest: string; newDigest: string}[]
    retagged: {kind: string; oldReference: string; newReference: string; digest: string}[]
    unchanged: number
  }
  blobs: {
    /** Blobs of NEW that OLD lacks: what a blob-level delta carries. */
    carried: BlobTally
    /** Blobs of NEW that OLD holds: what a delta borrows from the base. */
    borrowed: BlobTally
    /** Blobs of OLD that NEW no longer needs. */
    dropped: BlobTally
    /** Every blob of NEW: what a whole bundle carries. */
    whole: BlobTally
  }
  /** NEW's non-blob entries and bundle.json, which any delta carries whole (index.json, profiles, definition). */
  metadataBytes: number
  /** True when both hold the same artifacts at the same digests and the same blobs. */
  identical: boolean
  warnings: string[]
}

function sideOf(c: BundleContent): DiffSide {
  return {
    input: c.input,
    from: c.from,
    name: c.name,
    formatVersion: c.formatVersion,
    platform: c.platform,
    ...(c.identity ? {identity: c.identity} : {}),
    bundleJsonSha256: c.bundleJsonSha256,
  }
}

const byReference =
  <T extends {kind: string}>(ref: (x: T) => string) =>
  (a: T, b: T) =>
    a.kind.localeCompare(b.kind) || (ref(a) < ref(b) ? -1 : ref(a) > ref(b) ? 1 : 0)
const row = (a: ArtifactRecord): ArtifactRow => ({kind: a.kind, reference: a.reference, digest: a.digest})

export function diffContents(oldContent: BundleContent, newContent: BundleContent): BundleDiff {
  const added: ArtifactRecord[] = []
  const changed: BundleDiff['artifacts']['changed'] = []
  let unchanged = 0
  for (const [key, a] of newContent.artifacts) {
    const before = oldContent.artifacts.get(key)
    if (!before) added.push(a)
    else if (before.digest === a.digest) unchanged++
    else changed.push({kind: a.kind, reference: a.reference, oldDigest: before.digest, newDigest: a.digest})
  }
  const removed = [...oldContent.artifacts].filter(([key]) => !newContent.artifacts.has(key)).map(([, a]) => a)

  const {retagged, stillRemoved, unmatched} = matchRetagged(added, removed)
  const blobs = tallyBlobs(oldContent, newContent)

  const warnings: string[] = []
  if (!samePlatform(oldContent.platform, newContent.platform)) {
    warnings.push(
      `OLD is for ${formatPlatform(oldContent.platform)} and NEW for ${formatPlatform(newContent.platform)}: sites of one platform cannot use a delta between them`,
    )
  }
  const artifacts = {
    added: [...unmatched].map(row),
    removed: stillRemoved.map(row),
    changed: changed.sort(byReference((a) => a.reference)),
    retagged,
    unchanged,
  }
  const identical =
    artifacts.added.length +
      artifacts.removed.length +
      artifacts.changed.length +
      artifacts.retagged.length +
      blobs.carried.count +
      blobs.dropped.count ===
    0
  return {
    old: sideOf(oldContent),
    new: sideOf(newContent),
    artifacts,
    blobs,
    metadataBytes: newContent.metadataBytes,
    identical,
    warnings,
  }
}

/** A reference that left and one that arrived with the same kind and digest: the same content under a new name. */
function matchRetagged(added: ArtifactRecord[], removed: ArtifactRecord[]) {
  added.sort(byReference((a) => a.reference))
  removed.sort(byReference((a) => a.reference))
  const retagged: BundleDiff['artifacts']['retagged'] = []
  const stillRemoved: ArtifactRecord[] = []
  const unmatched = new Set(added)
  for (const r of removed) {
    const match = added.find((a) => unmatched.has(a) && a.kind === r.kind && a.digest === r.digest)
    if (match) {
      unmatched.delete(match)
      retagged.push({kind: r.kind, oldReference: r.reference, newReference: match.reference, digest: r.digest})
    } else stillRemoved.push(r)
  }

  return {retagged, stillRemoved, unmatched}
}

/** The blobs of NEW a delta from OLD carries or borrows, the blobs OLD had that NEW drops, and NEW's whole. */
function tallyBlobs(oldContent: BundleContent, newContent: BundleContent): BundleDiff['blobs'] {
  const tally = (): BlobTally => ({count: 0, bytes: 0})
  const blobs = {carried: tally(), borrowed: tally(), dropped: tally(), whole: tally()}
  for (const [digest, size] of newContent.blobs) {
    const t = oldContent.blobs.has(digest) ? blobs.borrowed : blobs.carried
    t.count++
    t.bytes += size
    blobs.whole.count++
    blobs.whole.bytes += size
  }
  for (const [digest, size] of oldContent.blobs) {
    if (newContent.blobs.has(digest)) continue
    blobs.dropped.count++
    blobs.dropped.bytes += size
  }

  return blobs
}
