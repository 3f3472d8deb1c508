import {BLOBS_DIR} from '../bundle/format.js'
import {artifactRows, readBundle, type BundleReport, type SignatureStatus} from '../bundle/reader.js'
import {verifyDocument, type VerifyingKey} from '../bundle/sign.js'
import {IntegrityError, ResolveError} from '../errors.js'
import type {Platform} from '../oci/descriptor.js'
import {loadBundleContent} from './content.js'
import {DELTA_ENTRY, DELTA_SIG, type BorrowedBlob, type DeltaManifest, type RemovedArtifact} from './format.js'
import type {DeltaHead} from './head.js'
import {isInventoryPath} from './inventory.js'
import {rebuildTarget} from './patch.js'
import {missingAtSite, readSiteContent} from './site-content.js'

// `bundle verify DELTA` and `bundle inspect DELTA` (PRODUCT.md §11). Alone, a delta is checked like a bundle (the
// same one-pass reader, every entry against the target's bundle.json), except that the blobs delta.json borrows
// are absent: carried ∪ borrowed must be the target's entries exactly, never both. --base proves the base and that
// base + delta rebuild the target's identity; --site-content lists the borrowed blobs a site's containerd lacks.

export interface DeltaReport {
  kind: 'delta'
  delta: string
  /** The delta's identity: sha256 of airpack/delta.json. */
  identity: string
  name: string
  formatVersion: number
  platform: Platform
  target: DeltaManifest['target']
  bases: DeltaManifest['bases']
  carried: {blobs: number; bytes: number}
  borrowed: {blobs: number; bytes: number}
  removed: RemovedArtifact[]
  /** The target's artifacts (all of them: a delta makes the whole N+1 with its base). */
  artifacts: BundleReport['artifacts']
  totals: {compressedBytes: number; parts: number; tarBytes?: number}
  signature: {
    signed: boolean
    algorithm?: string
    publicKeyFingerprint?: string
    delta: SignatureStatus
    bundleJson: SignatureStatus
    detached: SignatureStatus
  }
  /** With --base: the base proven, and the target identity rebuilt from it (or, from an inventory, its blob set). */
  base?: {input: string; name: string; identity: string; rebuilt: boolean; targetIdentity?: string}
  /** With --site-content: the borrowed blobs the site lacks (none, or the command fails). */
  siteContent?: {file: string; borrowed: number; missing: BorrowedBlob[]}
}

function reportOf(head: DeltaHead, bundle?: BundleReport): DeltaReport {
  const {delta, manifest} = head
  const sum = (blobs: readonly {size: number}[]) => blobs.reduce((s, b) => s + b.size, 0)
  return {
    kind: 'delta',
    delta: head.input,
    identity: head.identity,
    name: manifest.name,
    formatVersion: manifest.formatVersion,
    platform: manifest.platform,
    target: delta.target,
    bases: delta.bases,
    carried: delta.carried,
    borrowed: {blobs: delta.borrowed.length, bytes: sum(delta.borrowed)},
    removed: delta.removed,
    artifacts: artifactRows(manifest),
    totals: {
      compressedBytes: head.source.size,
      parts: head.source.partsFile ? head.source.files.length : 1,
      ...(bundle ? {tarBytes: bundle.totals.tarBytes} : {}),
    },
    signature: {
      signed: Boolean(delta.signature),
      ...(delta.signature
        ? {algorithm: delta.signature.algorithm, publicKeyFingerprint: delta.signature.publicKeyFingerprint}
        : {}),
      delta: delta.signature ? 'not-checked' : 'absent',
      bundleJson: bundle?.signature.inner ?? (manifest.signature ? 'not-checked' : 'absent'),
      detached: bundle?.signature.detached ?? (head.source.detachedSignature ? 'not-checked' : 'absent'),
    },
  }
}

/** What `inspect` shows of a delta: its head only (delta.json and bundle.json), never presented as a bundle. */
export function inspectDelta(head: DeltaHead): DeltaReport {
  return reportOf(head)
}

