import {describe, expect, it} from 'vitest'

import {mirrorsYaml} from '../../src/registry/mirror-config.js'
import {parseListen} from '../../src/serve/index.js'
import {hostPathComponent, splitSiteReference} from '../../src/registry/reference.js'
import {parseRange} from '../../src/serve/server.js'
import {parse} from 'yaml'

describe('serve: pure parts', () => {
  it('parses one HTTP byte range against a size', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({start: 0, end: 10})
    expect(parseRange('bytes=90-', 100)).toEqual({start: 90, end: 100})
    expect(parseRange('bytes=95-200', 100)).toEqual({start: 95, end: 100})
    expect(parseRange('bytes=-10', 100)).toEqual({start: 90, end: 100})
    expect(parseRange('bytes=-500', 100)).toEqual({start: 0, end: 100})
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable')
    expect(parseRange('bytes=9-3', 100)).toBe('unsatisfiable')
    expect(parseRange('bytes=-0', 100)).toBe('unsatisfiable')
    expect(parseRange('bytes=0-1,5-6', 100)).toBeUndefined()
    expect(parseRange('items=0-1', 100)).toBeUndefined()
  })

  it('parses --listen', () => {
    expect(parseListen('127.0.0.1:5000')).toEqual({host: '127.0.0.1', port: 5000})
    expect(parseListen(':8080')).toEqual({host: '0.0.0.0', port: 8080})
    expect(parseListen('[::1]:5000')).toEqual({host: '::1', port: 5000})
    expect(() => parseListen('5000')).toThrow(/is not HOST:PORT/)
    expect(() => parseListen('host:99999')).toThrow(/is not HOST:PORT/)
  })

  it('names repositories HOST/PATH of the original reference', () => {
    expect(splitSiteReference('docker.io/library/nginx:1.27')).toEqual({
      host: 'docker.io',
      repository: 'docker.io/library/nginx',
      tag: '1.27',
    })
    expect(splitSiteReference('quay.io/x/y@sha256:' + 'a'.repeat(64))).toEqual({
      host: 'quay.io',
      repository: 'quay.io/x/y',
      tag: undefined,
    })
    expect(splitSiteReference('not a reference')).toBeUndefined()
  })

  it('turns a source host with a port into a valid repository path component', () => {
    // The distribution grammar allows no ':' in a repository name: a registry answers 404 to such a push.
    const NAME_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$/
    expect(splitSiteReference('registry.local:5000/team/app:1')).toEqual({
      host: 'registry.local:5000',
      repository: 'registry.local_5000/team/app',
      tag: '1',
    })
    for (const host of ['registry.local:5000', 'Registry.Example.COM', '127.0.0.1:5000', 'docker.io'])
      expect(hostPathComponent(host)).toMatch(NAME_COMPONENT)
  })

  it('writes K3s mirrors that keep the source host through a rewrite', () => {
    const doc = parse(
      mirrorsYaml(
        ['docker.io', 'ghcr.io'].map((host) => ({host, endpoint: 'https://10.0.0.5:5443', pathPrefix: host})),
        {caFile: '/etc/ca.pem'},
      ),
    )
    expect(doc.mirrors['docker.io']).toEqual({endpoint: ['https://10.0.0.5:5443'], rewrite: {'^(.*)$': 'docker.io/$1'}})
    expect(doc.mirrors['ghcr.io'].rewrite).toEqual({'^(.*)$': 'ghcr.io/$1'})
    expect(doc.configs['10.0.0.5:5443'].tls.ca_file).toBe('/etc/ca.pem')
  })
})
