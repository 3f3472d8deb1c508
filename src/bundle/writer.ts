import {createReadStream} from 'node:fs'
import {open, readdir, rm, stat, writeFile, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {finished, pipeline} from 'node:stream/promises'
import {gunzipSync} from 'node:zlib'

import type {BlobStore, GrowingBlob} from '../cache/store.js'
import {AirpackError, badBundleName, ResolveError, UsageError} from '../errors.js'
import {registryOf, type Lock} from '../lock/types.js'
import {plainDescriptor, uniqueByDigest, type Descriptor, type Platform} from '../oci/descriptor.js'
import {isIndexType, MediaType} from '../oci/media-types.js'
import {normalizePlatform, platformKey} from '../oci/platform.js'
import {atomicOutput, type AtomicOutput} from '../util/atomic.js'
import {canonicalJson} from '../util/canonical-json.js'
import {digestHex, sha256Digest, sha256Hex} from '../util/digest.js'
import {silentLogger, type Logger} from '../util/log.js'
import {profileFileName} from './definition.js'
import {
  ANNOTATION_AIRPACK_REF,
  ANNOTATION_REF_NAME,
  ANNOTATION_SPECTRO_TYPE,
  ANNOTATION_TITLE,
  BLOBS_DIR,
  BUNDLE_JSON,
  BUNDLE_SIG,
  DEFINITION_ENTRY,
  DEFAULT_FORMAT_VERSION,
  FORMAT_VERSION,
  INDEX_JSON,
  SEEKABLE_FORMAT_VERSION,
  type BundleFormatVersion,
  OCI_LAYOUT,
  OCI_LAYOUT_CONTENT,
  PROFILES_DIR,
  type BundleArtifact,
  type BundleEntry,
  type BundleManifest,
  type PartsFile,
} from './format.js'
import {FileSeal, signDocument, type SigningKey} from './sign.js'
import {BundleFiles, closed, type WrittenBundle} from './split.js'
import {TarWriter} from './tar.js'
import {startCompressor, zstdVersion} from './zstd.js'
import {environmentError} from '../util/environment.js'
import {formatBytes} from '../util/format.js'
import {SeekableTarWriter} from './seekable-tar.js'
import {followBlob} from './follow.js'
import {SeekableWriter} from '../zstd/seekable-writer.js'
import {supplyChainEntries} from '../supply/bundle.js'
import {WASM_PACKAGE, WASM_PACKAGE_VERSION} from '../zstd/wasm.js'

// Writes the bundle of PRODUCT.md §4 from a lock and the blob cache: the tar is produced entry by entry straight
// into a zstd child (blobs streamed from the cache one at a time, backpressure respected), hashed on the way.
// bundle.json is computed before the first byte is written, since every entry's size and sha256 is known in
// advance (blobs are content-addressed; the rest is small metadata in memory). Nothing depends on the cache's
// history, the concurrency used to fill it, the clock or the machine.

export const BUNDLE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/

export interface BundleProfile {
  name: string
  version: string
  sha256: string
  /** The profile's export document, stored as airpack/profiles/NN-<slug>.json. */
  document: unknown
}

export interface WriteBundleOptions {
  name: string
  outputDir: string
  lock: Lock
  store: BlobStore
  profiles: BundleProfile[]
  /** Bytes of NAME-definition.tgz (see definition.ts). */
  definitionTgz: Buffer
  compressionLevel: number
  /** 1: one zstd stream from the `zstd` program. 2 (default): the seekable format (PRODUCT.md §4). */
  formatVersion?: BundleFormatVersion
  airpackVersion: string
  sourceDateEpoch?: number
  signingKey?: SigningKey
  /** Split the .tar.zst into parts of this many bytes. */
  partSize?: number
  logger?: Logger
  /**
   * When the cache is still being filled (a cold build packs while it fetches): settles once the blob is
   * verified and published in the cache, rejects if it could not be fetched. Each blob is checked and streamed
   * only after that; without it every blob must already be cached.
   */
  blobReady?: (digest: string) => Promise<void>
  /** With `blobReady`: resolves when this process starts downloading the blob, to frame it as it arrives
   *  (follow.ts); format 2 only. */
  blobGrowing?: (digest: string) => Promise<GrowingBlob>
  /** A day-2 delta instead of the whole bundle (src/delta/build.ts, PRODUCT.md §11). */
  delta?: DeltaHook
}

/**
 * What turns the writer's output into a delta: the files are FILE_STEM.tar.zst (and its parts, parts file and
 * signature), `leading` entries come before bundle.json (computed from the planned bundle.json and entries), and only the
 * blobs `carries` accepts are written (all without it). Everything else is written exactly as in the whole bundle.
 */
export interface DeltaHook {
  fileStem: string
  leading?(
    manifest: BundleManifest,
    bundleJson: Buffer,
    entries: readonly {path: string; digest?: string; mediaType?: string}[],
  ): {path: string; data: Buffer}[]
  carries?(digest: string): boolean
}

export interface PendingBundle {
  /** The bundle's identity: `sha256:<hex>` of the uncompressed tar (format 1) or of airpack/bundle.json (format 2). */
  identity: string
  tarSize: number
  compressedSize: number
  /** sha256 hex of the whole .tar.zst, when it was computed on the way (split or signed bundles). */
  compressedSha256?: string
  /** With a signing key: the detached signature of the whole .tar.zst (a delta carries it for `bundle patch`). */
  detachedSignature?: Buffer
  manifest: BundleManifest
  parts?: PartsFile
  /** Final file names (relative to outputDir) this bundle publishes on commit. */
  files: string[]
  /** Publish every output under its final name and remove stale outputs of an earlier build of NAME. */
  commit(): Promise<void>
  abort(): Promise<void>
}

interface PlannedEntry {
  path: string
  size: number
  sha256: string
  /** In-memory content; absent for blobs streamed from the cache. */
  data?: Buffer
  digest?: string
  /** Media type of a blob (decides its frames in format 2); undefined for the layout's own files. */
  mediaType?: string
}

function definitionReference(name: string): string {
  return `airpack.local/spc/${name.toLowerCase()}:latest`
}

/**
 * The platforms of an index's children that the bundle does not carry, read from the index itself so that every
 * child left out (attestations included) is accounted for, whatever the resolver chose to record.
 */
async function omittedPlatformsOf(
  store: BlobStore,
  digest: string,
  mediaType: string,
  stored: Set<string>,
  recorded: Platform[],
): Promise<Platform[]> {
  const out: Platform[] = []
  const key = platformKey
  const seen = new Set<string>()
  const add = (p: Platform) => {
    if (seen.has(key(p))) return
    seen.add(key(p))
    out.push(p)
  }
  if (isIndexType(mediaType) && (await store.has(digest))) {
    try {
      const index = JSON.parse((await store.readBytes(digest)).toString('utf8')) as {manifests?: Descriptor[]}
      for (const child of index.manifests ?? []) {
        if (stored.has(child.digest)) continue
        add(normalizePlatform(child.platform))
      }
    } catch {
      // Not JSON: the verifier will say so; keep what the lock recorded.
    }
  }
  for (const p of recorded) add(normalizePlatform(p))
  return out.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}

function byString<T>(key: (t: T) => string) {
  return (a: T, b: T) => {
    const x = key(a)
    const y = key(b)
    return x < y ? -1 : x > y ? 1 : 0
  }
}

/** What planning accumulates: artifacts and index entries in order, and every blob the tar will carry. */
class BundlePlan {
  readonly generated = new Map<string, Buffer>()
  readonly blobSizes = new Map<string, number>()
  readonly mediaTypes = new Map<string, string>()
  readonly artifacts: BundleArtifact[] = []
  readonly indexEntries: Descriptor[] = []
  readonly chartEntries: Descriptor[] = []
  /** Supply-chain artefacts' entries, by reference (two references to one image share its artefacts). */
  readonly supplyChainEntries = new Map<string, Descriptor>()
  readonly needed: NeededBlob[] = []

  need(blobs: Descriptor[], owner: string): void {
    for (const d of blobs) {
      this.needed.push({digest: d.digest, size: d.size, owner})
      this.blobSizes.set(d.digest, d.size)
      this.noteMediaType(d)
    }
  }

  generate(digest: string, bytes: Buffer, mediaType: string): void {
    this.generated.set(digest, bytes)
    this.blobSizes.set(digest, bytes.length)
    this.noteMediaType({digest, mediaType})
  }

  /**
   * The first media type a blob is named with, in plan order (deterministic). Stored bytes are the same whatever
   * the name; only the frame mode follows it, and a compressed type on an uncompressed blob only costs size.
   */
  private noteMediaType(d: {digest: string; mediaType: string}): void {
    if (!this.mediaTypes.has(d.digest)) this.mediaTypes.set(d.digest, d.mediaType)
  }

  /** The first artifact that needs each blob, for messages. */
  owners(): Map<string, string> {
    const owners = new Map<string, string>()
    for (const n of this.needed) if (!owners.has(n.digest)) owners.set(n.digest, n.owner)
    return owners
  }
}

interface NeededBlob {
  digest: string
  size: number
  owner: string
}

const contentSize = (blobs: Descriptor[]) => blobs.reduce((s, b) => s + b.size, 0)

async function planImages(plan: BundlePlan, options: WriteBundleOptions): Promise<void> {
  const {lock, store} = options
  for (const image of Object.values(lock.images).sort(byString((i) => i.reference))) {
    // The index is read below, so it must be in the cache whatever the fetch's progress (the fetch brings the
    // small manifests in first).
    if (options.blobReady && isIndexType(image.mediaType)) await options.blobReady(image.digest)
    const root = plainDescriptor(image)
    const blobs = uniqueByDigest([root, image.platformManifest, ...image.blobs])
    plan.need(blobs, `image ${image.reference}`)
    const stored = new Set(blobs.map((b) => b.digest))
    plan.artifacts.push({
      kind: 'image',
      reference: image.reference,
      ...root,
      platform: image.platformManifest.platform ? normalizePlatform(image.platformManifest.platform) : lock.platform,
      platformManifest: plainDescriptor(image.platformManifest),
      // The registry the reference names, never the mirror or cache that served it: transport is not content.
      source: registryOf(image.reference),
      omittedPlatforms: await omittedPlatformsOf(
        store,
        image.digest,
        image.mediaType,
        stored,
        image.omittedPlatforms ?? [],
      ),
      contentSize: contentSize(blobs),
    })
    plan.indexEntries.push({...root, annotations: {[ANNOTATION_REF_NAME]: image.reference}})
    for (const s of supplyChainEntries(image)) {
      if (plan.supplyChainEntries.has(s.artifact.reference)) continue
      plan.need(s.blobs, `${s.artifact.kind} ${s.artifact.reference}`)
      plan.artifacts.push(s.artifact)
      plan.supplyChainEntries.set(s.artifact.reference, s.indexEntry)
    }
  }
}

function planCharts(plan: BundlePlan, lock: Lock): void {
  for (const chart of Object.values(lock.charts).sort(byString((c) => c.reference))) {
    // A chart from a classic repository has a manifest generated by the resolver; it must be in the cache too.
    const blobs = uniqueByDigest([chart.manifest, ...chart.blobs])
    plan.need(blobs, `chart ${chart.reference}`)
    const manifest = plainDescriptor(chart.manifest)
    plan.artifacts.push({
      kind: 'chart',
      reference: chart.reference,
      ...manifest,
      source: registryOf(chart.reference),
      omittedPlatforms: [],
      contentSize: contentSize(blobs),
    })
    plan.chartEntries.push({...manifest, annotations: {[ANNOTATION_AIRPACK_REF]: chart.reference}})
  }
}

/**
 * The cluster definition as an OCI artifact whose single layer is the .tgz itself (what Palette's own bundles
 * carry). It is shaped as a minimal image (an image config whose rootfs lists the tar's diff_id, a standard
 * tar+gzip layer) so that `ctr images import`, which unpacks every named entry, accepts it too.
 */
function planDefinition(plan: BundlePlan, options: WriteBundleOptions): void {
  const {lock, name, definitionTgz} = options
  const defConfig = Buffer.from(
    canonicalJson({
      architecture: lock.platform.architecture,
      os: lock.platform.os,
      rootfs: {type: 'layers', diff_ids: [sha256Digest(gunzipSync(definitionTgz))]},
      config: {Labels: {[ANNOTATION_SPECTRO_TYPE]: 'spc'}},
    }),
  )
  const layer = {mediaType: MediaType.ociLayerGzip, digest: sha256Digest(definitionTgz), size: definitionTgz.length}
  const defManifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: MediaType.definitionArtifact,
      config: {mediaType: MediaType.ociConfig, digest: sha256Digest(defConfig), size: defConfig.length},
      layers: [{...layer, annotations: {[ANNOTATION_TITLE]: `${name}-definition.tgz`}}],
      annotations: {[ANNOTATION_SPECTRO_TYPE]: 'spc'},
    }),
  )
  const manifest = {mediaType: MediaType.ociManifest, digest: sha256Digest(defManifest), size: defManifest.length}
  plan.generate(sha256Digest(defConfig), defConfig, MediaType.ociConfig)
  plan.generate(layer.digest, definitionTgz, layer.mediaType)
  plan.generate(manifest.digest, defManifest, manifest.mediaType)
  const reference = definitionReference(name)
  const size = defManifest.length + defConfig.length + definitionTgz.length
  plan.artifacts.push({
    kind: 'definition',
    reference,
    ...manifest,
    source: 'local',
    omittedPlatforms: [],
    contentSize: size,
  })
  plan.indexEntries.push({
    ...manifest,
    artifactType: MediaType.definitionArtifact,
    annotations: {[ANNOTATION_REF_NAME]: reference, [ANNOTATION_SPECTRO_TYPE]: 'spc'},
  })
}

