// Registries, token services and chart repositories behind a real forward proxy (Debian's tinyproxy, with Basic
// auth): HTTPS_PROXY (CONNECT tunnels), HTTP_PROXY, their lower-case forms, NO_PROXY; tinyproxy's log shows every
// request that went through it, and the proxy's password never appears in any output, lock or report.
// No loopback exemption: the registries are on 127.0.0.1 and are reached through the proxy unless NO_PROXY says
// otherwise, so a silent bypass would show as a missing log line.

import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {ResolveError} from '../../src/errors.js'
import {resolveArtifacts} from '../../src/resolve/index.js'
import {benchProfile} from '../helpers/bench-content.js'
import {runCli} from '../helpers/cli.js'
import {startHelmRepo, type HelmRepo} from '../helpers/helm-repo.js'
import {startHttpProxy, type TestHttpProxy} from '../helpers/http-proxy.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage} from '../helpers/seed.js'
import {startTokenIssuer, type TokenIssuer} from '../helpers/token-issuer.js'

vi.setConfig({testTimeout: 120_000, hookTimeout: 120_000})

const PASSWORD = 's3cret-proxy-pw'
const amd64 = {os: 'linux', architecture: 'amd64'}
const img = (reference: string) => ({reference, kind: 'image' as const, profile: 'p', pack: 'k', file: 'f.yaml'})
const chart = (repository: string, name: string, version: string) => ({
  repository,
  name,
  version,
  profile: 'p',
  pack: 'k',
  file: 'f.yaml',
})
/** No proxy variable of the test runner's own environment leaks into a child or a client. */
const NO_PROXY_ENV = {
  HTTP_PROXY: undefined,
  HTTPS_PROXY: undefined,
  NO_PROXY: undefined,
  ALL_PROXY: undefined,
  http_proxy: undefined,
  https_proxy: undefined,
  no_proxy: undefined,
  all_proxy: undefined,
}

let proxy: TestHttpProxy
let tlsReg: TestRegistry
let plainReg: TestRegistry
let issuer: TokenIssuer
let tokenReg: TestRegistry
let helm: HelmRepo
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-proxy-'))
  proxy = await startHttpProxy({basicAuth: {username: 'alice', password: PASSWORD}})
  tlsReg = await startRegistry({tls: true})
  plainReg = await startRegistry()
  issuer = await startTokenIssuer({anonymousPull: true})
  tokenReg = await startRegistry({
    token: {realm: issuer.realm, service: issuer.service, issuer: issuer.issuer, rootCertPem: issuer.rootCertPem},
  })
  helm = await startHelmRepo({charts: [{name: 'redis', version: '17.0.1'}]})
  // Different layers per registry: a blob cached from one would not be fetched from the other.
  await pushImage(tlsReg, 'team/app', '1', [
    {architecture: 'amd64', layers: [layerOf({'etc/proxy-test': 'tls registry'})]},
  ])
  await pushImage(plainReg, 'team/app', '1', [
    {architecture: 'amd64', layers: [layerOf({'etc/proxy-test': 'plain registry'})]},
  ])
  const layers = [layerOf({'etc/proxy-test': 'token registry'})]
  const seeder: TestRegistry = {
    ...tokenReg,
    fetch: (p, init = {}) => {
      const headers = new Headers(init.headers)
      headers.set('authorization', `Bearer ${issuer.mint('seeder', 'repository:team/app:pull,push')}`)
      return tokenReg.fetch(p, {...init, headers})
    },
  }
  await pushImage(seeder, 'team/app', '1', [{architecture: 'amd64', layers}])
})

afterAll(async () => {
  for (const s of [proxy, tlsReg, plainReg, tokenReg, issuer, helm]) await s?.stop()
  await rm(dir, {recursive: true, force: true})
})

async function newRequests(fn: () => Promise<unknown>): Promise<{lines: string[]; value: unknown}> {
  const before = (await proxy.requests()).length
  const value = await fn()
  // tinyproxy writes its log line when it reads the request: give the last one a moment to land.
  await new Promise((r) => setTimeout(r, 100))
  return {lines: (await proxy.requests()).slice(before), value}
}

async function allFiles(root: string): Promise<string> {
  let text = ''
  for (const e of await readdir(root, {withFileTypes: true, recursive: true})) {
    if (e.isFile() && !e.name.endsWith('.tar.zst')) text += await readFile(path.join(e.parentPath, e.name), 'utf8')
  }
  return text
}

