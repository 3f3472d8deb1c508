import {stat} from 'node:fs/promises'
import {availableParallelism} from 'node:os'
import path from 'node:path'

import {IntegrityError} from '../errors.js'
import {sha256Hex} from '../util/digest.js'
import {hasSeekTable, SeekableReader} from '../zstd/seekable-reader.js'
import {parseBundleJson} from './bundle-json.js'
import {OverBudgetError, byteCounter, checkDeclaredSize, limitBytes, readFileBounded} from '../limits.js'
import type {Descriptor, ManifestDocument, Platform} from '../oci/descriptor.js'
import {isIndexType, isManifestType} from '../oci/media-types.js'
import {formatPlatform, samePlatform} from '../oci/platform.js'
import {
  ANNOTATION_REF_NAME,
  entryReference,
  BLOBS_DIR,
  BUNDLE_JSON,
  BUNDLE_SIG,
  INDEX_JSON,
  OCI_LAYOUT,
  OCI_LAYOUT_CONTENT,
  SEEKABLE_FORMAT_VERSION,
  type BundleManifest,
} from './format.js'
import {
  nodeEntryHash,
  PIPE_AHEAD,
  RangeHashers,
  streamHash,
  TarHashes,
  type EntryHash,
  type StreamHash,
} from './hash.js'
import {streamVerifier, verifyDocument, type StreamVerifier, type VerifyingKey} from './sign.js'
import {checkParts, openBundleSource, readCompressed, type BundleSource} from './source.js'
import {drained, TarFormatError, TarParser, type EntrySink, type TarEntryHeader} from './tar.js'
import {startDecompressor, type ZstdProcess} from './zstd.js'
import {checkCosignSignatures, type CosignResult} from '../supply/verify.js'
import {supplyChainFields} from '../supply/bundle.js'

// Reads a bundle as one stream, never extracting or joining it on disk: format 1 through a `zstd -dc` child (parts
// chained → zstd → tar parser), format 2 (a seek table at the end) through the SeekableReader, which checks the
// table and every frame on the way. `verify` checks everything PRODUCT.md §4 promises. `inspect` only needs
// bundle.json and the identity: for format 1 the sha256 of the uncompressed tar (one whole pass); for format 2
// the sha256 of bundle.json, so it decodes only bundle.json's frames (after checking every frame's header against
// the seek table, as verify does).
//
// Format 2 verify still hashes the tar on one thread in one pass, like format 1; hashing entries on both cores by
// the seek table is a later optimisation.

const MAX_PROBLEMS = 100

export type SignatureStatus = 'valid' | 'invalid' | 'absent' | 'not-checked'

export interface BundleReport {
  bundle: string
  name: string
  formatVersion: number
  platform: Platform
  /** `sha256:<hex>` of the uncompressed tar. */
  identity: string
  airpackVersion: string
  compression: BundleManifest['compression']
  profiles: BundleManifest['profiles']
  artifacts: {
    kind: string
    reference: string
    digest: string
    mediaType: string
    size: number
    contentSize: number
    platform?: Platform
    omittedPlatforms: Platform[]
    /** Supply-chain artefacts: the image content they are about, the image, the cosign tag they came from. */
    subject?: string
    image?: string
    tag?: string
    /** Images: the supply-chain artefacts carried for it. */
    supplyChain?: {kind: string; reference: string; digest: string; subject: string}[]
  }[]
  totals: {
    artifacts: number
    images: number
    charts: number
    blobs: number
    blobBytes: number
    entries: number
    tarBytes: number
    compressedBytes: number
    parts: number
  }
  signature: {
    signed: boolean
    algorithm?: string
    publicKeyFingerprint?: string
    inner: SignatureStatus
    detached: SignatureStatus
  }
  parts?: {name: string; size: number}[]
  /** With --cosign-key: the signature that vouches for each image. */
  cosign?: CosignResult
}

export interface ReadOptions {
  mode: 'verify' | 'inspect'
  publicKey?: VerifyingKey
  /** verify: every image must carry a cosign signature made with this key (PRODUCT.md §13). */
  cosignKey?: VerifyingKey
  /** Entries before bundle.json: a day-2 delta's (src/delta/read.ts). */
  leading?: LeadingEntries
}

/**
 * A delta (PRODUCT.md §11) starts with its own entries, then holds a bundle's, less the blobs it borrows from its
 * base. `accepts` names the entries allowed before bundle.json (read into memory, bounded like bundle.json, and
 * handed to `onEntry`); `absent` (asked once they were read) lists the entries bundle.json lists that the file does
 * not carry: they count as present with their listed size and sha256, and the graph walk does not descend into
 * them (their bytes are the base's to prove).
 */
export interface LeadingEntries {
  accepts(path: string, index: number): boolean
  onEntry(path: string, bytes: Buffer): void
  absent(): Map<string, {size: number; sha256: string}>
}

class Fatal extends Error {}

interface SeenEntry {
  size: number
  sha256: string
  /** Listed but carried elsewhere (a delta's borrowed blob): its size is checked, its content is not walked. */
  absent?: boolean
}

