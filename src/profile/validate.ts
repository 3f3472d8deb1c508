// validateProfiles: every rule of rules.ts over a set of profiles that form one cluster. It never throws for
// invalid content; it reports findings. What is supported comes from the matrix data only (src/matrix/data.ts).

import {isIP} from 'node:net'

import {
  AGENT_UPGRADE_LIMITS,
  CLOUD_TYPES,
  CNI_PACKS,
  CSI_PACKS,
  DISTRIBUTIONS,
  MISNAMED_PACKS,
  MODES,
  OS_PACKS,
  findDistribution,
  kubernetesVersion,
  osFamily,
  type DistributionEntry,
} from '../matrix/index.js'
import {agentArch, isNoProviderImage, scanContent} from './content.js'
import {macroContext, resolveMacros, variableValue} from './macros.js'
import type {Finding, ImageRequest, LoadedProfile, PackModel, ValidateOptions, ValidationReport} from './types.js'
import {profileLocation} from './types.js'
import {packFinding, packOption, parseValues} from './values.js'
import {semver} from '../util/semver.js'

const INFRA_LAYERS = ['os', 'k8s', 'cni'] as const
const KNOWN_LAYERS = new Set(['os', 'k8s', 'cni', 'csi', 'addon'])
const PROVIDER_DISTRIBUTIONS = ['kubeadm-fips', 'kubeadm', 'k3s', 'rke2', 'canonical', 'nodeadm']

type Emit = (f: Finding) => void

function profileFinding(profile: LoadedProfile, f: Omit<Finding, 'file' | 'profile'>): Finding {
  return {
    ...f,
    file: profileLocation(profile),
    profile: profile.name,
    ...(f.line === undefined ? {} : {fileLine: f.line}),
  }
}

function isInfra(p: LoadedProfile): boolean {
  return p.type === 'infra' || p.type === 'cluster'
}

export function validateProfiles(profiles: LoadedProfile[], options: ValidateOptions): ValidationReport {
  const findings: Finding[] = []
  const emit: Emit = (f) => findings.push(f)

  checkProfiles(profiles, emit)
  const scan = scanContent(profiles, {arch: options.arch, ...(options.vars ? {vars: options.vars} : {})})
  const infra = profiles.find(isInfra)
  if (infra) checkMatrix(infra, profiles, options, scan.images, emit)
  checkCsi(profiles, infra, emit)
  findings.push(...scan.findings)
  checkContentPresence(profiles, scan.tagCounts, scan.misplaced, emit)
  checkVariables(profiles, options, emit)

  const errors = findings.filter((f) => f.severity === 'error').length
  return {
    valid: errors === 0,
    errors,
    warnings: findings.length - errors,
    findings,
    profiles: profiles.map((p) => ({file: profileLocation(p), name: p.name, version: p.version, type: p.type})),
  }
}

function checkProfiles(profiles: LoadedProfile[], emit: Emit): void {
  const infraProfiles = profiles.filter(isInfra)
  infraProfiles.slice(1).forEach((p) =>
    emit(
      profileFinding(p, {
        code: 'AP-INFRA-MULTIPLE',
        severity: 'error',
        message: `a second infrastructure/full profile ("${p.name}", besides "${infraProfiles[0]!.name}"); a cluster has one`,
        hint: 'Keep one infrastructure or full profile and make the others add-on profiles.',
        ...(p.fileLines?.type ? {line: p.fileLines.type} : {}),
        path: 'spec.template.type',
      }),
    ),
  )
  const seenPacks = new Map<string, LoadedProfile>()
  for (const profile of profiles) {
    checkProfileKind(profile, emit)
    const byLayer = checkPacks(profile, seenPacks, emit)
    checkLayers(profile, byLayer, emit)
  }
}

/** An Edge profile's cloud type, and a system profile (not what Edge clusters are built from). */
function checkProfileKind(profile: LoadedProfile, emit: Emit): void {
  const addon = profile.type === 'add-on'
  const allowed = addon ? CLOUD_TYPES.addon : CLOUD_TYPES.infra
  if (!allowed.includes(profile.cloudType)) {
    emit(
      profileFinding(profile, {
        code: 'AP-CLOUD-TYPE',
        severity: 'error',
        message: `cloudType is "${profile.cloudType}"; an Edge ${addon ? 'add-on' : 'cluster'} profile must say ${allowed.map((c) => `"${c}"`).join(' or ')}`,
        hint: 'Model the profile for Edge Native in Palette (cloud type edge-native) and export it again.',
        path: 'spec.template.cloudType',
        ...(profile.fileLines?.cloudType ? {line: profile.fileLines.cloudType} : {}),
      }),
    )
  }
  if (profile.type === 'system') {
    emit(
      profileFinding(profile, {
        code: 'AP-PROFILE-TYPE',
        severity: 'warning',
        message: 'this is a system profile; Edge clusters are built from infrastructure, full and add-on profiles',
        hint: 'Export the cluster profile (infra, full or add-on) instead.',
        path: 'spec.template.type',
        ...(profile.fileLines?.type ? {line: profile.fileLines.type} : {}),
      }),
    )
  }
}

