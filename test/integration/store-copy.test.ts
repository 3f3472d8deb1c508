import {randomBytes} from 'node:crypto'
import {mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore} from '../../src/cache/store.js'
import {ExitCode} from '../../src/errors.js'
import type {Descriptor} from '../../src/oci/descriptor.js'
import {MediaType} from '../../src/oci/media-types.js'
import {createRegistryClient, type RegistryClient} from '../../src/registry/client.js'
import {RegistryRepository} from '../../src/registry/store.js'
import {CopyGraphError, CopySession, copyGraph, successorsWhere, type CopyEvent} from '../../src/store/copy.js'
import {sha256File} from '../../src/util/digest.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage, type SeededImage} from '../helpers/seed.js'

// copyGraph from a real registry (Debian's docker-registry) into the cache: the whole graph, only what is missing,
// one platform of an index, several roots sharing blobs, a resumed partial blob, and failures that name the blob
// and both stores with the exit code of their kind.

describe('copyGraph from a registry repository into the cache', () => {
  let reg: TestRegistry
  let client: RegistryClient
  let dir: string
  let web: SeededImage
  let api: SeededImage
  const shared = layerOf({'shared.bin': randomBytes(300_000)})
  const big = layerOf({'big.bin': randomBytes(600_000)})

  const descriptorOf = (img: SeededImage): Descriptor => ({
    mediaType: img.mediaType,
    digest: img.digest,
    size: img.bytes.length,
  })
  const cacheAt = async () => {
    const store = new BlobStore(await mkdtemp(path.join(dir, 'cache-')))
    await store.init()
    return store
  }
  const cachedDigests = async (store: BlobStore) =>
    (await readdir(path.join(store.root, 'blobs', 'sha256'))).map((h) => `sha256:${h}`).sort()

  beforeAll(async () => {
    reg = await startRegistry()
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-copy-'))
    web = await pushImage(
      reg,
      'team/web',
      '1',
      [
        {architecture: 'amd64', layers: [shared, layerOf({'web-amd64': 'x'})]},
        {architecture: 'arm64', layers: [shared, big]},
      ],
      {attestations: true},
    )
    api = await pushImage(reg, 'team/web', '2', [{architecture: 'amd64', layers: [shared, layerOf({api: 'y'})]}])
    client = await createRegistryClient({insecureRegistries: [reg.host]})
  })
  afterAll(async () => {
    await client?.close()
    await reg?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('copies the whole graph, each blob verified, and a second copy fetches nothing', async () => {
    const src = new RegistryRepository(client, reg.host, 'team/web')
    const cache = await cacheAt()
    const first = await copyGraph(src, cache, descriptorOf(web), {concurrency: 4})
    // index, 2 platform manifests + 2 attestation manifests, 2 configs, 2 attestation configs (one '{}' blob shared)…
    const manifests = Object.values(web.manifests)
    const expected = new Set([
      web.digest,
      ...manifests.flatMap((m) => [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]),
    ])
    for (const d of expected) expect(await cache.has(d)).toBe(true)
    for (const d of await cachedDigests(cache)) {
      const {hex} = await sha256File(cache.blobPath(d))
      expect(`sha256:${hex}`).toBe(d)
    }
    expect(first.copied).toBe((await cachedDigests(cache)).length)

    const events: CopyEvent[] = []
    const second = await copyGraph(src, cache, descriptorOf(web), {onEvent: (e) => events.push(e)})
    expect(second.copied).toBe(0)
    expect(second.bytes).toBe(0)
    expect(events.every((e) => e.type === 'skipped')).toBe(true)
  })

  it('copies one platform of an index: the other platform’s layers are not fetched', async () => {
    const src = new RegistryRepository(client, reg.host, 'team/web')
    const cache = await cacheAt()
    await copyGraph(src, cache, descriptorOf(web), {
      successors: successorsWhere(
        (child, parent) => parent.digest !== web.digest || child.platform?.architecture === 'amd64',
      ),
    })
    const amd64 = web.manifests['linux/amd64']
    const arm64 = web.manifests['linux/arm64']
    expect(await cache.has(web.digest)).toBe(true)
    for (const d of [amd64.digest, amd64.config.digest, ...amd64.layers.map((l) => l.digest)])
      expect(await cache.has(d)).toBe(true)
    expect(await cache.has(arm64.digest)).toBe(false)
    expect(await cache.has(big.digest)).toBe(false)
  })

  it('copies a blob named by several roots once per session', async () => {
    const src = new RegistryRepository(client, reg.host, 'team/web')
    const cache = await cacheAt()
    const session = new CopySession({concurrency: 3})
    const copied: string[] = []
    const onEvent = (e: CopyEvent) => e.type === 'copied' && copied.push(e.descriptor.digest)
    await Promise.all([web, api].map((img) => copyGraph(src, cache, descriptorOf(img), {session, onEvent})))
    expect(copied.filter((d) => d === shared.digest)).toHaveLength(1)
    expect(new Set(copied).size).toBe(copied.length)
    expect(await cache.has(api.digest)).toBe(true)
  })

  it('resumes a blob from the partial file an interrupted copy left', async () => {
    const src = new RegistryRepository(client, reg.host, 'team/web')
    const cache = await cacheAt()
    const kept = 250_000
    await writeFile(path.join(cache.root, 'partial', big.digest.slice('sha256:'.length)), big.bytes.subarray(0, kept))
    const d = {mediaType: MediaType.ociLayerGzip, digest: big.digest, size: big.size}
    const summary = await copyGraph(src, cache, d)
    expect(summary.bytes).toBe(big.size - kept)
    const {hex} = await sha256File(cache.blobPath(big.digest))
    expect(`sha256:${hex}`).toBe(big.digest)
  })

  it('names the blob and both stores when the registry does not have it (exit 4)', async () => {
    const src = new RegistryRepository(client, reg.host, 'team/web')
    const cache = await cacheAt()
    const missing = layerOf({'never pushed': 'z'})
    const d = {mediaType: MediaType.ociLayerGzip, digest: missing.digest, size: missing.size}
    const error = (await copyGraph(src, cache, d).catch((e: unknown) => e)) as CopyGraphError
    expect(error).toBeInstanceOf(CopyGraphError)
    expect(error.exitCode).toBe(ExitCode.unresolved)
    expect(error.failures[0].message).toContain(`blob ${missing.digest}`)
    expect(error.failures[0].message).toContain(`from registry ${reg.host}/team/web to cache ${cache.root}`)
    expect(error.failures[0].message).toContain('not found')
    expect(await cachedDigests(cache)).toEqual([])
  })

  it('refuses bytes that do not match the descriptor (exit 5) and keeps nothing of them', async () => {
    const src = new RegistryRepository(client, reg.host, 'team/web')
    const cache = await cacheAt()
    const d = {mediaType: MediaType.ociLayerGzip, digest: big.digest, size: big.size - 1}
    const error = (await copyGraph(src, cache, d).catch((e: unknown) => e)) as CopyGraphError
    expect(error.exitCode).toBe(ExitCode.integrity)
    expect(error.failures[0].integrity).toBe(true)
    expect(await cache.has(big.digest)).toBe(false)
    expect(await readdir(path.join(cache.root, 'partial'))).toEqual([])
  })

  it('resolves a tag to its descriptor and answers exists by HEAD', async () => {
    const src = new RegistryRepository(client, reg.host, 'team/web')
    expect(await src.resolve('1')).toEqual(descriptorOf(web))
    expect(await src.exists(descriptorOf(api))).toBe(true)
    expect(await src.exists({mediaType: MediaType.ociLayerGzip, digest: big.digest, size: big.size})).toBe(true)
    const missing = layerOf({nope: 'n'})
    expect(await src.exists({mediaType: MediaType.ociLayerGzip, digest: missing.digest, size: missing.size})).toBe(
      false,
    )
  })
})
