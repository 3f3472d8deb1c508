import {rmSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'

import {BlobStore, defaultCacheDir} from '../cache/store.js'
import {badBundleName, UsageError} from '../errors.js'
import {lockedImageBlobs, type Lock} from '../lock/types.js'
import type {Platform} from '../oci/descriptor.js'
import {formatPlatform} from '../oci/platform.js'
import type {LoadedProfile} from '../profile/index.js'
import {serializeLock, type FetchReport, type RegistryAccessOptions, type SupplyChainMode} from '../resolve/index.js'
import {startFetch} from '../fetch/index.js'
import {chartContentWarnings, loadValidProfiles, lockProfiles} from '../resolve/profiles.js'
import {ensureFreeSpace, type SpaceNeed} from '../util/disk.js'
import {atomicOutput, pendingTemporaryOutputs, removeAbandonedTemporaries, type AtomicOutput} from '../util/atomic.js'
import {canonicalJson} from '../util/canonical-json.js'
import {sha256Hex} from '../util/digest.js'
import {silentLogger, type Logger} from '../util/log.js'
import {buildDefinitionTgz} from './definition.js'
import {loadSigningKey, type SigningKey} from './sign.js'
import {formatBytes} from '../util/format.js'
import {
  DEFAULT_FORMAT_VERSION,
  FORMAT_VERSION,
  SEEKABLE_FORMAT_VERSION,
  type BundleFormatVersion,
  type BundleManifest,
} from './format.js'
import {BlobRestartedError} from './follow.js'
import {BUNDLE_NAME_RE, diskFull, writeBundle, type PendingBundle, type WriteBundleOptions} from './writer.js'
import {killAllZstd, zstdVersion} from './zstd.js'
import {initStore} from '../resolve/store-init.js'
import {inventoryFileName, inventoryOf, serializeInventory} from '../delta/inventory.js'
import type {DeltaBase, DeltaMode, DeltaSummary} from '../delta/build.js'
import {ensureWritableDir} from '../util/environment.js'
import {loadZstdWasm} from '../zstd/wasm.js'

// `airpack bundle build` as a service: validate → resolve (or check the given lock) → fetch → write every output
// of PRODUCT.md §3 under temporary names → publish them all. A failure or an interrupt at any step publishes
// nothing; only files that were complete before the build started are left as they were.

export interface BuildOptions {
  profiles: string[]
  arch: 'amd64' | 'arm64'
  mode: 'appliance' | 'agent'
  vars: Record<string, string>
  name: string
  outputDir: string
  lockFile?: string
  locked: boolean
  /** `carry` (default) or `skip` the images' signatures, attestations, SBOMs and referrers (PRODUCT.md §13). */
  supplyChain?: SupplyChainMode
  registry: RegistryAccessOptions
  signKeyFile?: string
  partSize?: number
  sitesFile?: string
  compressionLevel: number
  /** Bundle format (2, the seekable format of PRODUCT.md §4, by default; 1 is one zstd stream). */
  formatVersion?: BundleFormatVersion
  cacheDir?: string
  airpackVersion: string
  /** SOURCE_DATE_EPOCH, parsed; the only time that may enter the bundle. */
  sourceDateEpoch?: number
  /** --delta-from: also write NAME.delta.tar.zst against these bases (PRODUCT.md §11). */
  deltaFrom?: string[]
  deltaMode?: DeltaMode
  logger?: Logger
}

export interface BuildReport {
  name: string
  identity: string
  platform: Platform
  airpackVersion: string
  outputDir: string
  files: string[]
  bundle: {
    files: string[]
    tarBytes: number
    compressedBytes: number
    compressedSha256?: string
    compressionLevel: number
    formatVersion: BundleFormatVersion
    /** What compressed the bundle, as bundle.json records it. */
    compression: BundleManifest['compression']
    /** Format 1: the version of the zstd program that compressed it (format 2 does not run it). */
    zstdVersion?: string
    parts?: {name: string; size: number; sha256: string}[]
    signature?: {algorithm: string; publicKeyFingerprint: string; file: string}
  }
  artifacts: {
    kind: string
    reference: string
    digest: string
    source: string
    bytes: number
    downloadedBytes: number
    cacheHit: boolean
    seconds: number
  }[]
  userData: {site: string; file: string; sha256: string}[]
  /** With --delta-from: the delta written beside the whole bundle. */
  delta?: DeltaSummary
  warnings: string[]
  totals: {
    artifacts: number
    images: number
    charts: number
    blobs: number
    bytes: number
    downloadedBytes: number
    cachedBytes: number
    resolveSeconds: number
    fetchSeconds: number
    writeSeconds: number
    seconds: number
    /** Uncompressed tar bytes written per second of the write step. */
    writeThroughputMBps: number
    /** Bytes downloaded per second of the fetch step. */
    downloadThroughputMBps: number
  }
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits

export function sourceDateEpochFrom(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.SOURCE_DATE_EPOCH
  if (raw === undefined || raw === '') return undefined
  if (!/^\d{1,12}$/.test(raw)) {
    throw new UsageError(
      'BAD_SOURCE_DATE_EPOCH',
      `SOURCE_DATE_EPOCH=${JSON.stringify(raw)} is not a number of seconds since 1970`,
      {
        hint: 'Set it to an integer such as $(git log -1 --format=%ct), or unset it.',
      },
    )
  }
  return Number(raw)
}

function cloudTypeOf(profiles: LoadedProfile[]): string {
  // Add-on profiles say `all`; the cluster a definition creates through Local UI is always edge-native.
  const infra = profiles.find((p) => p.type === 'infra' || p.type === 'cluster')
  const cloudType = (infra ?? profiles[0])?.cloudType
  return !cloudType || cloudType === 'all' ? 'edge-native' : cloudType
}

/** Removes every temporary output synchronously: on SIGINT/SIGTERM there is no time for promises. */
function installInterruptCleanup(extra: () => void, logger: Logger): () => void {
  const handler = (signal: NodeJS.Signals) => {
    for (const tmp of pendingTemporaryOutputs()) rmSync(tmp, {force: true, recursive: true})
    extra()
    logger.warn(
      `interrupted by ${signal}: the build was stopped and its partial outputs removed; nothing was published`,
    )
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }
  process.once('SIGINT', handler)
  process.once('SIGTERM', handler)
  return () => {
    process.removeListener('SIGINT', handler)
    process.removeListener('SIGTERM', handler)
  }
}

/** What does not depend on the network, checked before anything else so that it fails fast. */
async function preflight(options: BuildOptions): Promise<{zstd?: string; signingKey?: SigningKey; outputDir: string}> {
  if (!BUNDLE_NAME_RE.test(options.name)) throw badBundleName(options.name)
  if (options.locked && !options.lockFile) {
    throw new UsageError('LOCKED_NEEDS_LOCK', '--locked needs --lock-file FILE (the lock to build from)', {
      hint: 'Write a lock with `airpack profile resolve PROFILE... --arch A --lock-file FILE`, then build with --locked --lock-file FILE.',
    })
  }
  // Format 2 compresses in this process (bundle.json records the WebAssembly package): only format 1 runs, and so
  // needs, the zstd program.
  const zstd = (options.formatVersion ?? DEFAULT_FORMAT_VERSION) === FORMAT_VERSION ? await zstdVersion() : undefined
  const signingKey = options.signKeyFile ? await loadSigningKey(options.signKeyFile) : undefined
  const outputDir = path.resolve(options.outputDir)
  await ensureWritableDir(outputDir, {
    code: 'OUTPUT_UNWRITABLE',
    what: 'the output directory',
    hint: 'Choose a directory on a writable file system with --output DIR, or fix its permissions.',
  })
  // Before the free-space check: what an earlier build of NAME killed mid-write left takes the space this one needs.
  await removeAbandonedTemporaries(outputDir, options.name)
  return {zstd, signingKey, outputDir}
}

/** The cluster definition: the profiles' documents and the variable values (definition's own, then --var). */
function definitionFor(profiles: LoadedProfile[], options: BuildOptions): Buffer {
  const variables: Record<string, string> = {}
  for (const p of profiles) Object.assign(variables, p.definitionVars ?? {})
  Object.assign(variables, options.vars)
  return buildDefinitionTgz({
    name: options.name,
    cloudType: cloudTypeOf(profiles),
    profiles: profiles.map((p) => ({name: p.name, version: p.version, document: p.document})),
    variables,
    mtime: options.sourceDateEpoch ?? 0,
  })
}

interface Packed {
  fetched: FetchReport
  pending: PendingBundle
  fetchSeconds: number
  writeSeconds: number
}

interface PackInput {
  lock: Lock
  store: BlobStore
  registry: RegistryAccessOptions
  profiles: LoadedProfile[]
  definitionTgz: Buffer
  outputDir: string
  signingKey?: SigningKey
  logger: Logger
}

/** What the writer needs for this build's bundle (and its delta, written from the same plan). */
function writeOptionsOf(options: BuildOptions, input: PackInput): WriteBundleOptions {
  return {
    name: options.name,
    outputDir: input.outputDir,
    lock: input.lock,
    store: input.store,
    profiles: input.profiles.map((p) => ({name: p.name, version: p.version, sha256: p.sha256, document: p.document})),
    definitionTgz: input.definitionTgz,
    compressionLevel: options.compressionLevel,
    formatVersion: options.formatVersion,
    airpackVersion: options.airpackVersion,
    sourceDateEpoch: options.sourceDateEpoch,
    signingKey: input.signingKey,
    partSize: options.partSize,
    logger: input.logger,
  }
}

/**
 * Fetch by digest only, and pack while fetching: the writer streams each blob (in digest order, the order the
 * fetch follows) as soon as the cache has verified and published it. Only verified bytes enter the tar, and a
 * failed fetch fails the writer, so nothing is published. `onPending` learns of a written bundle even when the
 * fetch failed, so that the caller can abort it.
 */
async function fetchAndPack(
  options: BuildOptions,
  input: PackInput,
  onPending: (p: PendingBundle) => void,
): Promise<Packed> {
  const t1 = Date.now()
  const fetching = startFetch(input.lock, input.store, input.registry)
  let fetchSeconds = 0
  const fetchDone = fetching.done.then((r) => {
    fetchSeconds = (Date.now() - t1) / 1000
    return r
  })
  const writing = writeBundle({
    ...writeOptionsOf(options, input),
    blobReady: fetching.ready,
    blobGrowing: (digest) => input.store.growing(digest),
  })
  const [fetchResult, writeResult] = await Promise.allSettled([fetchDone, writing])
  if (writeResult.status === 'fulfilled') onPending(writeResult.value)
  // The fetch's error explains a writer that stopped waiting for a blob, so it comes first.
  if (fetchResult.status === 'rejected') throw fetchResult.reason
  let pending: PendingBundle
  if (writeResult.status === 'fulfilled') pending = writeResult.value
  else if (writeResult.reason instanceof BlobRestartedError) {
    // Rare: a download started over while it was framed. Every blob is verified in the cache now: write again.
    pending = await writeBundle(writeOptionsOf(options, input))
    onPending(pending)
  } else throw writeResult.reason
  return {fetched: fetchResult.value, pending, fetchSeconds, writeSeconds: (Date.now() - t1) / 1000}
}

/** The outputs besides the bundle, all under temporary names until everything is ready. */
class StagedOutputs {
  readonly outputs: AtomicOutput[] = []

  constructor(private readonly outputDir: string) {}

  async stage(file: string, data: string | Buffer, finalPath = path.join(this.outputDir, file)): Promise<void> {
    const out = await atomicOutput(finalPath)
    this.outputs.push(out)
    await writeFile(out.tmpPath, data)
  }

  /** The staged files relative to the output directory (a --lock-file elsewhere is not listed). */
  files(): string[] {
    return this.outputs.map((o) => path.relative(this.outputDir, o.finalPath))
  }

  async commit(): Promise<void> {
    for (const o of this.outputs) await o.commit()
  }

  async abort(): Promise<void> {
    for (const o of this.outputs) await o.abort().catch(() => {})
  }
}

async function stageSideOutputs(
  staged: StagedOutputs,
  options: BuildOptions,
  lock: Lock,
  definitionTgz: Buffer,
  siteDocuments: {name: string; text: string}[],
): Promise<BuildReport['userData']> {
  const lockText = serializeLock(lock)
  await staged.stage(`${options.name}.lock.json`, lockText)
  if (options.lockFile && !options.locked) await staged.stage('', lockText, path.resolve(options.lockFile))
  await staged.stage(`${options.name}-definition.tgz`, definitionTgz)
  const userData: BuildReport['userData'] = []
  for (const doc of siteDocuments) {
    const file = path.join('user-data', doc.name, 'user-data')
    await staged.stage(file, doc.text)
    userData.push({site: doc.name, file, sha256: sha256Hex(doc.text)})
  }
  return userData
}

/** One row per artifact; `source` is the endpoint actually used: the one that served its downloaded bytes, else the
 *  one it was resolved from, else `cache` (a --locked build whose every blob was cached). */
function artifactRows(
  pending: PendingBundle,
  fetched: FetchReport,
  resolvedFrom: ReadonlyMap<string, string>,
): BuildReport['artifacts'] {
  const byRef = new Map(fetched.artifacts.map((a) => [`${a.kind}\0${a.reference}`, a]))
  // The fetch reports an image's supply-chain artefacts with the image (same repository, same endpoint).
  return pending.manifest.artifacts
    .filter((a) => a.kind === 'image' || a.kind === 'chart')
    .map((a) => {
      const f = byRef.get(`${a.kind}\0${a.reference}`)
      return {
        kind: a.kind,
        reference: a.reference,
        digest: a.digest,
        source: f?.source ?? resolvedFrom.get(`${a.kind}\0${a.reference}`) ?? 'cache',
        bytes: f?.bytes ?? a.contentSize,
        downloadedBytes: f?.downloadedBytes ?? 0,
        cacheHit: f?.cacheHit ?? true,
        seconds: round(f?.seconds ?? 0),
      }
    })
}

interface ReportInput {
  lock: Lock
  packed: Packed
  zstd?: string
  signingKey?: SigningKey
  outputDir: string
  userData: BuildReport['userData']
  warnings: string[]
  resolveSeconds: number
  seconds: number
  /** The endpoint each artifact was resolved from (absent under --locked, where nothing is resolved). */
  resolvedFrom: ReadonlyMap<string, string>
  delta?: {pending: PendingBundle; summary: DeltaSummary}
}

function bundleSection(
  options: BuildOptions,
  {packed: {pending}, zstd, signingKey}: ReportInput,
): BuildReport['bundle'] {
  return {
    files: pending.files,
    tarBytes: pending.tarSize,
    compressedBytes: pending.compressedSize,
    ...(pending.compressedSha256 ? {compressedSha256: pending.compressedSha256} : {}),
    compressionLevel: options.compressionLevel,
    formatVersion: pending.manifest.formatVersion,
    compression: pending.manifest.compression,
    ...(zstd !== undefined ? {zstdVersion: zstd} : {}),
    ...(pending.parts ? {parts: pending.parts.parts} : {}),
    ...(signingKey
      ? {
          signature: {
            algorithm: signingKey.algorithm,
            publicKeyFingerprint: signingKey.publicKeyFingerprint,
            file: `${options.name}.tar.zst.sig`,
          },
        }
      : {}),
  }
}

function totalsSection(artifacts: number, input: ReportInput): BuildReport['totals'] {
  const {pending, fetched, fetchSeconds, writeSeconds} = input.packed
  const mb = 1e6
  return {
    artifacts,
    images: pending.manifest.totals.images,
    charts: pending.manifest.totals.charts,
    blobs: pending.manifest.totals.blobs,
    bytes: pending.manifest.totals.blobBytes,
    downloadedBytes: fetched.downloadedBytes,
    cachedBytes: fetched.cachedBytes,
    resolveSeconds: round(input.resolveSeconds),
    fetchSeconds: round(fetchSeconds),
    writeSeconds: round(writeSeconds),
    seconds: round(input.seconds),
    writeThroughputMBps: round(pending.tarSize / mb / Math.max(writeSeconds, 0.001)),
    downloadThroughputMBps: round(fetched.downloadedBytes / mb / Math.max(fetchSeconds, 0.001)),
  }
}

function buildReportOf(options: BuildOptions, input: ReportInput, stagedFiles: string[]): BuildReport {
  const artifacts = artifactRows(input.packed.pending, input.packed.fetched, input.resolvedFrom)
  const reportName = `${options.name}.report.json`
  const files = [...input.packed.pending.files, ...(input.delta?.pending.files ?? []), ...stagedFiles, reportName]
    .filter((f) => !f.startsWith('..'))
    .sort()
  return {
    name: options.name,
    identity: input.packed.pending.identity,
    platform: input.lock.platform,
    airpackVersion: options.airpackVersion,
    outputDir: input.outputDir,
    files,
    bundle: bundleSection(options, input),
    artifacts,
    userData: input.userData,
    ...(input.delta ? {delta: input.delta.summary} : {}),
    warnings: input.warnings,
    totals: totalsSection(artifacts.length, input),
  }
}

// The user-data and delta code (with zod, the YAML schemas and the bundle reader) is imported only by the builds
// whose --sites or --delta-from need it: what every build loads at start-up is part of its wall time.

async function siteDocumentsOf(sitesFile: string, mode: BuildOptions['mode']) {
  const {buildSiteDocuments, loadInventory} = await import('../userdata/index.js')
  return (await buildSiteDocuments(await loadInventory(sitesFile), mode)).documents
}

/** Everything a build needs before the network: valid profiles, rendered sites, the cache, the registry access. */
async function prepareBuild(options: BuildOptions, logger: Logger) {
  const {zstd, signingKey, outputDir} = await preflight(options)
  const valid = await loadValidProfiles({
    ...options,
    logger,
    refusal: {
      outcome: 'nothing was downloaded',
      hint: 'Fix the findings listed above (or see `airpack profile validate` for the full report), then build again.',
    },
  })
  // Sites are rendered (in memory) before anything is downloaded: an invalid inventory fails fast (exit 3).
  const siteDocuments = options.sitesFile ? await siteDocumentsOf(options.sitesFile, options.mode) : []
  // The bases of --delta-from, before anything is downloaded: a wrong or unreadable base fails fast.
  const bases: DeltaBase[] = options.deltaFrom?.length
    ? await (await import('../delta/build.js')).loadDeltaBases(options.deltaFrom, valid.platform)
    : []
  const store = new BlobStore(options.cacheDir ? path.resolve(options.cacheDir) : defaultCacheDir())
  await initStore(store)
  const registry: RegistryAccessOptions = {...options.registry, logger}
  return {zstd, signingKey, outputDir, valid, siteDocuments, bases, store, registry}
}

type Prepared = Awaited<ReturnType<typeof prepareBuild>>

/** The lock: resolved now, or read and checked (--locked); then the space check for what the build will write. */
async function resolveForBuild(options: BuildOptions, prepared: Prepared, logger: Logger) {
  const {valid, registry, store, outputDir} = prepared
  const t0 = Date.now()
  const {images, charts} = valid.content
  if (!options.locked)
    logger.info(
      `Resolving ${images.length} image reference(s) and ${charts.length} chart(s) for ${formatPlatform(valid.platform)}…`,
    )
  const {lock, plan} = await lockProfiles(valid, {
    registry,
    store,
    lockedFile: options.locked ? options.lockFile : undefined,
    supplyChain: options.supplyChain,
  })
  const resolveSeconds = (Date.now() - t0) / 1000
  // AIRPACK_SKIP_SPACE_CHECK=1: for filesystems whose free-space figure is wrong (some network mounts, quotas).
  if (process.env.AIRPACK_SKIP_SPACE_CHECK !== '1') await ensureFreeSpace(await spaceNeeds(lock, store, outputDir))
  const resolvedFrom = new Map((plan?.artifacts ?? []).map((a) => [`${a.kind}\0${a.reference}`, a.source]))
  return {lock, resolveSeconds, resolvedFrom}
}

/** Every output besides the bundle, staged under temporary names: lock, definition, user-data, inventory, report. */
async function stageEverythingElse(
  options: BuildOptions,
  prepared: Prepared,
  resolved: Awaited<ReturnType<typeof resolveForBuild>>,
  packed: Packed,
  staged: StagedOutputs,
  extra: {
    started: number
    definitionTgz: Buffer
    logger: Logger
    delta?: {pending: PendingBundle; summary: DeltaSummary}
  },
): Promise<BuildReport> {
  const {lock} = resolved
  const {valid, store} = prepared
  // Every chart archive is in the cache now: check what their values.yaml name against the content tags.
  const chartWarnings = await chartContentWarnings({...valid, lock}, store, extra.logger)
  const userData = await stageSideOutputs(staged, options, lock, extra.definitionTgz, prepared.siteDocuments)
  // What a later `--delta-from` or `bundle diff` needs of this bundle, without the bundle itself.
  await staged.stage(
    inventoryFileName(options.name),
    serializeInventory(
      inventoryOf({name: options.name, identity: packed.pending.identity, manifest: packed.pending.manifest}),
    ),
  )
  const input: ReportInput = {
    lock,
    packed,
    zstd: prepared.zstd,
    signingKey: prepared.signingKey,
    outputDir: prepared.outputDir,
    userData,
    warnings: [...valid.warnings, ...chartWarnings],
    resolveSeconds: resolved.resolveSeconds,
    seconds: (Date.now() - extra.started) / 1000,
    resolvedFrom: resolved.resolvedFrom,
    delta: extra.delta,
  }
  const report = buildReportOf(options, input, staged.files())
  await staged.stage(`${options.name}.report.json`, canonicalJson(report))
  return report
}

export async function buildBundle(options: BuildOptions): Promise<BuildReport> {
  const logger = options.logger ?? silentLogger
  const started = Date.now()
  // Format 2 compresses with WebAssembly: its module compiles (off the main thread) while the profiles load and the
  // registry answers, not at the first frame (a warm 1 GiB build waited ~30 ms there). A failure to load surfaces
  // where the writer awaits the same promise.
  if ((options.formatVersion ?? DEFAULT_FORMAT_VERSION) === SEEKABLE_FORMAT_VERSION) void loadZstdWasm().catch(() => {})
  const prepared = await prepareBuild(options, logger)
  const {outputDir, valid} = prepared
  const staged = new StagedOutputs(outputDir)
  let pending: PendingBundle | undefined
  let delta: {pending: PendingBundle; summary: DeltaSummary} | undefined
  const uninstall = installInterruptCleanup(killAllZstd, logger)
  try {
    const resolved = await resolveForBuild(options, prepared, logger)
    const definitionTgz = definitionFor(valid.profiles, options)
    const packInput = {...prepared, lock: resolved.lock, profiles: valid.profiles, definitionTgz, logger}
    const packed = await fetchAndPack(options, packInput, (p) => (pending = p))
    // The delta after the whole bundle: its identity is then known, and every blob is in the cache.
    if (prepared.bases.length > 0)
      delta = await (
        await import('../delta/build.js')
      ).writeDelta(writeOptionsOf(options, packInput), packed.pending, prepared.bases, options.deltaMode ?? 'thin')
    const report = await stageEverythingElse(options, prepared, resolved, packed, staged, {
      started,
      definitionTgz,
      logger,
      delta,
    })
    await publish([packed.pending, ...(delta ? [delta.pending] : [])], staged, outputDir)
    logger.info(
      `Wrote ${report.files.length} file(s) to ${outputDir} (${formatBytes(packed.pending.compressedSize)} compressed, ${round(report.totals.seconds, 1)} s)`,
    )
    return report
  } catch (error) {
    await pending?.abort().catch(() => {})
    await delta?.pending.abort().catch(() => {})
    await staged.abort()
    if ((error as NodeJS.ErrnoException)?.code === 'ENOSPC') throw diskFull(outputDir, error)
    throw error
  } finally {
    uninstall()
  }
}

/** Publish: the bundle (and its parts, signature) first, then its delta, then the rest. */
async function publish(bundles: PendingBundle[], staged: StagedOutputs, outputDir: string): Promise<void> {
  try {
    for (const pending of bundles) await pending.commit()
    await staged.commit()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOSPC') throw diskFull(outputDir, error)
    throw error
  }
}

/**
 * What a build will write, from the lock's exact sizes: the blobs not yet cached (into the cache), and a bundle
 * about as large as all its blobs (layers are already compressed, so zstd gains little), plus 1 % for tar
 * headers, metadata and the other outputs.
 */
async function spaceNeeds(lock: Lock, store: BlobStore, outputDir: string): Promise<SpaceNeed[]> {
  const sizes = new Map<string, number>()
  for (const image of Object.values(lock.images)) {
    sizes.set(image.digest, image.size)
    for (const d of [image.platformManifest, ...lockedImageBlobs(image)]) sizes.set(d.digest, d.size)
  }
  for (const chart of Object.values(lock.charts))
    for (const d of [chart.manifest, ...chart.blobs]) sizes.set(d.digest, d.size)
  let total = 0
  let missing = 0
  for (const [digest, size] of sizes) {
    total += size
    if ((await store.size(digest)) === undefined) missing += size
  }
  return [
    {dir: store.root, bytes: missing, what: 'blobs to download into the cache'},
    {dir: outputDir, bytes: Math.ceil(total * 1.01), what: 'the bundle and its outputs'},
  ]
}
