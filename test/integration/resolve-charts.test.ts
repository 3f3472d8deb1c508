import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {gzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore} from '../../src/cache/store.js'
import {IntegrityError, ResolveError} from '../../src/errors.js'
import {MediaType} from '../../src/oci/media-types.js'
import {checkChartContent} from '../../src/resolve/chart-content.js'
import {chartTag} from '../../src/resolve/charts.js'
import {checkLockCurrent, fetchLock, resolveArtifacts} from '../../src/resolve/index.js'
import {chartArchive, startHelmRepo, type HelmRepo} from '../helpers/helm-repo.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {blobOf, pushBlob, pushManifest, tarOf} from '../helpers/seed.js'
import {amd64} from '../helpers/constants.js'

// Helm charts from a classic repository (index.yaml over loopback HTTP), an OCI registry (Helm media types) and a
// direct .tgz URL; the generated OCI manifest of non-OCI charts is deterministic and re-creatable from the lock.

const chart = (repository: string, name: string, version: string) => ({
  repository,
  name,
  version,
  profile: 'addons',
  pack: name,
  file: 'addons.yaml',
})

describe('resolving Helm charts', () => {
  let repo: HelmRepo
  let html: HelmRepo
  let badDigest: HelmRepo
  let reg: TestRegistry
  let dir: string
  let ociManifestDigest: string
  const ociArchive = chartArchive({name: 'podinfo', version: '6.5.0+build.1'})

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-charts-'))
    repo = await startHelmRepo({
      charts: [
        {name: 'redis', version: '17.0.1', appVersion: '7.0'},
        {name: 'redis', version: '17.1.0'},
        {name: 'nodigest', version: '1.0.0'},
      ],
    })
    html = await startHelmRepo({charts: [], html: true})
    badDigest = await startHelmRepo({charts: [{name: 'tampered', version: '1.0.0'}], wrongDigestFor: 'tampered'})
    reg = await startRegistry()
    const config = blobOf(JSON.stringify({name: 'podinfo', version: '6.5.0+build.1', apiVersion: 'v2'}))
    await pushBlob(reg, 'charts/podinfo', config)
    await pushBlob(reg, 'charts/podinfo', ociArchive)
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        config: {mediaType: MediaType.helmConfig, digest: config.digest, size: config.size},
        layers: [{mediaType: MediaType.helmChart, digest: ociArchive.digest, size: ociArchive.size}],
      }),
    )
    ociManifestDigest = (await pushManifest(reg, 'charts/podinfo', '6.5.0_build.1', MediaType.ociManifest, manifest))
      .digest
  })
  afterAll(async () => {
    await repo?.stop()
    await html?.stop()
    await badDigest?.stop()
    await reg?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('pins a classic chart, an OCI chart and a direct .tgz; generated manifests are deterministic', async () => {
    const store = new BlobStore(path.join(dir, 'c1'))
    const tgz = `${repo.url}/charts/nodigest-1.0.0.tgz`
    const requests = [
      chart(repo.url, 'redis', '17.0.1'),
      chart(`oci://${reg.host}/charts`, 'podinfo', '6.5.0+build.1'),
      chart(tgz, 'nodigest', '1.0.0'),
    ]
    const {lock, plan} = await resolveArtifacts({images: [], charts: requests}, {platform: amd64, store})
    const classic = lock.charts[`${repo.url}#redis@17.0.1`]
    const archive = repo.archives.get('/charts/redis-17.0.1.tgz')!
    expect(classic.digest).toBe(archive.digest)
    expect(classic.size).toBe(archive.size)
    expect(classic.reference).toBe(`${repo.url.slice('http://'.length)}/redis:17.0.1`)
    expect(classic.url).toBe(`${repo.url}/charts/redis-17.0.1.tgz`)
    expect(classic.blobs.map((b) => b.mediaType)).toEqual([
      MediaType.ociManifest,
      MediaType.helmConfig,
      MediaType.helmChart,
    ])
    const manifest = JSON.parse((await store.readBytes(classic.manifest.digest)).toString())
    expect(manifest.config.mediaType).toBe(MediaType.helmConfig)
    expect(manifest.layers).toEqual([{mediaType: MediaType.helmChart, digest: archive.digest, size: archive.size}])
    const config = JSON.parse((await store.readBytes(manifest.config.digest)).toString())
    expect(config).toEqual({
      apiVersion: 'v2',
      appVersion: '7.0',
      description: 'redis test chart',
      name: 'redis',
      version: '17.0.1',
    })

    const oci = lock.charts[`oci://${reg.host}/charts#podinfo@6.5.0+build.1`]
    expect(oci.reference).toBe(`${reg.host}/charts/podinfo:6.5.0_build.1`)
    expect(oci.manifest.digest).toBe(ociManifestDigest)
    expect(oci.digest).toBe(ociArchive.digest)
    expect(plan.artifacts.find((a) => a.reference === oci.reference)?.source).toBe(reg.host)

    const direct = lock.charts[`${tgz}#nodigest@1.0.0`]
    expect(direct.digest).toBe(repo.archives.get('/charts/nodigest-1.0.0.tgz')!.digest)
    expect(direct.reference).toBe(`${repo.url.slice('http://'.length)}/charts/nodigest:1.0.0`)
    expect(plan.artifacts.map((a) => a.kind)).toEqual(['chart', 'chart', 'chart'])

    // Same inputs → same lock, byte for byte (the generated manifest does not depend on time or order).
    const again = await resolveArtifacts({images: [], charts: [...requests].reverse()}, {platform: amd64})
    expect(again.lock).toEqual(lock)

    // A fresh cache gets everything from the lock alone, generated manifests included.
    const fresh = new BlobStore(path.join(dir, 'c2'))
    await fetchLock(lock, fresh, {})
    for (const c of Object.values(lock.charts)) for (const b of c.blobs) expect(await fresh.has(b.digest)).toBe(true)
    await checkLockCurrent(lock, {})
  })

  it('--locked notices a chart archive that changed under the same version (index without digests, direct .tgz)', async () => {
    const mutable = await startHelmRepo({charts: [{name: 'app', version: '1.0.0'}], digests: false})
    try {
      const tgz = `${mutable.url}/charts/app-1.0.0.tgz`
      const {lock} = await resolveArtifacts(
        {images: [], charts: [chart(mutable.url, 'app', '1.0.0'), chart(tgz, 'app', '1.0.0')]},
        {platform: amd64},
      )
      await checkLockCurrent(lock, {})
      mutable.archives.set(
        '/charts/app-1.0.0.tgz',
        chartArchive({name: 'app', version: '1.0.0', files: {'NOTES.txt': 'rebuilt'}}),
      )
      const moved = await checkLockCurrent(lock, {}).catch((e) => e)
      expect(moved).toBeInstanceOf(ResolveError)
      expect(moved.code).toBe('ERR_AIRPACK_LOCK_OUTDATED')
      expect(moved.details.problems).toHaveLength(2)
      for (const p of moved.details.problems)
        expect(p).toMatch(
          /^chart app 1\.0\.0 from http:\/\/127\.0\.0\.1:\d+(\/charts\/app-1\.0\.0\.tgz)?: sha256:[a-f0-9]{64} → sha256:[a-f0-9]{64}$/,
        )
    } finally {
      await mutable.stop()
    }
  })

  it('picks the highest version for a semver range', async () => {
    const {lock} = await resolveArtifacts(
      {images: [], charts: [chart(repo.url, 'redis', '^17.0.0')]},
      {platform: amd64},
    )
    expect(Object.values(lock.charts)[0].digest).toBe(repo.archives.get('/charts/redis-17.1.0.tgz')!.digest)
  })

  it('lists every failure: unknown version, unknown chart, HTML page, missing OCI tag; a wrong index digest is exit 5', async () => {
    const error = await resolveArtifacts(
      {
        images: [],
        charts: [
          chart(repo.url, 'redis', '99.0.0'),
          chart(repo.url, 'nope', '1.0.0'),
          chart(html.url, 'x', '1.0.0'),
          chart(`oci://${reg.host}/charts`, 'podinfo', '0.0.1'),
        ],
      },
      {platform: amd64},
    ).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    const problems: string[] = error.details.problems
    expect(problems).toHaveLength(4)
    expect(problems[0]).toContain('chart redis has no version 99.0.0')
    expect(problems[0]).toContain('17.0.1, 17.1.0')
    expect(problems[1]).toContain('chart nope is not in')
    expect(problems[2]).toContain('is an HTML page, not a Helm repository index')
    expect(problems[3]).toMatch(/charts\/podinfo:0\.0\.1 not found/)

    const store = new BlobStore(path.join(dir, 'c3'))
    const tampered = await resolveArtifacts(
      {images: [], charts: [chart(badDigest.url, 'tampered', '1.0.0')]},
      {platform: amd64, store},
    ).catch((e) => e)
    expect(tampered).toBeInstanceOf(IntegrityError)
    expect(tampered.exitCode).toBe(5)
    expect(tampered.details.problems[0]).toContain('tampered-1.0.0.tgz')
    expect(await store.has(badDigest.archives.get('/charts/tampered-1.0.0.tgz')!.digest)).toBe(false)
  })
})

