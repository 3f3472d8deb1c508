// `airpack matrix`: the supported matrix with its sources, human and --json.

import {describe, expect, it} from 'vitest'

import {runCli} from '../helpers/cli.js'

describe('airpack matrix', () => {
  it('prints every distribution, mode, limitation and rule', async () => {
    const r = await runCli(['matrix'])
    expect(r.exitCode).toBe(0)
    for (const text of [
      'edge-k8s',
      'PXK-E FIPS',
      'edge-k3s',
      'edge-rke2',
      'edge-canonical',
      'cni-cilium-oss',
      'csi-longhorn',
      'agent < 4.7.7',
      'AP-K8S-MODE',
      'L: deployment-modes/deployment-modes.md@959de227',
    ]) {
      expect(r.stdout).toContain(text)
    }
    expect(r.stdout).toMatch(/edge-rke2 .*\n.*\n {4}appliance: supported .*; agent: unsupported/)
  })

  it('--json is one document with a source on every entry', async () => {
    const r = await runCli(['matrix', '--json'])
    expect(r.exitCode).toBe(0)
    const m = r.json()
    expect(m.distributions.map((d: any) => d.pack)).toEqual([
      'edge-k8s',
      'edge-k8s',
      'edge-k3s',
      'edge-rke2',
      'edge-canonical',
    ])
    for (const d of m.distributions) {
      expect(d.sources.length).toBeGreaterThan(0)
      expect(d.kubernetes.source).toMatch(/^C: /)
    }
    for (const entry of [...m.osPacks, ...m.cniPacks, ...m.csiPacks, ...m.limitations, ...m.agentUpgradeLimits])
      expect(entry.source).toMatch(/^[LC]: /)
    expect(m.modes.map((x: any) => x.mode)).toEqual(['appliance', 'agent'])
    expect(m.rules.length).toBeGreaterThanOrEqual(40)
    expect(new Set(m.rules.map((x: any) => x.code)).size).toBe(m.rules.length)
  })

  it('--help shows examples', async () => {
    const r = await runCli(['matrix', '--help'])
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toContain('airpack matrix --json')
  })
})