/**
 * Every cached blob must be there with its recorded size before anything is written (while the cache is still
 * being filled, each blob is checked the same way just before it is streamed: see writeEntries).
 */
async function checkCached(plan: BundlePlan, store: BlobStore): Promise<void> {
  const problems: string[] = []
  const checked = new Set<string>()
  for (const n of plan.needed) {
    if (checked.has(n.digest) || plan.generated.has(n.digest)) continue
    checked.add(n.digest)
    const problem = await cacheProblem(store, n)
    if (problem) problems.push(problem)
  }
  if (problems.length > 0) throw blobsNotCached(problems)
}

/** The tar's entries in order: layout metadata, the small airpack files, then every blob by digest. */
function plannedEntries(
  plan: BundlePlan,
  options: WriteBundleOptions,
): {entries: PlannedEntry[]; blobs: PlannedEntry[]} {
  const index = Buffer.from(
    canonicalJson({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      // Images, the definition, then charts and supply-chain artefacts (named under ANNOTATION_AIRPACK_REF, so
      // containerd skips them).
      manifests: [...plan.indexEntries, ...plan.chartEntries, ...plan.supplyChainEntries.values()],
    }),
  )
  const inMemory = (e: {path: string; data: Buffer}): PlannedEntry => ({
    ...e,
    size: e.data.length,
    sha256: sha256Hex(e.data),
  })
  const metadata = [
    {path: OCI_LAYOUT, data: Buffer.from(OCI_LAYOUT_CONTENT)},
    {path: INDEX_JSON, data: index},
  ].map(inMemory)
  const small = [
    {path: DEFINITION_ENTRY, data: options.definitionTgz},
    ...options.profiles.map((p, i) => ({
      path: `${PROFILES_DIR}${profileFileName(i, p.name)}`,
      data: Buffer.from(canonicalJson(p.document)),
    })),
  ]
    .map(inMemory)
    .sort(byString((e) => e.path))
  const blobs: PlannedEntry[] = [...plan.blobSizes.entries()].sort(byString(([d]) => d)).map(([digest, size]) => ({
    path: `${BLOBS_DIR}${digestHex(digest)}`,
    size,
    sha256: digestHex(digest),
    digest,
    data: plan.generated.get(digest),
    mediaType: plan.mediaTypes.get(digest),
  }))
  return {entries: [...metadata, ...small, ...blobs], blobs}
}

