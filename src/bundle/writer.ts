import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {open, readdir, rm, stat, writeFile, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import {gunzipSync} from 'node:zlib'

import type {BlobStore} from '../cache/store.js'
import {AirpackError, badBundleName, ResolveError, UsageError} from '../errors.js'
import type {Lock} from '../lock/types.js'
import {uniqueByDigest, type Descriptor, type Platform} from '../oci/descriptor.js'
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
  FORMAT_VERSION,
  INDEX_JSON,
  OCI_LAYOUT,
  OCI_LAYOUT_CONTENT,
  PROFILES_DIR,
  type BundleArtifact,
  type BundleEntry,
  type BundleManifest,
  type PartsFile,
} from './format.js'
import {signDocument, streamSigner, type SigningKey} from './sign.js'
import {writeParts, type SplitResult} from './split.js'
import {TarWriter} from './tar.js'
import {startCompressor, zstdVersion} from './zstd.js'
import {formatBytes} from '../util/format.js'

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
}

export interface PendingBundle {
  /** `sha256:<hex>` of the uncompressed tar: the bundle's identity. */
  identity: string
  tarSize: number
  compressedSize: number
  /** sha256 hex of the whole .tar.zst, when it was computed on the way (split or signed bundles). */
  compressedSha256?: string
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
}

function definitionReference(name: string): string {
  return `airpack.local/spc/${name.toLowerCase()}:latest`
}

/**
 * The platforms of an index's children that the bundle does not carry, read from the index itself so that every
 * child left out (attestations included) is accounted for, whatever the resolver chose to record.
 */