export async function verifyDelta(
  head: DeltaHead,
  options: {publicKey?: VerifyingKey; base?: string; siteContent?: string},
): Promise<DeltaReport> {
  const {delta, manifest} = head
  const problems: string[] = []
  // One pass, the bundle reader's checks: entries listed, sizes, sha256, layout, bundle.json's and the detached
  // signature; the borrowed blobs count as present (and never as carried too).
  const bundle = await readBundle(head.input, {
    mode: 'verify',
    publicKey: options.publicKey,
    leading: {
      accepts: (p, index) => (index === 0 && p === DELTA_ENTRY) || (index === 1 && p === DELTA_SIG),
      onEntry: () => {},
      absent: () => head.absent,
    },
  })
  const carried = manifest.entries.filter((e) => e.path.startsWith(BLOBS_DIR) && !head.absent.has(e.path))
  const carriedBytes = carried.reduce((s, e) => s + e.size, 0)
  if (carried.length !== delta.carried.blobs || carriedBytes !== delta.carried.bytes)
    problems.push(
      `${DELTA_ENTRY} says it carries ${delta.carried.blobs} blobs (${delta.carried.bytes} bytes), it carries ${carried.length} (${carriedBytes} bytes)`,
    )
  const report = reportOf(head, bundle)
  if (options.publicKey) {
    if (!head.deltaSig) problems.push(`the delta is not signed (no ${DELTA_SIG}), but --public-key was given`)
    else {
      report.signature.delta = verifyDocument(options.publicKey, head.deltaJson, head.deltaSig) ? 'valid' : 'invalid'
      if (report.signature.delta === 'invalid')
        problems.push(
          delta.signature?.publicKeyFingerprint !== options.publicKey.publicKeyFingerprint
            ? `the signature of ${DELTA_ENTRY} does not verify: it was made with key ${delta.signature?.publicKeyFingerprint}, not the given public key ${options.publicKey.publicKeyFingerprint}`
            : `the signature of ${DELTA_ENTRY} does not verify with the given public key (delta.json or its signature was altered)`,
        )
    }
  }
  if (problems.length > 0)
    throw new IntegrityError('DELTA_INVALID', `${head.input}: ${problems[0]}`, {
      hint: 'Do not import this delta: copy it again from the original, or rebuild it.',
      details: {delta: head.input, problems},
    })
  if (options.base) report.base = await checkBase(head, options.base)
  if (options.siteContent) report.siteContent = await checkSite(head, options.siteContent)
  return report
}

/** A base bundle rebuilds the target; an inventory can only prove the base's identity and blob set. */
async function checkBase(head: DeltaHead, base: string): Promise<NonNullable<DeltaReport['base']>> {
  if (!isInventoryPath(base)) {
    const rebuilt = await rebuildTarget(head, base)
    return {
      input: base,
      name: rebuilt.base.name,
      identity: rebuilt.base.identity,
      rebuilt: true,
      targetIdentity: rebuilt.identity,
    }
  }
  const content = await loadBundleContent(base)
  const side = head.delta.bases.find(
    (b) => b.bundleJsonSha256 === content.bundleJsonSha256 && b.identity === content.identity,
  )
  if (!side) {
    const wanted = head.delta.bases.map((b) => `${b.name} (identity ${b.identity})`).join(' or ')
    throw new IntegrityError(
      'DELTA_WRONG_BASE',
      `${base} describes bundle ${content.name} (identity ${content.identity}), but ${head.input} applies to ${wanted}`,
      {
        hint: 'Pass the inventory (or the bundle) of the base the delta was built against.',
        details: {base, delta: head.input},
      },
    )
  }
  const lacking = head.delta.borrowed.filter((b) => content.blobs.get(b.digest) !== b.size)
  if (lacking.length > 0)
    throw new IntegrityError(
      'DELTA_BASE_INCOMPLETE',
      `${base} lacks ${lacking.length} blob(s) the delta borrows, first ${lacking[0]!.digest}`,
      {details: {base, delta: head.input, missing: lacking.slice(0, 100)}},
    )
  return {input: base, name: content.name, identity: side.identity, rebuilt: false}
}

/**
 * Exit 4 (an artifact cannot be fetched: here, from the site's own store) rather than 5: the delta is intact, this
 * site lacks content it needs, and the answer is the whole bundle (or the missing base), not another copy.
 */
async function checkSite(head: DeltaHead, file: string): Promise<NonNullable<DeltaReport['siteContent']>> {
  const site = await readSiteContent(file)
  const missing = missingAtSite(head.delta.borrowed, site)
  if (missing.length > 0) {
    const bytes = missing.reduce((s, b) => s + b.size, 0)
    throw new ResolveError(
      'SITE_LACKS_CONTENT',
      `${head.input}: this site lacks ${missing.length} of the ${head.delta.borrowed.length} blob(s) the delta borrows (${bytes} bytes), first ${missing[0]!.digest}; do not import it here`,
      {
        hint: `Import the whole bundle ${head.delta.target.file} instead (or \`airpack bundle patch\` it from ${head.delta.bases.map((b) => `${b.name}.tar.zst`).join(' or ')}); the site holds content of none of the delta's bases, or it was pruned.`,
        details: {delta: head.input, siteContent: file, missing: missing.slice(0, 1000)},
      },
    )
  }
  return {file, borrowed: head.delta.borrowed.length, missing: []}
}