/** What bundle.json records as the compressor: the `zstd` program (format 1) or the frame compressor's package. */
export function compressionOf(
  formatVersion: BundleFormatVersion,
  level: number,
  zstdVersion?: string,
): BundleManifest['compression'] {
  if (formatVersion === SEEKABLE_FORMAT_VERSION)
    return {algorithm: 'zstd', package: WASM_PACKAGE, version: WASM_PACKAGE_VERSION, level}
  return {algorithm: 'zstd', version: zstdVersion!, level}
}

function bundleManifestOf(
  plan: BundlePlan,
  options: WriteBundleOptions,
  compression: BundleManifest['compression'],
  entries: PlannedEntry[],
  blobs: PlannedEntry[],
): BundleManifest {
  const {artifacts} = plan
  const {signingKey} = options
  return {
    formatVersion: options.formatVersion ?? DEFAULT_FORMAT_VERSION,
    name: options.name,
    platform: options.lock.platform,
    airpack: {version: options.airpackVersion},
    compression,
    ...(options.sourceDateEpoch === undefined ? {} : {sourceDateEpoch: options.sourceDateEpoch}),
    profiles: options.profiles.map((p) => ({name: p.name, version: p.version, sha256: p.sha256})),
    artifacts,
    entries: entries.map((e): BundleEntry => ({path: e.path, size: e.size, sha256: e.sha256})),
    ...(signingKey
      ? {
          signature: {
            algorithm: signingKey.algorithm,
            publicKeyFingerprint: signingKey.publicKeyFingerprint,
            entry: BUNDLE_SIG,
          },
        }
      : {}),
    totals: {
      artifacts: artifacts.length,
      images: artifacts.filter((a) => a.kind === 'image').length,
      charts: artifacts.filter((a) => a.kind === 'chart').length,
      blobs: blobs.length,
      blobBytes: blobs.reduce((s, b) => s + b.size, 0),
    },
  }
}