async function omittedPlatformsOf(store: BlobStore, digest: string, mediaType: string, stored: Set<string>, recorded: Platform[]): Promise<Platform[]> {
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

/** Everything the bundle will hold, decided up front: artifacts, index.json, metadata, blob list. */
export async function planBundle(options: WriteBundleOptions, zstd: {version: string}) {
  const {lock, store, name} = options
  const generated = new Map<string, Buffer>()
  const blobSizes = new Map<string, number>()
  const artifacts: BundleArtifact[] = []
  const indexEntries: Descriptor[] = []
  const chartEntries: Descriptor[] = []
  const needed: {digest: string; size: number; owner: string}[] = []

  const addNeeded = (d: Descriptor, owner: string) => {
    needed.push({digest: d.digest, size: d.size, owner})
    blobSizes.set(d.digest, d.size)
  }

  for (const image of Object.values(lock.images).sort(byString((i) => i.reference))) {
    // The index is read below, so it must be in the cache whatever the fetch's progress (the fetch brings the
    // small manifests in first).
    if (options.blobReady && isIndexType(image.mediaType)) await options.blobReady(image.digest)
    const blobs = uniqueByDigest([
      {mediaType: image.mediaType, digest: image.digest, size: image.size},
      image.platformManifest,
      ...image.blobs,
    ])
    for (const b of blobs) addNeeded(b, `image ${image.reference}`)
    const platform: Platform = image.platformManifest.platform ? normalizePlatform(image.platformManifest.platform) : lock.platform
    artifacts.push({
      kind: 'image',
      reference: image.reference,
      digest: image.digest,
      mediaType: image.mediaType,
      size: image.size,
      platform,
      platformManifest: {digest: image.platformManifest.digest, mediaType: image.platformManifest.mediaType, size: image.platformManifest.size},
      source: image.source,
      omittedPlatforms: await omittedPlatformsOf(store, image.digest, image.mediaType, new Set(blobs.map((b) => b.digest)), image.omittedPlatforms ?? []),
      contentSize: blobs.reduce((s, b) => s + b.size, 0),
    })
    indexEntries.push({mediaType: image.mediaType, digest: image.digest, size: image.size, annotations: {[ANNOTATION_REF_NAME]: image.reference}})
  }

  for (const chart of Object.values(lock.charts).sort(byString((c) => c.reference))) {
    const blobs = uniqueByDigest([chart.manifest, ...chart.blobs])
    for (const b of blobs) addNeeded(b, `chart ${chart.reference}`)
    // A chart from a classic repository has a manifest generated by the resolver; it must be in the cache too.
    artifacts.push({
      kind: 'chart',
      reference: chart.reference,
      digest: chart.manifest.digest,
      mediaType: chart.manifest.mediaType,
      size: chart.manifest.size,
      source: chart.source,
      omittedPlatforms: [],
      contentSize: blobs.reduce((s, b) => s + b.size, 0),
    })
    chartEntries.push({
      mediaType: chart.manifest.mediaType,
      digest: chart.manifest.digest,
      size: chart.manifest.size,
      annotations: {[ANNOTATION_AIRPACK_REF]: chart.reference},
    })
  }

  // The cluster definition as an OCI artifact whose single layer is the .tgz itself (what Palette's own bundles
  // carry). It is shaped as a minimal image (an image config whose rootfs lists the tar's diff_id, a standard
  // tar+gzip layer) so that `ctr images import`, which unpacks every named entry, accepts it too.
  const defTar = gunzipSync(options.definitionTgz)
  const defConfig = Buffer.from(
    canonicalJson({
      architecture: lock.platform.architecture,
      os: lock.platform.os,
      rootfs: {type: 'layers', diff_ids: [sha256Digest(defTar)]},
      config: {Labels: {[ANNOTATION_SPECTRO_TYPE]: 'spc'}},
    }),
  )
  const defConfigDigest = sha256Digest(defConfig)
  const defDigest = sha256Digest(options.definitionTgz)
  const defManifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: MediaType.definitionArtifact,
      config: {mediaType: MediaType.ociConfig, digest: defConfigDigest, size: defConfig.length},
      layers: [
        {
          mediaType: MediaType.ociLayerGzip,
          digest: defDigest,
          size: options.definitionTgz.length,
          annotations: {[ANNOTATION_TITLE]: `${name}-definition.tgz`},
        },
      ],
      annotations: {[ANNOTATION_SPECTRO_TYPE]: 'spc'},
    }),
  )
  const defManifestDigest = sha256Digest(defManifest)
  for (const [digest, bytes] of [
    [defConfigDigest, defConfig],
    [defDigest, options.definitionTgz],
    [defManifestDigest, defManifest],
  ] as const) {
    generated.set(digest, bytes)
    blobSizes.set(digest, bytes.length)
  }
  const defRef = definitionReference(name)
  artifacts.push({
    kind: 'definition',
    reference: defRef,
    digest: defManifestDigest,
    mediaType: MediaType.ociManifest,
    size: defManifest.length,
    source: 'local',
    omittedPlatforms: [],
    contentSize: defManifest.length + defConfig.length + options.definitionTgz.length,
  })
  indexEntries.push({
    mediaType: MediaType.ociManifest,
    digest: defManifestDigest,
    size: defManifest.length,
    artifactType: MediaType.definitionArtifact,
    annotations: {[ANNOTATION_REF_NAME]: defRef, [ANNOTATION_SPECTRO_TYPE]: 'spc'},
  })

  // Every cached blob must be there with its recorded size before anything is written (while the cache is
  // still being filled, each blob is checked the same way just before it is streamed: see writeBundle).
  const owners = new Map<string, string>()
  for (const n of needed) if (!owners.has(n.digest)) owners.set(n.digest, n.owner)
  if (!options.blobReady) {
    const problems: string[] = []
    const checked = new Set<string>()
    for (const n of needed) {
      if (checked.has(n.digest) || generated.has(n.digest)) continue
      checked.add(n.digest)
      const problem = await cacheProblem(store, n)
      if (problem) problems.push(problem)
    }
    if (problems.length > 0) throw blobsNotCached(problems)
  }

  const index = Buffer.from(
    canonicalJson({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      // Images, the definition, then charts (named under ANNOTATION_AIRPACK_REF, so containerd skips them).
      manifests: [...indexEntries, ...chartEntries],
    }),
  )

  const metadata: PlannedEntry[] = [
    {path: OCI_LAYOUT, data: Buffer.from(OCI_LAYOUT_CONTENT)},
    {path: INDEX_JSON, data: index},
  ].map((e) => ({...e, size: e.data.length, sha256: sha256Hex(e.data)}))
  const small: PlannedEntry[] = [
    {path: DEFINITION_ENTRY, data: options.definitionTgz},
    ...options.profiles.map((p, i) => ({path: `${PROFILES_DIR}${profileFileName(i, p.name)}`, data: Buffer.from(canonicalJson(p.document))})),
  ]
    .map((e) => ({...e, size: e.data.length, sha256: sha256Hex(e.data)}))
    .sort(byString((e) => e.path))
  const blobs: PlannedEntry[] = [...blobSizes.entries()]
    .sort(byString(([d]) => d))
    .map(([digest, size]) => ({path: `${BLOBS_DIR}${digestHex(digest)}`, size, sha256: digestHex(digest), digest, data: generated.get(digest)}))

  const entries = [...metadata, ...small, ...blobs]
  const images = artifacts.filter((a) => a.kind === 'image').length
  const charts = artifacts.filter((a) => a.kind === 'chart').length
  const manifest: BundleManifest = {
    formatVersion: FORMAT_VERSION,
    name,
    platform: lock.platform,
    airpack: {version: options.airpackVersion},
    compression: {algorithm: 'zstd', version: zstd.version, level: options.compressionLevel},
    ...(options.sourceDateEpoch === undefined ? {} : {sourceDateEpoch: options.sourceDateEpoch}),
    profiles: options.profiles.map((p) => ({name: p.name, version: p.version, sha256: p.sha256})),
    artifacts,
    entries: entries.map((e): BundleEntry => ({path: e.path, size: e.size, sha256: e.sha256})),
    ...(options.signingKey
      ? {signature: {algorithm: options.signingKey.algorithm, publicKeyFingerprint: options.signingKey.publicKeyFingerprint, entry: BUNDLE_SIG}}
      : {}),
    totals: {artifacts: artifacts.length, images, charts, blobs: blobs.length, blobBytes: blobs.reduce((s, b) => s + b.size, 0)},
  }
  return {manifest, entries, owners}
}