/** Each pack once across all profiles, on a layer airpack checks; returns the profile's packs by layer. */
function checkPacks(
  profile: LoadedProfile,
  seenPacks: Map<string, LoadedProfile>,
  emit: Emit,
): Map<string, PackModel[]> {
  const byLayer = new Map<string, PackModel[]>()
  for (const pack of profile.packs) {
    const sameLayer = byLayer.get(pack.layer)
    if (sameLayer) sameLayer.push(pack)
    else byLayer.set(pack.layer, [pack])
    const prior = seenPacks.get(pack.name)
    if (prior) {
      emit(
        packFinding(profile, pack, {
          code: 'AP-PACK-DUPLICATE',
          severity: 'error',
          message: `pack "${pack.name}" is also in profile "${prior.name}"${prior === profile ? ' (twice in this profile)' : ''}`,
          hint: 'A pack may appear once across all profiles of a cluster; remove one of them.',
          path: 'name',
        }),
      )
    } else seenPacks.set(pack.name, profile)
    if (!KNOWN_LAYERS.has(pack.layer)) {
      emit(
        packFinding(profile, pack, {
          code: 'AP-LAYER-UNKNOWN',
          severity: 'warning',
          message: `layer "${pack.layer}" is not one airpack checks (os, k8s, cni, csi, addon)`,
          hint: 'Check the pack layer; it is bundled, but not validated against the matrix.',
          path: 'layer',
        }),
      )
    }
  }
  return byLayer
}

/** An infrastructure or full profile holds one OS, Kubernetes and CNI layer; an add-on profile none of them. */
function checkLayers(profile: LoadedProfile, byLayer: Map<string, PackModel[]>, emit: Emit): void {
  if (isInfra(profile)) {
    for (const layer of INFRA_LAYERS) {
      const packs = byLayer.get(layer) ?? []
      if (packs.length === 0) {
        emit(
          profileFinding(profile, {
            code: 'AP-LAYER-MISSING',
            severity: 'error',
            message: `the ${profile.type} profile has no ${layer} layer`,
            hint: `An infrastructure or full profile holds exactly one OS, one Kubernetes and one CNI layer; add the ${layer} pack.`,
            path: 'spec.template.packs',
            ...(profile.fileLines?.type ? {line: profile.fileLines.type} : {}),
          }),
        )
      }
      for (const extra of packs.slice(1)) {
        emit(
          packFinding(profile, extra, {
            code: 'AP-LAYER-DUPLICATE',
            severity: 'error',
            message: `a second ${layer} layer ("${extra.name}", besides "${packs[0]!.name}")`,
            hint: `Keep one ${layer} pack in the profile.`,
            path: 'layer',
          }),
        )
      }
    }
  } else if (profile.type === 'add-on') {
    for (const pack of profile.packs) {
      if ((INFRA_LAYERS as readonly string[]).includes(pack.layer)) {
        emit(
          packFinding(profile, pack, {
            code: 'AP-LAYER-ADDON',
            severity: 'error',
            message: `an add-on profile holds a ${pack.layer} layer ("${pack.name}")`,
            hint: 'OS, Kubernetes and CNI belong in the one infrastructure or full profile; move the pack there.',
            path: 'layer',
          }),
        )
      }
    }
  }
}

interface OsFacts {
  pack?: PackModel
  family?: string
  providerDistribution?: string
  fipsImage: boolean
}

function osFacts(profile: LoadedProfile, provider: ImageRequest | undefined): OsFacts {
  const pack = profile.packs.find((p) => p.layer === 'os')
  if (!pack) return {fipsImage: false}
  const values = parseValues(pack)
  const known = OS_PACKS.find((o) => o.pack === pack.name)
  const osName = packOption(values, 'system.osName').value
  const repo = packOption(values, 'system.repo').value
  let family = known?.os ?? (osName ? osFamily(osName) : undefined) ?? (repo ? osFamily(repo) : undefined)
  if (!family && provider) family = osFamily(provider.reference.split(':')[0]!)
  let providerDistribution = packOption(values, 'system.k8sDistribution').value
  if (!providerDistribution && provider) {
    const tag = /:([^/@]+)(?:@.*)?$/.exec(provider.reference)?.[1] ?? ''
    providerDistribution = PROVIDER_DISTRIBUTIONS.find((d) => tag.startsWith(`${d}-`))
  }
  const fipsImage =
    [osName, repo, provider?.reference].some((t) => t !== undefined && /fips/i.test(t)) ||
    providerDistribution === 'kubeadm-fips'
  return {pack, ...(family ? {family} : {}), ...(providerDistribution ? {providerDistribution} : {}), fipsImage}
}

