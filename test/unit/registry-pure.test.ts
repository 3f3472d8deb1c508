import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {UsageError} from '../../src/errors.js'
import {parseChallenge} from '../../src/registry/auth.js'
import {dockerConfigKey} from '../../src/registry/credentials.js'
import {backoffMs} from '../../src/registry/http.js'
import {isAttestation, platformMatches, selectPlatform} from '../../src/oci/platform.js'
import {canonicalHost, loadRegistriesConfig, rewriteRepository} from '../../src/registry/registries-config.js'
import {RegistryClient} from '../../src/registry/client.js'

const D = (c: string) => `sha256:${c.repeat(64)}`
const entry = (architecture: string, variant?: string, os = 'linux', extra: Record<string, unknown> = {}) => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: D(architecture[0]),
  size: 1,
  platform: {os, architecture, ...(variant ? {variant} : {})},
  ...extra,
})

describe('platform selection', () => {
  it('arm64 matches arm64/v8 and a missing variant (first equal entry wins); an exact variant beats none', () => {
    const target = {os: 'linux', architecture: 'arm64'}
    expect(platformMatches({os: 'linux', architecture: 'arm64', variant: 'v8'}, target)).toBe(true)
    expect(platformMatches({os: 'linux', architecture: 'arm64'}, {...target, variant: 'v8'})).toBe(true)
    expect(platformMatches({os: 'linux', architecture: 'arm', variant: 'v7'}, target)).toBe(false)
    expect(platformMatches({os: 'windows', architecture: 'arm64'}, target)).toBe(false)
    const manifests = [entry('amd64'), {...entry('arm64'), digest: D('1')}, {...entry('arm64', 'v8'), digest: D('2')}]
    expect(selectPlatform(manifests, target).chosen?.digest).toBe(D('1'))
    const arm = [
      {...entry('arm'), digest: D('3')},
      {...entry('arm', 'v7'), digest: D('4')},
      {...entry('arm', 'v6'), digest: D('5')},
    ]
    expect(selectPlatform(arm, {os: 'linux', architecture: 'arm', variant: 'v7'}).chosen?.digest).toBe(D('4'))
  })

  it('skips attestation entries and lists the omitted platforms', () => {
    const att = entry('unknown', undefined, 'unknown', {
      annotations: {'vnd.docker.reference.type': 'attestation-manifest'},
    })
    expect(isAttestation(att)).toBe(true)
    const r = selectPlatform([entry('amd64'), att, entry('arm64', 'v8'), entry('s390x')], {
      os: 'linux',
      architecture: 'amd64',
    })
    expect(r.chosen?.platform?.architecture).toBe('amd64')
    expect(r.omitted).toEqual([
      {os: 'linux', architecture: 'arm64', variant: 'v8'},
      {os: 'linux', architecture: 's390x'},
    ])
    const none = selectPlatform([att, entry('arm64')], {os: 'linux', architecture: 'amd64'})
    expect(none.chosen).toBeUndefined()
    expect(none.available).toEqual([{os: 'linux', architecture: 'arm64'}])
  })
})

describe('WWW-Authenticate challenges', () => {
  it.each([
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      {
        scheme: 'bearer',
        realm: 'https://auth.docker.io/token',
        service: 'registry.docker.io',
        scope: 'repository:library/nginx:pull',
      },
    ],
    ['Basic realm="Registry Realm"', {scheme: 'basic', realm: 'Registry Realm'}],
    ['bearer realm=https://x/token', {scheme: 'bearer', realm: 'https://x/token'}],
    ['Negotiate', undefined],
    ['Bearer service="x"', undefined],
  ])('%s', (header, expected) => {
    expect(parseChallenge(header)).toEqual(expected)
  })
})

