import {describe, expect, it} from 'vitest'

import {MediaType} from '../../src/oci/media-types.js'
import {
  chartManifest,
  chartReference,
  chartSourceKind,
  chartTag,
  indexUrl,
  lockedOciLocation,
  ociChartCandidates,
  pickIndexEntry,
} from '../../src/resolve/charts.js'

describe('chart naming and generated manifests', () => {
  it('tells the three chart sources apart', () => {
    expect(chartSourceKind('oci://ghcr.io/org/charts')).toBe('oci')
    expect(chartSourceKind('https://charts.example.com/stable')).toBe('classic')
    expect(chartSourceKind('https://example.com/dl/app-1.2.3.tgz')).toBe('tgz')
    expect(chartSourceKind('https://example.com/dl/app-1.2.3.tgz?token=x')).toBe('tgz')
    // pack-central's trident packs: a GitHub release .tar.gz is an archive, not a repository.
    expect(
      chartSourceKind('https://github.com/NetApp/trident/releases/download/v24.10.0/trident-installer-24.10.0.tar.gz'),
    ).toBe('tgz')
    expect(chartSourceKind('https://example.com/dl/app-1.2.3.TAR.GZ?raw=true#x')).toBe('tgz')
    expect(chartSourceKind('https://example.com/tgz-charts?x=a.tgz')).toBe('classic')
    expect(indexUrl('https://example.com/charts/?token=a.b').href).toBe(
      'https://example.com/charts/index.yaml?token=a.b',
    )
  })

  it('names non-OCI charts <host>/<path>/<name>:<tag>, with + → _ and invalid characters replaced', () => {
    expect(chartTag('1.2.3+build.4')).toBe('1.2.3_build.4')
    expect(chartReference('https://charts.bitnami.com/bitnami', 'redis', '17.0.1')).toBe(
      'charts.bitnami.com/bitnami/redis:17.0.1',
    )
    expect(chartReference('https://Prometheus-Community.github.io/helm-charts/', 'prometheus', '25.30.1')).toBe(
      'prometheus-community.github.io/helm-charts/prometheus:25.30.1',
    )
    expect(chartReference('https://example.com:8443/dl/My Charts/app-1.0.0.tgz', 'app', '1.0.0+x')).toBe(
      'example.com:8443/dl/my-charts/app:1.0.0_x',
    )
    expect(chartReference('oci://ghcr.io/org/charts', 'app', '1.0.0+x')).toBe('ghcr.io/org/charts/app:1.0.0_x')
  })

  it('generates the same manifest and config for the same archive, with the Helm media types', () => {
    const archive = {digest: `sha256:${'a'.repeat(64)}`, size: 1234}
    const a = chartManifest({name: 'redis', version: '17.0.1', apiVersion: 'v2', appVersion: '7.0'}, archive)
    const b = chartManifest({appVersion: '7.0', version: '17.0.1', name: 'redis', apiVersion: 'v2'}, archive)
    expect(a.manifest.equals(b.manifest)).toBe(true)
    expect(a.config.toString()).toBe('{"apiVersion":"v2","appVersion":"7.0","name":"redis","version":"17.0.1"}')
    const m = JSON.parse(a.manifest.toString())
    expect(m.mediaType).toBe(MediaType.ociManifest)
    expect(m.config.mediaType).toBe(MediaType.helmConfig)
    expect(m.layers).toEqual([{mediaType: MediaType.helmChart, digest: archive.digest, size: 1234}])
    expect(m.annotations).toEqual({
      'org.opencontainers.image.title': 'redis',
      'org.opencontainers.image.version': '17.0.1',
    })
  })

  it('picks an exact version first, then the highest in a semver range', () => {
    const entries = [{version: '1.2.0'}, {version: '1.10.0'}, {version: '2.0.0'}, {version: '1.9.9-rc.1'}]
    expect(pickIndexEntry(entries, '1.2.0')?.version).toBe('1.2.0')
    expect(pickIndexEntry(entries, 'v2.0.0')?.version).toBe('2.0.0')
    expect(pickIndexEntry(entries, '^1.0.0')?.version).toBe('1.10.0')
    expect(pickIndexEntry(entries, '3.0.0')).toBeUndefined()
  })
})

describe('oci:// chart locations (issue 10)', () => {
  it('tries a repo ending in the chart name as written, then with the name appended; otherwise appends only', () => {
    expect(ociChartCandidates('oci://ghcr.io/spegel-org/helm-charts/spegel', 'spegel')).toEqual([
      {registry: 'ghcr.io', repository: 'spegel-org/helm-charts/spegel'},
      {registry: 'ghcr.io', repository: 'spegel-org/helm-charts/spegel/spegel'},
    ])
    expect(ociChartCandidates('oci://ghcr.io/xenitab/helm-charts/', 'spegel')).toEqual([
      {registry: 'ghcr.io', repository: 'xenitab/helm-charts/spegel'},
    ])
    expect(ociChartCandidates('oci://registry.example.com/spegel', 'spegel')).toEqual([
      {registry: 'registry.example.com', repository: 'spegel'},
      {registry: 'registry.example.com', repository: 'spegel/spegel'},
    ])
    expect(ociChartCandidates('oci://registry.example.com', 'spegel')).toEqual([
      {registry: 'registry.example.com', repository: 'spegel'},
    ])
  })

  it('fetches a locked chart from the repository the lock records (older locks: the name appended)', () => {
    const chart = {repository: 'oci://ghcr.io/spegel-org/helm-charts/spegel', name: 'spegel'}
    expect(lockedOciLocation({...chart, ociRepository: 'spegel-org/helm-charts/spegel'})).toEqual({
      registry: 'ghcr.io',
      repository: 'spegel-org/helm-charts/spegel',
    })
    expect(lockedOciLocation(chart)).toEqual({registry: 'ghcr.io', repository: 'spegel-org/helm-charts/spegel/spegel'})
  })
})