/** Why a path may not appear in a bundle, or undefined if it is a plain relative path. */
export function unsafePathReason(p: string): string | undefined {
  if (p === '') return 'an empty path'
  if (p.startsWith('/')) return 'an absolute path'
  if (/^[a-zA-Z]:/.test(p) || p.includes('\\')) return 'a Windows path'
  if (p.includes('\0')) return 'a path with a NUL byte'
  const parts = p.split('/')
  if (parts.includes('..')) return 'a path that escapes with ".."'
  if (parts.some((s) => s === '' || s === '.')) return 'a non-canonical path'
  return undefined
}

/** The bundle is refused (exit 5) with every problem found, the first in the message. */
function bundleInvalid(input: string, problems: string[]): IntegrityError {
  return new IntegrityError('BUNDLE_INVALID', `${input}: ${problems[0]}`, {
    hint:
      problems.length > 1
        ? `${problems.length} problems found. Do not upload this bundle: copy it again from the original, or rebuild it.`
        : 'Do not upload this bundle: copy it again from the original, or rebuild it.',
    details: {bundle: input, problems},
  })
}

export async function readBundle(input: string, options: ReadOptions): Promise<BundleReport> {
  const verify = options.mode === 'verify'
  const source = await openBundleSource(input)
  const problems: string[] = []

  // 1. Parts first: a bad or missing part is named before anything is decompressed.
  if (verify) {
    for (const p of (await checkParts(source)).slice(0, MAX_PROBLEMS)) problems.push(p)
    if (problems.length > 0) throw bundleInvalid(input, problems)
  }

  // 2. Format 2 ends with a seek table and is read through the seekable reader, which checks the table and every
  // frame's header against it as it opens: inspect too, which decodes only bundle.json's frames but reports the
  // table's sizes, so a tampered table is exit 5 there as well (a few bytes read per frame, nothing decoded). Parts
  // that cannot be read leave it to the format 1 path to say so.
  const paths = source.files.map((f) => f.path)
  const seekable = (await hasSeekTable(paths).catch(() => false))
    ? await SeekableReader.open(paths, {name: input})
    : undefined

  // 3. One pass over the stream (inspect of format 2: over bundle.json only).
  let state: StreamState
  try {
    state =
      seekable && !verify
        ? await readSeekableInventory(source, seekable)
        : await streamBundle(source, {
            verify,
            publicKey: options.publicKey,
            cosignKey: options.cosignKey,
            problems,
            seekable,
            leading: options.leading,
          })
  } finally {
    await seekable?.close()
  }
  if (verify && problems.length > 0) throw bundleInvalid(input, problems)
  return reportOf(source, state)
}

/** bundle.json's artifacts as verify and inspect report them (also a delta's, src/delta/read.ts). */
export function artifactRows(m: BundleManifest): BundleReport['artifacts'] {
  return (m.artifacts ?? []).map((a) => ({
    kind: a.kind,
    reference: a.reference,
    digest: a.digest,
    mediaType: a.mediaType,
    size: a.size,
    contentSize: a.contentSize,
    ...(a.platform ? {platform: a.platform} : {}),
    omittedPlatforms: a.omittedPlatforms ?? [],
    ...supplyChainFields(a, m.artifacts ?? []),
  }))
}

/** What verify and inspect print: bundle.json's summary, the identity, sizes, parts and signature states. */
function reportOf(source: BundleSource, state: StreamState): BundleReport {
  const m = state.manifest
  return {
    bundle: source.input,
    name: m.name,
    formatVersion: m.formatVersion,
    platform: m.platform,
    identity: `sha256:${state.identity}`,
    airpackVersion: m.airpack?.version,
    compression: m.compression,
    profiles: m.profiles ?? [],
    artifacts: artifactRows(m),
    totals: {
      artifacts: m.artifacts?.length ?? 0,
      images: m.artifacts?.filter((a) => a.kind === 'image').length ?? 0,
      charts: m.artifacts?.filter((a) => a.kind === 'chart').length ?? 0,
      blobs: m.totals?.blobs ?? 0,
      blobBytes: m.totals?.blobBytes ?? 0,
      entries: (m.entries?.length ?? 0) + 1 + (m.signature ? 1 : 0),
      tarBytes: state.tarBytes,
      compressedBytes: source.size,
      parts: source.partsFile ? source.files.length : 1,
    },
    signature: {
      signed: Boolean(m.signature),
      ...(m.signature
        ? {algorithm: m.signature.algorithm, publicKeyFingerprint: m.signature.publicKeyFingerprint}
        : {}),
      inner: state.innerSignature,
      detached: state.detachedSignature,
    },
    ...(source.partsFile ? {parts: source.files.map((f) => ({name: f.name, size: f.size}))} : {}),
    ...(state.cosign ? {cosign: state.cosign} : {}),
  }
}

interface StreamState {
  manifest: BundleManifest
  identity: string
  tarBytes: number
  entryCount: number
  innerSignature: SignatureStatus
  detachedSignature: SignatureStatus
  cosign?: CosignResult
}

type Problem = (message: string) => void

/**
 * bundle.json's bytes as the manifest, or Fatal naming what is wrong. `seekable`: whether the file has a seek
 * table, which must agree with the format bundle.json declares.
 */
