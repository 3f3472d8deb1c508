import {describe, expect, it} from 'vitest'

import {parseTarget} from '../../src/push/index.js'
import {hostsTomlFiles} from '../../src/registry/mirror-config.js'
import {isProjectMissing} from '../../src/registry/writable-repository.js'

describe('push: pure parts', () => {
  it('parses --to REGISTRY[/PREFIX]', () => {
    expect(parseTarget('registry.site.local:5000')).toEqual({registry: 'registry.site.local:5000', prefix: ''})
    expect(parseTarget('harbor.local/edge/v1/')).toEqual({registry: 'harbor.local', prefix: 'edge/v1'})
    expect(parseTarget('https://10.0.0.5:5000/edge')).toEqual({registry: '10.0.0.5:5000', prefix: 'edge'})
    expect(() => parseTarget('harbor.local/Edge')).toThrow(/is not REGISTRY\[\/PREFIX\]/)
    expect(() => parseTarget('bad host/x')).toThrow(/is not REGISTRY\[\/PREFIX\]/)
  })

  it('tells Harbor’s missing project from other refusals', () => {
    expect(isProjectMissing({status: 404, code: 'NAME_UNKNOWN', message: 'project edge not found: edge'})).toBe(true)
    expect(isProjectMissing({status: 404, message: 'project edge not found'})).toBe(true)
    expect(isProjectMissing({status: 400, code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown'})).toBe(false)
    expect(isProjectMissing({status: 401, code: 'UNAUTHORIZED', message: 'unauthorized'})).toBe(false)
  })

  it('writes containerd hosts.toml with the path of the pushed names (override_path)', () => {
    const files = hostsTomlFiles(
      [{host: 'docker.io', endpoint: 'https://reg.site:5000', pathPrefix: 'edge/docker.io'}],
      {
        insecureSkipVerify: true,
      },
    )
    const text = files.get('docker.io/hosts.toml')!
    expect(text).toContain('server = "https://registry-1.docker.io"')
    expect(text).toContain('[host."https://reg.site:5000/v2/edge/docker.io"]')
    expect(text).toContain('override_path = true')
    expect(text).toContain('skip_verify = true')
  })
})
