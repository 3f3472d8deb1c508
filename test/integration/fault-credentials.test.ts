// Credentials never leak (issue 6, PRODUCT.md §2): a registry behind htpasswd auth, reached with credentials from
// a Docker config and from a Palette --cred-file. The password, the base64 `user:password` pair and the Basic
// header value must appear in no output: not in the bundle (decompressed), the cluster definition, the lock, the
// report, any other file of --output, nor on stdout/stderr in human or --json mode — also not on a failing build,
// and not with DEBUG logging on.

import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, writeFileSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {gunzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {runCli} from '../helpers/cli.js'
import {startHelmRepo, type HelmRepo} from '../helpers/helm-repo.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {benchProfile} from '../helpers/bench-content.js'
import {layerOf, pushImage} from '../helpers/seed.js'
import {startTokenIssuer, type TokenIssuer} from '../helpers/token-issuer.js'
import {BUNDLE_NAME, listFiles, startFaultFixture, type FaultFixture} from '../helpers/fault-fixture.js'

// Whole builds through the CLI, some at zstd level 19, on a 2-core machine shared with other suites.
vi.setConfig({testTimeout: 240_000, hookTimeout: 240_000})

const USER = 'fault-user'
const PASSWORD = 'Pw-7f3a9c1e-TOP-SECRET-d41d8cd9'
const SECRETS = [
  ...new Set([
    PASSWORD,
    Buffer.from(`${USER}:${PASSWORD}`).toString('base64'),
    Buffer.from(PASSWORD).toString('base64'),
    encodeURIComponent(PASSWORD),
  ]),
]

let fx: FaultFixture
let dockerConfig: string
let credFile: string

function leaks(where: string, data: Buffer | string): string[] {
  const text = Buffer.isBuffer(data) ? data.toString('latin1') : data
  return SECRETS.filter((s) => text.includes(s)).map(
    (s) => `${where} contains ${s === PASSWORD ? 'the password' : `an encoding of it (${s.slice(0, 6)}…)`}`,
  )
}

async function outputLeaks(output: string): Promise<string[]> {
  const found: string[] = []
  for (const file of await listFiles(output)) {
    const full = path.join(output, file)
    let bytes = await readFile(full)
    if (file.endsWith('.tar.zst')) bytes = execFileSync('zstd', ['-q', '-d', '-c', full], {maxBuffer: 1 << 30})
    if (file.endsWith('.tgz')) bytes = gunzipSync(bytes)
    found.push(...leaks(file, bytes))
  }
  return found
}

beforeAll(async () => {
  fx = await startFaultFixture({
    bytesPerPlatform: 2 * 1024 * 1024,
    images: 2,
    registry: {htpasswd: {[USER]: PASSWORD}},
    seed: 'airpack-cred-tests',
  })
  dockerConfig = path.join(fx.dir, 'docker')
  mkdirSync(dockerConfig, {recursive: true})
  writeFileSync(
    path.join(dockerConfig, 'config.json'),
    JSON.stringify({auths: {[fx.proxy.host]: {auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}}}),
  )
  credFile = path.join(fx.dir, 'palette-creds.json')
  writeFileSync(
    credFile,
    JSON.stringify({image: [{endpoint: fx.proxy.host, username: USER, password: PASSWORD}], helm: []}),
  )
}, 120_000)

afterAll(async () => {
  await fx?.stop()
})

describe('credentials stay secret', () => {
  it('the leak detector finds what it looks for (a test that can fail)', () => {
    expect(leaks('probe', `x${PASSWORD}y`)).not.toEqual([])
    expect(
      leaks('probe', Buffer.from(`Authorization: Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`)),
    ).not.toEqual([])
    expect(leaks('probe', 'nothing here')).toEqual([])
  })

  it('the registry really requires the credentials', async () => {
    const res = await fetch(`${fx.proxy.url}/v2/fault/app-0/manifests/v1`)
    expect(res.status).toBe(401)
  })

  for (const source of ['docker-config', 'cred-file'] as const) {
    for (const json of [false, true]) {
      it(`successful build with --${source}${json ? ' --json' : ''}: no secret in any output or stream`, async () => {
        const cache = await fx.fresh('cache')
        const output = await fx.fresh('out')
        const lock = path.join(await fx.fresh('lock'), 'pinned.lock.json')
        const extra = [
          source === 'docker-config' ? '--docker-config' : '--cred-file',
          source === 'docker-config' ? dockerConfig : credFile,
          '--lock-file',
          lock,
        ]
        const result = await fx.build({cache, output, json, extra})
        expect(result.exitCode, result.stderr).toBe(0)
        expect(await listFiles(output)).toContain(`${BUNDLE_NAME}.tar.zst`)
        expect([
          ...leaks('stdout', result.stdout),
          ...leaks('stderr', result.stderr),
          ...leaks('lock file', await readFile(lock)),
          ...(await outputLeaks(output)),
        ]).toEqual([])
      })
    }
  }

  it('failing build (an image that does not exist), with DEBUG on: no secret in the error or the logs', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    const profile = path.join(fx.dir, 'missing-image.json')
    const original = JSON.parse(await readFile(fx.profile, 'utf8'))
    original.spec.template.packs[0].values += `      - image: ${fx.proxy.host}/fault/does-not-exist:v9\n`
    writeFileSync(profile, JSON.stringify(original))
    for (const json of [false, true]) {
      const args = fx.buildArgs({cache, output, extra: ['--docker-config', dockerConfig, ...(json ? ['--json'] : [])]})
      args[2] = profile
      const result = await runCli(args, {env: {DEBUG: 'airpack*'}, timeout: 120_000})
      expect(result.exitCode, result.stderr).toBe(4)
      expect([
        ...leaks('stdout', result.stdout),
        ...leaks('stderr', result.stderr),
        ...(await outputLeaks(output)),
      ]).toEqual([])
    }
  })

  it('wrong password: exit 4 naming the registry, and the wrong password is not echoed', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    const wrong = path.join(fx.dir, 'wrong-docker')
    mkdirSync(wrong, {recursive: true})
    const wrongPassword = 'Wrong-9c1e-NOT-THE-PASSWORD-77'
    writeFileSync(
      path.join(wrong, 'config.json'),
      JSON.stringify({auths: {[fx.proxy.host]: {auth: Buffer.from(`${USER}:${wrongPassword}`).toString('base64')}}}),
    )
    const result = await fx.build({cache, output, extra: ['--docker-config', wrong]})
    expect(result.exitCode, result.stderr).toBe(4)
    expect(result.stderr).toContain(fx.proxy.host)
    expect(result.stdout + result.stderr).not.toContain(wrongPassword)
    expect(result.stdout + result.stderr).not.toContain(Buffer.from(`${USER}:${wrongPassword}`).toString('base64'))
  })
})

