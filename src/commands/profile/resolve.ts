import {BaseCommand} from '../../base-command.js'
import {BlobStore, defaultCacheDir} from '../../cache/store.js'
import {
  cacheDirFlag,
  profileArgs,
  concurrencyFlag,
  lockFileFlag,
  parseVars,
  profileFlags,
  registryAccessFrom,
  registryFlags,
  supplyChainFlag,
} from '../../flags.js'
import {formatPlatform} from '../../oci/platform.js'
import {writeLock, type ResolvePlan} from '../../resolve/index.js'
import {resolveProfiles} from '../../resolve/profiles.js'
import {formatBytes} from '../../util/format.js'

export interface ResolveResult extends ResolvePlan {
  platform: {os: string; architecture: string}
  lockFile?: string
}

export default class ProfileResolve extends BaseCommand<ResolveResult> {
  static summary = 'Pin every image and chart of the profiles to a digest for one platform, and write the lock.'

  static description = `Validates the profiles, then resolves each image and Helm chart they name through the registries,
mirrors and credentials given, without downloading layers: the image index (or manifest list) digest, the manifest
chosen for --arch, and the size of everything a bundle would carry. Prints the plan (totals after deduplication of
shared layers, and how much is already in the cache) and, with --lock-file, writes the lock that \`bundle build
--locked\` builds from. Every artifact that cannot be resolved is listed at once. With --supply-chain carry (the
default) each image's cosign signature, attestation and SBOM tags and OCI referrers are pinned too (absent ones are
fine, broken ones are errors); a cosign tag listed in a profile is pinned as its image's artefact, not as an image.

Exit codes: 0 resolved, 2 bad usage or unreadable input, 3 invalid profiles, 4 an artifact could not be resolved,
5 a registry served content that does not match its digest.`

  static examples = [
    '<%= config.bin %> profile resolve examples/profiles/k3s-calico-infra.json examples/profiles/addon-monitoring.json --arch amd64 --lock-file edge.lock.json',
    '<%= config.bin %> profile resolve profile.json --arch arm64 --registries /etc/rancher/k3s/registries.yaml --json',
    '<%= config.bin %> profile resolve profile.json --arch amd64 --cred-file palette-creds.json --insecure-registry registry.local:5000',
    '<%= config.bin %> profile resolve profile.json --arch amd64 --supply-chain skip --lock-file edge.lock.json',
  ]

  static args = profileArgs

  static strict = false

  static flags = {
    ...profileFlags(),
    'lock-file': lockFileFlag,
    ...registryFlags,
    concurrency: concurrencyFlag,
    'cache-dir': cacheDirFlag,
    'supply-chain': supplyChainFlag(),
  }

  async run(): Promise<ResolveResult> {
    const {argv, flags} = await this.parse(ProfileResolve)
    const {lock, plan, platform} = await resolveProfiles({
      profiles: argv as string[],
      arch: flags.arch,
      mode: flags.mode,
      vars: parseVars(flags.var),
      logger: this.logger,
      refusal: {
        outcome: 'nothing was resolved',
        hint: 'Run `airpack profile validate` with the same arguments for the full report, fix the errors, then resolve again.',
      },
      registry: {...registryAccessFrom(flags), logger: this.logger},
      supplyChain: flags['supply-chain'],
      store: new BlobStore(flags['cache-dir'] ?? defaultCacheDir()),
    })
    if (flags['lock-file']) await writeLock(flags['lock-file'], lock)
    this.log(renderPlan(plan, formatPlatform(platform), flags['lock-file']))
    return {platform, ...(flags['lock-file'] ? {lockFile: flags['lock-file']} : {}), ...plan}
  }
}

function renderPlan(plan: ResolvePlan, platform: string, lockFile?: string): string {
  const lines = [`Resolved ${plan.artifacts.length} artifact${plan.artifacts.length === 1 ? '' : 's'} for ${platform}:`]
  for (const a of plan.artifacts) {
    lines.push(`  ${a.kind.padEnd(5)} ${a.reference}`)
    lines.push(`        digest    ${a.digest}`)
    if (a.platformManifest && a.platformManifest !== a.digest)
      lines.push(`        platform  ${a.platformManifest} (${platform})`)
    lines.push(
      `        size      ${formatBytes(a.size)}${a.cached > 0 ? ` (${formatBytes(a.cached)} cached)` : ''} from ${a.source}`,
    )
    for (const s of a.supplyChain ?? [])
      lines.push(
        `        ${s.kind.padEnd(9)} ${s.tag ?? s.digest} (of ${s.subject === a.platformManifest ? 'the platform manifest' : 'the index'})`,
      )
  }
  lines.push(
    `Total after deduplication: ${plan.uniqueBlobs} blobs, ${formatBytes(plan.totalBytes)}; already cached: ${formatBytes(plan.cachedBytes)}; to download: ${formatBytes(plan.totalBytes - plan.cachedBytes)}`,
  )
  if (lockFile) lines.push(`Lock written to ${lockFile}`)
  return lines.join('\n')
}