/** Everything the bundle will hold, decided up front: artifacts, index.json, metadata, blob list. */
export async function planBundle(options: WriteBundleOptions, compression: BundleManifest['compression']) {
  const plan = new BundlePlan()
  await planImages(plan, options)
  planCharts(plan, options.lock)
  planDefinition(plan, options)
  if (!options.blobReady) await checkCached(plan, options.store)
  const {entries, blobs} = plannedEntries(plan, options)
  return {manifest: bundleManifestOf(plan, options, compression, entries, blobs), entries, owners: plan.owners()}
}

async function cacheProblem(
  store: BlobStore,
  n: {digest: string; size: number; owner: string},
): Promise<string | undefined> {
  const size = await store.size(n.digest)
  if (size === undefined) return `${n.owner}: blob ${n.digest} is not in the cache (${store.root})`
  if (size !== n.size) return `${n.owner}: cached blob ${n.digest} is ${size} bytes, its descriptor says ${n.size}`
  return undefined
}

function blobsNotCached(problems: string[]): ResolveError {
  return new ResolveError(
    'BLOB_NOT_CACHED',
    `${problems.length} blob(s) needed by the bundle are missing from the cache`,
    {
      hint: 'Run the build again without --locked changes so the missing content is fetched, or point --cache-dir at the cache used to fetch it.',
      details: {problems},
    },
  )
}

function isDiskFull(error: unknown): boolean {
  const e = error as {code?: string; message?: string}
  return e?.code === 'ENOSPC' || /No space left on device/i.test(String(e?.message ?? ''))
}

function isPipeBreak(error: unknown): boolean {
  const e = error as {code?: string; message?: string}
  return e?.code === 'EPIPE' || e?.code === 'ERR_STREAM_DESTROYED' || /closed early/.test(String(e?.message ?? ''))
}