describe('userinfo in URLs is masked at the source (issue 17)', () => {
  let charts: HelmRepo

  beforeAll(async () => {
    charts = await startHelmRepo({
      charts: [{name: 'redis', version: '17.0.1'}],
      auth: {username: USER, password: PASSWORD},
    })
  })
  afterAll(async () => {
    await charts?.stop()
  })

  /** Every stream and every file a run leaves, the lock included; `skip` names outputs left out on purpose. */
  async function everyLeak(
    result: {stdout: string; stderr: string},
    output: string,
    lock?: string,
    skip: RegExp = /$^/,
  ): Promise<string[]> {
    const found = [...leaks('stdout', result.stdout), ...leaks('stderr', result.stderr)]
    if (lock && existsSync(lock)) found.push(...leaks('lock file', await readFile(lock)))
    for (const leak of await outputLeaks(output)) if (!skip.test(leak)) found.push(leak)
    return found
  }

  it("a registries.yaml endpoint written https://user:pass@host: used as that endpoint's credentials, printed nowhere (--json, DEBUG)", async () => {
    const registries = path.join(fx.dir, 'userinfo-registries.yaml')
    // The mirror is the registry itself, reached through an endpoint URL that carries the credentials.
    writeFileSync(
      registries,
      `mirrors:\n  "mirror.invalid":\n    endpoint:\n      - "http://${USER}:${PASSWORD}@${fx.proxy.host}"\n`,
    )
    const profile = path.join(fx.dir, 'mirror-profile.json')
    const original = JSON.parse(await readFile(fx.profile, 'utf8'))
    original.spec.template.packs[0].values = original.spec.template.packs[0].values.replaceAll(
      fx.proxy.host,
      'mirror.invalid',
    )
    writeFileSync(profile, JSON.stringify(original))
    for (const json of [false, true]) {
      const cache = await fx.fresh('cache')
      const output = await fx.fresh('out')
      const lock = path.join(await fx.fresh('lock'), 'pinned.lock.json')
      const args = fx.buildArgs({
        cache,
        output,
        extra: ['--registries', registries, '--lock-file', lock, ...(json ? ['--json'] : [])],
      })
      args[2] = profile
      const result = await runCli(args, {env: {DEBUG: 'airpack*'}, timeout: 240_000})
      expect(result.exitCode, result.stderr).toBe(0)
      expect(await everyLeak(result, output, lock)).toEqual([])
    }
  })

  it('a registries.yaml endpoint with userinfo that fails: the error names the endpoint, masked', async () => {
    const registries = path.join(fx.dir, 'userinfo-unreachable.yaml')
    writeFileSync(
      registries,
      `mirrors:\n  "mirror.invalid":\n    endpoint:\n      - "http://${USER}:${PASSWORD}@127.0.0.1:9"\n`,
    )
    const profile = path.join(fx.dir, 'mirror-unreachable-profile.json')
    const original = JSON.parse(await readFile(fx.profile, 'utf8'))
    original.spec.template.packs[0].values = original.spec.template.packs[0].values.replaceAll(
      fx.proxy.host,
      'mirror.invalid',
    )
    writeFileSync(profile, JSON.stringify(original))
    for (const json of [false, true]) {
      const output = await fx.fresh('out')
      const args = fx.buildArgs({
        cache: await fx.fresh('cache'),
        output,
        extra: ['--registries', registries, ...(json ? ['--json'] : [])],
      })
      args[2] = profile
      const result = await runCli(args, {env: {DEBUG: 'airpack*'}, timeout: 240_000})
      expect(result.exitCode, result.stderr).toBe(4)
      expect(result.stdout + result.stderr).toContain('127.0.0.1:9')
      expect(await everyLeak(result, output)).toEqual([])
    }
  })

  it('a chart repository URL with user:pass@: fetched with those credentials; lock, report, --json and DEBUG lines mask it', async () => {
    const repo = charts.url.replace('http://', `http://${USER}:${PASSWORD}@`)
    const profile = path.join(fx.dir, 'chart-userinfo-profile.json')
    const original = JSON.parse(await readFile(fx.profile, 'utf8'))
    original.spec.template.packs[0].values += `    charts:\n      - repo: ${repo}\n        name: redis\n        version: 17.0.1\n`
    writeFileSync(profile, JSON.stringify(original))
    // The user's own profile is carried verbatim in the bundle and the cluster definition (its sha256 is recorded):
    // a password typed into a profile travels with it. Everything airpack writes itself is checked.
    const carriesProfile = /^(fault\.tar\.zst|fault-definition\.tgz) /
    for (const json of [false, true]) {
      const cache = await fx.fresh('cache')
      const output = await fx.fresh('out')
      const lock = path.join(await fx.fresh('lock'), 'pinned.lock.json')
      const args = fx.buildArgs({
        cache,
        output,
        extra: ['--docker-config', dockerConfig, '--lock-file', lock, ...(json ? ['--json'] : [])],
      })
      args[2] = profile
      const result = await runCli(args, {env: {DEBUG: 'airpack*'}, timeout: 240_000})
      expect(result.exitCode, result.stderr).toBe(0)
      expect(charts.requests.some((r) => r.path.endsWith('.tgz') && r.authorized)).toBe(true)
      expect(await readFile(lock, 'utf8')).toContain(`${USER}:***@`)
      expect(await everyLeak(result, output, lock, carriesProfile)).toEqual([])
    }
  })

  it('a chart repository URL with user:pass@ that fails: the message masks it', async () => {
    const repo = charts.url.replace('http://', `http://${USER}:${PASSWORD}@`)
    const profile = path.join(fx.dir, 'chart-userinfo-missing.json')
    const original = JSON.parse(await readFile(fx.profile, 'utf8'))
    original.spec.template.packs[0].values += `    charts:\n      - repo: ${repo}\n        name: redis\n        version: 99.0.0\n`
    writeFileSync(profile, JSON.stringify(original))
    for (const json of [false, true]) {
      const output = await fx.fresh('out')
      const args = fx.buildArgs({
        cache: await fx.fresh('cache'),
        output,
        extra: ['--docker-config', dockerConfig, ...(json ? ['--json'] : [])],
      })
      args[2] = profile
      const result = await runCli(args, {env: {DEBUG: 'airpack*'}, timeout: 240_000})
      expect(result.exitCode, result.stderr).toBe(4)
      expect(result.stdout + result.stderr).toContain(`${USER}:***@`)
      expect(await everyLeak(result, output)).toEqual([])
    }
  })
})

