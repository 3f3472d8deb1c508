import {randomBytes} from 'node:crypto'
import {mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore} from '../../src/cache/store.js'
import {IntegrityError, ResolveError} from '../../src/errors.js'
import {fetchLock, resolveArtifacts} from '../../src/resolve/index.js'
import {freePort, startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage, type SeededImage} from '../helpers/seed.js'

// Faults between airpack and a real registry, made by a small proxy in front of it: HTML answers, redirect
// loops, manifests whose bytes do not match their digest, blobs cut short (then resumed with Range), 5xx/429,
// redirects to another origin (Authorization must not follow), unreachable hosts, and mirrors with rewrites.

const amd64 = {os: 'linux', architecture: 'amd64'}
const img = (reference: string) => ({reference, kind: 'image' as const, profile: 'p', pack: 'k', file: 'f.yaml'})

type Mode = 'pass' | 'html' | 'loop' | 'bad-digest' | 'cut' | 'cut-always' | 'flaky' | 'redirect-auth'

interface Proxy {
  host: string
  mode: Mode
  requests: {method: string; path: string; range?: string; authorization?: string; acceptEncoding?: string}[]
  storageRequests: {path: string; authorization?: string}[]
  stop(): Promise<void>
}

async function startProxy(reg: TestRegistry, mode: Mode): Promise<Proxy> {
  const requests: Proxy['requests'] = []
  const storageRequests: Proxy['storageRequests'] = []
  let cutDone = false
  let flakyLeft = 2
  const forward = async (req: http.IncomingMessage, res: http.ServerResponse, pathname: string, transform?: (b: Buffer) => Buffer) => {
    const headers: Record<string, string> = {}
    for (const h of ['accept', 'range']) if (req.headers[h]) headers[h] = String(req.headers[h])
    const up = await reg.fetch(pathname, {method: req.method, headers})
    const out: Record<string, string> = {}
    up.headers.forEach((v, k) => {
      if (!['content-length', 'transfer-encoding', 'connection'].includes(k)) out[k] = v
    })
    let body: Buffer = Buffer.from(await up.arrayBuffer())
    if (transform) body = transform(body)
    if (req.method !== 'HEAD') out['content-length'] = String(body.length)
    res.writeHead(up.status, out)
    res.end(req.method === 'HEAD' ? undefined : body)
  }
  const storage = http.createServer((req, res) => {
    storageRequests.push({path: req.url ?? '', authorization: req.headers.authorization})
    void forward(req, res, (req.url ?? '').replace(/^\/storage/, ''))
  })
  await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r))
  const storagePort = (storage.address() as import('node:net').AddressInfo).port
  const server = http.createServer((req, res) => {
    const pathname = req.url ?? '/'
    requests.push({
      method: req.method ?? '',
      path: pathname,
      range: req.headers.range,
      authorization: req.headers.authorization,
      acceptEncoding: req.headers['accept-encoding'],
    })
    if (mode === 'html') {
      res.writeHead(200, {'content-type': 'text/html'})
      res.end('<html><body>Sign in to continue</body></html>')
      return
    }
    if (mode === 'loop' && pathname.includes('/manifests/')) {
      res.writeHead(302, {location: pathname.includes('?') ? pathname.split('?')[0] : `${pathname}?again=1`})
      res.end()
      return
    }
    if (mode === 'flaky' && pathname !== '/v2/' && flakyLeft > 0) {
      flakyLeft--
      res.writeHead(flakyLeft === 1 ? 503 : 429, {'retry-after': '0'})
      res.end('try later')
      return
    }
    if (mode === 'redirect-auth') {
      if (req.headers.authorization !== 'Basic ' + Buffer.from('carol:pw-redirect-secret').toString('base64')) {
        res.writeHead(401, {'www-authenticate': 'Basic realm="proxy"'})
        res.end()
        return
      }
      if (pathname.includes('/blobs/')) {
        res.writeHead(307, {location: `http://127.0.0.1:${storagePort}/storage${pathname}`})
        res.end()
        return
      }
    }
    if (mode === 'bad-digest' && pathname.includes('/manifests/')) {
      void forward(req, res, pathname, (b) => Buffer.concat([b, Buffer.from(' ')]))
      return
    }
    const cutting = (mode === 'cut' && !cutDone) || mode === 'cut-always'
    if (cutting && pathname.includes('/blobs/') && req.method === 'GET' && pathname.endsWith(bigDigest) && (mode === 'cut-always' || !req.headers.range)) {
      cutDone = true
      void (async () => {
        const up = await reg.fetch(pathname)
        const body = Buffer.from(await up.arrayBuffer())
        res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': String(body.length)})
        res.write(body.subarray(0, Math.floor(body.length / 3)), () => setTimeout(() => res.socket?.destroy(), 20))
      })()
      return
    }
    void forward(req, res, pathname)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as import('node:net').AddressInfo).port
  return {
    host: `127.0.0.1:${port}`,
    mode,
    requests,
    storageRequests,
    stop: async () => {
      server.closeAllConnections()
      storage.closeAllConnections()
      await new Promise((r) => server.close(r))
      await new Promise((r) => storage.close(r))
    },
  }
}

let bigDigest = ''

