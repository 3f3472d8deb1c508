import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {Agent, request} from 'undici'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {mirrorsYaml} from '../../src/registry/mirror-config.js'
import {benchProfile} from '../helpers/bench-content.js'
import {runCli} from '../helpers/cli.js'
import {makeTlsMaterial, startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage} from '../helpers/seed.js'
import {serveBundle, type ServedBundle} from '../helpers/serve.js'
import {siteBundle, type SiteBundle} from '../helpers/site-bundle.js'

// `bundle serve` (PRODUCT.md §12) read by real clients: skopeo inspects and copies from it, a Debian
// docker-registry in pull-through mode (`proxy.remoteurl`) uses it as its upstream, and the distribution API's
// details (HEAD, Range, 404/405 bodies) are checked over plain HTTP.

vi.setConfig({testTimeout: 120_000, hookTimeout: 120_000})

const run = promisify(execFile)
const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')

let fx: SiteBundle
let served: ServedBundle

beforeAll(async () => {
  fx = await siteBundle()
  served = await serveBundle(fx.bundle)
})

afterAll(async () => {
  await served?.stop()
  if (fx) await rm(fx.root, {recursive: true, force: true})
})

/** The distribution error code of a failed response. */
async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as {errors: {code: string}[]}).errors[0].code
}

const app = () => fx.images.find((i) => i.locked.reference.endsWith('team/app:1.0'))!