/** Emits a finding about one pack of the infrastructure profile. */
type PackAt = (
  pack: PackModel | undefined,
  f: Omit<Finding, 'file' | 'profile' | 'pack' | 'fileLine'> & {valuesLine?: boolean},
) => void

/** What every matrix check of the infrastructure profile reads: the build target and the OS layer's facts. */
interface MatrixContext {
  mode: ValidateOptions['mode']
  arch: ValidateOptions['arch']
  os: OsFacts
  at: PackAt
}

/** The checks that need a known Kubernetes distribution (the k8s pack is one of the Edge distributions). */
interface DistributionContext extends MatrixContext {
  k8s: PackModel
  dist: DistributionEntry
}

/**
 * The infrastructure profile against the support matrix: the OS pack first, then (with a known Edge distribution)
 * version, mode/arch, OS, FIPS and CNI, then the built-in CNI, image pull and agent checks. Findings keep this order.
 */
function checkMatrix(
  infra: LoadedProfile,
  profiles: LoadedProfile[],
  options: ValidateOptions,
  images: ImageRequest[],
  emit: Emit,
): void {
  const {mode, arch} = options
  const k8s = infra.packs.find((p) => p.layer === 'k8s')
  const cni = infra.packs.find((p) => p.layer === 'cni')
  const provider = images.find((i) => i.kind === 'os-provider' && i.profile === infra.name)
  const ctx: MatrixContext = {
    mode,
    arch,
    os: osFacts(infra, provider),
    at: (pack, f) => emit(packFinding(infra, pack, f)),
  }

  checkOsPack(ctx)
  if (!k8s) return
  const dist = knownDistribution(ctx, k8s)
  if (!dist) return
  const dctx: DistributionContext = {...ctx, k8s, dist}
  for (const check of DISTRIBUTION_CHECKS) check(dctx)
  if (cni) {
    checkCniPack(dctx, cni)
    checkBuiltinCni(infra, k8s, cni, emit)
  }
  checkAlwaysPull(infra, k8s, emit)
  checkAgent(infra, profiles, k8s, mode, images, emit)
}

/** The OS pack is an Edge OS pack, and the BYOS pack fits the mode (a provider image in appliance mode, 2.0.x in agent mode). */
function checkOsPack({mode, os, at}: MatrixContext): void {
  if (!os.pack) return
  if (!OS_PACKS.some((o) => o.pack === os.pack!.name)) {
    at(os.pack, {
      code: 'AP-OS-PACK',
      severity: 'warning',
      message: `OS pack "${os.pack.name}" is not one of the Edge OS packs (${OS_PACKS.map((o) => o.pack).join(', ')})`,
      hint: 'Edge clusters use BYOS Edge OS (edge-native-byoi) with a provider image built by EdgeForge/CanvOS.',
      path: 'name',
    })
  }
  if (os.pack.name !== 'edge-native-byoi') return
  const values = parseValues(os.pack)
  const uri = values.error ? undefined : packOption(values, 'system.uri')
  if (mode === 'appliance' && uri && (uri.value === undefined || isNoProviderImage(uri.value))) {
    at(os.pack, {
      code: 'AP-OS-URI-MISSING',
      severity: 'error',
      message:
        uri.value === undefined
          ? 'the BYOS Edge OS pack names no provider image (options.system.uri); appliance mode installs from a provider image'
          : `options.system.uri is ${JSON.stringify(uri.value)} (the Agent Mode preset: no provider image); appliance mode needs a provider image`,
      hint: 'Set options.system.uri to the provider image EdgeForge/CanvOS built (registry/repo:<k8s-dist>-<k8s-version>-<pe-version>-<tag>) and list it in pack.content.images, or build for --mode agent.',
      path: 'options.system.uri',
      ...(uri.line === undefined ? {} : {valuesLine: true, line: uri.line}),
    })
  }
  const major = semver.coerce(os.pack.version)?.major
  if (mode === 'agent' && major !== undefined && major < 2) {
    at(os.pack, {
      code: 'AP-OS-AGENT-PACK',
      severity: 'warning',
      message: `agent mode uses BYOS Edge OS 2.0.x with the Agent Mode preset; this pack is ${os.pack.version}`,
      hint: 'Use edge-native-byoi 2.0.x and toggle the Agent Mode preset in the OS layer.',
      path: 'version',
    })
  }
}

