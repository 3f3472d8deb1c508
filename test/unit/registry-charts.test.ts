import {describe, expect, it} from 'vitest'

import {MediaType} from '../../src/oci/media-types.js'
import {chartManifest, chartReference, chartSourceKind, chartTag, pickIndexEntry} from '../../src/resolve/charts.js'

describe('chart naming and generated manifests', () => {
  it('tells the three chart sources apart', () => {
    expect(chartSourceKind('oci://ghcr.io/org/charts')).toBe('oci')
    expect(chartSourceKind('https://charts.example.com/stable')).toBe('classic')
    expect(chartSourceKind('https://example.com/dl/app-1.2.3.tgz')).toBe('tgz')
    expect(chartSourceKind('https://example.com/dl/app-1.2.3.tgz?token=x')).toBe('tgz')
  })

  it('names non-OCI charts <host>/<path>/<name>:<tag>, with + → _ and invalid characters replaced', () => {
    expect(chartTag('1.2.3+build.4')).toBe('1.2.3_build.4')
    expect(chartReference('https://charts.bitnami.com/bitnami', 'redis', '17.0.1')).toBe('charts.bitnami.com/bitnami/redis:17.0.1')
    expect(chartReference('https://Prometheus-Community.github.io/helm-charts/', 'prometheus', '25.30.1')).toBe(
      'prometheus-community.github.io/helm-charts/prometheus:25.30.1',
    )
    expect(chartReference('https://example.com:8443/dl/My Charts/app-1.0.0.tgz', 'app', '1.0.0+x')).toBe('example.com:8443/dl/my-charts/app:1.0.0_x')
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
    expect(m.annotations).toEqual({'org.opencontainers.image.title': 'redis', 'org.opencontainers.image.version': '17.0.1'})
  })

  it('picks an exact version first, then the highest in a semver range', () => {
    const entries = [{version: '1.2.0'}, {version: '1.10.0'}, {version: '2.0.0'}, {version: '1.9.9-rc.1'}]
    expect(pickIndexEntry(entries, '1.2.0')?.version).toBe('1.2.0')
    expect(pickIndexEntry(entries, 'v2.0.0')?.version).toBe('2.0.0')
    expect(pickIndexEntry(entries, '^1.0.0')?.version).toBe('1.10.0')
    expect(pickIndexEntry(entries, '3.0.0')).toBeUndefined()
  })
})