// Issue 10, case 3: chart locations as pack-central writes them (a release `.tar.gz` URL for the trident packs, an
// oci:// repo that already ends in the chart name for spegel), against the real loopback repository and registry.
describe('chart locations as pack-central writes them', () => {
  let repo: HelmRepo
  let reg: TestRegistry
  let dir: string

  async function pushChart(repository: string, name: string, version: string): Promise<string> {
    const archive = chartArchive({name, version})
    const config = blobOf(JSON.stringify({name, version, apiVersion: 'v2'}))
    await pushBlob(reg, repository, config)
    await pushBlob(reg, repository, archive)
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        config: {mediaType: MediaType.helmConfig, digest: config.digest, size: config.size},
        layers: [{mediaType: MediaType.helmChart, digest: archive.digest, size: archive.size}],
      }),
    )
    return (await pushManifest(reg, repository, chartTag(version), MediaType.ociManifest, manifest)).digest
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-chart-locations-'))
    repo = await startHelmRepo({charts: []})
    repo.archives.set(
      '/NetApp/trident/releases/download/v24.10.0/trident-operator-24.10.0.tar.gz',
      chartArchive({name: 'trident-operator', version: '24.10.0'}),
    )
    // What the trident packs' URL really serves: the installer bundle, with the chart archive one level down.
    repo.archives.set(
      '/NetApp/trident/releases/download/v24.10.0/trident-installer-24.10.0.tar.gz',
      blobOf(
        gzipSync(
          tarOf({
            'trident-installer/tridentctl': 'binary',
            'trident-installer/helm/trident-operator-100.2410.0.tgz': chartArchive({
              name: 'trident-operator',
              version: '100.2410.0',
            }).bytes,
          }),
        ),
      ),
    )
    reg = await startRegistry()
  })
  afterAll(async () => {
    await repo?.stop()
    await reg?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('fetches a direct .tar.gz URL (with a query string) as the archive, never as a repository index', async () => {
    const url = `${repo.url}/NetApp/trident/releases/download/v24.10.0/trident-operator-24.10.0.tar.gz?raw=true`
    const {lock} = await resolveArtifacts(
      {images: [], charts: [chart(url, 'trident-operator', '24.10.0')]},
      {platform: amd64},
    )
    const locked = lock.charts[`${url}#trident-operator@24.10.0`]
    expect(locked.digest).toBe(
      repo.archives.get('/NetApp/trident/releases/download/v24.10.0/trident-operator-24.10.0.tar.gz')!.digest,
    )
    expect(locked.url).toBe(url)
    expect(locked.reference).toBe(
      `${repo.url.slice('http://'.length)}/netapp/trident/releases/download/v24.10.0/trident-operator:24.10.0`,
    )
    expect(repo.requests.map((r) => r.path)).not.toContain(
      '/NetApp/trident/releases/download/v24.10.0/trident-operator-24.10.0.tar.gz/index.yaml',
    )
    expect(repo.requests.some((r) => r.path.endsWith('/index.yaml'))).toBe(false)
    await checkLockCurrent(lock, {})
    const fresh = new BlobStore(path.join(dir, 'tgz'))
    await fetchLock(lock, fresh, {})
    for (const b of locked.blobs) expect(await fresh.has(b.digest)).toBe(true)

    const installer = `${repo.url}/NetApp/trident/releases/download/v24.10.0/trident-installer-24.10.0.tar.gz`
    const error = await resolveArtifacts(
      {images: [], charts: [chart(installer, 'trident-operator', '24.10.0')]},
      {platform: amd64},
    ).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    expect(error.details.problems).toHaveLength(1)
    expect(error.details.problems[0]).toContain(`${installer} is not a Helm chart archive`)
    expect(error.details.problems[0]).toContain(
      'it is a bundle holding trident-installer/helm/trident-operator-100.2410.0.tgz',
    )
  })

  it('an oci:// repo ending in the chart name resolves as written, else with the name appended, and the lock says which', async () => {
    const asWritten = await pushChart('spegel-org/helm-charts/spegel', 'spegel', 'v0.0.30')
    const appended = await pushChart('xenitab/helm-charts/spegel/spegel', 'spegel', 'v0.0.18')
    const helmForm = await pushChart('charts/podinfo', 'podinfo', '6.5.0')
    const requests = [
      chart(`oci://${reg.host}/spegel-org/helm-charts/spegel`, 'spegel', 'v0.0.30'),
      chart(`oci://${reg.host}/xenitab/helm-charts/spegel`, 'spegel', 'v0.0.18'),
      chart(`oci://${reg.host}/charts`, 'podinfo', '6.5.0'),
    ]
    const {lock} = await resolveArtifacts({images: [], charts: requests}, {platform: amd64})
    const written = lock.charts[`oci://${reg.host}/spegel-org/helm-charts/spegel#spegel@v0.0.30`]
    expect(written).toMatchObject({
      ociRepository: 'spegel-org/helm-charts/spegel',
      reference: `${reg.host}/spegel-org/helm-charts/spegel:v0.0.30`,
    })
    expect(written.manifest.digest).toBe(asWritten)
    const nested = lock.charts[`oci://${reg.host}/xenitab/helm-charts/spegel#spegel@v0.0.18`]
    expect(nested).toMatchObject({
      ociRepository: 'xenitab/helm-charts/spegel/spegel',
      reference: `${reg.host}/xenitab/helm-charts/spegel/spegel:v0.0.18`,
    })
    expect(nested.manifest.digest).toBe(appended)
    const plain = lock.charts[`oci://${reg.host}/charts#podinfo@6.5.0`]
    expect(plain).toMatchObject({ociRepository: 'charts/podinfo', reference: `${reg.host}/charts/podinfo:6.5.0`})
    expect(plain.manifest.digest).toBe(helmForm)

    // Same inputs, same lock; the lock alone fetches and re-checks from the recorded repository.
    expect((await resolveArtifacts({images: [], charts: [...requests].reverse()}, {platform: amd64})).lock).toEqual(
      lock,
    )
    await checkLockCurrent(lock, {})
    const fresh = new BlobStore(path.join(dir, 'oci'))
    await fetchLock(lock, fresh, {})
    for (const c of Object.values(lock.charts)) for (const b of c.blobs) expect(await fresh.has(b.digest)).toBe(true)

    const missing = await resolveArtifacts(
      {images: [], charts: [chart(`oci://${reg.host}/nowhere/spegel`, 'spegel', 'v1.0.0')]},
      {platform: amd64},
    ).catch((e) => e)
    expect(missing).toBeInstanceOf(ResolveError)
    expect(missing.details.problems).toHaveLength(1)
    expect(missing.details.problems[0]).toContain('nowhere/spegel:v1.0.0')
    expect(missing.details.problems[0]).toContain('nowhere/spegel/spegel:v1.0.0')
  })
})