/** The matrix entry of the Kubernetes pack (the FIPS variant when the provider image is one), or an error if none. */
function knownDistribution({os, at}: MatrixContext, k8s: PackModel): DistributionEntry | undefined {
  if (!DISTRIBUTIONS.some((d) => d.pack === k8s.name)) {
    at(k8s, {
      code: 'AP-K8S-DISTRO',
      severity: 'error',
      message: `Kubernetes pack "${k8s.name}" is not an Edge distribution`,
      hint: `Use one of ${[...new Set(DISTRIBUTIONS.map((d) => d.pack))].join(', ')} (Edge Native variants of PXK-E, K3s, RKE2, Canonical).`,
      path: 'name',
    })
    return undefined
  }
  return findDistribution(k8s.name, os.providerDistribution === 'kubeadm-fips')!
}

/** The Kubernetes version is one, within the supported range, and (if not) how far outside the known or documented one. */
function checkK8sVersion({k8s, dist, at}: DistributionContext): void {
  const version = kubernetesVersion(k8s.version)
  const range = dist.kubernetes
  if (!version) {
    at(k8s, {
      code: 'AP-K8S-VERSION',
      severity: 'error',
      message: `"${k8s.version}" is not a Kubernetes version`,
      hint: `Set the ${k8s.name} pack version to a Kubernetes version such as ${range.max}.`,
      path: 'version',
    })
  } else if (semver.lt(version, range.min)) {
    at(k8s, {
      code: 'AP-K8S-VERSION',
      severity: 'error',
      message: `${dist.name} ${version} is older than the oldest supported ${range.min}`,
      hint: `Use ${k8s.name} ${range.min}–${range.max} (${range.source}).`,
      path: 'version',
    })
  } else if (semver.gt(version, range.max)) {
    at(k8s, {
      code: 'AP-K8S-VERSION-UNVERIFIED',
      severity: 'warning',
      message: `${dist.name} ${version} is newer than the matrix knows (up to ${range.max})`,
      hint: 'Check the Palette release notes for this version; update src/matrix/data.ts when it is listed.',
      path: 'version',
    })
  } else if (semver.lt(version, range.documentedMin) || semver.gt(version, range.documentedMax)) {
    at(k8s, {
      code: 'AP-K8S-VERSION-UNVERIFIED',
      severity: 'warning',
      message: `${dist.name} ${version} is outside the documented Supported Configurations (${range.documentedMin.replace(/\.0$/, '.x')}–${range.documentedMax.replace(/\.99$/, '.x')})`,
      hint: 'Provider images exist for it, but the documentation does not list it; test before deploying.',
      path: 'version',
    })
  }
}

/** The distribution supports the deployment mode, and then the architecture in that mode. */
function checkModeAndArch({mode, arch, k8s, dist, at}: DistributionContext): void {
  if (dist.modes[mode] === 'unsupported') {
    const alternatives = DISTRIBUTIONS.filter((d) => d.modes[mode] === 'supported' && !d.fips).map((d) => d.pack)
    at(k8s, {
      code: 'AP-K8S-MODE',
      severity: 'error',
      message: `${dist.name} is not supported in ${mode} mode`,
      hint: `In ${mode} mode use ${[...new Set(alternatives)].join(', ')}, or build for ${mode === 'agent' ? 'appliance' : 'agent'} mode.`,
      path: 'name',
    })
    return
  }
  const support = dist.arch[mode][arch]
  if (support === 'unsupported') {
    at(k8s, {
      code: 'AP-ARCH-UNSUPPORTED',
      severity: 'error',
      message: `${dist.name} does not support ${arch.toUpperCase()}`,
      hint: `Use ${arch === 'arm64' ? 'PXK-E (edge-k8s) or K3s (edge-k3s) on ARM64, or AMD64 hosts' : 'another distribution'}.`,
      path: 'name',
    })
  } else if (support === 'unverified') {
    at(k8s, {
      code: 'AP-ARCH-UNVERIFIED',
      severity: 'warning',
      message: `${mode} mode on ${arch.toUpperCase()} is only verified on the Nvidia Jetson Orin device family`,
      hint: 'Use Jetson Orin hosts, or test the hardware first.',
      path: 'name',
    })
  }
}

