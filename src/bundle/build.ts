import {rmSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'

import {BlobStore, defaultCacheDir} from '../cache/store.js'
import {InvalidInputError, ResolveError, UsageError} from '../errors.js'
import {chartKey, type Lock, type Platform} from '../lock/types.js'
import {collectContent, loadProfiles, renderFinding, validateProfiles, type LoadedProfile} from '../profile/index.js'
import {checkLockCurrent, readLock, resolveArtifacts, serializeLock, type FetchReport, type RegistryAccessOptions} from '../resolve/index.js'
import {startFetch} from '../resolve/fetch.js'
import {ensureFreeSpace, type SpaceNeed} from '../util/disk.js'
import {atomicOutput, pendingTemporaryOutputs, type AtomicOutput} from '../util/atomic.js'
import {canonicalJson} from '../util/canonical-json.js'
import {sha256Hex} from '../util/digest.js'
import {silentLogger, type Logger} from '../util/log.js'
import {buildSiteDocuments, loadInventory} from '../userdata/index.js'
import {buildDefinitionTgz} from './definition.js'
import {loadSigningKey} from './sign.js'
import {formatBytes} from '../util/format.js'
import {BUNDLE_NAME_RE, diskFull, writeBundle, type PendingBundle} from './writer.js'
import {killAllZstd, zstdVersion} from './zstd.js'

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
  registry: RegistryAccessOptions
  signKeyFile?: string
  partSize?: number
  sitesFile?: string
  compressionLevel: number
  cacheDir?: string
  airpackVersion: string
  /** SOURCE_DATE_EPOCH, parsed; the only time that may enter the bundle. */
  sourceDateEpoch?: number
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
    zstdVersion: string
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
    throw new UsageError('BAD_SOURCE_DATE_EPOCH', `SOURCE_DATE_EPOCH=${JSON.stringify(raw)} is not a number of seconds since 1970`, {
      hint: 'Set it to an integer such as $(git log -1 --format=%ct), or unset it.',
    })
  }
  return Number(raw)
}

function cloudTypeOf(profiles: LoadedProfile[]): string {
  // Add-on profiles say `all`; the cluster a definition creates through Local UI is always edge-native.
  const infra = profiles.find((p) => p.type === 'infra' || p.type === 'cluster')
  const cloudType = (infra ?? profiles[0])?.cloudType
  return !cloudType || cloudType === 'all' ? 'edge-native' : cloudType
}

/** Under --locked, the lock must pin exactly what the profiles ask for now. */
function checkLockCovers(lock: Lock, content: ReturnType<typeof collectContent>, arch: string, lockFile: string): void {
  const problems: string[] = []
  if (lock.platform.architecture !== arch) problems.push(`the lock is for ${lock.platform.os}/${lock.platform.architecture}, the build for --arch ${arch}`)
  const wantImages = new Set(content.images.map((i) => i.reference))
  const wantCharts = new Set(content.charts.map((c) => chartKey(c.repository, c.name, c.version)))
  for (const ref of wantImages) if (!lock.images[ref]) problems.push(`the profiles need image ${ref}, which the lock does not pin`)
  for (const key of wantCharts) if (!lock.charts[key]) problems.push(`the profiles need chart ${key}, which the lock does not pin`)
  for (const ref of Object.keys(lock.images)) if (!wantImages.has(ref)) problems.push(`the lock pins image ${ref}, which the profiles no longer use`)
  for (const key of Object.keys(lock.charts)) if (!wantCharts.has(key)) problems.push(`the lock pins chart ${key}, which the profiles no longer use`)
  if (problems.length > 0) {
    throw new ResolveError('LOCK_MISMATCH', `--locked: ${lockFile} does not match the profiles`, {
      hint: 'Re-resolve without --locked (or `airpack profile resolve --lock-file`) and review the lock diff.',
      details: {file: lockFile, problems},
    })
  }
}

/** Removes every temporary output synchronously: on SIGINT/SIGTERM there is no time for promises. */
function installInterruptCleanup(extra: () => void, logger: Logger): () => void {
  const handler = (signal: NodeJS.Signals) => {
    for (const tmp of pendingTemporaryOutputs()) rmSync(tmp, {force: true, recursive: true})
    extra()
    logger.warn(`interrupted by ${signal}: the build was stopped and its partial outputs removed; nothing was published`)
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }
  process.once('SIGINT', handler)
  process.once('SIGTERM', handler)
  return () => {
    process.removeListener('SIGINT', handler)
    process.removeListener('SIGTERM', handler)
  }
}