describe('bundle serve', () => {
  it('prints the URL, the registries.yaml mirrors (host kept by a rewrite) and the pull-through config', () => {
    const out = served.stdout()
    expect(out).toContain(`at ${served.url}`)
    expect(out).toContain('"registry.example.com":')
    expect(out).toContain(`- "${served.url}"`)
    expect(out).toContain('"^(.*)$": "registry.example.com/$1"')
    expect(out).toContain(`remoteurl: ${served.url}`)
    expect(out).toContain('registry.example.com/team/app: 1.0')
  })

  it('skopeo inspect --raw gets the sparse index byte for byte: its digest is the lock’s', async () => {
    for (const img of fx.images) {
      const ref = img.locked.reference
      const {stdout} = await run(
        'skopeo',
        ['inspect', '--tls-verify=false', '--raw', `docker://${served.host}/${ref}`],
        {encoding: 'buffer'},
      )
      expect(sha256(stdout), ref).toBe(img.locked.digest)
    }
  })

  it('skopeo copy from the served address keeps the platform manifest’s digest', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-serve-copy-'))
    try {
      await run('skopeo', [
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        `docker://${served.host}/${app().locked.reference}`,
        `dir:${dir}`,
      ])
      expect(sha256(await readFile(path.join(dir, 'manifest.json')))).toBe(app().platformDigest)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  it('answers the distribution API: HEAD, Range, tags/list, 404 for absent platforms and unknown names, 405 for writes', async () => {
    const base = `${served.url}/v2/registry.example.com/team/app`
    const head = await fetch(`${base}/manifests/1.0`, {method: 'HEAD'})
    expect(head.status).toBe(200)
    expect(head.headers.get('docker-content-digest')).toBe(app().locked.digest)
    expect(head.headers.get('content-type')).toBe(app().locked.mediaType)
    expect(Number(head.headers.get('content-length'))).toBe(app().locked.size)

    const index = JSON.parse(await (await fetch(`${base}/manifests/${app().locked.digest}`)).text())
    const absent = index.manifests.find((m: {digest: string}) => m.digest !== app().platformDigest)
    const missing = await fetch(`${base}/manifests/${absent.digest}`)
    expect(missing.status).toBe(404)
    expect(await errorCode(missing)).toBe('MANIFEST_UNKNOWN')

    const layer = app().locked.blobs.at(-1)!
    const whole = Buffer.from(await (await fetch(`${base}/blobs/${layer.digest}`)).arrayBuffer())
    expect(sha256(whole)).toBe(layer.digest)
    const part = await fetch(`${base}/blobs/${layer.digest}`, {headers: {range: 'bytes=10-19'}})
    expect(part.status).toBe(206)
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${layer.size}`)
    expect(Buffer.from(await part.arrayBuffer())).toEqual(whole.subarray(10, 20))
    const beyond = await fetch(`${base}/blobs/${layer.digest}`, {headers: {range: `bytes=${layer.size}-`}})
    expect(beyond.status).toBe(416)
    await beyond.arrayBuffer()

    expect(await (await fetch(`${base}/tags/list`)).json()).toEqual({
      name: 'registry.example.com/team/app',
      tags: ['1.0'],
    })
    const unknown = await fetch(`${served.url}/v2/registry.example.com/nope/manifests/1.0`)
    expect(unknown.status).toBe(404)
    expect(await errorCode(unknown)).toBe('NAME_UNKNOWN')
    // A blob of another repository is not this repository's.
    const other = fx.images.find((i) => i.locked.reference.includes('legacy/tool'))!
    const foreign = await fetch(`${base}/blobs/${other.locked.blobs.at(-1)!.digest}`)
    expect(foreign.status).toBe(404)
    expect(await errorCode(foreign)).toBe('BLOB_UNKNOWN')

    const put = await fetch(`${base}/manifests/2.0`, {method: 'PUT', body: '{}'})
    expect(put.status).toBe(405)
    expect(await errorCode(put)).toBe('UNSUPPORTED')
    const upload = await fetch(`${base}/blobs/uploads/`, {method: 'POST'})
    expect(upload.status).toBe(405)
    await upload.arrayBuffer()
  })

  it('serves a split bundle from its parts in place', async () => {
    const split = await siteBundle({partSize: 4096})
    const s = await serveBundle(split.bundle)
    try {
      const img = split.images[0]
      const {stdout} = await run(
        'skopeo',
        ['inspect', '--tls-verify=false', '--raw', `docker://${s.host}/${img.locked.reference}`],
        {encoding: 'buffer'},
      )
      expect(sha256(stdout)).toBe(img.locked.digest)
      expect(await s.stop()).toBe(0)
    } finally {
      await s.stop()
      await rm(split.root, {recursive: true, force: true})
    }
  })

  it('refuses a format 1 bundle with exit 2 and the way out', async () => {
    const old = await siteBundle({formatVersion: 1})
    try {
      const result = await runCli(['bundle', 'serve', old.bundle, '--listen', '127.0.0.1:0'])
      expect(result.exitCode).toBe(2)
      expect(result.stderr).toContain('format 1 bundle')
      expect(result.stderr).toContain('--format 2')
    } finally {
      await rm(old.root, {recursive: true, force: true})
    }
  })

  it('--json prints one document when ready (URL, repositories, both configurations), and nothing more at exit', async () => {
    const s = await serveBundle(fx.bundle, ['--json'])
    expect(await s.stop()).toBe(0)
    const doc = JSON.parse(s.stdout())
    expect(doc).toMatchObject({status: 'ok', url: s.url, identity: fx.identity})
    expect(doc.repositories).toContainEqual({name: 'registry.example.com/team/app', tags: ['1.0']})
    expect(doc.registriesYaml).toContain('registry.example.com/$1')
    expect(doc.pullThroughConfig).toBe(`proxy:\n  remoteurl: ${s.url}\n`)
  })

  it('serves HTTPS with --tls-cert/--tls-key (certificate verified by the client)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-serve-tls-'))
    const tls = makeTlsMaterial(dir)
    const s = await serveBundle(fx.bundle, ['--tls-cert', tls.certFile, '--tls-key', tls.keyFile], 'https')
    const dispatcher = new Agent({connect: {ca: tls.caPem}})
    try {
      expect(s.stdout()).toContain(`at https://${s.host}`)
      const res = await request(`${s.url}/v2/registry.example.com/team/app/manifests/1.0`, {dispatcher})
      expect(res.statusCode).toBe(200)
      expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(app().locked.digest)
    } finally {
      await dispatcher.close()
      await s.stop()
      await rm(dir, {recursive: true, force: true})
    }
  })

  it('stops cleanly on SIGTERM (exit 0)', async () => {
    const s = await serveBundle(fx.bundle)
    expect(await s.stop()).toBe(0)
    expect(s.stderr()).toContain('SIGTERM')
  })
})

