import {DELTA_ENTRY} from '../bundle/bundle-json.js'
import {BLOBS_DIR, BUNDLE_JSON, SEEKABLE_FORMAT_VERSION, type BundleManifest} from '../bundle/format.js'
import type {Lock} from '../lock/types.js'
import {canonicalJson} from '../util/canonical-json.js'
import {isDigest, sha256Digest} from '../util/digest.js'
import type {BundleContent} from './content.js'

// airpack/delta.json (PRODUCT.md §11, docs/bundle-format.md "Day-2 deltas"): the first entry of NAME.delta.tar.zst.
// It names the bundle the delta makes (the target, N+1) and the bundle(s) it applies to (the bases), and lists
// every blob of the target it does not carry (`borrowed`, each held by every base) and the references the bases
// hold that the target no longer does (`removed`). The target's own airpack/bundle.json follows it in the tar, so
// the delta's entries are checked against it exactly as a bundle's are; delta.json pins bundle.json's sha256, so
// its signature covers everything.

export {DELTA_ENTRY}
export const DELTA_SIG = 'airpack/delta.json.sig'
export const DELTA_KIND = 'delta'
export const DELTA_VERSION = 1
/** NAME.delta.tar.zst: the delta's files are the bundle's with this stem (parts, parts file, signature). */
export const deltaFileStem = (name: string) => `${name}.delta`

export interface DeltaSide {
  name: string
  formatVersion: number
  /** The bundle's identity as build, inspect and verify print it. */
  identity: string
  /** sha256 of its airpack/bundle.json. */
  bundleJsonSha256: string
}

export interface DeltaTarget extends DeltaSide {
  /** The whole bundle's file name, as `bundle patch` writes it. */
  file: string
  /**
   * When the whole bundle's build hashed its compressed file (signed or split builds): its size and sha256, so that
   * `patch` can tell whether its output is the very same file, and the detached signature of that file (base64),
   * which `patch` then writes beside it.
   */
  compressed?: {size: number; sha256: string; detachedSignature?: string}
  /**
   * Format 2: the blobs the writer stored in raw frames (their media type says they are already compressed), sorted.
   * The media types are in manifests that `patch` meets only later in digest order; this is what lets it cut the
   * same frames as the whole build.
   */
  rawFrames?: string[]
}

export interface BorrowedBlob {
  digest: string
  size: number
}

export interface RemovedArtifact {
  kind: string
  reference: string
  digest: string
}

export interface DeltaManifest {
  kind: typeof DELTA_KIND
  deltaVersion: typeof DELTA_VERSION
  target: DeltaTarget
  /** The bundles this delta applies to (several for a mixed fleet): every one holds every borrowed blob. */
  bases: DeltaSide[]
  carried: {blobs: number; bytes: number}
  /** Every blob of the target the delta does not carry, sorted by digest. */
  borrowed: BorrowedBlob[]
  /** References some base holds and the target does not (site procedure: remove these names after the import). */
  removed: RemovedArtifact[]
  /** Present when signed: DELTA_SIG holds the signature of delta.json's bytes. */
  signature?: {algorithm: string; publicKeyFingerprint: string; entry: typeof DELTA_SIG}
}

export interface DeltaPlan {
  carried: {blobs: number; bytes: number}
  borrowed: BorrowedBlob[]
  removed: RemovedArtifact[]
  /** Whether the delta carries the blob (it is in the target and not in every base). */
  carries(digest: string): boolean
}

const byDigest = (a: {digest: string}, b: {digest: string}) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0)

/**
 * What a delta from `bases` to `target` carries and borrows, by digest: a blob is borrowed only when every base
 * holds it (a mixed fleet: the target minus the intersection of the bases' blob sets) and, when `siteKeeps` is
 * given, a site that imported the base still has it (see siteKeptBlobs). Pure.
 */
export function planDelta(
  target: BundleContent,
  bases: BundleContent[],
  siteKeeps: (digest: string) => boolean = () => true,
): DeltaPlan {
  const borrowed: BorrowedBlob[] = []
  const carriedSet = new Set<string>()
  let bytes = 0
  for (const [digest, size] of target.blobs) {
    if (bases.length > 0 && siteKeeps(digest) && bases.every((b) => b.blobs.get(digest) === size))
      borrowed.push({digest, size})
    else {
      carriedSet.add(digest)
      bytes += size
    }
  }
  const removed = new Map<string, RemovedArtifact>()
  for (const base of bases)
    for (const [key, a] of base.artifacts)
      if (!target.artifacts.has(key)) removed.set(key, {kind: a.kind, reference: a.reference, digest: a.digest})
  return {
    carried: {blobs: carriedSet.size, bytes},
    borrowed: borrowed.sort(byDigest),
    removed: [...removed.values()].sort((a, b) =>
      a.kind !== b.kind
        ? a.kind < b.kind
          ? -1
          : 1
        : a.reference < b.reference
          ? -1
          : a.reference > b.reference
            ? 1
            : 0,
    ),
    carries: (digest) => carriedSet.has(digest),
  }
}

/**
 * The blobs a containerd that imported a bundle keeps: what its named images reach (index, platform manifest,
 * config, layers). Charts and supply-chain artefacts are in index.json under airpack's own annotation, so
 * `ctr images import` stores them without a name, and containerd's garbage collector removes them once the import
 * ends (measured on 1.6): a delta that borrowed them would fail at the site, so they are always carried.
 */
export function siteKeptBlobs(lock: Lock): Set<string> {
  const kept = new Set<string>()
  for (const image of Object.values(lock.images))
    for (const d of [image.digest, image.platformManifest.digest, ...image.blobs.map((b) => b.digest)]) kept.add(d)
  return kept
}