/** The OS family is one the distribution runs on (in agent mode only Canonical cares: the agent brings the rest). */
function checkOsFamily({mode, os, dist, at}: DistributionContext): void {
  if (!os.family || dist.os.includes(os.family) || (mode === 'agent' && dist.pack !== 'edge-canonical')) return
  if (dist.pack === 'edge-canonical') {
    at(os.pack, {
      code: 'AP-OS-UNSUPPORTED',
      severity: 'error',
      message: `${dist.name} runs on Ubuntu only; the OS layer is ${os.family}`,
      hint: 'Build the provider image from an Ubuntu base, or pick another distribution.',
      path: 'options.system.osName',
    })
  } else {
    at(os.pack, {
      code: 'AP-OS-UNVERIFIED',
      severity: 'warning',
      message: `${dist.name} is documented on ${dist.os.join(', ')}; the OS layer is ${os.family}`,
      hint: 'Test this OS before deploying, or build from a documented base image.',
      path: 'options.system.osName',
    })
  }
}

/** The provider image was built for this Kubernetes pack (any matrix variant of it). */
function checkProviderDistribution({os, k8s, dist, at}: DistributionContext): void {
  const built = os.providerDistribution
  if (!built || dist.providerDistributions.includes(built)) return
  if (DISTRIBUTIONS.filter((d) => d.pack === k8s.name).some((d) => d.providerDistributions.includes(built))) return
  at(os.pack, {
    code: 'AP-OS-K8S-MISMATCH',
    severity: 'error',
    message: `the provider image is built for "${built}" but the Kubernetes layer is ${k8s.name}`,
    hint: `Rebuild the provider image with K8S_DISTRIBUTION=${dist.providerDistributions[0]} or use the matching Kubernetes pack.`,
    path: 'options.system.k8sDistribution',
  })
}

/** A FIPS OS image needs a FIPS distribution, and in agent mode a RHEL or Rocky host. */
function checkFips({mode, os, dist, at}: DistributionContext): void {
  if (os.fipsImage && !dist.fips) {
    at(os.pack, {
      code: 'AP-FIPS',
      severity: 'error',
      message: `the OS image is a FIPS build, but ${dist.name} does not produce FIPS-compliant clusters`,
      hint: 'Only PXK-E FIPS (kubeadm-fips) and RKE2 provider images are FIPS-compliant.',
      path: 'options.system.uri',
    })
  }
  if (os.fipsImage && mode === 'agent' && os.family !== 'rhel' && os.family !== 'rocky') {
    at(os.pack, {
      code: 'AP-FIPS-AGENT-OS',
      severity: 'warning',
      message: 'in agent mode the FIPS agent runs only on RHEL and Rocky Linux 8',
      hint: 'Install the FIPS agent on RHEL or Rocky Linux 8 hosts.',
      path: 'options.system.osName',
    })
  }
}

/** The distribution checks, in the order their findings are reported. */
const DISTRIBUTION_CHECKS: ((ctx: DistributionContext) => void)[] = [
  checkK8sVersion,
  checkModeAndArch,
  checkOsFamily,
  checkProviderDistribution,
  checkFips,
]

/** The CNI pack exists, is an Edge CNI listed for the distribution, and is verified for the mode. */
function checkCniPack({mode, dist, at}: DistributionContext, cni: PackModel): void {
  const misnamed = MISNAMED_PACKS[cni.name]
  if (misnamed || !CNI_PACKS.some((c) => c.pack === cni.name)) {
    at(cni, {
      code: 'AP-CNI-UNKNOWN',
      severity: 'warning',
      message: misnamed ? `there is no pack "${cni.name}"` : `CNI pack "${cni.name}" is not in the Edge CNI list`,
      hint: misnamed ? `Use ${misnamed}.` : `Edge CNIs: ${CNI_PACKS.map((c) => c.pack).join(', ')}.`,
      path: 'name',
    })
  } else if (
    cni.name !== 'cni-custom' &&
    !dist.cnis.includes(cni.name) &&
    !(mode === 'agent' && dist.pack === 'edge-k8s' && cni.name === 'cni-cilium-oss')
  ) {
    at(cni, {
      code: 'AP-CNI-UNLISTED',
      severity: 'warning',
      message: `${cni.name} is not in the ${dist.name} table (${dist.cnis.join(', ')})`,
      hint: 'The combination is not documented; test it, or use a listed CNI.',
      path: 'name',
    })
  }
  if (mode === 'agent' && cni.name === 'cni-flannel') {
    at(cni, {
      code: 'AP-CNI-UNVERIFIED',
      severity: 'warning',
      message: 'Flannel is not verified for locally managed clusters in agent mode',
      hint: 'Prefer Calico in agent mode with local management.',
      path: 'name',
    })
  }
}