function parseManifest(bytes: Buffer, seekable: boolean): BundleManifest {
  const manifest = parseBundleJson(bytes)
  if (typeof manifest === 'string') throw new Fatal(manifest)
  const version = manifest.formatVersion
  if (seekable && version !== SEEKABLE_FORMAT_VERSION)
    throw new Fatal(`the file ends with a seek table (format 2), but ${BUNDLE_JSON} says formatVersion ${version}`)
  if (!seekable && version === SEEKABLE_FORMAT_VERSION)
    throw new Fatal(
      `${BUNDLE_JSON} says formatVersion 2, but the file does not end with a seek table (it was recompressed or truncated)`,
    )
  return manifest
}

function unreadable(source: BundleSource, problems: string[]): IntegrityError {
  return new IntegrityError('BUNDLE_INVALID', `${source.input}: ${problems[0] ?? 'the bundle cannot be read'}`, {
    hint: 'Do not upload this bundle: copy it again from the original, or rebuild it.',
    details: {bundle: source.input, problems},
  })
}

/** Inspect of a format 2 bundle: the tar's first entry (bundle.json) from the frames that hold it, nothing else. */
async function readSeekableInventory(source: BundleSource, seekable: SeekableReader): Promise<StreamState> {
  let bytes: Buffer | undefined
  const parser = new TarParser((h) => {
    if (h.path !== BUNDLE_JSON || h.type !== 'file')
      throw new Fatal(
        `the first entry is ${JSON.stringify(h.path)}, not ${BUNDLE_JSON}: this is not an airpack bundle, or it was repacked`,
      )
    fatalOnOverBudget(() => checkDeclaredSize('bundleJson', h.size, BUNDLE_JSON))
    const chunks: Buffer[] = []
    return {data: (c) => void chunks.push(Buffer.from(c)), end: () => void (bytes = Buffer.concat(chunks))}
  })
  try {
    // The generator decodes a frame only when asked for it: leaving the loop leaves the content unread.
    for await (const chunk of seekable.read(0, seekable.size)) {
      parser.push(chunk)
      if (bytes) break
    }
    if (!bytes) throw new Fatal(`the stream holds no ${BUNDLE_JSON}`)
    const manifest = parseManifest(bytes, true)
    return {
      manifest,
      identity: sha256Hex(bytes),
      tarBytes: seekable.size,
      entryCount: 1,
      innerSignature: manifest.signature ? 'not-checked' : 'absent',
      detachedSignature: source.detachedSignature ? 'not-checked' : 'absent',
    }
  } catch (error) {
    if (error instanceof Fatal || error instanceof TarFormatError) throw unreadable(source, [error.message])
    throw error
  }
}

/** Over a budget of src/limits.ts: the bundle is refused at once (exit 5), naming the entry and the limit. */
function fatalOnOverBudget<T>(fn: () => T): T {
  try {
    return fn()
  } catch (error) {
    throw new Fatal((error as Error).message)
  }
}

/**
 * The detached signature, read only when a key will check it (at most what a signature can be); without a key a
 * huge one is still refused.
 */
async function readDetachedSignature(
  source: BundleSource,
  publicKey: VerifyingKey | undefined,
): Promise<Buffer | undefined> {
  if (!source.detachedSignature) return undefined
  const subject = `the detached signature ${path.basename(source.detachedSignature)}`
  try {
    if (publicKey) return await readFileBounded(source.detachedSignature, 'signature', subject)
    const info = await stat(source.detachedSignature)
    if (!info.isFile()) throw Object.assign(new Error('not a regular file'), {code: 'ENOTREG'})
    checkDeclaredSize('signature', info.size, subject)
    return undefined
  } catch (error) {
    if (error instanceof OverBudgetError) throw overBudget(source, error)
    const code = (error as NodeJS.ErrnoException).code
    const why = code === 'ENOTREG' || code === 'EISDIR' ? 'it is not a regular file' : (error as Error).message
    throw new IntegrityError('BUNDLE_INVALID', `${source.input}: cannot read ${subject}: ${why}`, {
      hint: 'A detached signature is a small regular file beside the bundle; copy it again from the original.',
      details: {bundle: source.input, file: source.detachedSignature},
    })
  }
}

/**
 * What one pass over the tar learns: bundle.json first, then every entry checked against it as it streams by
 * (listed, right size, right sha256, a safe regular file, once), JSON documents kept for the layout check.
 */
class TarScan {
  /**
   * A large entry's hash computed elsewhere (format 2: from its raw frames on a worker thread), or undefined to
   * hash it from the bytes the parser passes. The entry's sink then asks the parser to skip its body.
   */
  delegate: ((h: TarEntryHeader) => Promise<string> | undefined) | undefined
  /** Entries whose digest is still being computed. */
  readonly finishing: Promise<void>[] = []
  manifest: BundleManifest | undefined
  listed = new Map<string, {size: number; sha256: string}>()
  readonly seen = new Map<string, SeenEntry>()
  readonly kept = new Map<string, Buffer>()
  bundleJsonBytes: Buffer | undefined
  innerSig: Buffer | undefined
  entryCount = 0
  private leadingCount = 0
  private readonly paths = new Set<string>()
  private readonly countKept = byteCounter('bundleJsonTotal', 'the sum of the JSON documents kept from this bundle')