/** The artifacts whose digest is new to some base (`--delta-mode artifacts`): added or changed, by kind and reference. */
export function changedArtifactKeys(target: BundleContent, bases: BundleContent[]): Set<string> {
  const keys = new Set<string>()
  for (const [key, a] of target.artifacts)
    if (bases.some((b) => b.artifacts.get(key)?.digest !== a.digest)) keys.add(key)
  return keys
}

export function sideOf(content: {
  name: string
  formatVersion: number
  identity: string
  bundleJsonSha256: string
}): DeltaSide {
  return {
    name: content.name,
    formatVersion: content.formatVersion,
    identity: content.identity,
    bundleJsonSha256: content.bundleJsonSha256,
  }
}

export function serializeDelta(delta: DeltaManifest): Buffer {
  return Buffer.from(canonicalJson(delta))
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

function sideProblem(side: unknown, what: string): string | undefined {
  if (!isObject(side)) return `${what} is missing`
  for (const f of ['name', 'identity', 'bundleJsonSha256'] as const)
    if (typeof side[f] !== 'string') return `${what}.${f} is missing or not a string`
  if (!isDigest(side.identity as string) || !isDigest(side.bundleJsonSha256 as string))
    return `${what} names an identity or bundle.json digest that is not a sha256 digest`
  if (typeof side.formatVersion !== 'number') return `${what}.formatVersion is missing`
  return undefined
}

/** delta.json's bytes as a DeltaManifest, or what is wrong with them (shape only; see deltaProblems for the rest). */
export function parseDeltaJson(bytes: Buffer): DeltaManifest | string {
  let d: unknown
  try {
    d = JSON.parse(bytes.toString('utf8'))
  } catch {
    return `${DELTA_ENTRY} is not valid JSON`
  }
  if (!isObject(d) || d.kind !== DELTA_KIND) return `${DELTA_ENTRY} does not say "kind": "${DELTA_KIND}"`
  if (d.deltaVersion !== DELTA_VERSION)
    return `${DELTA_ENTRY} has deltaVersion ${JSON.stringify(d.deltaVersion)}; this airpack reads version ${DELTA_VERSION}`
  const target = sideProblem(d.target, 'target')
  if (target) return `${DELTA_ENTRY}: ${target}`
  if (!Array.isArray(d.bases) || d.bases.length === 0) return `${DELTA_ENTRY} names no base`
  for (const [i, b] of d.bases.entries()) {
    const problem = sideProblem(b, `bases[${i}]`)
    if (problem) return `${DELTA_ENTRY}: ${problem}`
  }
  if (!Array.isArray(d.borrowed) || !Array.isArray(d.removed) || !isObject(d.carried))
    return `${DELTA_ENTRY} lacks its borrowed, removed or carried lists`
  for (const b of d.borrowed as unknown[])
    if (!isObject(b) || typeof b.digest !== 'string' || !isDigest(b.digest) || !Number.isSafeInteger(b.size))
      return `${DELTA_ENTRY} has a malformed borrowed blob ${JSON.stringify(b)?.slice(0, 200)}`
  for (const r of d.removed as unknown[])
    if (!isObject(r) || typeof r.kind !== 'string' || typeof r.reference !== 'string' || typeof r.digest !== 'string')
      return `${DELTA_ENTRY} has a malformed removed artifact ${JSON.stringify(r)?.slice(0, 200)}`
  return d as unknown as DeltaManifest
}

/**
 * What ties delta.json to the target's bundle.json, checked before any blob is read: the same bundle.json (by
 * sha256), the identity format 2 defines by it, and every borrowed blob a blob of the target with the same size,
 * once. Returns the problems and the borrowed entries as bundle.json lists them (path → size, sha256).
 */
export function deltaProblems(
  delta: DeltaManifest,
  manifest: BundleManifest,
  bundleJson: Buffer,
): {problems: string[]; absent: Map<string, {size: number; sha256: string}>} {
  const problems: string[] = []
  const actual = sha256Digest(bundleJson)
  if (actual !== delta.target.bundleJsonSha256)
    problems.push(
      `${BUNDLE_JSON} hashes to ${actual}, but ${DELTA_ENTRY} says the target's is ${delta.target.bundleJsonSha256}`,
    )
  if (manifest.name !== delta.target.name)
    problems.push(`${DELTA_ENTRY} names target ${delta.target.name}, ${BUNDLE_JSON} names ${manifest.name}`)
  if (manifest.formatVersion === SEEKABLE_FORMAT_VERSION && delta.target.identity !== actual)
    problems.push(
      `${DELTA_ENTRY} gives target identity ${delta.target.identity}, but a format 2 bundle's identity is its ${BUNDLE_JSON}'s sha256 ${actual}`,
    )
  const listed = new Map(manifest.entries.map((e) => [e.path, e]))
  const absent = new Map<string, {size: number; sha256: string}>()
  let previous = ''
  for (const b of delta.borrowed) {
    const p = `${BLOBS_DIR}${b.digest.slice('sha256:'.length)}`
    const entry = listed.get(p)
    if (b.digest <= previous) problems.push(`${DELTA_ENTRY} lists borrowed blobs out of order or twice (${b.digest})`)
    previous = b.digest
    if (!entry) problems.push(`${DELTA_ENTRY} borrows ${b.digest}, which the target's ${BUNDLE_JSON} does not list`)
    else if (entry.size !== b.size)
      problems.push(`${DELTA_ENTRY} borrows ${b.digest} as ${b.size} bytes, ${BUNDLE_JSON} says ${entry.size}`)
    else absent.set(p, {size: entry.size, sha256: entry.sha256})
  }
  return {problems, absent}
}
