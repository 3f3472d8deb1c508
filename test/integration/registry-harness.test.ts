import {execFileSync} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage} from '../helpers/seed.js'

// The harness itself: a real distribution registry, seeded over its API, read back by skopeo.
describe('test registry harness', () => {
  let reg: TestRegistry
  beforeAll(async () => {
    reg = await startRegistry()
  })
  afterAll(async () => {
    await reg?.stop()
  })

  it('serves a seeded multi-arch OCI index that skopeo can read per platform', async () => {
    const shared = layerOf({'etc/shared': 'shared layer'})
    const img = await pushImage(
      reg,
      'team/app',
      '1.0',
      [
        {architecture: 'amd64', layers: [shared, layerOf({'bin/app': 'amd64'})]},
        {architecture: 'arm64', variant: 'v8', layers: [shared, layerOf({'bin/app': 'arm64'})]},
      ],
      {attestations: true},
    )
    const raw = JSON.parse(
      execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${img.reference}`]).toString(),
    )
    expect(raw.manifests).toHaveLength(4)
    const arm = JSON.parse(
      execFileSync('skopeo', [
        'inspect',
        '--tls-verify=false',
        '--override-arch',
        'arm64',
        `docker://${img.reference}`,
      ]).toString(),
    )
    expect(arm.Architecture).toBe('arm64')
    expect(arm.Layers).toContain(shared.digest)
  })
})