  constructor(
    private readonly verify: boolean,
    private readonly problem: Problem,
    /** The file ends with a seek table (format 2): bundle.json must say so. */
    private readonly seekable: boolean,
    /** A hash for one entry's bytes (format 1: on the worker that also hashes the whole tar). */
    private readonly entryHash: () => EntryHash,
    private readonly leading?: LeadingEntries,
  ) {}

  readonly onEntry = (h: TarEntryHeader): EntrySink | undefined => {
    if (this.verify) this.checkOwner(h)
    if (!this.bundleJsonBytes && h.type === 'file' && this.leading?.accepts(h.path, this.entryCount)) {
      this.entryCount++
      this.leadingCount++
      return this.leadingSink(h)
    }
    const index = this.entryCount++ - this.leadingCount
    if (index === 0) return this.bundleJsonSink(h)
    const isSig = h.path === BUNDLE_SIG && index === 1
    const declared = this.checkListed(h, isSig)
    if (!this.verify || !this.acceptable(h)) return undefined
    this.paths.add(h.path)
    return this.entrySink(h, declared, isSig)
  }

  private leadingSink(h: TarEntryHeader): EntrySink {
    fatalOnOverBudget(() => checkDeclaredSize('bundleJson', h.size, h.path))
    const chunks: Buffer[] = []
    return {
      data: (c) => void chunks.push(Buffer.from(c)),
      end: () => this.leading!.onEntry(h.path, Buffer.concat(chunks)),
    }
  }

  private bundleJsonSink(h: TarEntryHeader): EntrySink {
    if (h.path !== BUNDLE_JSON || h.type !== 'file')
      throw new Fatal(
        `the first entry is ${JSON.stringify(h.path)}, not ${BUNDLE_JSON}: this is not an airpack bundle, or it was repacked`,
      )
    fatalOnOverBudget(() => checkDeclaredSize('bundleJson', h.size, BUNDLE_JSON))
    const chunks: Buffer[] = []
    return {
      data: (c) => {
        chunks.push(Buffer.from(c))
      },
      end: () => {
        this.bundleJsonBytes = Buffer.concat(chunks)
        const manifest = parseManifest(this.bundleJsonBytes, this.seekable)
        this.manifest = manifest
        this.listed = new Map(manifest.entries.map((e) => [e.path, {size: e.size, sha256: e.sha256}]))
      },
    }
  }

  /**
   * Both verify and inspect stop at the header of an entry bundle.json does not list, or lists with another size:
   * the bytes that follow are covered by no digest, and reading them (a 16 GiB bomb) would be for nothing. inspect
   * reads no entry's content beyond bundle.json; it still hashes the stream for the identity it prints.
   */
  private checkListed(h: TarEntryHeader, isSig: boolean): {size: number; sha256: string} | undefined {
    const declared = this.listed.get(h.path)
    if (!declared && !isSig && h.type === 'file' && !unsafePathReason(h.path) && h.path !== BUNDLE_JSON) {
      throw new Fatal(`entry ${h.path} is not listed in ${BUNDLE_JSON} (an extra file was added)`)
    }
    if (declared && h.type === 'file' && declared.size !== h.size)
      throw new Fatal(`entry ${h.path} is ${h.size} bytes, ${BUNDLE_JSON} says ${declared.size}`)
    return declared
  }

  /** A safe path, a regular file, seen once; otherwise a problem, and the entry's bytes are skipped. */
  /**
   * Mode 0644 and owner 0:0, as airpack writes every entry. No digest covers a header, and a format 2 identity is
   * bundle.json's sha256, so a header altered to setuid or to another owner (its checksum fixed) would otherwise keep
   * the identity and pass, and `tar -x` as root would restore it. Owner names may be empty (airpack) or root (a
   * copy repacked by stock tar as root): tar restores by name before number.
   */
  private checkOwner(h: TarEntryHeader): void {
    if (h.type !== 'file') return
    const rootName = (n: string) => n === '' || n === 'root'
    if (h.mode === 0o644 && h.uid === 0 && h.gid === 0 && rootName(h.uname) && rootName(h.gname)) return
    const names = h.uname || h.gname ? ` (${JSON.stringify(h.uname)}:${JSON.stringify(h.gname)})` : ''
    this.problem(
      `entry ${h.path} is recorded with mode ${h.mode.toString(8).padStart(4, '0')} and owner ${h.uid}:${h.gid}${names}, not 0644 and root as airpack writes every entry: its tar header was altered`,
    )
  }

  private acceptable(h: TarEntryHeader): boolean {
    const reason = unsafePathReason(h.path)
    if (reason) {
      this.problem(`entry ${JSON.stringify(h.path)} has ${reason}; a bundle must not write outside its directory`)
      return false
    }
    if (h.type !== 'file') {
      const what =
        h.type === 'symlink' || h.type === 'hardlink'
          ? `a ${h.type} to ${JSON.stringify(h.linkName)} (links are not allowed)`
          : `a ${h.type} (type ${JSON.stringify(h.typeFlag)}), not a regular file`
      this.problem(`entry ${h.path} is ${what}`)
      return false
    }
    if (this.paths.has(h.path) || h.path === BUNDLE_JSON) {
      this.problem(`entry ${h.path} appears twice`)
      return false
    }
    return true
  }