// Issue 10, case 4: what a chart's values.yaml names, checked against the content tags from the cache alone.
describe("images a chart's values.yaml names but no content tag lists", () => {
  it('warns for each unlisted image with its file, line and values path; nothing downloaded, uncached charts said so', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-chart-content-'))
    const repo = await startHelmRepo({
      charts: [
        {
          name: 'app',
          version: '1.0.0',
          files: {
            'charts/sidecar/values.yaml': 'sidecar:\n  image: ghcr.io/acme/sidecar:2.0\n',
            'charts/sidecar/Chart.yaml': 'name: sidecar\nversion: 0.1.0\n',
          },
        },
      ],
    })
    const reg = await startRegistry()
    try {
      const store = new BlobStore(path.join(dir, 'cache'))
      const requests = [chart(repo.url, 'app', '1.0.0')]
      const {lock} = await resolveArtifacts({images: [], charts: requests}, {platform: amd64, store})
      const served = repo.requests.length

      const none = await checkChartContent(lock, requests, [], store)
      expect(repo.requests.length).toBe(served)
      expect(none.unchecked).toEqual([])
      expect(none.findings.map((f) => [f.code, f.severity, f.pack, f.path])).toEqual([
        ['AP-CONTENT-UNLISTED', 'warning', 'app', 'app/charts/sidecar/values.yaml:sidecar.image'],
        ['AP-CONTENT-UNLISTED', 'warning', 'app', 'app/values.yaml:image.repository'],
      ])
      expect(none.findings[1]!.message).toContain('names image nginx:1.27 (app/values.yaml line 2, image.repository)')

      // Listed by a content tag (under its normalised name): nothing to say.
      const listed = await checkChartContent(
        lock,
        requests,
        [{reference: 'docker.io/library/nginx:1.27'}, {reference: 'ghcr.io/acme/sidecar:2.0'}],
        store,
      )
      expect(listed.findings).toEqual([])

      // An OCI chart whose layer is not cached yet (resolve reads only its manifest) is not checked, and says so.
      const config = blobOf(JSON.stringify({name: 'remote', version: '1.0.0', apiVersion: 'v2'}))
      const archive = chartArchive({name: 'remote', version: '1.0.0'})
      await pushBlob(reg, 'charts/remote', config)
      await pushBlob(reg, 'charts/remote', archive)
      await pushManifest(
        reg,
        'charts/remote',
        '1.0.0',
        MediaType.ociManifest,
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            config: {mediaType: MediaType.helmConfig, digest: config.digest, size: config.size},
            layers: [{mediaType: MediaType.helmChart, digest: archive.digest, size: archive.size}],
          }),
        ),
      )
      const ociRequests = [chart(`oci://${reg.host}/charts`, 'remote', '1.0.0')]
      const oci = await resolveArtifacts({images: [], charts: ociRequests}, {platform: amd64, store})
      const before = await checkChartContent(oci.lock, ociRequests, [], store)
      expect(before).toEqual({findings: [], unchecked: ['chart remote 1.0.0']})
      await fetchLock(oci.lock, store, {})
      const after = await checkChartContent(oci.lock, ociRequests, [], store)
      expect(after.findings.map((f) => f.path)).toEqual(['remote/values.yaml:image.repository'])
    } finally {
      await repo.stop()
      await reg.stop()
      await rm(dir, {recursive: true, force: true})
    }
  })
})