function configOf(pack: PackModel): {config?: Record<string, unknown>; line?: number} {
  const values = parseValues(pack)
  const cluster = values.data?.cluster as Record<string, unknown> | undefined
  const raw = cluster && typeof cluster === 'object' ? cluster.config : undefined
  const line = values.positions.line(['cluster', 'config'])
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) return {config: raw as Record<string, unknown>, line}
  if (typeof raw !== 'string') return {}
  const inner = parseValues({...pack, values: raw})
  return inner.data ? {config: inner.data, line} : {}
}

function checkBuiltinCni(infra: LoadedProfile, k8s: PackModel, cni: PackModel, emit: Emit): void {
  if (cni.name === 'cni-custom') return
  const {config, line} = configOf(k8s)
  if (!config) return
  let builtin: string | undefined
  if (k8s.name === 'edge-k3s') {
    const backend = config['flannel-backend']
    if (backend !== undefined && String(backend) !== 'none' && config['no-flannel'] !== true)
      builtin = `K3s embedded Flannel (flannel-backend: ${String(backend)})`
    else if (config['no-flannel'] === false) builtin = 'K3s embedded Flannel (no-flannel: false)'
  } else if (k8s.name === 'edge-rke2') {
    const rkeCni = config.cni
    const names = Array.isArray(rkeCni) ? rkeCni.map(String) : rkeCni === undefined ? [] : [String(rkeCni)]
    if (names.length > 0 && !names.every((n) => n === 'none')) builtin = `RKE2 built-in CNI (cni: ${names.join(', ')})`
  }
  if (builtin) {
    emit(
      packFinding(infra, k8s, {
        code: 'AP-K8S-BUILTIN-CNI',
        severity: 'warning',
        message: `${builtin} is enabled beside the ${cni.name} layer; two CNIs will fight over pod networking`,
        hint:
          k8s.name === 'edge-k3s'
            ? 'Set `flannel-backend: none` in cluster.config (Palette Optimized K3s disables Flannel by default).'
            : 'Set `cni: none` in cluster.config so only the CNI layer installs.',
        path: 'cluster.config',
        valuesLine: true,
        ...(line === undefined ? {} : {line}),
      }),
    )
  }
}

function checkAlwaysPull(infra: LoadedProfile, k8s: PackModel, emit: Emit): void {
  const lines = k8s.values.split('\n')
  const index = lines.findIndex(
    (l) => !l.trimStart().startsWith('#') && /enable-admission-plugins/.test(l) && /AlwaysPullImages/.test(l),
  )
  if (index === -1) return
  emit(
    packFinding(infra, k8s, {
      code: 'AP-K8S-ALWAYS-PULL',
      severity: 'warning',
      message: 'the AlwaysPullImages admission plugin is enabled; an air-gapped, locally managed cluster cannot pull',
      hint: 'Remove AlwaysPullImages from enable-admission-plugins in the Kubernetes layer.',
      path: 'enable-admission-plugins',
      valuesLine: true,
      line: index + 1,
    }),
  )
}

function agentVersionOf(reference: string): string | undefined {
  const tag = /:([^/@:]+)(?:@.*)?$/.exec(reference)?.[1]
  if (!tag) return undefined
  const m = /^v?(\d+\.\d+\.\d+)/.exec(tag)
  return m && semver.valid(m[1]) && m[1] !== '0.0.0' ? m[1] : undefined
}

function checkAgent(
  infra: LoadedProfile,
  profiles: LoadedProfile[],
  k8s: PackModel,
  mode: ValidateOptions['mode'],
  images: ImageRequest[],
  emit: Emit,
): void {
  const agent =
    images.find((i) => i.kind === 'agent' && agentArch(i.reference) !== undefined) ??
    images.find((i) => i.kind === 'agent')
  const osPack = infra.packs.find((p) => p.layer === 'os')
  if (!agent) {
    if (mode === 'agent') {
      emit(
        packFinding(infra, osPack, {
          code: 'AP-AGENT-MISSING',
          severity: 'warning',
          message: 'no agent image (stylusPackage) pins the Palette agent version of the cluster',
          hint: 'Add stylusPackage: container://…/stylus-linux-<arch>:v<version> to the OS layer and list it in pack.content.images.',
          path: 'stylusPackage',
        }),
      )
    }
    return
  }
  const owner = profiles.find((p) => p.name === agent.profile) ?? infra
  const pack = owner.packs.find((p) => p.name === agent.pack)
  const version = agentVersionOf(agent.reference)
  if (!version) {
    emit(
      packFinding(owner, pack, {
        code: 'AP-AGENT-VERSION-UNKNOWN',
        severity: 'warning',
        message: `the agent version cannot be read from ${agent.reference}`,
        hint: 'Tag the agent image v<major>.<minor>.<patch> so upgrade limits can be checked.',
        valuesLine: true,
        ...(agent.line === undefined ? {} : {line: agent.line}),
      }),
    )
    return
  }
  const min = MODES.find((m) => m.mode === mode)?.minAgentVersion
  if (min && semver.lt(version, min)) {
    emit(
      packFinding(owner, pack, {
        code: 'AP-AGENT-VERSION',
        severity: 'error',
        message: `agent ${version} is older than ${min}, the oldest agent that supports locally managed clusters in ${mode} mode`,
        hint: `Pin the agent to ${min} or later (stylusPackage and the content tag).`,
        valuesLine: true,
        ...(agent.line === undefined ? {} : {line: agent.line}),
      }),
    )
  }
  if (mode === 'agent') checkAgentUpgrade(infra, k8s, version, emit)
}

