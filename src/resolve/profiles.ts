import type {BlobStore} from '../cache/store.js'
import {invalidProfiles, ResolveError} from '../errors.js'
import {chartKey, withoutCarriedSupplyChain, type Lock} from '../lock/types.js'
import type {Platform} from '../oci/descriptor.js'
import {formatPlatform} from '../oci/platform.js'
import {collectContent, loadProfiles, renderFinding, validateProfiles, type LoadedProfile} from '../profile/index.js'
import type {Arch} from '../profile/types.js'
import {silentLogger, type Logger} from '../util/log.js'
import {checkChartContent} from './chart-content.js'
import {parseReference} from '../registry/reference.js'
import {parseSupplyChainReference} from '../supply/cosign.js'
import {
  checkLockCurrent,
  readLock,
  resolveArtifacts,
  type RegistryAccessOptions,
  type ResolvePlan,
  type SupplyChainMode,
} from './index.js'

// The service behind `profile resolve` and the first half of `bundle build`: load and validate the profiles (refuse
// invalid ones before any network access), collect what they name, then pin it in a lock — by resolving every
// reference, or, under --locked, by checking that a given lock still covers the profiles and that no tag moved.

type CollectedContent = ReturnType<typeof collectContent>

export interface ProfileRequest {
  profiles: string[]
  arch: Arch
  mode: 'appliance' | 'agent'
  vars: Record<string, string>
  logger?: Logger
  /** What did not happen when the profiles are refused ("nothing was resolved"), and how to go on. */
  refusal: {outcome: string; hint: string}
}

export interface ValidProfiles {
  profiles: LoadedProfile[]
  content: CollectedContent
  platform: Platform
  /** Rendered warning findings (already logged). */
  warnings: string[]
}

export interface LockRequest {
  registry: RegistryAccessOptions
  store: BlobStore
  /** Build from this lock instead of resolving (--locked --lock-file). */
  lockedFile?: string
  /** `carry` (default) or `skip` the images' signatures, attestations, SBOMs and referrers. */
  supplyChain?: SupplyChainMode
}

export interface LockedProfiles extends ValidProfiles {
  lock: Lock
  /** The resolve plan; absent under --locked, where nothing was resolved. */
  plan?: ResolvePlan
}

/** Load and validate the profiles; throws exit 3 with every error finding when they are invalid. */
export async function loadValidProfiles(request: ProfileRequest): Promise<ValidProfiles> {
  const logger = request.logger ?? silentLogger
  const profiles = await loadProfiles(request.profiles)
  const validation = validateProfiles(profiles, {arch: request.arch, mode: request.mode, vars: request.vars})
  if (!validation.valid) {
    const errors = validation.findings.filter((f) => f.severity === 'error')
    throw invalidProfiles(errors.map(renderFinding), request.refusal.outcome, {
      hint: request.refusal.hint,
      findings: validation.findings,
    })
  }
  const warnings = validation.findings.filter((f) => f.severity === 'warning').map(renderFinding)
  for (const w of warnings) logger.warn(w)
  const content = collectContent(profiles, {arch: request.arch, vars: request.vars})
  return {profiles, content, platform: {os: 'linux', architecture: request.arch}, warnings}
}

/** Pin valid profiles' content in a lock: resolve it, or check the --locked lock against the profiles and the registries. */
export async function lockProfiles(valid: ValidProfiles, request: LockRequest): Promise<LockedProfiles> {
  const {content, platform, profiles} = valid
  const logger = request.registry.logger ?? silentLogger
  const supplyChain = request.supplyChain ?? 'carry'
  if (request.lockedFile) {
    // The lock drives: it carries the supply-chain artefacts it pins (none in a lock resolved with skip or by an
    // earlier airpack), and skip drops all but those listed by hand.
    const read = await readLock(request.lockedFile)
    const lock = supplyChain === 'skip' ? withoutCarriedSupplyChain(read) : read
    checkLockCovers(lock, content, platform.architecture, request.lockedFile)
    logger.info(`Checking that no tag of ${request.lockedFile} moved…`)
    await checkLockCurrent(lock, {...request.registry, supplyChain})
    return {...valid, lock}
  }
  const {lock, plan} = await resolveArtifacts(content, {
    ...request.registry,
    supplyChain,
    platform,
    store: request.store,
    profiles: profiles.map((p) => ({name: p.name, version: p.version, sha256: p.sha256})),
  })
  return {...valid, lock, plan}
}