describe('bearer tokens stay secret', () => {
  const REFRESH = 'refresh-5b1f0c-IDENTITY-TOKEN-8e2d'
  let issuer: TokenIssuer
  let registry: TestRegistry
  let profile: string

  beforeAll(async () => {
    issuer = await startTokenIssuer({users: {[USER]: PASSWORD}, refreshTokens: {[REFRESH]: USER}})
    registry = await startRegistry({
      token: {realm: issuer.realm, service: issuer.service, issuer: issuer.issuer, rootCertPem: issuer.rootCertPem},
    })
    const seeder = (repo: string): TestRegistry => ({
      ...registry,
      fetch: (p, init = {}) => {
        const headers = new Headers(init.headers)
        headers.set('authorization', `Bearer ${issuer.mint('seeder', `repository:${repo}:pull,push`)}`)
        return registry.fetch(p, {...init, headers})
      },
    })
    const image = await pushImage(seeder('tok/app'), 'tok/app', '1', [
      {architecture: 'amd64', layers: [layerOf({'a.txt': 'token layer'})]},
      {architecture: 'arm64', layers: [layerOf({'a.txt': 'token layer arm'})]},
    ])
    profile = path.join(fx.dir, 'token-profile.json')
    writeFileSync(profile, JSON.stringify(benchProfile([image.reference], 'token-tests')))
  }, 120_000)

  afterAll(async () => {
    await registry?.stop()
    await issuer?.stop()
  })

  for (const flow of ['password', 'identitytoken'] as const) {
    it(`token flow with ${flow === 'password' ? 'Basic credentials' : 'an identity (refresh) token'}: no password, refresh token or bearer token in any output`, async () => {
      const config = path.join(fx.dir, `token-docker-${flow}`)
      mkdirSync(config, {recursive: true})
      const entry =
        flow === 'password'
          ? {auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}
          : {auth: Buffer.from('<token>:').toString('base64'), identitytoken: REFRESH}
      writeFileSync(path.join(config, 'config.json'), JSON.stringify({auths: {[registry.host]: entry}}))
      const issuedBefore = issuer.issued.length
      for (const json of [false, true]) {
        const cache = await fx.fresh('cache')
        const output = await fx.fresh('out')
        const args = [
          'bundle',
          'build',
          profile,
          '--arch',
          'amd64',
          '--name',
          BUNDLE_NAME,
          '--insecure-registry',
          registry.host,
          '--docker-config',
          config,
          '--cache-dir',
          cache,
          '--output',
          output,
          ...(json ? ['--json'] : []),
        ]
        const result = await runCli(args, {env: {DEBUG: 'airpack*'}, timeout: 120_000})
        expect(result.exitCode, result.stderr).toBe(0)
        const tokens = issuer.issued.slice(issuedBefore)
        expect(tokens.length, 'the build went through the token flow').toBeGreaterThan(0)
        const secrets = [REFRESH, ...tokens]
        const text = result.stdout + result.stderr
        const found = [...(await outputLeaks(output)), ...leaks('streams', text)]
        for (const file of await listFiles(output)) {
          const full = path.join(output, file)
          const bytes = file.endsWith('.tar.zst')
            ? execFileSync('zstd', ['-q', '-d', '-c', full])
            : await readFile(full)
          for (const t of secrets) if (bytes.toString('latin1').includes(t)) found.push(`${file} contains a token`)
        }
        for (const t of secrets) if (text.includes(t)) found.push('stdout/stderr contain a token')
        expect(found).toEqual([])
      }
    })
  }
})