export function diskFull(dir: string, cause: unknown): UsageError {
  return new UsageError('DISK_FULL', `no space left on the device holding ${dir}; nothing was published`, {
    hint: 'Free space there, or write to a larger disk with --output DIR.',
    details: {dir},
    cause,
  })
}

/** The tar of the bundle as it is written: entry by entry, into the compressor of the bundle's format. */
export interface BundleTar {
  readonly bytesWritten: number
  /** An entry whose bytes are in memory; `mediaType` is a blob's (format 2 frames by it). */
  addBuffer(path: string, data: Buffer, mediaType?: string): Promise<void>
  /** A blob from the cache (already verified against its digest when it entered the cache). */
  addBlob(entry: PlannedEntry, store: BlobStore): Promise<void>
  /** A blob framed while the fetch writes it (follow.ts), where the format can: false if it was not. */
  followBlob?(entry: PlannedEntry, growing: Promise<GrowingBlob>, ready: Promise<void>): Promise<boolean>
  /** An entry streamed from elsewhere (`bundle patch`: a base or a delta), each chunk also handed to `onChunk`. */
  addStream(
    path: string,
    size: number,
    body: AsyncIterable<Buffer>,
    mediaType?: string,
    onChunk?: (chunk: Buffer) => void,
  ): Promise<void>
  /** The tar's end blocks: its size, and its sha256 when it is the identity (format 1). */
  finish(): Promise<{size: number; sha256?: string}>
  abort(): void
}

/**
 * What turns the tar into the .tar.zst: the `zstd` program (format 1) or the seekable frame writer (format 2). The
 * tar is written through `tar`; the compressed bytes go to the bundle's files (BundleFiles) or, from a `zstd` child
 * without an output file, out of `stdout` to be cut into parts.
 */
export interface Compressor {
  readonly tar: BundleTar
  readonly stdout?: Readable
  /** All of the tar written: resolves once every compressed byte has been handed on. */
  close(): Promise<void>
  kill(): void
  /** Stop at once; resolves to the compressor's own failure, if it had one (what explains a broken pipe). */
  stop(): Promise<unknown>
  /** The error of a write into the compressor. */
  readonly inputError: unknown
}

/** Format 1: the tar streamed into a `zstd` child, hashed on the way (the identity is the tar's sha256). */
async function zstdCompressor(level: number, mtime: number, outputFile: string | undefined): Promise<Compressor> {
  const zstd = await startCompressor({level, outputFile})
  const writer = new TarWriter(zstd.stdin, {mtime})
  const tar: BundleTar = {
    get bytesWritten() {
      return writer.bytesWritten
    },
    addBuffer: (path, data) => writer.addBuffer(path, data),
    addBlob: (entry, store) => writer.addStream(entry.path, entry.size, store.openRead(entry.digest!)),
    addStream: (path, size, body, _mediaType, onChunk) => writer.addStream(path, size, body, onChunk),
    finish: () => writer.finish(),
    abort: () => writer.abort(),
  }
  return {
    tar,
    stdout: zstd.stdout,
    async close() {
      zstd.stdin.end()
      await zstd.done
    },
    kill: () => zstd.kill(),
    stop: () => zstd.stop(),
    get inputError() {
      return zstd.stdinError
    },
  }
}

/**
 * Format 2: the seekable writer in this process, one frame group per tar entry (framing.ts), into the bundle's
 * files (BundleFiles: one file or its parts, hashed on the way when sealed). Its compressed frames come from a
 * pinned WebAssembly zstd, so the bytes do not depend on the machine. Blobs go from their cache files into raw
 * frames (seekable-tar.ts); the tar itself is not hashed.
 */
async function seekableCompressor(level: number, mtime: number, dest: BundleFiles): Promise<Compressor> {
  let destError: unknown
  dest.on('error', (error) => (destError ??= error))
  // BundleFiles is done with a buffer once its write callback ran: the frame writer reuses its file buffers.
  const frames = await SeekableWriter.create(dest, {level, reuseBuffers: true})
  const writer = new SeekableTarWriter(frames, {mtime})
  const tar: BundleTar = {
    get bytesWritten() {
      return writer.bytesWritten
    },
    addBuffer: (path, data, mediaType) => writer.addBuffer(path, data, mediaType),
    async addBlob(entry, store) {
      const file = await open(store.blobPath(entry.digest!), 'r')
      try {
        await writer.addFile(entry.path, entry.size, file, entry.mediaType)
      } finally {
        await file.close()
      }
    },
    followBlob: (entry, growing, ready) =>
      followBlob(entry.digest!, entry.size, growing, ready, (file, upTo) =>
        writer.addGrowingFile(entry.path, entry.size, file, upTo, entry.mediaType),
      ),
    addStream: (path, size, body, mediaType, onChunk) => writer.addStream(path, size, body, mediaType, onChunk),
    finish: async () => ({size: await writer.finish()}),
    abort: () => {},
  }
  return {
    tar,
    async close() {
      await frames.finish()
      dest.end()
      await finished(dest)
      if (destError !== undefined) throw destError
    },
    kill: () => dest.destroy(),
    async stop() {
      dest.destroy()
      await closed(dest)
      return destError
    },
    inputError: undefined,
  }
}

