import {randomBytes} from 'node:crypto'
import {mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore} from '../../src/cache/store.js'
import {IntegrityError, ResolveError} from '../../src/errors.js'
import {fetchLock, resolveArtifacts} from '../../src/resolve/index.js'
import {startFaultProxy, type FaultPlan, type FaultProxy} from '../helpers/fault-proxy.js'
import {freePort, startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage, type SeededImage} from '../helpers/seed.js'

// Faults between airpack and a real registry, made by the fault proxy in front of it: HTML answers, redirect
// loops, manifests whose bytes do not match their digest, blobs cut short (then resumed with Range), 5xx/429,
// redirects to another origin (Authorization must not follow), unreachable hosts, and mirrors with rewrites.

const amd64 = {os: 'linux', architecture: 'amd64'}
const img = (reference: string) => ({reference, kind: 'image' as const, profile: 'p', pack: 'k', file: 'f.yaml'})

let bigDigest = ''

describe('registry faults', () => {
  let reg: TestRegistry
  let dir: string
  let image: SeededImage
  const proxies: FaultProxy[] = []
  const proxy = async (plan: FaultPlan) => {
    const p = await startFaultProxy(reg.url, plan)
    proxies.push(p)
    return p
  }
  const via = (p: FaultProxy, repo = 'team/app:1') => `${p.host}/${repo}`
  const cutBig = (extra: FaultPlan = {}): FaultPlan => ({
    rate: 1,
    kinds: ['cut'],
    digests: [bigDigest],
    at: 1 / 3,
    ...extra,
  })

  beforeAll(async () => {
    reg = await startRegistry()
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-faults-'))
    const big = layerOf({'data/big.bin': randomBytes(300_000)})
    bigDigest = big.digest
    image = await pushImage(reg, 'team/app', '1', [{architecture: 'amd64', layers: [big, layerOf({'etc/x': 'small'})]}])
    await pushImage(reg, 'mirrored/rancher/app', '1', [{architecture: 'amd64', layers: [layerOf({'etc/m': 'mirror'})]}])
    await pushImage(reg, 'library/nginx', '1.27', [
      {architecture: 'amd64', layers: [layerOf({'etc/nginx': 'hub mirror'})]},
    ])
  })
  afterAll(async () => {
    for (const p of proxies) await p.stop()
    await reg?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('an HTML answer, a redirect loop and an unreachable host each name the artifact and the registry (exit 4)', async () => {
    const html = await proxy({routes: {html: true}})
    const loop = await proxy({routes: {manifestRedirectLoop: true}})
    const dead = `127.0.0.1:${await freePort()}`
    const error = await resolveArtifacts(
      {images: [img(via(html)), img(via(loop)), img(`${dead}/team/app:1`)], charts: []},
      {platform: amd64, attempts: 2, retryBaseMs: 10},
    ).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    expect(error.exitCode).toBe(4)
    const [p1, p2, p3] = error.details.problems as string[]
    expect(p1).toContain(`${html.host}/team/app:1`)
    expect(p1).toContain(`${html.host} answered an HTML page`)
    expect(p2).toContain(`${loop.host} redirects in a loop`)
    expect(p3).toContain(`${dead}/team/app:1`)
    expect(p3).toContain(`cannot reach ${dead}`)
    expect(error.details.artifacts.map((a: {registry: string}) => a.registry)).toEqual([html.host, loop.host, dead])
  })

  it('a manifest whose bytes do not match its digest is an integrity failure (exit 5), and nothing is cached', async () => {
    const bad = await proxy({routes: {manifestSuffix: ' '}})
    const store = new BlobStore(path.join(dir, 'bad'))
    const error = await resolveArtifacts({images: [img(via(bad))], charts: []}, {platform: amd64, store}).catch(
      (e) => e,
    )
    expect(error).toBeInstanceOf(IntegrityError)
    expect(error.exitCode).toBe(5)
    expect(error.details.problems[0]).toMatch(
      /the manifest bytes hash to sha256:[a-f0-9]{64}, but the registry says sha256:/,
    )
    expect(await readdir(path.join(store.root, 'blobs', 'sha256')).catch(() => [])).toEqual([])
  })

  it('a blob cut short is resumed with a Range request and verified', async () => {
    const cut = await proxy(cutBig({maxFaultsPerDigest: 1}))
    const {lock} = await resolveArtifacts({images: [img(via(cut))], charts: []}, {platform: amd64})
    const store = new BlobStore(path.join(dir, 'cut'))
    const report = await fetchLock(lock, store, {retryBaseMs: 10})
    const big = cut.counters.log.filter((r) => r.path.endsWith(bigDigest))
    expect(big).toHaveLength(2)
    expect(big[0].range).toBeUndefined()
    expect(big[1].range).toMatch(/^bytes=[1-9]\d*-$/)
    // No transfer compression: bytes are hashed as sent, and ranges index the stored bytes.
    expect(cut.counters.log.filter((r) => !/^identity(, identity)*$/.test(r.acceptEncoding ?? ''))).toEqual([])
    expect(await store.has(bigDigest)).toBe(true)
    const size = lock.images[via(cut)].blobs.find((b) => b.digest === bigDigest)!.size
    // Bytes of the cut attempt count as downloaded; the resume fetched exactly the rest.
    expect(report.downloadedBytes).toBe(lock.images[via(cut)].blobs.reduce((a, b) => a + b.size, 0))
    expect(size).toBeGreaterThan(100_000)
  })

  it('a blob that is always cut short fails after the retries, naming the blob, image and host (exit 4)', async () => {
    const cut = await proxy(cutBig({persistent: true, routes: {ignoreRange: true}}))
    const {lock} = await resolveArtifacts({images: [img(via(cut))], charts: []}, {platform: amd64})
    const store = new BlobStore(path.join(dir, 'cut-always'))
    // The proxy ignores Range here and cuts every answer: each attempt starts over and is cut again.
    const error = await fetchLock(lock, store, {retryBaseMs: 5, attempts: 3}).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    expect(error.exitCode).toBe(4)
    expect(error.details.problems).toHaveLength(1)
    expect(error.details.problems[0]).toContain(`${via(cut)}: blob ${bigDigest}`)
    expect(await store.has(bigDigest)).toBe(false)
  })

  it('retries 429 and 503 with backoff', async () => {
    const flaky = await proxy({routes: {flaky: 2}, statusCodes: [503, 429]})
    const {lock} = await resolveArtifacts({images: [img(via(flaky))], charts: []}, {platform: amd64, retryBaseMs: 10})
    expect(lock.images[via(flaky)].digest).toBe(image.digest)
  })

  it('follows a redirect to another origin for blobs without sending it the Authorization header', async () => {
    // Like presigned storage URLs, the storage origin refuses (400) any request that carries Authorization.
    const p = await proxy({
      routes: {basicAuth: {username: 'carol', password: 'pw-redirect-secret'}, blobsToStorage: true},
    })
    const cfg = path.join(dir, 'redirect-docker')
    await import('node:fs/promises').then((fs) => fs.mkdir(cfg, {recursive: true}))
    await writeFile(
      path.join(cfg, 'config.json'),
      JSON.stringify({auths: {[p.host]: {auth: Buffer.from('carol:pw-redirect-secret').toString('base64')}}}),
    )
    const {lock} = await resolveArtifacts({images: [img(via(p))], charts: []}, {platform: amd64, dockerConfigDir: cfg})
    const store = new BlobStore(path.join(dir, 'redirect'))
    await fetchLock(lock, store, {dockerConfigDir: cfg})
    expect(p.counters.storageLog.length).toBeGreaterThanOrEqual(2)
    expect(p.counters.storageLog.every((r) => r.authorization === undefined)).toBe(true)
    expect(
      p.counters.log.filter((r) => r.path.includes('/blobs/')).every((r) => r.authorization?.startsWith('Basic ')),
    ).toBe(true)
    for (const i of Object.values(lock.images)) for (const b of i.blobs) expect(await store.has(b.digest)).toBe(true)
  })

  it('a 401 loop (a token the registry never accepts) ends after one renewal: exit 4 naming the artifact', async () => {
    const p = await proxy({routes: {authLoop: true}})
    const error = await resolveArtifacts(
      {images: [img(via(p))], charts: []},
      {platform: amd64, retryBaseMs: 1, env: {}},
    ).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    expect(error.exitCode).toBe(4)
    expect(error.details.problems[0]).toContain(`${via(p)}`)
    expect(error.details.problems[0]).toContain(`${p.host} requires authentication for team/app`)
    // ping, manifest, token, manifest again, then stop: never a loop.
    expect(p.counters.log.length).toBeLessThanOrEqual(6)
  })

  it('a blob redirect loop fails the fetch with exit 4 naming the blob and the loop', async () => {
    const p = await proxy({})
    const {lock} = await resolveArtifacts({images: [img(via(p))], charts: []}, {platform: amd64})
    p.setPlan({routes: {blobRedirectLoop: true}})
    const store = new BlobStore(path.join(dir, 'blob-loop'))
    const error = await fetchLock(lock, store, {retryBaseMs: 1, attempts: 2}).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    expect(error.exitCode).toBe(4)
    expect(error.details.problems.join('\n')).toContain(`${p.host} redirects in a loop`)
    expect(await store.has(bigDigest)).toBe(false)
  })

  it('a body that stalls forever: the idle timeout fails the attempt, the retry gets the blob', async () => {
    const p = await proxy({})
    const {lock} = await resolveArtifacts({images: [img(via(p))], charts: []}, {platform: amd64})
    p.setPlan({rate: 1, kinds: ['stall'], afterStall: 'hang', digests: [bigDigest], at: 0.5, maxFaultsPerDigest: 1})
    const store = new BlobStore(path.join(dir, 'stall-once'))
    await fetchLock(lock, store, {retryBaseMs: 1, idleTimeoutMs: 400})
    expect(await store.has(bigDigest)).toBe(true)
    expect(p.counters.faults.stall).toBe(1)
    expect(p.counters.perDigest[bigDigest]!.rangeGets).toBe(1)
  })

  it('a body that stalls forever on every attempt: exit 4 naming the blob and the stall, nothing unverified kept', async () => {
    const p = await proxy({})
    const {lock} = await resolveArtifacts({images: [img(via(p))], charts: []}, {platform: amd64})
    p.setPlan({rate: 1, kinds: ['stall'], afterStall: 'hang', digests: [bigDigest], at: 0.5, persistent: true})
    const store = new BlobStore(path.join(dir, 'stall-always'))
    const error = await fetchLock(lock, store, {retryBaseMs: 1, attempts: 2, idleTimeoutMs: 300}).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    expect(error.exitCode).toBe(4)
    expect(error.details.problems[0]).toContain(`blob ${bigDigest}`)
    expect(error.details.problems[0]).toContain(`${p.host} sent nothing for 300 ms while receiving the body`)
    expect(await store.has(bigDigest)).toBe(false)
  })

  it('mirrors: endpoints in order (a dead one skipped), rewrite rules, Docker Hub names, the "*" mirror; fetch uses them', async () => {
    const dead = `127.0.0.1:${await freePort()}`
    const file = path.join(dir, 'registries.yaml')
    await writeFile(
      file,
      [
        'mirrors:',
        '  docker.io:',
        `    endpoint: ["http://${reg.host}"]`,
        '  rancher.example.invalid:',
        `    endpoint: ["http://${dead}", "http://${reg.host}/v2"]`,
        '    rewrite:',
        '      "^rancher/(.*)": "mirrored/rancher/$1"',
        '  "*":',
        `    endpoint: ["http://${reg.host}"]`,
      ].join('\n') + '\n',
    )
    const refs = [
      'docker.io/library/nginx:1.27',
      'rancher.example.invalid/rancher/app:1',
      'other.example.invalid/team/app:1',
    ]
    const {lock, plan} = await resolveArtifacts(
      {images: refs.map(img), charts: []},
      {platform: amd64, registriesFile: file, attempts: 1},
    )
    // The plan names the endpoint that served each reference; the lock keeps the canonical references only.
    for (const r of refs) expect(plan.artifacts.find((a) => a.reference === r)?.source).toBe(reg.host)
    for (const r of refs) expect(JSON.stringify(lock.images[r])).not.toContain(reg.host)
    expect(lock.images['other.example.invalid/team/app:1'].digest).toBe(image.digest)
    const store = new BlobStore(path.join(dir, 'mirror'))
    const report = await fetchLock(lock, store, {registriesFile: file, attempts: 1})
    expect(report.artifacts.map((a) => a.source).sort()).toEqual([reg.host, reg.host, reg.host])
    for (const i of Object.values(lock.images)) for (const b of i.blobs) expect(await store.has(b.digest)).toBe(true)
  })
})
