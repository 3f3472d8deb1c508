import {readBundle} from '../bundle/reader.js'
import {BUNDLE_JSON, SEEKABLE_FORMAT_VERSION, type BundleManifest} from '../bundle/format.js'
import {signDocument} from '../bundle/sign.js'
import {frameModeFor} from '../bundle/framing.js'
import {writeBundle, type PendingBundle, type WriteBundleOptions} from '../bundle/writer.js'
import {UsageError} from '../errors.js'
import type {Lock} from '../lock/types.js'
import type {Platform} from '../oci/descriptor.js'
import {formatPlatform, samePlatform} from '../oci/platform.js'
import {canonicalJson} from '../util/canonical-json.js'
import {sha256Digest} from '../util/digest.js'
import {artifactKey, contentOf, loadBundleContent, type BundleContent} from './content.js'
import {
  changedArtifactKeys,
  DELTA_ENTRY,
  DELTA_KIND,
  DELTA_SIG,
  DELTA_VERSION,
  deltaFileStem,
  planDelta,
  serializeDelta,
  siteKeptBlobs,
  sideOf,
  type DeltaManifest,
} from './format.js'

// `bundle build … --delta-from BASE` (PRODUCT.md §11): after the whole bundle N+1 is written (its identity is then
// known, and every blob is in the cache), the same writer writes NAME.delta.tar.zst from the same plan: delta.json
// first, then bundle.json and the layout byte for byte, and only the blobs no base holds. `--delta-mode artifacts`
// writes instead an ordinary bundle of only the artifacts whose digest changed.

export type DeltaMode = 'thin' | 'artifacts'

/** A base as the delta names it: its content and its identity, whatever form it was given in. */
export type DeltaBase = BundleContent & {identity: string}

/**
 * Loads every --delta-from BASE (bundle, first part, parts file or inventory). Only bundle.json is read, except
 * for a format 1 bundle file, whose identity (the sha256 of its tar) takes one pass over it.
 */
export async function loadDeltaBases(inputs: string[], platform: Platform): Promise<DeltaBase[]> {
  const bases: DeltaBase[] = []
  for (const input of inputs) {
    const content = await loadBundleContent(input)
    if (!samePlatform(content.platform, platform))
      throw new UsageError(
        'DELTA_BASE_PLATFORM',
        `--delta-from ${input}: bundle ${content.name} is for ${formatPlatform(content.platform)}, this build for ${formatPlatform(platform)}`,
        {
          hint: 'A delta applies to a base of the same platform: pass a base built with the same --arch.',
          details: {base: input},
        },
      )
    bases.push({...content, identity: await identityOf(content)})
  }
  return bases
}

/** A bundle's identity: from its inventory, from bundle.json (format 2), or by hashing its tar (format 1). */
export async function identityOf(content: BundleContent): Promise<string> {
  if (content.identity) return content.identity
  if (content.formatVersion === SEEKABLE_FORMAT_VERSION) return content.bundleJsonSha256
  return (await readBundle(content.input, {mode: 'inspect'})).identity
}

export interface DeltaSummary {
  mode: DeltaMode
  files: string[]
  /** thin: sha256 of airpack/delta.json (it pins everything else); artifacts: the bundle's own identity. */
  identity: string
  compressedBytes: number
  bases: {name: string; identity: string; input: string}[]
  carried: {blobs: number; bytes: number}
  borrowed: {blobs: number; bytes: number}
  removed: {kind: string; reference: string; digest: string}[]
  /** artifacts mode: the artifacts the bundle holds (changed or added, and the new cluster definition). */
  artifacts?: string[]
}

/** The whole bundle's content as the delta tools compare it. */
function targetContent(whole: PendingBundle, options: WriteBundleOptions): BundleContent {
  const bundleJson = canonicalJson(whole.manifest)
  return contentOf(whole.manifest, {
    input: `${options.name}.tar.zst`,
    from: 'bundle',
    identity: whole.identity,
    bundleJsonSha256: sha256Digest(bundleJson),
    bundleJsonSize: Buffer.byteLength(bundleJson),
  })
}