/** The compressor of a bundle format into `outputFile` (what `bundle patch` writes with). */
export async function openCompressor(
  formatVersion: BundleFormatVersion,
  level: number,
  mtime: number,
  outputFile: string,
): Promise<Compressor> {
  return formatVersion === SEEKABLE_FORMAT_VERSION
    ? seekableCompressor(level, mtime, new BundleFiles({file: outputFile}))
    : zstdCompressor(level, mtime, outputFile)
}

const fileStemOf = (options: WriteBundleOptions) => options.delta?.fileStem ?? options.name

/** What sealing the compressed bytes gave: their size, and (signed or split) their sha256, signature and parts. */
interface SealedBundle {
  compressedSize: number
  compressedSha256?: string
  parts?: PartsFile
  detachedSignature?: Buffer
}

/**
 * Where the compressed bytes go: one file or its parts (BundleFiles), hashed and signed on the way when the bundle
 * is split or signed. Format 2's frame writer writes them itself; format 1's zstd writes a single file itself (read
 * back once to sign it) or pipes its stdout into the parts.
 */
class CompressedOutput {
  readonly outputs: AtomicOutput[] = []
  readonly bundleFile: string
  private readonly writeback: WritebackFlusher
  /** Format 1's stdout into the parts. */
  private readonly piped?: Promise<void>
  private filesError: unknown

  private constructor(
    private readonly options: WriteBundleOptions,
    private readonly single: AtomicOutput | undefined,
    private readonly files: BundleFiles | undefined,
    private readonly seal: FileSeal | undefined,
    readonly compressor: Compressor,
  ) {
    this.bundleFile = `${fileStemOf(options)}.tar.zst`
    if (single) this.outputs.push(single)
    this.writeback = new WritebackFlusher(() => single?.tmpPath ?? files?.currentPath)
    files?.on('error', (error) => (this.filesError ??= error))
    if (files && compressor.stdout) {
      this.piped = pipeline(compressor.stdout, files).catch((error: unknown) => {
        compressor.kill()
        throw error
      })
      this.piped.catch(() => {})
    }
  }

  static async open(options: WriteBundleOptions): Promise<CompressedOutput> {
    const stem = fileStemOf(options)
    const split = options.partSize !== undefined
    const single = split ? undefined : await atomicOutput(path.join(options.outputDir, `${stem}.tar.zst`))
    const seal = split || options.signingKey ? new FileSeal(options.signingKey) : undefined
    const target = single
      ? {file: single.tmpPath}
      : {dir: options.outputDir, bundleFile: `${stem}.tar.zst`, partSize: options.partSize!}
    let files: BundleFiles | undefined
    try {
      let compressor: Compressor
      const level = options.compressionLevel
      const mtime = options.sourceDateEpoch ?? 0
      if ((options.formatVersion ?? DEFAULT_FORMAT_VERSION) === SEEKABLE_FORMAT_VERSION) {
        files = new BundleFiles(target, seal)
        compressor = await seekableCompressor(level, mtime, files)
      } else {
        // zstd writes a single file itself; parts are cut from its stdout.
        compressor = await zstdCompressor(level, mtime, single?.tmpPath)
        if (split) files = new BundleFiles(target, seal)
      }
      return new CompressedOutput(options, single, files, seal, compressor)
    } catch (error) {
      files?.destroy()
      seal?.destroy()
      await single?.abort()
      throw error
    }
  }

  /** The tar is complete: let the compressor finish, and the files with it. */
  async finish(): Promise<void> {
    await this.compressor.close()
    await this.piped
    await this.writeback.stop()
  }

  /**
   * Stop everything after `error`, and name the failure that explains it. Several things fail together when one
   * does (zstd, the files being written, our writes into zstd): a full disk first, then a permission or read-only
   * file system, then an airpack error, then zstd's own
   * message when our error is only the broken pipe it left behind.
   */
  async fail(error: unknown): Promise<unknown> {
    await this.writeback.stop().catch(() => {})
    const stopped = this.compressor.stop()
    await this.piped?.catch(() => {})
    const zstdError = await stopped
    const stdinError = this.compressor.inputError
    const candidates = [this.filesError, zstdError, stdinError, error].filter((e) => e !== undefined)
    await this.abort()
    return (
      candidates.find(isDiskFull) ??
      // A blob or directory this user cannot read or write explains a killed zstd better than zstd does.
      candidates.find((e) => environmentError(e) !== undefined) ??
      candidates.find((e) => e instanceof AirpackError) ??
      (isPipeBreak(error) || stdinError !== undefined ? (zstdError ?? error) : error)
    )
  }