/** Agents older than a limit cannot move to the Kubernetes packs released after it (agent mode). */
function checkAgentUpgrade(infra: LoadedProfile, k8s: PackModel, version: string, emit: Emit): void {
  for (const limit of AGENT_UPGRADE_LIMITS) {
    if (!semver.lt(version, limit.agentBelow)) continue
    const blocked = limit.packs.find(
      (p) => p.pack === k8s.name && p.versions.includes(kubernetesVersion(k8s.version) ?? k8s.version),
    )
    if (blocked) {
      emit(
        packFinding(infra, k8s, {
          code: 'AP-AGENT-UPGRADE',
          severity: 'error',
          message: `agent ${version} cannot upgrade to ${k8s.name} ${k8s.version}: agents older than ${limit.agentBelow} cannot move to the packs released in Palette 4.7.20`,
          hint: `Pin the agent to ${limit.agentBelow} or later first (Configure Palette Agent Version), or stay on the current ${k8s.name} version.`,
          path: 'version',
        }),
      )
    }
  }
}

function checkCsi(profiles: LoadedProfile[], infra: LoadedProfile | undefined, emit: Emit): void {
  const k8s = infra?.packs.find((p) => p.layer === 'k8s')
  const dist = k8s ? findDistribution(k8s.name) : undefined
  for (const profile of profiles)
    for (const pack of profile.packs) {
      if (pack.layer !== 'csi') continue
      if (pack.name === 'csi-local-path-provisioner') {
        emit(
          packFinding(profile, pack, {
            code: 'AP-CSI-LOCAL-PATH',
            severity: 'warning',
            message: 'the Local Path Provisioner pack is not allowed in multi-node clusters created from Local UI',
            hint: 'Use it for single-node clusters only; use Rook Ceph or Longhorn for multi-node.',
            path: 'name',
          }),
        )
      } else if (dist && !dist.csis.includes(pack.name)) {
        const known = CSI_PACKS.some((c) => c.pack === pack.name)
        emit(
          packFinding(profile, pack, {
            code: 'AP-CSI-UNLISTED',
            severity: 'warning',
            message: `${pack.name} is not in the ${dist.name} table (${dist.csis.join(', ')})${known ? '' : '; it is not a documented Edge CSI'}`,
            hint: 'The combination is not documented; test it before deploying.',
            path: 'name',
          }),
        )
      }
    }
}

function checkContentPresence(
  profiles: LoadedProfile[],
  counts: Map<PackModel, number>,
  misplaced: Set<PackModel>,
  emit: Emit,
): void {
  for (const profile of profiles)
    for (const pack of profile.packs) {
      if (parseValues(pack).error) continue
      // The OS layer's content is the provider and agent image (their own rules); the Kubernetes layer's binaries
      // come with the provider image (appliance) or the agent (agent mode), not from content tags.
      if (pack.layer === 'k8s' || pack.layer === 'os') continue
      if ((counts.get(pack) ?? 0) > 0) continue
      // Content tags at the wrong level are one cause, reported once (AP-CONTENT-MISPLACED says where they belong).
      if (deploysNoImages(pack) || misplaced.has(pack)) continue
      emit(
        packFinding(profile, pack, {
          code: 'AP-CONTENT-MISSING',
          severity: 'warning',
          message:
            'the pack has no content tags (pack.content.images / charts); its images would be missing at the site',
          hint: 'List every image the pack deploys under pack.content.images (and its charts under pack.content.charts).',
          path: 'pack.content',
          valuesLine: true,
        }),
      )
    }
}

