// Queries over the supported matrix (data.ts), and its JSON form for `airpack matrix --json`.

import {RULES} from '../profile/rules.js'
import {semver} from '../util/semver.js'
import {
  AGENT_UPGRADE_LIMITS,
  CLOUD_TYPES,
  CNI_PACKS,
  CSI_PACKS,
  DISTRIBUTIONS,
  LIMITATIONS,
  MISNAMED_PACKS,
  MODES,
  OS_PACKS,
  type DistributionEntry,
} from './data.js'

export * from './data.js'

/** The distribution entry of a Kubernetes pack; the FIPS variant when the provider image is a FIPS build. */
export function findDistribution(pack: string, fips = false): DistributionEntry | undefined {
  const all = DISTRIBUTIONS.filter((d) => d.pack === pack)
  return all.find((d) => d.fips === fips) ?? all[0]
}

/** `1.32.1`, `v1.32.1`, `1.32.1-rke2r1` → `1.32.1`; undefined when there is no x.y.z at the start. */
export function kubernetesVersion(version: string): string | undefined {
  const m = /^v?(\d+\.\d+\.\d+)(?:[-+].*)?$/.exec(version.trim())
  return m && semver.valid(m[1]) ? m[1] : undefined
}

export function versionLt(a: string, b: string): boolean {
  return semver.lt(a, b)
}

/** Lower-case OS family from a name (`opensuse-leap` → opensuse, `Ubuntu 22.04` → ubuntu). */
export function osFamily(name: string): string | undefined {
  const n = name.toLowerCase()
  if (n.includes('ubuntu')) return 'ubuntu'
  if (n.includes('opensuse') || n.includes('sles') || n.includes('suse')) return 'opensuse'
  if (n.includes('rhel') || n.includes('redhat') || n.includes('red-hat')) return 'rhel'
  if (n.includes('rocky')) return 'rocky'
  return undefined
}

/** The whole matrix as one JSON document (stable key order for diffs). */
export function matrixDocument() {
  return {
    distributions: DISTRIBUTIONS,
    modes: MODES,
    osPacks: OS_PACKS,
    cniPacks: CNI_PACKS,
    csiPacks: CSI_PACKS,
    misnamedPacks: MISNAMED_PACKS,
    agentUpgradeLimits: AGENT_UPGRADE_LIMITS,
    cloudTypes: CLOUD_TYPES,
    limitations: LIMITATIONS,
    rules: RULES,
  }
}