/** `profile resolve`: valid profiles → a resolved lock and its plan. */
export async function resolveProfiles(
  request: ProfileRequest & LockRequest,
): Promise<LockedProfiles & {plan: ResolvePlan}> {
  const locked = await lockProfiles(await loadValidProfiles(request), {...request, lockedFile: undefined})
  const warnings = await chartContentWarnings(locked, request.store, request.logger ?? silentLogger)
  return {...locked, warnings: [...locked.warnings, ...warnings], plan: locked.plan!}
}

/** AP-CONTENT-UNLISTED for the charts whose archives are in the cache (logged, and returned rendered). */
export async function chartContentWarnings(
  locked: LockedProfiles,
  store: BlobStore,
  logger: Logger,
): Promise<string[]> {
  const check = await checkChartContent(locked.lock, locked.content.charts, locked.content.images, store)
  const warnings = check.findings.map(renderFinding)
  for (const w of warnings) logger.warn(w)
  for (const what of check.unchecked)
    logger.info(
      `${what}: the archive is not in the cache yet, so its values.yaml was not checked for unlisted images (bundle build checks it)`,
    )
  return warnings
}

/** A supply-chain reference listed in a profile is pinned as a listed artefact of an image of its repository. */
function lockPinsListed(lock: Lock, reference: string): boolean {
  const ref = parseSupplyChainReference(reference)!
  return Object.values(lock.images).some((image) => {
    const r = parseReference(image.reference)
    if (r.registry !== ref.registry || r.repository !== ref.repository) return false
    return (image.supplyChain ?? []).some((s) => s.listed && s.tag === ref.tag)
  })
}

/** Under --locked, the lock must pin exactly what the profiles ask for now. */
function checkLockCovers(lock: Lock, content: CollectedContent, arch: string, lockFile: string): void {
  const problems: string[] = []
  if (lock.platform.architecture !== arch)
    problems.push(`the lock is for ${formatPlatform(lock.platform)}, the build for --arch ${arch}`)
  const listedSupply = content.images.filter((i) => parseSupplyChainReference(i.reference))
  const wantImages = new Set(content.images.filter((i) => !listedSupply.includes(i)).map((i) => i.reference))
  for (const {reference} of listedSupply)
    if (!lockPinsListed(lock, reference)) problems.push(`the profiles list ${reference}, which the lock does not pin`)
  const wantCharts = new Set(content.charts.map((c) => chartKey(c.repository, c.name, c.version)))
  for (const ref of wantImages)
    if (!lock.images[ref]) problems.push(`the profiles need image ${ref}, which the lock does not pin`)
  for (const key of wantCharts)
    if (!lock.charts[key]) problems.push(`the profiles need chart ${key}, which the lock does not pin`)
  for (const ref of Object.keys(lock.images))
    if (!wantImages.has(ref)) problems.push(`the lock pins image ${ref}, which the profiles no longer use`)
  for (const key of Object.keys(lock.charts))
    if (!wantCharts.has(key)) problems.push(`the lock pins chart ${key}, which the profiles no longer use`)
  if (problems.length > 0) {
    throw new ResolveError('LOCK_MISMATCH', `--locked: ${lockFile} does not match the profiles`, {
      hint: 'Re-resolve without --locked (or `airpack profile resolve --lock-file`) and review the lock diff.',
      details: {file: lockFile, problems},
    })
  }
}