describe('registry faults', () => {
  let reg: TestRegistry
  let dir: string
  let image: SeededImage
  const proxies: Proxy[] = []
  const proxy = async (mode: Mode) => {
    const p = await startProxy(reg, mode)
    proxies.push(p)
    return p
  }
  const via = (p: Proxy, repo = 'team/app:1') => `${p.host}/${repo}`

  beforeAll(async () => {
    reg = await startRegistry()
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-faults-'))
    const big = layerOf({'data/big.bin': randomBytes(300_000)})
    bigDigest = big.digest
    image = await pushImage(reg, 'team/app', '1', [{architecture: 'amd64', layers: [big, layerOf({'etc/x': 'small'})]}])
    await pushImage(reg, 'mirrored/rancher/app', '1', [{architecture: 'amd64', layers: [layerOf({'etc/m': 'mirror'})]}])
    await pushImage(reg, 'library/nginx', '1.27', [{architecture: 'amd64', layers: [layerOf({'etc/nginx': 'hub mirror'})]}])
  })
  afterAll(async () => {
    for (const p of proxies) await p.stop()
    await reg?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('an HTML answer, a redirect loop and an unreachable host each name the artifact and the registry (exit 4)', async () => {
    const html = await proxy('html')
    const loop = await proxy('loop')
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
    const bad = await proxy('bad-digest')
    const store = new BlobStore(path.join(dir, 'bad'))
    const error = await resolveArtifacts({images: [img(via(bad))], charts: []}, {platform: amd64, store}).catch((e) => e)
    expect(error).toBeInstanceOf(IntegrityError)
    expect(error.exitCode).toBe(5)
    expect(error.details.problems[0]).toMatch(/the manifest bytes hash to sha256:[a-f0-9]{64}, but the registry says sha256:/)
    expect(await readdir(path.join(store.root, 'blobs', 'sha256')).catch(() => [])).toEqual([])
  })

  it('a blob cut short is resumed with a Range request and verified', async () => {
    const cut = await proxy('cut')
    const {lock} = await resolveArtifacts({images: [img(via(cut))], charts: []}, {platform: amd64})
    const store = new BlobStore(path.join(dir, 'cut'))
    const report = await fetchLock(lock, store, {retryBaseMs: 10})
    const big = cut.requests.filter((r) => r.path.endsWith(bigDigest))
    expect(big).toHaveLength(2)
    expect(big[0].range).toBeUndefined()
    expect(big[1].range).toMatch(/^bytes=[1-9]\d*-$/)
    // No transfer compression: bytes are hashed as sent, and ranges index the stored bytes.
    expect(cut.requests.filter((r) => !/^identity(, identity)*$/.test(r.acceptEncoding ?? ''))).toEqual([])
    expect(await store.has(bigDigest)).toBe(true)
    const size = lock.images[via(cut)].blobs.find((b) => b.digest === bigDigest)!.size
    // Bytes of the cut attempt count as downloaded; the resume fetched exactly the rest.
    expect(report.downloadedBytes).toBe(lock.images[via(cut)].blobs.reduce((a, b) => a + b.size, 0))
    expect(size).toBeGreaterThan(100_000)
  })

  it('a blob that is always cut short fails after the retries, naming the blob, image and host (exit 4)', async () => {
    const cut = await proxy('cut-always')
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
    const flaky = await proxy('flaky')
    const {lock} = await resolveArtifacts({images: [img(via(flaky))], charts: []}, {platform: amd64, retryBaseMs: 10})
    expect(lock.images[via(flaky)].digest).toBe(image.digest)
  })

  it('follows a redirect to another origin for blobs without sending it the Authorization header', async () => {
    const p = await proxy('redirect-auth')
    const cfg = path.join(dir, 'redirect-docker')
    await import('node:fs/promises').then((fs) => fs.mkdir(cfg, {recursive: true}))
    await writeFile(path.join(cfg, 'config.json'), JSON.stringify({auths: {[p.host]: {auth: Buffer.from('carol:pw-redirect-secret').toString('base64')}}}))
    const {lock} = await resolveArtifacts({images: [img(via(p))], charts: []}, {platform: amd64, dockerConfigDir: cfg})
    const store = new BlobStore(path.join(dir, 'redirect'))
    await fetchLock(lock, store, {dockerConfigDir: cfg})
    expect(p.storageRequests.length).toBeGreaterThanOrEqual(2)
    expect(p.storageRequests.every((r) => r.authorization === undefined)).toBe(true)
    expect(p.requests.filter((r) => r.path.includes('/blobs/')).every((r) => r.authorization?.startsWith('Basic '))).toBe(true)
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
    const refs = ['docker.io/library/nginx:1.27', 'rancher.example.invalid/rancher/app:1', 'other.example.invalid/team/app:1']
    const {lock} = await resolveArtifacts({images: refs.map(img), charts: []}, {platform: amd64, registriesFile: file, attempts: 1})
    for (const r of refs) expect(lock.images[r].source).toBe(reg.host)
    expect(lock.images['other.example.invalid/team/app:1'].digest).toBe(image.digest)
    const store = new BlobStore(path.join(dir, 'mirror'))
    const report = await fetchLock(lock, store, {registriesFile: file, attempts: 1})
    expect(report.artifacts.map((a) => a.source).sort()).toEqual([reg.host, reg.host, reg.host])
    for (const i of Object.values(lock.images)) for (const b of i.blobs) expect(await store.has(b.digest)).toBe(true)
  })
})