  /** The parts file, or the single file's size and (when signing) its sha256, and the signature file. */
  async sealOutputs(): Promise<SealedBundle> {
    const written = this.files ? await this.files.result() : await this.readBack()
    const sealed = written.parts ? await this.sealParts(written) : {compressedSize: written.size}
    const hashed = written.sha256 === undefined ? {} : {compressedSha256: written.sha256}
    if (!written.signature) return {...sealed, ...hashed}
    await this.stage(`${this.bundleFile}.sig`, written.signature)
    return {...sealed, ...hashed, detachedSignature: written.signature}
  }

  private async sealParts(written: WrittenBundle): Promise<{compressedSize: number; parts: PartsFile}> {
    const split = written.parts!
    this.outputs.push(...split.map((p) => p.output))
    const parts: PartsFile = {
      formatVersion: 1,
      file: this.bundleFile,
      size: written.size,
      sha256: written.sha256!,
      partSize: this.options.partSize!,
      parts: split.map((p) => ({name: p.name, size: p.size, sha256: p.sha256})),
      join: `cat ${this.bundleFile}.[0-9][0-9][0-9] > ${this.bundleFile}`,
    }
    await this.stage(`${fileStemOf(this.options)}.parts.json`, canonicalJson(parts))
    return {compressedSize: written.size, parts}
  }

  /** A single file the `zstd` program wrote itself (format 1): its size, read back once to seal it when signing. */
  private async readBack(): Promise<WrittenBundle> {
    const size = (await stat(this.single!.tmpPath)).size
    if (!this.seal) return {size}
    for await (const chunk of createReadStream(this.single!.tmpPath, {highWaterMark: 1 << 20})) {
      const hashing = this.seal.write(chunk as Buffer)
      if (hashing) await hashing
    }
    return {size, ...(await this.seal.seal())}
  }

  private async stage(file: string, data: string | Buffer): Promise<void> {
    const out = await atomicOutput(path.join(this.options.outputDir, file))
    this.outputs.push(out)
    await writeFile(out.tmpPath, data)
  }

  /** Removes every temporary file, the parts being written included (once their stream has closed). */
  async abort(): Promise<void> {
    this.seal?.destroy()
    if (this.files) {
      this.files.destroy()
      await closed(this.files)
    }
    for (const o of new Set([...this.outputs, ...(this.files?.outputs ?? [])])) await o.abort()
  }
}

/** Blobs this large are framed while they download (a cold build); smaller ones wait to be in the cache. */
const FOLLOW_MIN = 1024 * 1024

/** Every planned entry into the tar; a blob still being fetched is awaited and checked first (or followed). */
async function writeEntries(
  tar: BundleTar,
  entries: PlannedEntry[],
  owners: Map<string, string>,
  options: WriteBundleOptions,
): Promise<void> {
  for (const entry of entries) {
    if (entry.data) {
      await tar.addBuffer(entry.path, entry.data, entry.mediaType)
      continue
    }
    // Blobs are verified against their digest before the cache publishes them, so they are copied as is.
    if (options.blobReady) {
      const ready = options.blobReady(entry.digest!)
      if (options.blobGrowing && tar.followBlob && entry.size >= FOLLOW_MIN) {
        if (await tar.followBlob(entry, options.blobGrowing(entry.digest!), ready)) continue
      }
      await ready
      const problem = await cacheProblem(options.store, {
        digest: entry.digest!,
        size: entry.size,
        owner: owners.get(entry.digest!) ?? 'bundle',
      })
      if (problem) throw blobsNotCached([problem])
    }
    await tar.addBlob(entry, options.store)
  }
}

/** A line every few seconds on stderr, so a multi-GB write is visibly alive (never on stdout). */
function progressLines(tar: BundleTar, total: number, logger: Logger): () => void {
  const started = Date.now()
  const timer = setInterval(() => {
    const s = (Date.now() - started) / 1000
    logger.info(
      `  wrote ${formatBytes(tar.bytesWritten)} of ~${formatBytes(total)} (${(tar.bytesWritten / 1e6 / s).toFixed(0)} MB/s)`,
    )
  }, 5000)
  timer.unref()
  return () => clearInterval(timer)
}

/**
 * The whole tar into the compressor, in order: a delta's leading entries, bundle.json, its signature, every entry.
 * On a failure everything is stopped and the failure that explains it is thrown (a full disk as DISK_FULL).
 */
async function writeTar(
  out: CompressedOutput,
  tarEntries: {
    leading: {path: string; data: Buffer}[]
    bundleJson: Buffer
    signature?: Buffer
    entries: PlannedEntry[]
    owners: Map<string, string>
    manifest: BundleManifest
  },
  options: WriteBundleOptions,
): Promise<{sha256?: string; size: number}> {
  const {tar} = out.compressor
  const stopProgress = progressLines(tar, tarEntries.manifest.totals.blobBytes, options.logger ?? silentLogger)
  try {
    for (const e of tarEntries.leading) await tar.addBuffer(e.path, e.data)
    await tar.addBuffer(BUNDLE_JSON, tarEntries.bundleJson)
    if (tarEntries.signature) await tar.addBuffer(BUNDLE_SIG, tarEntries.signature)
    await writeEntries(tar, tarEntries.entries, tarEntries.owners, options)
    const tarResult = await tar.finish()
    stopProgress()
    await out.finish()
    return tarResult
  } catch (error) {
    stopProgress()
    tar.abort()
    const cause = await out.fail(error)
    if (isDiskFull(cause)) throw diskFull(options.outputDir, cause)
    throw cause
  }
}