describe('behind an HTTP proxy', () => {
  it('bundle build with HTTPS_PROXY and HTTP_PROXY: CONNECT for the https registry, absolute-URI GETs for the plain one, no password anywhere', async () => {
    const profile = path.join(dir, 'profile.json')
    await writeFile(
      profile,
      JSON.stringify(benchProfile([`${tlsReg.host}/team/app:1`, `${plainReg.host}/team/app:1`], 'proxy-test')),
    )
    const output = path.join(dir, 'out')
    const {lines, value} = await newRequests(() =>
      runCli(
        [
          'bundle',
          'build',
          profile,
          '--arch',
          'amd64',
          '--name',
          'viaproxy',
          '--ca-cert',
          tlsReg.caFile!,
          '--cache-dir',
          path.join(dir, 'cache'),
          '--output',
          output,
        ],
        {env: {...NO_PROXY_ENV, HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, SOURCE_DATE_EPOCH: '1700000000'}},
      ),
    )
    const result = value as Awaited<ReturnType<typeof runCli>>
    expect(result.exitCode, result.stderr).toBe(0)
    expect(lines).toContain(`CONNECT ${tlsReg.host}`)
    expect(
      lines.filter((l) => l.startsWith(`GET http://${plainReg.host}/v2/team/app/blobs/`)).length,
    ).toBeGreaterThanOrEqual(1)
    expect(
      lines.filter((l) => l.startsWith(`GET http://${plainReg.host}/v2/team/app/manifests/`)).length,
    ).toBeGreaterThanOrEqual(1)
    expect(result.stdout + result.stderr).not.toContain(PASSWORD)
    expect(await allFiles(output)).not.toContain(PASSWORD)
  })

  it('lower-case https_proxy / http_proxy: the token service and the chart repository go through it too', async () => {
    const {lines, value} = await newRequests(() =>
      resolveArtifacts(
        {images: [img(`${tokenReg.host}/team/app:1`)], charts: [chart(helm.url, 'redis', '17.0.1')]},
        {platform: amd64, env: {https_proxy: proxy.url, http_proxy: proxy.url}},
      ),
    )
    const {lock} = value as Awaited<ReturnType<typeof resolveArtifacts>>
    expect(Object.keys(lock.images)).toHaveLength(1)
    const realm = new URL(issuer.realm)
    expect(lines.some((l) => l.startsWith(`GET http://${realm.host}${realm.pathname}?`))).toBe(true)
    expect(lines).toContain(`GET ${helm.url}/index.yaml`)
    expect(lines).toContain(`GET ${helm.url}/charts/redis-17.0.1.tgz`)
    expect(lines.some((l) => l.startsWith(`GET http://${tokenReg.host}/v2/team/app/manifests/1`))).toBe(true)
  })

  it('NO_PROXY naming the registry (host:port) connects directly; a NO_PROXY for other hosts does not', async () => {
    const direct = await newRequests(() =>
      resolveArtifacts(
        {images: [img(`${plainReg.host}/team/app:1`)], charts: []},
        {
          platform: amd64,
          env: {HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: `example.invalid, ${plainReg.host}`},
        },
      ),
    )
    expect(direct.lines).toEqual([])
    const proxied = await newRequests(() =>
      resolveArtifacts(
        {images: [img(`${plainReg.host}/team/app:1`)], charts: []},
        {platform: amd64, env: {HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, no_proxy: 'example.invalid,.internal'}},
      ),
    )
    expect(proxied.lines.some((l) => l.includes(plainReg.host))).toBe(true)
  })

  it('wrong proxy credentials: exit 4 naming the proxy with the password masked', async () => {
    const profile = path.join(dir, 'profile-bad.json')
    await writeFile(profile, JSON.stringify(benchProfile([`${tlsReg.host}/team/app:1`], 'proxy-bad')))
    const wrong = proxy.url.replace(PASSWORD, 'wrong-pw-123')
    const result = await runCli(['profile', 'resolve', profile, '--arch', 'amd64', '--ca-cert', tlsReg.caFile!], {
      env: {...NO_PROXY_ENV, HTTPS_PROXY: wrong},
    })
    expect(result.exitCode, result.stderr).toBe(4)
    expect(result.stderr).toContain(`alice:***@${proxy.host}`)
    expect(result.stderr).toContain('check the credentials in HTTPS_PROXY')
    expect(result.stderr).not.toContain('wrong-pw-123')
  })

  it('a proxy that is not listening: exit 4 naming it, password masked', async () => {
    const dead = `http://alice:${PASSWORD}@127.0.0.1:9`
    const error = await resolveArtifacts(
      {images: [img(`${plainReg.host}/team/app:1`)], charts: []},
      {platform: amd64, attempts: 1, env: {HTTP_PROXY: dead, HTTPS_PROXY: dead}},
    ).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    expect(error.exitCode).toBe(4)
    const text = JSON.stringify(error.details) + error.message
    expect(text).toContain('127.0.0.1:9')
    expect(text).not.toContain(PASSWORD)
  })
})