async function cacheProblem(store: BlobStore, n: {digest: string; size: number; owner: string}): Promise<string | undefined> {
  const size = await store.size(n.digest)
  if (size === undefined) return `${n.owner}: blob ${n.digest} is not in the cache (${store.root})`
  if (size !== n.size) return `${n.owner}: cached blob ${n.digest} is ${size} bytes, its descriptor says ${n.size}`
  return undefined
}

function blobsNotCached(problems: string[]): ResolveError {
  return new ResolveError('BLOB_NOT_CACHED', `${problems.length} blob(s) needed by the bundle are missing from the cache`, {
    hint: 'Run the build again without --locked changes so the missing content is fetched, or point --cache-dir at the cache used to fetch it.',
    details: {problems},
  })
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

export async function writeBundle(options: WriteBundleOptions): Promise<PendingBundle> {
  const logger = options.logger ?? silentLogger
  if (!BUNDLE_NAME_RE.test(options.name)) {
    throw badBundleName(options.name)
  }
  const version = await zstdVersion()
  const {manifest, entries, owners} = await planBundle(options, {version})
  const bundleJson = Buffer.from(canonicalJson(manifest))
  const signature = options.signingKey ? signDocument(options.signingKey, bundleJson) : undefined

  const bundleFile = `${options.name}.tar.zst`
  const outputs: AtomicOutput[] = []
  const abortAll = async () => {
    for (const o of outputs) await o.abort()
  }
  const mtime = options.sourceDateEpoch ?? 0

  let single: AtomicOutput | undefined
  if (options.partSize === undefined) {
    single = await atomicOutput(path.join(options.outputDir, bundleFile))
    outputs.push(single)
  }
  const zstd = startCompressor({level: options.compressionLevel, outputFile: single?.tmpPath})
  const writeback = single ? new WritebackFlusher(single.tmpPath) : undefined
  let stdinError: unknown
  zstd.stdin.on('error', (error) => (stdinError = error))
  const signer = options.signingKey ? streamSigner(options.signingKey) : undefined
  let partsError: unknown
  const partsPromise: Promise<SplitResult> | undefined =
    options.partSize === undefined
      ? undefined
      : writeParts(zstd.stdout!, {dir: options.outputDir, bundleFile, partSize: options.partSize, onChunk: (c) => signer?.update(c)}).catch((error) => {
          partsError = error
          zstd.kill()
          throw error
        })
  partsPromise?.catch(() => {})

  logger.info(`Writing ${bundleFile}: ${entries.length + 1 + (signature ? 1 : 0)} entries, ${formatBytes(manifest.totals.blobBytes)} of blobs`)
  let tarResult: {sha256: string; size: number}
  let split: SplitResult | undefined
  const tar = new TarWriter(zstd.stdin, {mtime})
  // A line every few seconds on stderr, so a multi-GB write is visibly alive (never on stdout).
  const started = Date.now()
  const total = manifest.totals.blobBytes
  const progress = setInterval(() => {
    const s = (Date.now() - started) / 1000
    logger.info(`  wrote ${formatBytes(tar.bytesWritten)} of ~${formatBytes(total)} (${(tar.bytesWritten / 1e6 / s).toFixed(0)} MB/s)`)
  }, 5000)
  progress.unref()
  try {
    await tar.addBuffer(BUNDLE_JSON, bundleJson)
    if (signature) await tar.addBuffer(BUNDLE_SIG, signature)
    for (const entry of entries) {
      if (entry.data) {
        await tar.addBuffer(entry.path, entry.data)
        continue
      }
      // Blobs are verified against their digest before the cache publishes them, so they are streamed as is.
      if (options.blobReady) {
        await options.blobReady(entry.digest!)
        const problem = await cacheProblem(options.store, {digest: entry.digest!, size: entry.size, owner: owners.get(entry.digest!) ?? 'bundle'})
        if (problem) throw blobsNotCached([problem])
      }
      await tar.addStream(entry.path, entry.size, options.store.openRead(entry.digest!))
    }
    tarResult = await tar.finish()
    clearInterval(progress)
    zstd.stdin.end()
    await zstd.done
    await writeback?.stop()
    split = await partsPromise
  } catch (error) {
    clearInterval(progress)
    await writeback?.stop().catch(() => {})
    tar.abort()
    // Several things fail together when one does (zstd, the parts writer, our writes into zstd): report the
    // one that explains it. A full disk first, then an airpack error, then zstd's own message when our error
    // is only the broken pipe it left behind.
    zstd.kill()
    await partsPromise?.catch(() => {})
    const zstdError = await zstd.done.then(
      () => undefined,
      (e: unknown) => e,
    )
    const candidates = [partsError, zstdError, stdinError, error].filter((e) => e !== undefined)
    const cause =
      candidates.find(isDiskFull) ??
      candidates.find((e) => e instanceof AirpackError) ??
      (isPipeBreak(error) || stdinError !== undefined ? (zstdError ?? error) : error)
    await abortAll()
    if (isDiskFull(cause)) throw diskFull(options.outputDir, cause)
    throw cause
  }

  try {
    let compressedSize: number
    let compressedSha256: string | undefined
    let parts: PartsFile | undefined
    if (split) {
      outputs.push(...split.parts.map((p) => p.output))
      compressedSize = split.size
      compressedSha256 = split.sha256
      parts = {
        formatVersion: 1,
        file: bundleFile,
        size: split.size,
        sha256: split.sha256,
        partSize: options.partSize!,
        parts: split.parts.map((p) => ({name: p.name, size: p.size, sha256: p.sha256})),
        join: `cat ${bundleFile}.[0-9][0-9][0-9] > ${bundleFile}`,
      }
      const partsOut = await atomicOutput(path.join(options.outputDir, `${options.name}.parts.json`))
      outputs.push(partsOut)
      await writeFile(partsOut.tmpPath, canonicalJson(parts))
    } else {
      compressedSize = (await stat(single!.tmpPath)).size
      if (signer) {
        // zstd wrote the file itself (fastest): one streamed read-back for the detached signature.
        const hash = createHash('sha256')
        for await (const chunk of createReadStream(single!.tmpPath, {highWaterMark: 1 << 20})) {
          hash.update(chunk as Buffer)
          signer.update(chunk as Buffer)
        }
        compressedSha256 = hash.digest('hex')
      }
    }
    if (signer) {
      const sigOut = await atomicOutput(path.join(options.outputDir, `${bundleFile}.sig`))
      outputs.push(sigOut)
      await writeFile(sigOut.tmpPath, signer.sign())
    }
    const files = outputs.map((o) => path.basename(o.finalPath))
    return {
      identity: `sha256:${tarResult.sha256}`,
      tarSize: tarResult.size,
      compressedSize,
      ...(compressedSha256 ? {compressedSha256} : {}),
      manifest,
      parts,
      files,
      async commit() {
        await removeStaleOutputs(options.outputDir, options.name, new Set(files))
        for (const o of outputs) await o.commit()
      },
      abort: abortAll,
    }
  } catch (error) {
    await abortAll()
    if (isDiskFull(error)) throw diskFull(options.outputDir, error)
    throw error
  }
}

/**
 * Pushes the bundle file's dirty pages to disk while zstd is still writing it, so that the fsync before the
 * rename (which stays, in atomicOutput.commit) finds little left to flush instead of a whole GiB. One flush at
 * a time, off the main thread (libuv's pool). A flush error is kept and thrown by stop(): swallowing it here
 * could hide it from the final fsync.
 */
class WritebackFlusher {
  private fd: FileHandle | undefined
  private inFlight: Promise<void> | undefined
  private error: unknown
  private stopped = false
  private readonly timer: NodeJS.Timeout

  constructor(private readonly file: string) {
    this.timer = setInterval(() => this.flush(), 250)
    this.timer.unref()
  }

  private flush(): void {
    if (this.inFlight || this.stopped || this.error !== undefined) return
    this.inFlight = (async () => {
      // zstd creates the file when it starts; until then there is nothing to flush.
      this.fd ??= await open(this.file, 'r').catch(() => undefined)
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
  let names: string[] = []
  try {
    names = await readdir(dir)
  } catch {
    return
  }
  const partRe = new RegExp(`^${bundleFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d{3,}$`)
  for (const n of names) if (partRe.test(n)) candidates.add(n)
  for (const n of candidates) if (!keep.has(n) && names.includes(n)) await rm(path.join(dir, n), {force: true})

}