  private entrySink(
    h: TarEntryHeader,
    expected: {size: number; sha256: string} | undefined,
    isSig: boolean,
  ): EntrySink {
    // Blobs within the document budget that look like JSON are kept in memory to check manifests' references;
    // index.json and oci-layout always are, so they must fit it too. All kept documents share one budget.
    const isDocument = h.path === INDEX_JSON || h.path === OCI_LAYOUT || isSig
    if (isDocument)
      fatalOnOverBudget(() => checkDeclaredSize(isSig ? 'signature' : 'bundleJsonEntry', h.size, `entry ${h.path}`))
    const keep = isDocument || (h.path.startsWith(BLOBS_DIR) && h.size <= limitBytes('bundleJsonEntry'))
    const elsewhere = keep ? undefined : this.delegate?.(h)
    if (elsewhere) return this.delegatedSink(h, expected, elsewhere)
    const hash = this.entryHash()
    let chunks: Buffer[] | undefined = keep ? [] : undefined
    return {
      data: (c) => {
        hash.write(c)
        if (!chunks) return
        if (chunks.length === 0 && c.length > 0 && c[0] !== 0x7b /* { */ && h.path.startsWith(BLOBS_DIR))
          chunks = undefined
        else {
          fatalOnOverBudget(() => this.countKept(c))
          chunks.push(Buffer.from(c))
        }
      },
      end: () => {
        if (chunks) {
          const body = Buffer.concat(chunks)
          if (isSig) this.innerSig = body
          else this.kept.set(h.path, body)
        }
        const done = hash.digest().then((sha256) => this.checkDigest(h, expected, sha256))
        done.catch(() => {}) // awaited with the others; never an unhandled rejection meanwhile
        this.finishing.push(done)
      },
    }
  }

  /** An entry hashed elsewhere: its body is skipped here, its digest checked when it comes. */
  private delegatedSink(
    h: TarEntryHeader,
    expected: {size: number; sha256: string} | undefined,
    sha256: Promise<string>,
  ): EntrySink {
    const done = sha256.then(
      (hex) => this.checkDigest(h, expected, hex),
      (error: Error) => {
        // Counted as seen (its problem is this one, not a missing entry).
        this.seen.set(h.path, {size: h.size, sha256: ''})
        this.problem(`entry ${h.path} is corrupt: ${error.message}`)
      },
    )
    this.finishing.push(done)
    return {skip: true, data: () => {}, end: () => {}}
  }

  private checkDigest(h: TarEntryHeader, expected: {sha256: string} | undefined, sha256: string): void {
    this.seen.set(h.path, {size: h.size, sha256})
    if (expected && expected.sha256 !== sha256)
      this.problem(`entry ${h.path} is corrupt: its sha256 is ${sha256}, ${BUNDLE_JSON} says ${expected.sha256}`)
    if (!h.path.startsWith(BLOBS_DIR)) return
    const hex = h.path.slice(BLOBS_DIR.length)
    if (!/^[a-f0-9]{64}$/.test(hex)) this.problem(`entry ${h.path} is not named by a sha256 digest`)
    else if (hex !== sha256)
      this.problem(`blob ${h.path} does not match its digest (content hashes to sha256:${sha256})`)
  }
}

/** Taps on the compressed bytes: the parts file's whole-file sha256 and the detached signature's verifier. */
interface CompressedTaps {
  hash?: StreamHash
  verifier?: StreamVerifier
}

/**
 * The bundle's tar into the scan, hashed on the way; returns the sha256 (hex) of the tar. Format 1: the compressed
 * bytes through a zstd child. Format 2: the seekable reader decodes the frames in place, and the compressed bytes
 * are read only when the parts' checksum or the detached signature needs them. A failure stops everything and
 * becomes BUNDLE_INVALID with the problem that explains it (zstd's own message when the stream is corrupt, the
 * frame and its offset for a format 2 frame that does not decode as the seek table says).
 */
async function pumpTar(
  source: BundleSource,
  scan: TarScan,
  hashes: TarHashes,
  taps: CompressedTaps,
  problems: string[],
  problem: Problem,
): Promise<{tarHex: string; tarBytes: number}> {
  const parser = new TarParser(scan.onEntry)
  const zstd = await startDecompressor()
  const waiting: Promise<void>[] = [] // hash writes waiting on the worker
  const stop = {stopped: false}
  let tarBytes = 0
  const feed = feedCompressed(source, taps, zstd, stop)
  try {
    for await (const chunk of zstd.stdout! as AsyncIterable<Buffer>) {
      const w = hashes.chunk(chunk)
      tarBytes += chunk.length
      parser.push(chunk)
      if (w) waiting.push(w)
      if (waiting.length > 0) await Promise.all(waiting.splice(0))
    }
    await feed
    await zstd.done
    parser.end()
    await Promise.all(scan.finishing)
    return {tarHex: await hashes.digest(), tarBytes}
  } catch (error) {
    stop.stopped = true
    const stopped = zstd.stop()
    hashes.destroy()
    taps.hash?.destroy()
    await Promise.allSettled([...waiting, ...scan.finishing])
    await feed.catch(() => {})
    const zstdError = await stopped
    if (error instanceof Fatal || error instanceof TarFormatError) problem(error.message)
    else if (zstdError)
      problem(
        `the compressed stream is corrupt or cut short: ${String((zstdError as Error).message).replace(/^zstd decompression failed: /, '')}`,
      )
    else throw error
    throw unreadable(source, problems)
  }
}

