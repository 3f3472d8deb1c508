import type {Platform} from '../oci/descriptor.js'
import type {SupplyChainKind} from '../supply/cosign.js'

// Bundle formats 1 and 2 (PRODUCT.md §4): the names and shapes every writer and reader of a bundle agrees on.
// Both hold the same tar; format 2 cuts its zstd stream into seekable frames (docs/bundle-format.md).

export const FORMAT_VERSION = 1
/** The seekable format: one frame group per tar entry, raw frames for compressed blobs, a seek table at the end. */
export const SEEKABLE_FORMAT_VERSION = 2
export type BundleFormatVersion = typeof FORMAT_VERSION | typeof SEEKABLE_FORMAT_VERSION
/** What `bundle build` writes unless told otherwise (`--format 1` still writes the single zstd stream). */
export const DEFAULT_FORMAT_VERSION: BundleFormatVersion = SEEKABLE_FORMAT_VERSION

export const BUNDLE_JSON = 'airpack/bundle.json'
export const BUNDLE_SIG = 'airpack/bundle.json.sig'
export const OCI_LAYOUT = 'oci-layout'
export const INDEX_JSON = 'index.json'
export const DEFINITION_ENTRY = 'airpack/definition.tgz'
export const PROFILES_DIR = 'airpack/profiles/'
export const BLOBS_DIR = 'blobs/sha256/'

export const OCI_LAYOUT_CONTENT = '{"imageLayoutVersion":"1.0.0"}'

export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name'
export const ANNOTATION_TITLE = 'org.opencontainers.image.title'
export const ANNOTATION_SPECTRO_TYPE = 'io.image.ref.spectrocloud.type'
/**
 * The name of a Helm chart in index.json. Charts do not carry `org.opencontainers.image.ref.name`: containerd
 * 1.6's `ctr images import` turns every entry so named into an image and unpacks it, and a chart is not an image
 * (its config has no rootfs), so the whole import would fail. Under this key the chart keeps its full reference
 * for OCI tools that copy it by digest (oras, crane), and containerd leaves it alone as plain content.
 */
export const ANNOTATION_AIRPACK_REF = 'io.airpack.ref.name'

/**
 * A supply-chain artefact's index.json entry (PRODUCT.md §13) is platform-less, named under ANNOTATION_AIRPACK_REF
 * (never ref.name: containerd would make an image of it and fail to unpack its JSON layers), and annotated with the
 * digest of the image content it is about, its kind, and the cosign tag it came from (absent for a referrer the
 * referrers API listed).
 */
export const ANNOTATION_SUBJECT = 'io.airpack.subject'
export const ANNOTATION_SUPPLY_CHAIN_KIND = 'io.airpack.supply-chain.kind'
export const ANNOTATION_SUPPLY_CHAIN_TAG = 'io.airpack.supply-chain.tag'

/** The reference an index.json entry is known by: its OCI ref.name, or the chart key above. */
export function entryReference(annotations: Record<string, string> | undefined): string | undefined {
  return annotations?.[ANNOTATION_REF_NAME] ?? annotations?.[ANNOTATION_AIRPACK_REF]
}

export type ArtifactKind = 'image' | 'chart' | 'definition' | SupplyChainKind

export interface BundleArtifact {
  kind: ArtifactKind
  /** Full original reference, also the `org.opencontainers.image.ref.name` of its index.json entry. */
  reference: string
  digest: string
  mediaType: string
  size: number
  /** Target platform of the content stored (images); absent for charts and the definition. */
  platform?: Platform
  /** For images: the platform manifest stored (equals digest for a single-platform image). */
  platformManifest?: {digest: string; mediaType: string; size: number}
  /** Registry host the content came from; never credentials. `local` for generated content. */
  source: string
  omittedPlatforms: Platform[]
  /** Sum of the sizes of the blobs this artifact needs (shared blobs count for each artifact). */
  contentSize: number
  /** Supply-chain artefacts: the digest of the image content they are about (index or platform manifest). */
  subject?: string
  /** Supply-chain artefacts: the reference of the image they belong to. */
  image?: string
  /** Supply-chain artefacts: the tag of the image's repository they came from (`sha256-<hex>.sig`). */
  tag?: string
  /** Supply-chain artefacts: the manifest's artifactType, when it has one. */
  artifactType?: string
}

export interface BundleEntry {
  path: string
  size: number
  sha256: string
}

export interface BundleManifest {
  formatVersion: BundleFormatVersion
  name: string
  platform: Platform
  airpack: {version: string}
  /**
   * Format 1: the version of the `zstd` program. Format 2: `package` is the compressor package of the compressed
   * frames (src/zstd/wasm.ts) and `version` its version.
   */
  compression: {algorithm: 'zstd'; version: string; level: number; package?: string}
  /** Only when SOURCE_DATE_EPOCH was set: the one time that enters the bundle. */
  sourceDateEpoch?: number
  profiles: {name: string; version: string; sha256: string}[]
  artifacts: BundleArtifact[]
  /** Every entry of the tar after bundle.json (and its signature), in tar order. */
  entries: BundleEntry[]
  /** Present when the bundle is signed: BUNDLE_SIG holds the signature of this file's bytes. */
  signature?: {algorithm: string; publicKeyFingerprint: string; entry: string}
  totals: {artifacts: number; images: number; charts: number; blobs: number; blobBytes: number}
}

/** The parts file written beside a split bundle. */
export interface PartsFile {
  formatVersion: 1
  /** File name of the whole bundle (`NAME.tar.zst`), for `cat NAME.tar.zst.* > NAME.tar.zst`. */
  file: string
  size: number
  sha256: string
  partSize: number
  parts: {name: string; size: number; sha256: string}[]
  /** How to rebuild the whole file: a glob of the numbered parts only (NAME.tar.zst.* would also match .sig). */
  join?: string
}