function deltaManifestOf(
  whole: PendingBundle,
  options: WriteBundleOptions,
  bases: DeltaBase[],
  plan: ReturnType<typeof planDelta>,
  entries: readonly {digest?: string; mediaType?: string}[],
): DeltaManifest {
  const {detachedSignature} = whole
  const rawFrames =
    whole.manifest.formatVersion === SEEKABLE_FORMAT_VERSION
      ? entries.filter((e) => e.digest && frameModeFor(e.mediaType) === 'raw').map((e) => e.digest!)
      : undefined
  const bundleJsonSha256 = sha256Digest(canonicalJson(whole.manifest))
  const key = options.signingKey
  return {
    kind: DELTA_KIND,
    deltaVersion: DELTA_VERSION,
    target: {
      ...sideOf({...whole.manifest, identity: whole.identity, bundleJsonSha256}),
      file: `${options.name}.tar.zst`,
      ...(whole.compressedSha256
        ? {
            compressed: {
              size: whole.compressedSize,
              sha256: whole.compressedSha256,
              ...(detachedSignature ? {detachedSignature: detachedSignature.toString('base64')} : {}),
            },
          }
        : {}),
      ...(rawFrames ? {rawFrames} : {}),
    },
    bases: bases.map((b) => sideOf(b)),
    carried: plan.carried,
    borrowed: plan.borrowed,
    removed: plan.removed,
    ...(key
      ? {signature: {algorithm: key.algorithm, publicKeyFingerprint: key.publicKeyFingerprint, entry: DELTA_SIG}}
      : {}),
  }
}

/**
 * Writes NAME.delta.tar.zst (not yet published: the caller commits it with the whole bundle). `options` are the
 * ones the whole bundle was written with (same plan, so bundle.json and the layout are byte for byte the same);
 * every blob is in the cache by now.
 */
export async function writeDelta(
  options: WriteBundleOptions,
  whole: PendingBundle,
  bases: DeltaBase[],
  mode: DeltaMode,
): Promise<{pending: PendingBundle; summary: DeltaSummary}> {
  const fileStem = deltaFileStem(options.name)
  const target = targetContent(whole, options)
  const kept = siteKeptBlobs(options.lock)
  const plan = planDelta(target, bases, (digest) => kept.has(digest))
  const baseRows = bases.map((b) => ({name: b.name, identity: b.identity, input: b.input}))
  const borrowed = {blobs: plan.borrowed.length, bytes: plan.borrowed.reduce((s, b) => s + b.size, 0)}
  const write = {...options, blobReady: undefined}
  if (mode === 'artifacts') return writeArtifactsBundle(write, target, bases, plan.removed, baseRows)
  let deltaJson: Buffer = Buffer.alloc(0)
  const pending = await writeBundle({
    ...write,
    delta: {
      fileStem,
      carries: plan.carries,
      leading(manifest: BundleManifest, bundleJson: Buffer, entries) {
        const delta = deltaManifestOf(whole, options, bases, plan, entries)
        deltaJson = serializeDelta(delta)
        // The same inputs plan the same bundle.json: anything else is a bug, and the delta would not fit N+1.
        if (sha256Digest(bundleJson) !== delta.target.bundleJsonSha256)
          throw new Error(`the delta's ${BUNDLE_JSON} differs from the whole bundle's (${manifest.name})`)
        const sig = options.signingKey ? [{path: DELTA_SIG, data: signDocument(options.signingKey, deltaJson)}] : []
        return [{path: DELTA_ENTRY, data: deltaJson}, ...sig]
      },
    },
  })
  return {
    pending,
    summary: {
      mode,
      files: pending.files,
      identity: sha256Digest(deltaJson),
      compressedBytes: pending.compressedSize,
      bases: baseRows,
      carried: plan.carried,
      borrowed,
      removed: plan.removed,
    },
  }
}

/** `--delta-mode artifacts`: an ordinary, self-contained bundle of the artifacts whose digests changed or were added. */
async function writeArtifactsBundle(
  write: WriteBundleOptions,
  target: ReturnType<typeof targetContent>,
  bases: DeltaBase[],
  removed: DeltaSummary['removed'],
  baseRows: DeltaSummary['bases'],
): Promise<{pending: PendingBundle; summary: DeltaSummary}> {
  const keep = changedArtifactKeys(target, bases)
  const lock = lockOf(write.lock, keep)
  const pending = await writeBundle({...write, lock, delta: {fileStem: deltaFileStem(write.name)}})
  const artifacts = pending.manifest.artifacts.map((a) => artifactKey(a))
  return {
    pending,
    summary: {
      mode: 'artifacts',
      files: pending.files,
      identity: pending.identity,
      compressedBytes: pending.compressedSize,
      bases: baseRows,
      carried: {blobs: pending.manifest.totals.blobs, bytes: pending.manifest.totals.blobBytes},
      borrowed: {blobs: 0, bytes: 0},
      removed,
      artifacts,
    },
  }
}

/** The lock with only the images and charts `keep` names (by kind and reference). */
function lockOf(lock: Lock, keep: Set<string>): Lock {
  const pick = <T extends {reference: string}>(kind: string, entries: Record<string, T>) =>
    Object.fromEntries(Object.entries(entries).filter(([, e]) => keep.has(artifactKey({kind, reference: e.reference}))))
  return {...lock, images: pick('image', lock.images), charts: pick('chart', lock.charts)}
}