describe('a site registry pulling through bundle serve', () => {
  let proxy: TestRegistry
  beforeAll(async () => {
    proxy = await startRegistry({proxy: {remoteurl: served.url}})
  })
  afterAll(async () => {
    await proxy?.stop()
  })

  it('serves the sparse index byte for byte and the platform image, stored in its own storage', async () => {
    const ref = app().locked.reference
    const {stdout} = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${proxy.host}/${ref}`], {
      encoding: 'buffer',
    })
    expect(sha256(stdout)).toBe(app().locked.digest)
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-proxy-copy-'))
    try {
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${proxy.host}/${ref}`, `dir:${dir}`])
      expect(sha256(await readFile(path.join(dir, 'manifest.json')))).toBe(app().platformDigest)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
    const layer = app().locked.blobs.at(-1)!.digest.slice('sha256:'.length)
    const data = path.join(proxy.dir, 'storage/docker/registry/v2/blobs/sha256', layer.slice(0, 2), layer, 'data')
    expect((await stat(data)).isFile()).toBe(true)
  })
})

describe('a --locked rebuild through a site registry that pulls through bundle serve', () => {
  let upstream: TestRegistry
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-serve-rebuild-'))
    upstream = await startRegistry()
  })
  afterAll(async () => {
    await upstream?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('gives a cmp-identical bundle', async () => {
    const shared = layerOf({'etc/base': 'shared base layer'})
    await pushImage(
      upstream,
      'team/app',
      '1',
      [
        {architecture: 'amd64', layers: [shared, layerOf({'app/amd64': 'amd64 app'})]},
        {architecture: 'arm64', variant: 'v8', layers: [shared, layerOf({'app/arm64': 'arm64 app'})]},
      ],
      {attestations: true},
    )
    await pushImage(upstream, 'team/tool', '2', [{architecture: 'amd64', layers: [shared, layerOf({tool: 'x'})]}], {
      format: 'docker',
    })
    // References name a registry host without a port (a colon is not allowed in a repository name, and served
    // repositories are HOST/PATH); a mirror sends it to the test registry.
    const profile = path.join(dir, 'profile.json')
    await writeFile(
      profile,
      JSON.stringify(benchProfile(['registry.example.com/team/app:1', 'registry.example.com/team/tool:2'], 'site')),
    )
    const viaUpstream = path.join(dir, 'upstream.yaml')
    await writeFile(viaUpstream, `mirrors:\n  registry.example.com:\n    endpoint: ["${upstream.url}"]\n`)
    const build = async (name: string, registries: string, extra: string[]) => {
      const result = await runCli(
        [
          'bundle',
          'build',
          profile,
          '--arch',
          'amd64',
          '--name',
          'site',
          '--format',
          '2',
          '--registries',
          registries,
          '--cache-dir',
          path.join(dir, `${name}-cache`),
          '--output',
          path.join(dir, name),
          '--lock-file',
          path.join(dir, 'site.lock.json'),
          ...extra,
        ],
        {env: {SOURCE_DATE_EPOCH: '1700000000'}},
      )
      expect(result.exitCode, result.stderr).toBe(0)
      return path.join(dir, name, 'site.tar.zst')
    }
    const original = await build('original', viaUpstream, [])
    const s = await serveBundle(original)
    const site = await startRegistry({proxy: {remoteurl: s.url}})
    try {
      const viaSite = path.join(dir, 'site.yaml')
      await writeFile(
        viaSite,
        mirrorsYaml([{host: 'registry.example.com', endpoint: site.url, pathPrefix: 'registry.example.com'}]),
      )
      const rebuilt = await build('rebuilt', viaSite, ['--locked'])
      await run('cmp', [original, rebuilt])
      const report = JSON.parse(await readFile(path.join(dir, 'rebuilt', 'site.report.json'), 'utf8'))
      expect(
        report.artifacts.filter((a: {kind: string}) => a.kind === 'image').map((a: {source: string}) => a.source),
      ).toEqual([site.host, site.host])
    } finally {
      await site.stop()
      await s.stop()
    }
  })
})