describe('registry naming', () => {
  it('folds Docker Hub aliases and Docker config keys', () => {
    expect(canonicalHost('Registry-1.Docker.io')).toBe('docker.io')
    expect(dockerConfigKey('https://index.docker.io/v1/')).toBe('docker.io')
    expect(dockerConfigKey('https://ghcr.io')).toBe('ghcr.io')
    expect(dockerConfigKey('127.0.0.1:5000')).toBe('127.0.0.1:5000')
  })

  it('applies the first matching rewrite rule', () => {
    const rules = [
      {pattern: /^rancher\/(.*)/, replacement: 'mirror/rancher/$1'},
      {pattern: /^(.*)$/, replacement: 'all/$1'},
    ]
    expect(rewriteRepository('rancher/k3s', rules)).toBe('mirror/rancher/k3s')
    expect(rewriteRepository('library/nginx', rules)).toBe('all/library/nginx')
    expect(rewriteRepository('x', [])).toBe('x')
  })

  it('backs off exponentially with jitter, capped, honouring Retry-After', () => {
    for (let i = 0; i < 20; i++) {
      const b = backoffMs(2, 100)
      expect(b).toBeGreaterThanOrEqual(200)
      expect(b).toBeLessThan(600)
    }
    expect(backoffMs(30, 100)).toBe(10_000)
    expect(backoffMs(0, 100, 1500)).toBe(1500)
  })
})

describe('registries.yaml', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-regyaml-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('orders endpoints: mirrors (with /v2 base and rewrites) then upstream; "*" for other registries', async () => {
    const file = path.join(dir, 'ok.yaml')
    await writeFile(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n')
    await writeFile(
      file,
      [
        'mirrors:',
        '  docker.io:',
        '    endpoint: ["https://mirror.local:5000", "http://10.0.0.5:5000/v2/proxy"]',
        '    rewrite: {"^library/(.*)": "hub/$1"}',
        '  "*":',
        '    endpoint: ["https://catch.all"]',
        'configs:',
        '  mirror.local:5000:',
        '    auth: {auth: ' + Buffer.from('u:p:with:colons').toString('base64') + '}',
        '    tls: {ca_file: ca.pem, insecure_skip_verify: true}',
      ].join('\n'),
    )
    const config = await loadRegistriesConfig(file)
    expect(config.auth.get('mirror.local:5000')).toEqual({username: 'u', password: 'p:with:colons'})
    expect(config.tls.get('mirror.local:5000')?.caPem).toContain('BEGIN CERTIFICATE')
    const client = new RegistryClient(config, {})
    const eps = client.endpoints('docker.io', 'library/nginx')
    expect(eps.map((e) => [e.base.href, e.repository, e.mirror])).toEqual([
      ['https://mirror.local:5000/v2', 'hub/nginx', true],
      ['http://10.0.0.5:5000/v2/proxy/v2', 'hub/nginx', true],
      ['https://registry-1.docker.io/v2', 'library/nginx', false],
    ])
    expect(client.endpoints('ghcr.io', 'a/b').map((e) => e.host)).toEqual(['catch.all', 'ghcr.io'])
    expect(client.endpoints('127.0.0.1:5000', 'a').at(-1)?.httpFallback).toBe(true)
    await client.close()
  })

  it('reports every problem with its key path (exit 2)', async () => {
    const file = path.join(dir, 'bad.yaml')
    await writeFile(
      file,
      'mirrors:\n  docker.io:\n    endpoint: ["ftp://x"]\n    rewrite: {"(": "x"}\nconfigs:\n  h:\n    tls: {ca_file: missing.pem}\n',
    )
    const error = await loadRegistriesConfig(file).catch((e) => e)
    expect(error).toBeInstanceOf(UsageError)
    expect(error.details.problems).toEqual([
      expect.stringContaining('mirrors.docker.io.endpoint[0]'),
      expect.stringContaining('mirrors.docker.io.rewrite'),
      expect.stringContaining('configs.h.tls.ca_file: cannot read missing.pem'),
    ])
    await writeFile(file, 'mirror:\n  x: 1\n')
    const unknown = await loadRegistriesConfig(file).catch((e) => e)
    expect(unknown.details.problems[0]).toMatch(/mirror/)
  })
})