/**
 * The compressed bytes, read once, into the taps (the parts file's checksum, the detached signature) and, for
 * format 1, into the zstd child. Format 2 reads them only when a tap needs them.
 */
async function feedCompressed(
  source: BundleSource,
  taps: CompressedTaps,
  zstd: ZstdProcess | undefined,
  stop: {stopped: boolean},
): Promise<void> {
  if (!zstd && !taps.hash && !taps.verifier) return
  for await (const chunk of readCompressed(source)) {
    if (stop.stopped) break
    const w = taps.hash?.write(chunk)
    if (w) await w
    taps.verifier?.update(chunk)
    if (!zstd) continue
    zstd.stdin.write(chunk)
    if (zstd.stdin.writableLength > PIPE_AHEAD) {
      if (zstd.stdin.destroyed) break
      await drained(zstd.stdin)
    }
  }
  if (!stop.stopped) zstd?.stdin.end()
}

/** Entries smaller than this are hashed on the main thread as they are read: a worker round trip is not worth it. */
const DELEGATE_MIN_BYTES = 1024 * 1024

/** Hash workers for a format 2 verify: one per core beside the main thread's share, at least one, at most two. */
function rangeHasherCount(): number {
  return Math.max(1, Math.min(2, availableParallelism()))
}

/**
 * Format 2 verify: the tar walked by ranges through the seek table. Headers, small entries and the JSON documents
 * are read on the main thread (frames decoded or read in place); every large entry in raw frames is hashed from
 * the file by a worker thread (RangeHashers), its block headers checked on the way, while the walk goes on, so the
 * content is hashed on every core and never crosses threads. A failure becomes BUNDLE_INVALID naming the entry,
 * or the frame and its offset.
 */
async function pumpSeekableTar(
  source: BundleSource,
  scan: TarScan,
  taps: CompressedTaps,
  problems: string[],
  problem: Problem,
  seekable: SeekableReader,
): Promise<{tarBytes: number}> {
  const hashers = new RangeHashers(seekable.parts, rangeHasherCount())
  const parser = new TarParser(scan.onEntry)
  scan.delegate = (h) => {
    const layout = h.size >= DELEGATE_MIN_BYTES ? seekable.rawLayout(parser.offset, h.size) : undefined
    return layout ? hashers.hash(layout, h.size) : undefined
  }
  const stop = {stopped: false}
  const feed = feedCompressed(source, taps, undefined, stop)
  try {
    let pos = 0
    while (pos < seekable.size) {
      if (parser.skipping) {
        pos += parser.skipBody()
        continue
      }
      const n = Math.min(parser.nextNeed, seekable.size - pos)
      for await (const piece of seekable.read(pos, n)) parser.push(piece)
      pos += n
    }
    parser.end()
    await feed
    await Promise.all(scan.finishing)
    return {tarBytes: pos}
  } catch (error) {
    stop.stopped = true
    hashers.destroy()
    taps.hash?.destroy()
    await Promise.allSettled(scan.finishing)
    await feed.catch(() => {})
    if (error instanceof Fatal || error instanceof TarFormatError || error instanceof IntegrityError)
      problem(error.message) // an IntegrityError here is FRAME_INVALID, named with its offset
    else throw error
    throw unreadable(source, problems)
  } finally {
    hashers.destroy()
  }
}

/** bundle.json's signature inside the tar, and the detached signature of the whole file, against `publicKey`. */
function checkSignatures(
  scan: TarScan & {manifest: BundleManifest},
  source: BundleSource,
  detached: {sig?: Buffer; verifier?: StreamVerifier},
  publicKey: VerifyingKey | undefined,
  problem: Problem,
): {innerSignature: SignatureStatus; detachedSignature: SignatureStatus} {
  const {manifest, innerSig, bundleJsonBytes} = scan
  let innerSignature: SignatureStatus = manifest.signature ? 'not-checked' : 'absent'
  let detachedSignature: SignatureStatus = source.detachedSignature ? 'not-checked' : 'absent'
  if (manifest.signature && !innerSig) problem(`${BUNDLE_JSON} says the bundle is signed, but ${BUNDLE_SIG} is missing`)
  if (!manifest.signature && innerSig)
    problem(`${BUNDLE_SIG} is present but ${BUNDLE_JSON} does not declare a signature`)
  if (!publicKey) return {innerSignature, detachedSignature}
  if (!innerSig && !source.detachedSignature)
    problem('the bundle is not signed (no airpack/bundle.json.sig and no detached .sig), but --public-key was given')
  if (innerSig && bundleJsonBytes) {
    innerSignature = verifyDocument(publicKey, bundleJsonBytes, innerSig) ? 'valid' : 'invalid'
    if (innerSignature === 'invalid') {
      const signedBy = manifest.signature?.publicKeyFingerprint
      problem(
        signedBy && signedBy !== publicKey.publicKeyFingerprint
          ? `the signature of ${BUNDLE_JSON} does not verify: it was made with key ${signedBy}, not the given public key ${publicKey.publicKeyFingerprint}`
          : `the signature of ${BUNDLE_JSON} does not verify with the given public key (bundle.json or its signature was altered)`,
      )
    }
  }
  if (detached.verifier && detached.sig) {
    detachedSignature = detached.verifier.verify(detached.sig) ? 'valid' : 'invalid'
    if (detachedSignature === 'invalid')
      problem(
        `the detached signature ${path.basename(source.detachedSignature!)} does not verify with the given public key`,
      )
  }
  return {innerSignature, detachedSignature}
}

