// The matrix is data; these checks keep it coherent when a Palette release changes it.

import semver from 'semver'
import {describe, expect, it} from 'vitest'

import {
  CNI_PACKS,
  CSI_PACKS,
  DISTRIBUTIONS,
  LIMITATIONS,
  MODES,
  SOURCES,
  findDistribution,
  kubernetesVersion,
  matrixDocument,
  osFamily,
} from '../../src/matrix/index.js'
import {RULES, RULE_CODES} from '../../src/profile/index.js'

describe('matrix data', () => {
  it('every distribution has sources, a sane version range and known packs', () => {
    for (const d of DISTRIBUTIONS) {
      expect(d.sources.length, d.name).toBeGreaterThan(0)
      for (const v of [d.kubernetes.min, d.kubernetes.max, d.kubernetes.documentedMin, d.kubernetes.documentedMax])
        expect(semver.valid(v), `${d.name} ${v}`).toBeTruthy()
      expect(semver.lte(d.kubernetes.min, d.kubernetes.max)).toBe(true)
      for (const c of d.cnis) expect(CNI_PACKS.map((p) => p.pack)).toContain(c)
      for (const c of d.csis) expect(CSI_PACKS.map((p) => p.pack)).toContain(c)
    }
  })

  it('modes list only distributions that exist and agree with each distribution', () => {
    for (const mode of MODES) {
      for (const pack of mode.kubernetes) expect(DISTRIBUTIONS.some((d) => d.pack === pack)).toBe(true)
      for (const d of DISTRIBUTIONS)
        expect([d.name, mode.kubernetes.includes(d.pack)]).toEqual([d.name, d.modes[mode.mode] !== 'unsupported'])
    }
  })

  it('encodes the documented facts: RKE2 not in agent mode, Canonical no ARM64 and Ubuntu only, appliance ARM64 unverified', () => {
    expect(findDistribution('edge-rke2')!.modes.agent).toBe('unsupported')
    expect(findDistribution('edge-canonical')!.arch.agent.arm64).toBe('unsupported')
    expect(findDistribution('edge-canonical')!.os).toEqual(['ubuntu'])
    expect(findDistribution('edge-k3s')!.arch.appliance.arm64).toBe('unverified')
    expect(findDistribution('edge-k8s', true)!.name).toBe('PXK-E FIPS')
    expect(findDistribution('edge-k8s', false)!.name).toContain('PXK-E')
    expect(findDistribution('edge-k8s', false)!.fips).toBe(false)
  })

  it('every limitation names an existing rule or says it cannot be checked, and a source', () => {
    for (const l of LIMITATIONS) {
      if (l.rule !== null) expect(RULE_CODES.has(l.rule), l.rule).toBe(true)
      expect(Object.values(SOURCES)).toContain(l.source)
    }
  })

  it('rule codes are unique and well-formed', () => {
    expect(RULE_CODES.size).toBe(RULES.length)
    for (const r of RULES) expect(r.code).toMatch(/^AP-[A-Z0-9]+(-[A-Z0-9]+)*$/)
  })

  it('matrixDocument carries everything the matrix command prints', () => {
    const m = matrixDocument()
    expect(Object.keys(m).sort()).toEqual([
      'agentUpgradeLimits',
      'cloudTypes',
      'cniPacks',
      'csiPacks',
      'distributions',
      'limitations',
      'misnamedPacks',
      'modes',
      'osPacks',
      'rules',
    ])
  })

  it.each([
    ['1.32.1', '1.32.1'],
    ['v1.30.5', '1.30.5'],
    ['1.31.4-rke2r1', '1.31.4'],
    ['latest', undefined],
    ['1.32', undefined],
  ])('kubernetesVersion(%s)', (input, expected) => {
    expect(kubernetesVersion(input)).toBe(expected)
  })

  it.each([
    ['ubuntu', 'ubuntu'],
    ['opensuse-leap', 'opensuse'],
    ['rhel-fips', 'rhel'],
    ['Rocky Linux 8', 'rocky'],
    ['debian', undefined],
  ])('osFamily(%s)', (input, expected) => {
    expect(osFamily(input)).toBe(expected)
  })
})