export async function buildBundle(options: BuildOptions): Promise<BuildReport> {
  const logger = options.logger ?? silentLogger
  const started = Date.now()
  if (!BUNDLE_NAME_RE.test(options.name)) {
    throw new UsageError('BAD_NAME', `--name ${JSON.stringify(options.name)} is not a valid bundle name`, {
      hint: 'Use letters, digits, ".", "_" and "-" (at most 100), starting with a letter or digit.',
    })
  }
  if (options.locked && !options.lockFile) {
    throw new UsageError('LOCKED_NEEDS_LOCK', '--locked needs --lock-file FILE (the lock to build from)', {
      hint: 'Write a lock with `airpack profile resolve PROFILE... --arch A --lock-file FILE`, then build with --locked --lock-file FILE.',
    })
  }
  // Fail fast, before any download, on what does not depend on the network.
  const zstd = await zstdVersion()
  const signingKey = options.signKeyFile ? await loadSigningKey(options.signKeyFile) : undefined
  const outputDir = path.resolve(options.outputDir)

  const profiles = await loadProfiles(options.profiles)
  const validation = validateProfiles(profiles, {arch: options.arch, mode: options.mode, vars: options.vars})
  const errors = validation.findings.filter((f) => f.severity === 'error')
  if (!validation.valid) {
    throw new InvalidInputError('PROFILE_INVALID', `the profiles have ${errors.length} error${errors.length === 1 ? '' : 's'}; nothing was downloaded`, {
      hint: 'Fix the findings listed above (or see `airpack profile validate` for the full report), then build again.',
      details: {problems: errors.map(renderFinding), findings: validation.findings},
    })
  }
  const warnings = validation.findings.filter((f) => f.severity === 'warning').map(renderFinding)
  for (const w of warnings) logger.warn(w.split('\n')[0])

  // Sites are rendered (in memory) before anything is downloaded: an invalid inventory fails fast (exit 3).
  const siteDocuments = options.sitesFile
    ? (await buildSiteDocuments(await loadInventory(options.sitesFile), options.mode)).documents
    : []

  const store = new BlobStore(options.cacheDir ? path.resolve(options.cacheDir) : defaultCacheDir())
  await store.init()
  const registry: RegistryAccessOptions = {...options.registry, logger}
  const platform: Platform = {os: 'linux', architecture: options.arch}
  const content = collectContent(profiles, {arch: options.arch, vars: options.vars})
  const lockProfiles = profiles.map((p) => ({name: p.name, version: p.version, sha256: p.sha256, file: p.entry ? `${p.file}#${p.entry}` : p.file}))

  const outputs: AtomicOutput[] = []
  let pending: PendingBundle | undefined
  const uninstall = installInterruptCleanup(killAllZstd, logger)
  try {
    // Resolve, or check the given lock.
    const t0 = Date.now()
    let lock: Lock
    if (options.locked) {
      lock = await readLock(options.lockFile!)
      checkLockCovers(lock, content, options.arch, options.lockFile!)
      logger.info(`Checking that no tag of ${options.lockFile} moved…`)
      await checkLockCurrent(lock, registry)
    } else {
      logger.info(`Resolving ${content.images.length} image reference(s) and ${content.charts.length} chart(s) for ${platform.os}/${platform.architecture}…`)
      lock = (await resolveArtifacts({images: content.images, charts: content.charts}, {...registry, platform, store, profiles: lockProfiles})).lock
    }
    const resolveSeconds = (Date.now() - t0) / 1000
    // AIRPACK_SKIP_SPACE_CHECK=1: for filesystems whose free-space figure is wrong (some network mounts, quotas).
    if (process.env.AIRPACK_SKIP_SPACE_CHECK !== '1') await ensureFreeSpace(await spaceNeeds(lock, store, outputDir))

    // Cluster definition: the profiles' documents and the variable values (definition's own, then --var).
    const variables: Record<string, string> = {}
    for (const p of profiles) Object.assign(variables, p.definitionVars ?? {})
    Object.assign(variables, options.vars)
    const definitionTgz = buildDefinitionTgz({
      name: options.name,
      cloudType: cloudTypeOf(profiles),
      profiles: profiles.map((p) => ({name: p.name, version: p.version, document: p.document})),
      variables,
      mtime: options.sourceDateEpoch ?? 0,
    })

    // Fetch by digest only, and pack while fetching: the writer streams each blob (in digest order, the order
    // the fetch follows) as soon as the cache has verified and published it. Only verified bytes enter the tar,
    // and a failed fetch fails the writer, so nothing is published.
    const t1 = Date.now()
    const fetching = startFetch(lock, store, registry)
    let fetchSeconds = 0
    const fetchDone = fetching.done.then((r) => {
      fetchSeconds = (Date.now() - t1) / 1000
      return r
    })
    const writing = writeBundle({
      name: options.name,
      outputDir,
      lock,
      store,
      profiles: profiles.map((p) => ({name: p.name, version: p.version, sha256: p.sha256, document: p.document})),
      definitionTgz,
      compressionLevel: options.compressionLevel,
      airpackVersion: options.airpackVersion,
      sourceDateEpoch: options.sourceDateEpoch,
      signingKey,
      partSize: options.partSize,
      logger,
      blobReady: fetching.ready,
    })
    const [fetchResult, writeResult] = await Promise.allSettled([fetchDone, writing])
    if (writeResult.status === 'fulfilled') pending = writeResult.value
    // The fetch's error explains a writer that stopped waiting for a blob, so it comes first.
    if (fetchResult.status === 'rejected') throw fetchResult.reason
    if (writeResult.status === 'rejected') throw writeResult.reason
    const fetched: FetchReport = fetchResult.value
    pending = writeResult.value
    const writeSeconds = (Date.now() - t1) / 1000

    // The other outputs, all under temporary names until everything is ready.
    const stage = async (file: string, data: string | Buffer) => {
      const out = await atomicOutput(path.join(outputDir, file))
      outputs.push(out)
      await writeFile(out.tmpPath, data)
      return out
    }
    const lockText = serializeLock(lock)
    await stage(`${options.name}.lock.json`, lockText)
    if (options.lockFile && !options.locked) {
      const out = await atomicOutput(path.resolve(options.lockFile))
      outputs.push(out)
      await writeFile(out.tmpPath, lockText)
    }
    await stage(`${options.name}-definition.tgz`, definitionTgz)
    const userData: BuildReport['userData'] = []
    for (const doc of siteDocuments) {
      const file = path.join('user-data', doc.name, 'user-data')
      await stage(file, doc.text)
      userData.push({site: doc.name, file, sha256: sha256Hex(doc.text)})
    }

    const byRef = new Map(fetched.artifacts.map((a) => [`${a.kind}\0${a.reference}`, a]))
    const artifacts: BuildReport['artifacts'] = pending.manifest.artifacts
      .filter((a) => a.kind !== 'definition')
      .map((a) => {
        const f = byRef.get(`${a.kind}\0${a.reference}`)
        return {
          kind: a.kind,
          reference: a.reference,
          digest: a.digest,
          source: f?.source ?? a.source,
          bytes: f?.bytes ?? a.contentSize,
          downloadedBytes: f?.downloadedBytes ?? 0,
          cacheHit: f?.cacheHit ?? true,
          seconds: round(f?.seconds ?? 0),
        }
      })
    const seconds = (Date.now() - started) / 1000
    const mb = 1e6
    const bundleFiles = pending.files
    const report: BuildReport = {
      name: options.name,
      identity: pending.identity,
      platform: lock.platform,
      airpackVersion: options.airpackVersion,
      outputDir,
      files: [],
      bundle: {
        files: bundleFiles,
        tarBytes: pending.tarSize,
        compressedBytes: pending.compressedSize,
        ...(pending.compressedSha256 ? {compressedSha256: pending.compressedSha256} : {}),
        compressionLevel: options.compressionLevel,
        zstdVersion: zstd,
        ...(pending.parts ? {parts: pending.parts.parts} : {}),
        ...(signingKey
          ? {signature: {algorithm: signingKey.algorithm, publicKeyFingerprint: signingKey.publicKeyFingerprint, file: `${options.name}.tar.zst.sig`}}
          : {}),
      },
      artifacts,
      userData,
      warnings,
      totals: {
        artifacts: artifacts.length,
        images: pending.manifest.totals.images,
        charts: pending.manifest.totals.charts,
        blobs: pending.manifest.totals.blobs,
        bytes: pending.manifest.totals.blobBytes,
        downloadedBytes: fetched.downloadedBytes,
        cachedBytes: fetched.cachedBytes,
        resolveSeconds: round(resolveSeconds),
        fetchSeconds: round(fetchSeconds),
        writeSeconds: round(writeSeconds),
        seconds: round(seconds),
        writeThroughputMBps: round(pending.tarSize / mb / Math.max(writeSeconds, 0.001), 1),
        downloadThroughputMBps: round(fetched.downloadedBytes / mb / Math.max(fetchSeconds, 0.001), 1),
      },
    }
    const reportName = `${options.name}.report.json`
    report.files = [...bundleFiles, ...outputs.map((o) => path.relative(outputDir, o.finalPath)), reportName].filter((f) => !f.startsWith('..')).sort()
    await stage(reportName, canonicalJson(report))

    // Publish: the bundle (and its parts, signature) first, then the rest.
    try {
      await pending.commit()
      for (const o of outputs) await o.commit()
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') throw diskFull(outputDir, error)
      throw error
    }
    logger.info(`Wrote ${report.files.length} file(s) to ${outputDir} (${formatBytes(pending.compressedSize)} compressed, ${round(seconds, 1)} s)`)
    return report
  } catch (error) {
    await pending?.abort().catch(() => {})
    for (const o of outputs) await o.abort().catch(() => {})
    if ((error as NodeJS.ErrnoException)?.code === 'ENOSPC') throw diskFull(outputDir, error)
    throw error
  } finally {
    uninstall()
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
    for (const d of [image.platformManifest, ...image.blobs]) sizes.set(d.digest, d.size)
  }
  for (const chart of Object.values(lock.charts)) for (const d of [chart.manifest, ...chart.blobs]) sizes.set(d.digest, d.size)
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