async function streamBundle(
  source: BundleSource,
  ctx: {
    verify: boolean
    publicKey?: VerifyingKey
    cosignKey?: VerifyingKey
    problems: string[]
    seekable?: SeekableReader
    leading?: LeadingEntries
  },
): Promise<StreamState> {
  const {verify, problems} = ctx
  const problem: Problem = (message) => {
    if (problems.length < MAX_PROBLEMS) problems.push(message)
  }
  const detachedSig = verify ? await readDetachedSignature(source, ctx.publicKey) : undefined
  const taps: CompressedTaps = {
    hash: verify && source.partsFile ? streamHash() : undefined,
    verifier: detachedSig && ctx.publicKey ? streamVerifier(ctx.publicKey) : undefined,
  }
  // Format 1: the whole tar's sha256 (the identity) and every entry's on one worker. Format 2: the identity is
  // bundle.json's; small entries are hashed here, large ones by RangeHashers.
  const tarHashes = ctx.seekable ? undefined : new TarHashes()
  const scan = new TarScan(
    verify,
    problem,
    ctx.seekable !== undefined,
    tarHashes ? () => tarHashes.entry() : nodeEntryHash,
    ctx.leading,
  )
  const {tarHex, tarBytes} = tarHashes
    ? await pumpTar(source, scan, tarHashes, taps, problems, problem)
    : {tarHex: undefined, ...(await pumpSeekableTar(source, scan, taps, problems, problem, ctx.seekable!))}
  const manifest = scan.manifest
  // Format 2's identity is bundle.json's (PRODUCT.md §4), which every entry is checked against here.
  const identityHex = tarHex ?? (scan.bundleJsonBytes ? sha256Hex(scan.bundleJsonBytes) : '')
  if (!manifest) {
    throw new IntegrityError('BUNDLE_INVALID', `${source.input}: the stream holds no ${BUNDLE_JSON}`, {
      details: {bundle: source.input},
    })
  }
  const checked = verify
    ? await checkScanned(Object.assign(scan, {manifest}), source, {...ctx, detachedSig, taps}, problem)
    : {
        innerSignature: manifest.signature ? ('not-checked' as const) : ('absent' as const),
        detachedSignature: source.detachedSignature ? ('not-checked' as const) : ('absent' as const),
      }
  return {manifest, identity: identityHex, tarBytes, entryCount: scan.entryCount, ...checked}
}

/**
 * verify, once the whole tar went by: every listed entry present, the parts' whole-file checksum, the layout, the
 * cosign signatures (with a key) and the bundle's own signatures.
 */
async function checkScanned(
  scan: TarScan & {manifest: BundleManifest},
  source: BundleSource,
  ctx: {
    publicKey?: VerifyingKey
    cosignKey?: VerifyingKey
    detachedSig?: Buffer
    taps: CompressedTaps
    leading?: LeadingEntries
  },
  problem: Problem,
): Promise<{innerSignature: SignatureStatus; detachedSignature: SignatureStatus; cosign?: CosignResult}> {
  const {manifest} = scan
  const {taps} = ctx
  // Every listed entry must be there (or, in a delta, be borrowed: never both).
  for (const [p, e] of ctx.leading?.absent() ?? []) {
    if (scan.seen.has(p)) problem(`entry ${p} is carried, but also listed as borrowed from the base`)
    else scan.seen.set(p, {...e, absent: true})
  }
  for (const [p] of scan.listed)
    if (!scan.seen.has(p)) problem(`entry ${p} is listed in ${BUNDLE_JSON} but missing from the bundle`)
  const whole = taps.hash ? await taps.hash.digest() : undefined
  if (source.partsFile && whole && source.partsFile.content.sha256 !== whole) {
    problem(
      `the joined parts hash to ${whole}, ${path.basename(source.partsFile.path)} says ${source.partsFile.content.sha256}`,
    )
  }
  checkLayout(manifest, scan.seen, scan.kept, problem)
  const cosign = ctx.cosignKey ? checkCosignSignatures(manifest, scan.kept, ctx.cosignKey, problem) : undefined
  const signatures = checkSignatures(
    scan,
    source,
    {sig: ctx.detachedSig, verifier: taps.verifier},
    ctx.publicKey,
    problem,
  )
  return {...signatures, cosign}
}

function checkOciLayoutFile(kept: Map<string, Buffer>, problem: Problem): void {
  const layout = kept.get(OCI_LAYOUT)
  if (!layout) return problem(`${OCI_LAYOUT} is missing`)
  try {
    if (JSON.parse(layout.toString('utf8')).imageLayoutVersion !== JSON.parse(OCI_LAYOUT_CONTENT).imageLayoutVersion)
      problem(`${OCI_LAYOUT} has an unknown imageLayoutVersion`)
  } catch {
    problem(`${OCI_LAYOUT} is not valid JSON`)
  }
}