export async function writeBundle(options: WriteBundleOptions): Promise<PendingBundle> {
  const logger = options.logger ?? silentLogger
  if (!BUNDLE_NAME_RE.test(options.name)) throw badBundleName(options.name)
  const formatVersion = options.formatVersion ?? DEFAULT_FORMAT_VERSION
  // Format 2 compresses in this process: the `zstd` program is not needed to write it.
  const compression = compressionOf(
    formatVersion,
    options.compressionLevel,
    formatVersion === FORMAT_VERSION ? await zstdVersion() : undefined,
  )
  const planned = await planBundle(options, compression)
  const {manifest, owners} = planned
  const bundleJson = Buffer.from(canonicalJson(manifest))
  const signature = options.signingKey ? signDocument(options.signingKey, bundleJson) : undefined
  const carries = options.delta?.carries
  const entries = carries ? planned.entries.filter((e) => !e.digest || carries(e.digest)) : planned.entries
  const leading = options.delta?.leading?.(manifest, bundleJson, planned.entries) ?? []

  const out = await CompressedOutput.open(options)
  logger.info(
    `Writing ${out.bundleFile} (format ${formatVersion}): ${leading.length + entries.length + 1 + (signature ? 1 : 0)} entries, ${formatBytes(entries.reduce((sum, e) => sum + (e.digest ? e.size : 0), 0))} of blobs`,
  )
  const tarResult = await writeTar(out, {leading, bundleJson, signature, entries, owners, manifest}, options)

  try {
    const sealed = await out.sealOutputs()
    const files = out.outputs.map((o) => path.basename(o.finalPath))
    return {
      // Format 2's identity is bundle.json's, which pins every entry's size and sha256: `inspect` then reads only it.
      identity: formatVersion === SEEKABLE_FORMAT_VERSION ? sha256Digest(bundleJson) : `sha256:${tarResult.sha256}`,
      tarSize: tarResult.size,
      ...sealed,
      manifest,
      files,
      async commit() {
        await removeStaleOutputs(options.outputDir, fileStemOf(options), new Set(files))
        for (const o of out.outputs) await o.commit()
      },
      abort: () => out.abort(),
    }
  } catch (error) {
    await out.abort()
    if (isDiskFull(error)) throw diskFull(options.outputDir, error)
    throw error
  }
}

/**
 * Pushes the bundle file's dirty pages (or its parts') to disk while they are still being written, so that the
 * fsync before each rename (which stays, in atomicOutput.commit) finds little left to flush instead of a whole
 * GiB. One flush at
 * a time, off the main thread (libuv's pool). A flush error is kept and thrown by stop(): swallowing it here
 * could hide it from the final fsync.
 */
class WritebackFlusher {
  private fd: FileHandle | undefined
  private fdPath: string | undefined
  private inFlight: Promise<void> | undefined
  private error: unknown
  private stopped = false
  private readonly timer: NodeJS.Timeout

  /** `file` names the file being written now (a split bundle moves from part to part), if any yet. */
  constructor(private readonly file: () => string | undefined) {
    this.timer = setInterval(() => this.flush(), 250)
    this.timer.unref()
  }

  private flush(): void {
    if (this.inFlight || this.stopped || this.error !== undefined) return
    this.inFlight = (async () => {
      const file = this.file()
      if (file !== this.fdPath) {
        // The previous part is complete: flush the rest of it too.
        const done = this.fd
        this.fd = undefined
        await done?.datasync().finally(() => done.close().catch(() => {}))
        this.fdPath = file
      }
      // The file is created when the first bytes come; until then there is nothing to flush.
      if (file !== undefined) this.fd ??= await open(file, 'r').catch(() => undefined)
      await this.fd?.datasync()
    })()
      .catch((error: unknown) => {
        this.error = error
      })
      .finally(() => {
        this.inFlight = undefined
      })
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    await this.inFlight
    await this.fd?.close().catch(() => {})
    this.fd = undefined
    if (this.error !== undefined) throw this.error
  }
}

/** Outputs of an earlier build of the same NAME that this build does not replace (old parts, old signature). */
async function removeStaleOutputs(dir: string, name: string, keep: Set<string>): Promise<void> {
  const bundleFile = `${name}.tar.zst`
  const candidates = new Set([bundleFile, `${bundleFile}.sig`, `${name}.parts.json`])
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return
  }
  const partRe = new RegExp(`^${bundleFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d{3,}$`)
  for (const n of names) if (partRe.test(n)) candidates.add(n)
  for (const n of candidates) if (!keep.has(n) && names.includes(n)) await rm(path.join(dir, n), {force: true})
}