/** Kubernetes manifests the pack ships as written (not templates with parameters): a manifest layer's
 *  (`type: manifest`, Palette's "Add Manifest") or raw `manifests.<name>.contents` in the values, as the Custom CNI
 *  pack's ConfigMap. Undefined when the pack deploys anything else (a chart, templates airpack cannot see). */
function rawManifests(pack: PackModel): string[] | undefined {
  if (pack.type === 'manifest') return (pack.manifests ?? []).map((m) => m.content)
  const data = parseValues(pack).data
  const manifests = data?.manifests
  if (
    !data ||
    data.charts !== undefined ||
    typeof manifests !== 'object' ||
    manifests === null ||
    Array.isArray(manifests)
  )
    return undefined
  const entries = Object.values(manifests)
  if (entries.length === 0) return undefined
  const contents: string[] = []
  for (const entry of entries) {
    const text = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>).contents : undefined
    if (typeof text !== 'string') return undefined
    contents.push(text)
  }
  return contents
}

/** A pack whose only payload is raw manifests that name no image (a custom CNI's ConfigMap): nothing to carry,
 *  so no content tags are missing. */
function deploysNoImages(pack: PackModel): boolean {
  const manifests = rawManifests(pack)
  return manifests !== undefined && !manifests.some((m) => /^[ \t-]*["']?image["']?[ \t]*:[ \t]*\S/m.test(m))
}

const FORMATS: Record<string, (v: string) => boolean> = {
  string: () => true,
  number: (v) => /^-?\d+(\.\d+)?$/.test(v),
  boolean: (v) => v === 'true' || v === 'false',
  ipv4: (v) => isIP(v) === 4,
  ipv6: (v) => isIP(v) === 6,
  ipv4cidr: (v) => {
    const [ip, bits, ...rest] = v.split('/')
    return rest.length === 0 && isIP(ip ?? '') === 4 && /^\d{1,2}$/.test(bits ?? '') && Number(bits) <= 32
  },
  version: (v) => /^v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?$/.test(v),
  base64: (v) => /^[A-Za-z0-9+/]*={0,2}$/.test(v) && v.length % 4 === 0,
}

function checkVariables(profiles: LoadedProfile[], options: ValidateOptions, emit: Emit): void {
  const ctx = macroContext(profiles, options.vars ?? {})
  const declared = new Set(profiles.flatMap((p) => p.variables.map((v) => v.name)))
  for (const name of Object.keys(options.vars ?? {})) {
    if (!declared.has(name)) {
      emit({
        code: 'AP-VAR-UNKNOWN',
        severity: 'warning',
        message: `--var ${name} names a variable that no profile declares`,
        hint: `Declared variables: ${[...declared].join(', ') || 'none'}.`,
      })
    }
  }
  for (const profile of profiles)
    profile.variables.forEach((variable, i) => {
      const line = profile.fileLines?.variables?.[i] || undefined
      const where = {path: `spec.variables[${i}]`, ...(line ? {line} : {})}
      if (variable.inputType === 'dropdown') {
        emit(
          profileFinding(profile, {
            code: 'AP-VAR-DROPDOWN',
            severity: 'warning',
            message: `variable "${variable.name}" is a dropdown; Local UI does not support dropdown variables`,
            hint: 'Make it a text variable with a regex or format instead.',
            ...where,
          }),
        )
      }
      const {value} = variableValue(ctx, profile, variable.name)
      if (value === undefined || value === '') return
      const resolved = resolveMacros(value, ctx, profile).value ?? value
      const problem = variableValueProblem(variable, resolved)
      if (problem) emit(profileFinding(profile, {code: 'AP-VAR-FORMAT', severity: 'error', ...problem, ...where}))
    })
}

/** A variable's value against its format, then its regex: the message and hint when it fails one. */
function variableValueProblem(
  variable: LoadedProfile['variables'][number],
  resolved: string,
): {message: string; hint: string} | undefined {
  const shown = JSON.stringify(variable.isSensitive ? '***' : resolved)
  const format = typeof variable.format === 'string' ? variable.format : 'string'
  const check = FORMATS[format]
  if (check && !check(resolved)) {
    return {
      message: `variable "${variable.name}" = ${shown} is not a valid ${format}`,
      hint: `Pass --var ${variable.name}=<${format}>.`,
    }
  }
  if (typeof variable.regex !== 'string' || variable.regex === '') return undefined
  let re: RegExp | undefined
  try {
    re = new RegExp(variable.regex)
  } catch {
    re = undefined
  }
  if (!re || re.test(resolved)) return undefined
  return {
    message: `variable "${variable.name}" = ${shown} does not match its regex ${variable.regex}`,
    hint: `Pass a value matching ${variable.regex} with --var ${variable.name}=VALUE.`,
  }
}
