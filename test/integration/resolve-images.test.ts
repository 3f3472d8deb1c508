import {mkdtemp, readdir, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore} from '../../src/cache/store.js'
import {IntegrityError, ResolveError} from '../../src/errors.js'
import {checkLockCurrent, fetchLock, resolveArtifacts} from '../../src/resolve/index.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {MT, layerOf, pushImage, type SeededImage} from '../helpers/seed.js'
import {amd64, arm64} from '../helpers/constants.js'

// Resolution and fetch of every manifest type against a real distribution registry on loopback.
const img = (reference: string) => ({
  reference,
  kind: 'image' as const,
  profile: 'edge',
  pack: 'app',
  file: 'profile.yaml',
  line: 3,
  fileLine: 7,
})

describe('resolving images', () => {
  let reg: TestRegistry
  let dir: string
  const shared = layerOf({'etc/shared': 'shared between images'})
  let oci: SeededImage
  let docker: SeededImage
  let single: SeededImage
  let armOnly: SeededImage

  beforeAll(async () => {
    reg = await startRegistry()
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-resolve-'))
    oci = await pushImage(
      reg,
      'team/oci',
      '1.0',
      [
        {architecture: 'amd64', layers: [shared, layerOf({'bin/app': 'oci amd64'})]},
        {architecture: 'arm64', variant: 'v8', layers: [shared, layerOf({'bin/app': 'oci arm64'})]},
        {architecture: 'arm', variant: 'v7', layers: [layerOf({'bin/app': 'oci arm v7'})]},
      ],
      {attestations: true},
    )
    docker = await pushImage(
      reg,
      'team/docker',
      '2.0',
      [
        {architecture: 'amd64', layers: [shared, layerOf({'bin/app': 'docker amd64'})]},
        {architecture: 'arm64', layers: [shared, layerOf({'bin/app': 'docker arm64'})]},
      ],
      {format: 'docker'},
    )
    single = await pushImage(
      reg,
      'team/single',
      '3.0',
      [{architecture: 'amd64', layers: [layerOf({'bin/app': 'single amd64'})]}],
      {single: true},
    )
    armOnly = await pushImage(reg, 'team/armonly', '1', [
      {architecture: 'arm64', layers: [layerOf({'bin/app': 'arm only'})]},
    ])
  })
  afterAll(async () => {
    await reg?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('pins an OCI index, a Docker manifest list and a single manifest for arm64 or amd64, skipping attestations', async () => {
    const store = new BlobStore(path.join(dir, 'cache1'))
    const {lock, plan} = await resolveArtifacts(
      {images: [img(oci.reference), img(docker.reference), img(oci.reference)], charts: []},
      {platform: arm64, store},
    )
    const o = lock.images[oci.reference]
    expect(o.digest).toBe(oci.digest)
    expect(o.mediaType).toBe(MT.ociIndex)
    expect(o.platformManifest.digest).toBe(oci.manifests['linux/arm64/v8'].digest)
    expect(o.platformManifest.platform).toEqual({os: 'linux', architecture: 'arm64', variant: 'v8'})
    expect(o.omittedPlatforms).toEqual([
      {os: 'linux', architecture: 'amd64'},
      {os: 'linux', architecture: 'arm', variant: 'v7'},
    ])
    expect(o.blobs.map((b) => b.digest)).toEqual([
      oci.digest,
      oci.manifests['linux/arm64/v8'].digest,
      oci.manifests['linux/arm64/v8'].config.digest,
      shared.digest,
      oci.manifests['linux/arm64/v8'].layers[1].digest,
    ])
    expect(plan.artifacts.find((a) => a.reference === oci.reference)?.source).toBe(reg.host)
    const d = lock.images[docker.reference]
    expect(d.mediaType).toBe(MT.dockerList)
    expect(d.platformManifest.mediaType).toBe(MT.dockerManifest)
    expect(d.platformManifest.digest).toBe(docker.manifests['linux/arm64'].digest)
    // Manifests are in the store, byte for byte as served.
    expect((await store.readBytes(oci.digest)).equals(oci.bytes)).toBe(true)
    expect((await store.readBytes(d.digest)).equals(docker.bytes)).toBe(true)
    // Plan: the shared layer counted once.
    expect(plan.artifacts).toHaveLength(2)
    const sum = plan.artifacts.reduce((a, x) => a + x.size, 0)
    expect(plan.totalBytes).toBe(sum - shared.size)
    expect(plan.uniqueBlobs).toBe(o.blobs.length + d.blobs.length - 1)
    // Manifests were stored, layers not yet.
    expect(plan.cachedBytes).toBe(o.blobs[0].size + o.blobs[1].size + d.blobs[0].size + d.blobs[1].size)

    const single64 = await resolveArtifacts({images: [img(single.reference)], charts: []}, {platform: amd64})
    const s = single64.lock.images[single.reference]
    expect(s.digest).toBe(single.digest)
    expect(s.platformManifest.digest).toBe(single.digest)
    expect(s.omittedPlatforms).toEqual([])
    expect(s.blobs).toHaveLength(3)
  })

  it('lists every unresolvable image at once: missing tag, missing platform, single-platform mismatch, bad repo', async () => {
    const error = await resolveArtifacts(
      {
        images: [
          img(`${reg.host}/team/oci:9.9`),
          img(armOnly.reference),
          img(single.reference),
          img(`${reg.host}/nobody/here:1`),
          img(oci.reference),
        ],
        charts: [],
      },
      {platform: amd64},
    ).catch((e) => e)
    expect(error).toBeInstanceOf(ResolveError)
    expect(error.exitCode).toBe(4)
    expect(error.message).toBe('3 of 5 artifacts could not be resolved')
    const problems: string[] = error.details.problems
    expect(problems).toHaveLength(3)
    expect(problems[0]).toContain(`${reg.host}/team/oci:9.9 [edge › app (profile.yaml:7, values line 3)]`)
    expect(problems[0]).toMatch(/not found/)
    expect(problems[1]).toContain('has no manifest for linux/amd64 (it has linux/arm64)')
    expect(problems.find((p) => p.includes('team/single'))).toBeUndefined()
    expect(problems[2]).toContain('nobody/here')
    const arm = await resolveArtifacts({images: [img(single.reference)], charts: []}, {platform: arm64}).catch((e) => e)
    expect(arm.details.problems[0]).toContain('single-platform image for linux/amd64, not linux/arm64')
  })

  it('fetches every blob once into the cache, then a warm fetch downloads nothing; the lock detects a moved tag', async () => {
    const store = new BlobStore(path.join(dir, 'cache2'))
    const {lock} = await resolveArtifacts(
      {images: [img(oci.reference), img(docker.reference)], charts: []},
      {platform: amd64},
    )
    const lines: string[] = []
    const logger = {info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), interactive: false}
    const cold = await fetchLock(lock, store, {concurrency: 3, logger})
    expect(lines.at(-1)).toMatch(
      /^fetch done: 2\/2 artifacts, [\d.]+ MiB of [\d.]+ MiB \([\d.]+ MiB downloaded, [\d.]+ MiB\/s\)$/,
    )
    const all = new Map<string, number>()
    for (const i of Object.values(lock.images)) for (const b of i.blobs) all.set(b.digest, b.size)
    const total = [...all.values()].reduce((a, b) => a + b, 0)
    expect(cold.downloadedBytes).toBe(total)
    expect(cold.artifacts.every((a) => !a.cacheHit)).toBe(true)
    for (const digest of all.keys()) expect(await store.has(digest)).toBe(true)
    expect(await readdir(path.join(store.root, 'partial'))).toEqual([])
    const statuses: string[] = []
    const tty = {
      info: (m: string) => lines.push(m),
      warn: (m: string) => lines.push(m),
      interactive: true,
      status: (l: string) => statuses.push(l),
    }
    const warm = await fetchLock(lock, store, {logger: tty})
    expect(statuses.at(-1)).toBe('')
    expect(lines.at(-1)).toMatch(/^fetch done: 2\/2 artifacts, .* \(0\.0 MiB downloaded/)
    expect(warm.downloadedBytes).toBe(0)
    expect(warm.cachedBytes).toBe(total)
    expect(warm.artifacts.every((a) => a.cacheHit)).toBe(true)

    await checkLockCurrent(lock, {})
    await pushImage(reg, 'team/docker', '2.0', [{architecture: 'amd64', layers: [layerOf({'bin/app': 'moved'})]}], {
      format: 'docker',
    })
    const moved = await checkLockCurrent(lock, {}).catch((e) => e)
    expect(moved).toBeInstanceOf(ResolveError)
    expect(moved.code).toBe('ERR_AIRPACK_LOCK_OUTDATED')
    expect(moved.details.problems).toHaveLength(1)
    expect(moved.details.problems[0]).toMatch(
      new RegExp(`^${docker.reference.replace(/[.]/g, '\\.')}: ${docker.digest} → sha256:[a-f0-9]{64}$`),
    )
    // Restore for other tests.
    await pushImage(
      reg,
      'team/docker',
      '2.0',
      [
        {architecture: 'amd64', layers: [shared, layerOf({'bin/app': 'docker amd64'})]},
        {architecture: 'arm64', layers: [shared, layerOf({'bin/app': 'docker arm64'})]},
      ],
      {format: 'docker'},
    )
  })

  it('resolves a reference pinned by digest and refuses bytes that do not match it', async () => {
    const pinned = `${reg.host}/team/oci@${oci.digest}`
    const {lock} = await resolveArtifacts({images: [img(pinned)], charts: []}, {platform: amd64})
    expect(lock.images[pinned].digest).toBe(oci.digest)
    const wrong = `${reg.host}/team/oci@${docker.digest}`
    const error = await resolveArtifacts({images: [img(wrong)], charts: []}, {platform: amd64}).catch((e) => e)
    // The registry does not have that digest in this repository.
    expect(error).toBeInstanceOf(ResolveError)
    expect(IntegrityError).toBeDefined()
  })
})
