import {readBundleJson} from '../bundle/bundle-json.js'
import {BLOBS_DIR, BUNDLE_JSON, type BundleManifest} from '../bundle/format.js'
import {IntegrityError} from '../errors.js'
import type {Platform} from '../oci/descriptor.js'
import {canonicalJson} from '../util/canonical-json.js'
import {isDigest, sha256Digest} from '../util/digest.js'
import {isInventoryPath, readInventory} from './inventory.js'

// What a bundle holds, as the delta tools compare it: its blobs by digest (with sizes) and its artifacts by
// reference (with digests), from its bundle.json alone. The same value comes from the bundle (any of its forms)
// or from its NAME.inventory.json, so `bundle diff`, `--delta-from`, `patch` and `verify --base` accept either.

export interface ArtifactRecord {
  kind: string
  reference: string
  digest: string
  /** Sum of the sizes of the blobs it needs (shared blobs count for each artifact), from bundle.json. */
  contentSize: number
}

export interface BundleContent {
  /** What the user passed. */
  input: string
  from: 'bundle' | 'inventory'
  name: string
  formatVersion: number
  platform: Platform
  /** The identity (sha256 of the tar): known from an inventory; a bundle's would need its whole tar hashed. */
  identity?: string
  /** `sha256:<hex>` of airpack/bundle.json, known from both. */
  bundleJsonSha256: string
  /** Keyed by `artifactKey`. */
  artifacts: Map<string, ArtifactRecord>
  /** digest → size of every blob. */
  blobs: Map<string, number>
  /** Bytes of everything that is not a blob (bundle.json, index.json, oci-layout, profiles, definition). */
  metadataBytes: number
}

export function artifactKey(a: {kind: string; reference: string}): string {
  return `${a.kind} ${a.reference}`
}

/** Loads a bundle (whole, first part or parts file: only bundle.json is read) or an inventory file. */
export async function loadBundleContent(input: string): Promise<BundleContent> {
  if (isInventoryPath(input)) {
    const inventory = await readInventory(input)
    return contentOf(inventory.bundleJson, {
      input,
      from: 'inventory',
      identity: inventory.identity,
      bundleJsonSha256: inventory.bundleJsonSha256,
      bundleJsonSize: Buffer.byteLength(canonicalJson(inventory.bundleJson)),
    })
  }
  const read = await readBundleJson(input)
  return contentOf(read.manifest, {
    input,
    from: 'bundle',
    bundleJsonSha256: sha256Digest(read.bytes),
    bundleJsonSize: read.bytes.length,
  })
}

/**
 * The blob set and artifact map of one bundle.json, after checking the parts of it they come from: a
 * bundle.json whose entries or artifacts are malformed was tampered with (exit 5).
 */
export function contentOf(
  manifest: BundleManifest,
  where: {
    input: string
    from: BundleContent['from']
    identity?: string
    bundleJsonSha256: string
    bundleJsonSize: number
  },
): BundleContent {
  const invalid = (why: string) =>
    new IntegrityError('BUNDLE_INVALID', `${where.input}: ${BUNDLE_JSON} ${why}`, {
      hint: 'This bundle.json was altered or is not from airpack: copy the bundle (or its inventory) again from the original, or rebuild it.',
      details: {bundle: where.input, problems: [`${BUNDLE_JSON} ${why}`]},
    })
  if (typeof manifest.name !== 'string' || manifest.name === '') throw invalid('has no name')
  if (!Array.isArray(manifest.entries)) throw invalid('has no entries list')
  if (!Array.isArray(manifest.artifacts)) throw invalid('has no artifacts list')
  const {blobs, metadataBytes} = blobsOf(manifest.entries as unknown[], where.bundleJsonSize, invalid)
  const artifacts = artifactsOf(manifest.artifacts as unknown[], blobs, invalid)
  return {
    input: where.input,
    from: where.from,
    name: manifest.name,
    formatVersion: manifest.formatVersion,
    platform: manifest.platform,
    ...(where.identity ? {identity: where.identity} : {}),
    bundleJsonSha256: where.bundleJsonSha256,
    artifacts,
    blobs,
    metadataBytes,
  }
}

type Invalid = (why: string) => Error

/** The blobs (digest → size) bundle.json's entries list, and the bytes of every other entry. */
function blobsOf(
  entries: unknown[],
  bundleJsonSize: number,
  invalid: Invalid,
): {blobs: Map<string, number>; metadataBytes: number} {
  const blobs = new Map<string, number>()
  const paths = new Set<string>()
  let metadataBytes = bundleJsonSize
  for (const e of entries) {
    const entry = e as {path?: unknown; size?: unknown; sha256?: unknown}
    if (
      typeof entry?.path !== 'string' ||
      !Number.isSafeInteger(entry.size) ||
      (entry.size as number) < 0 ||
      typeof entry.sha256 !== 'string' ||
      !/^[a-f0-9]{64}$/.test(entry.sha256)
    ) {
      throw invalid(`has a malformed entry ${JSON.stringify(e)?.slice(0, 200)} (needs path, size and sha256)`)
    }
    if (paths.has(entry.path)) throw invalid(`lists entry ${entry.path} twice`)
    paths.add(entry.path)
    const size = entry.size as number
    if (!entry.path.startsWith(BLOBS_DIR)) {
      metadataBytes += size
      continue
    }
    const hex = entry.path.slice(BLOBS_DIR.length)
    if (hex !== entry.sha256)
      throw invalid(`lists blob ${entry.path} with sha256 ${entry.sha256}: a blob is named by its digest`)
    blobs.set(`sha256:${hex}`, size)
  }
  return {blobs, metadataBytes}
}

/** bundle.json's artifacts by kind and reference; each must name a blob it lists. */
function artifactsOf(records: unknown[], blobs: Map<string, number>, invalid: Invalid): Map<string, ArtifactRecord> {
  const artifacts = new Map<string, ArtifactRecord>()
  for (const a of records) {
    const artifact = a as Partial<ArtifactRecord>
    if (
      typeof artifact?.kind !== 'string' ||
      typeof artifact.reference !== 'string' ||
      typeof artifact.digest !== 'string' ||
      !isDigest(artifact.digest)
    ) {
      throw invalid(
        `has a malformed artifact ${JSON.stringify(a)?.slice(0, 200)} (needs kind, reference and a sha256 digest)`,
      )
    }
    if (!blobs.has(artifact.digest))
      throw invalid(
        `names artifact ${artifact.reference} with digest ${artifact.digest}, which it does not list as a blob`,
      )
    const key = artifactKey(artifact as ArtifactRecord)
    if (artifacts.has(key)) throw invalid(`lists ${artifact.kind} ${artifact.reference} twice`)
    artifacts.set(key, {
      kind: artifact.kind,
      reference: artifact.reference,
      digest: artifact.digest,
      contentSize: Number(artifact.contentSize) || 0,
    })
  }
  return artifacts
}