/** index.json's descriptors, each named, and named exactly as bundle.json's artifacts are (both ways). */
function indexDescriptors(
  manifest: BundleManifest,
  kept: Map<string, Buffer>,
  problem: Problem,
): Descriptor[] | undefined {
  const indexBytes = kept.get(INDEX_JSON)
  if (!indexBytes) {
    problem(`${INDEX_JSON} is missing`)
    return undefined
  }
  let index: {manifests?: Descriptor[]}
  try {
    index = JSON.parse(indexBytes.toString('utf8'))
  } catch {
    problem(`${INDEX_JSON} is not valid JSON`)
    return undefined
  }
  const descriptors = Array.isArray(index.manifests) ? index.manifests : []
  const byRef = new Map<string, Descriptor>()
  for (const d of descriptors) {
    const ref = entryReference(d.annotations)
    if (!ref) problem(`${INDEX_JSON} has an entry ${d.digest} without ${ANNOTATION_REF_NAME}`)
    else byRef.set(ref, d)
  }
  for (const a of manifest.artifacts ?? []) {
    const d = byRef.get(a.reference)
    if (!d) problem(`artifact ${a.reference} is not in ${INDEX_JSON}`)
    else if (d.digest !== a.digest)
      problem(`artifact ${a.reference}: ${INDEX_JSON} names ${d.digest}, ${BUNDLE_JSON} says ${a.digest}`)
    byRef.delete(a.reference)
  }
  for (const [ref] of byRef) problem(`${INDEX_JSON} names ${ref}, which ${BUNDLE_JSON} does not list as an artifact`)
  return descriptors
}

/** Walks an artifact's graph through the kept documents: every descriptor present, with its size. */
class GraphCheck {
  private readonly checked = new Set<string>()

  constructor(
    private readonly seen: Map<string, SeenEntry>,
    private readonly kept: Map<string, Buffer>,
    private readonly problem: Problem,
  ) {}

  blobEntry(digest: string): SeenEntry | undefined {
    return /^sha256:[a-f0-9]{64}$/.test(digest) ? this.seen.get(`${BLOBS_DIR}${digest.slice(7)}`) : undefined
  }

  private json(digest: string): ManifestDocument | undefined {
    const bytes = this.kept.get(`${BLOBS_DIR}${digest.slice(7)}`)
    if (!bytes) return undefined
    try {
      return JSON.parse(bytes.toString('utf8'))
    } catch {
      return undefined
    }
  }

  walk(d: Descriptor, owner: string, omitted: Platform[]): void {
    const entry = this.blobEntry(d.digest)
    if (!entry) return this.problem(`${owner}: ${d.mediaType} ${d.digest} is missing from the bundle`)
    if (entry.size !== d.size)
      this.problem(`${owner}: ${d.digest} is ${entry.size} bytes, its descriptor says ${d.size}`)
    if (this.checked.has(d.digest) || entry.absent) return
    this.checked.add(d.digest)
    if (isIndexType(d.mediaType)) this.walkIndex(d, owner, omitted)
    else if (isManifestType(d.mediaType)) this.walkManifest(d, owner, omitted)
  }

  private walkIndex(d: Descriptor, owner: string, omitted: Platform[]): void {
    const doc = this.json(d.digest)
    if (!doc || !Array.isArray(doc.manifests))
      return this.problem(`${owner}: index ${d.digest} is not a valid image index`)
    for (const child of doc.manifests) {
      if (this.blobEntry(child.digest)) this.walk(child, owner, omitted)
      else if (!omitted.some((p) => samePlatform(p, child.platform))) {
        this.problem(
          `${owner}: manifest ${child.digest} for ${formatPlatform(child.platform as Platform)} is neither in the bundle nor recorded as an omitted platform`,
        )
      }
    }
  }

  private walkManifest(d: Descriptor, owner: string, omitted: Platform[]): void {
    const doc = this.json(d.digest)
    if (!doc || !doc.config) return this.problem(`${owner}: manifest ${d.digest} is not a valid image manifest`)
    this.walk(doc.config, owner, omitted)
    for (const layer of doc.layers ?? []) this.walk(layer, owner, omitted)
  }
}

/** The OCI layout is complete: every index.json descriptor and everything it references is present. */
function checkLayout(
  manifest: BundleManifest,
  seen: Map<string, SeenEntry>,
  kept: Map<string, Buffer>,
  problem: Problem,
): void {
  checkOciLayoutFile(kept, problem)
  const descriptors = indexDescriptors(manifest, kept, problem)
  if (!descriptors) return
  const graph = new GraphCheck(seen, kept, problem)
  for (const a of manifest.artifacts ?? []) {
    const d = descriptors.find((x) => entryReference(x.annotations) === a.reference)
    if (!d) continue
    graph.walk(d, `${a.kind} ${a.reference}`, a.omittedPlatforms ?? [])
    if (a.platformManifest && !graph.blobEntry(a.platformManifest.digest)) {
      problem(
        `image ${a.reference}: its ${formatPlatform(a.platform)} manifest ${a.platformManifest.digest} is missing from the bundle`,
      )
    }
  }
}

function overBudget(source: BundleSource, error: OverBudgetError): IntegrityError {
  return new IntegrityError('BUNDLE_INVALID', `${source.input}: ${error.message}`, {
    hint: error.hint,
    details: {bundle: source.input, problems: [error.message]},
  })
}
