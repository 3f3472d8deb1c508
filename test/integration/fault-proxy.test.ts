// The fault-injecting proxy itself, in front of the real test registry: each kind of fault does what it says,
// decisions are deterministic per (seed, digest, attempt), and the counters tell the truth.

import {createHash, randomBytes} from 'node:crypto'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {decide, startFaultProxy, type FaultProxy} from '../helpers/fault-proxy.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {blobOf, pushBlob, pushImage, layerOf, type Blob} from '../helpers/seed.js'

const REPO = 'fault/blob'
let registry: TestRegistry
let proxy: FaultProxy
let blob: Blob

async function getBlob(
  digest: string,
  headers: Record<string, string> = {},
): Promise<{status: number; body?: Buffer; error?: unknown}> {
  const res = await fetch(`${proxy.url}/v2/${REPO}/blobs/${digest}`, {headers})
  try {
    return {status: res.status, body: Buffer.from(await res.arrayBuffer())}
  } catch (error) {
    return {status: res.status, error}
  }
}

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')

beforeAll(async () => {
  registry = await startRegistry()
  blob = blobOf(randomBytes(512 * 1024))
  await pushBlob(registry, REPO, blob)
  proxy = await startFaultProxy(registry.url)
})

afterAll(async () => {
  await proxy?.stop()
  await registry?.stop()
})

describe('fault proxy', () => {
  it('is transparent with no plan, and counts what it served', async () => {
    proxy.setPlan({})
    proxy.resetCounters()
    const got = await getBlob(blob.digest)
    expect(got.status).toBe(200)
    expect(sha(got.body!)).toBe(blob.digest)
    expect(proxy.counters.blobGets).toBe(1)
    expect(proxy.counters.passed).toBe(1)
    expect(proxy.counters.perDigest[blob.digest]).toMatchObject({gets: 1, faults: 0, bytesSent: blob.size})
  })

  it('answers 5xx without touching the registry', async () => {
    proxy.setPlan({rate: 1, kinds: ['status'], statusCodes: [503]})
    proxy.resetCounters()
    const got = await getBlob(blob.digest)
    expect(got.status).toBe(503)
    expect(proxy.counters.faults.status).toBe(1)
    expect(proxy.counters.events[0]).toMatchObject({digest: blob.digest, attempt: 1, kind: 'status', status: 503})
  })

  it('cuts the connection mid-blob', async () => {
    proxy.setPlan({rate: 1, kinds: ['cut'], at: 0.5})
    proxy.resetCounters()
    const got = await getBlob(blob.digest)
    expect(got.status).toBe(200)
    // Either the body stream errors, or (if the runtime tolerates it) it is short; never the full blob.
    if (got.body) expect(got.body.length).toBeLessThan(blob.size)
    else expect(got.error).toBeDefined()
    expect(proxy.counters.faults.cut).toBe(1)
    expect(proxy.counters.perDigest[blob.digest]!.bytesSent).toBe(blob.size / 2)
  })

  it('flips exactly one byte and keeps the length', async () => {
    proxy.setPlan({rate: 1, kinds: ['flip'], at: 0.25})
    proxy.resetCounters()
    const got = await getBlob(blob.digest)
    expect(got.status).toBe(200)
    expect(got.body!.length).toBe(blob.size)
    expect(sha(got.body!)).not.toBe(blob.digest)
    const differing = [...got.body!].flatMap((b, i) => (b === blob.bytes[i] ? [] : [i]))
    expect(differing).toEqual([blob.size / 4])
  })

  it('stalls a read, then resumes with the right bytes', async () => {
    proxy.setPlan({rate: 1, kinds: ['stall'], stallMs: 300, at: 0.3})
    proxy.resetCounters()
    const got = await getBlob(blob.digest)
    expect(sha(got.body!)).toBe(blob.digest)
    expect(proxy.counters.faults.stall).toBe(1)
  })

  it('stalls then cuts when asked to', async () => {
    proxy.setPlan({rate: 1, kinds: ['stall'], stallMs: 100, afterStall: 'cut', at: 0.3})
    proxy.resetCounters()
    const got = await getBlob(blob.digest)
    if (got.body) expect(got.body.length).toBeLessThan(blob.size)
    else expect(got.error).toBeDefined()
  })

  it('passes Range requests through (resume) and counts them', async () => {
    proxy.setPlan({})
    proxy.resetCounters()
    const got = await getBlob(blob.digest, {range: 'bytes=1000-'})
    expect(got.status).toBe(206)
    expect(got.body!.equals(blob.bytes.subarray(1000))).toBe(true)
    expect(proxy.counters.perDigest[blob.digest]).toMatchObject({rangeGets: 1, bytesSent: blob.size - 1000})
  })

  it('stops faulting a digest after maxFaultsPerDigest, so retries succeed', async () => {
    proxy.setPlan({rate: 1, kinds: ['status'], maxFaultsPerDigest: 2})
    proxy.resetCounters()
    expect((await getBlob(blob.digest)).status).toBeGreaterThanOrEqual(500)
    expect((await getBlob(blob.digest)).status).toBeGreaterThanOrEqual(500)
    const third = await getBlob(blob.digest)
    expect(third.status).toBe(200)
    expect(sha(third.body!)).toBe(blob.digest)
    expect(proxy.counters.events.map((e) => e.attempt)).toEqual([1, 2, 3])
  })

  it('restricts faults to the chosen digests and leaves manifests alone', async () => {
    const other = layerOf({'x.txt': 'other layer'})
    const image = await pushImage(registry, 'fault/image', 'v1', [{architecture: 'amd64', layers: [other]}])
    proxy.setPlan({rate: 1, kinds: ['status'], digests: [blob.digest]})
    proxy.resetCounters()
    const manifest = await fetch(`${proxy.url}/v2/fault/image/manifests/v1`, {headers: {accept: image.mediaType}})
    expect(manifest.status).toBe(200)
    expect(sha(Buffer.from(await manifest.arrayBuffer()))).toBe(image.digest)
    const layer = await fetch(`${proxy.url}/v2/fault/image/blobs/${other.digest}`)
    expect(sha(Buffer.from(await layer.arrayBuffer()))).toBe(other.digest)
    expect((await getBlob(blob.digest)).status).toBeGreaterThanOrEqual(500)
    expect(proxy.counters.blobGets).toBe(2)
    expect(proxy.counters.faults.status).toBe(1)
  })

  it('holds a blob at a known offset until released', async () => {
    proxy.setPlan({})
    proxy.resetCounters()
    const heldAt = proxy.holdBlobs({afterBytes: 4096})
    const pending = getBlob(blob.digest)
    const event = await heldAt
    expect(event).toMatchObject({digest: blob.digest, offset: 4096})
    expect(proxy.counters.perDigest[blob.digest]!.bytesSent).toBe(4096)
    proxy.release()
    const got = await pending
    expect(sha(got.body!)).toBe(blob.digest)
  })
})

describe('holds', () => {
  it('a blob smaller than afterBytes passes and does not use the hold up', async () => {
    const small = blobOf(randomBytes(1000))
    await pushBlob(registry, REPO, small)
    proxy.setPlan({})
    proxy.resetCounters()
    const heldAt = proxy.holdBlobs({afterBytes: 64 * 1024})
    const first = await getBlob(small.digest)
    expect(sha(first.body!)).toBe(small.digest)
    const pending = getBlob(blob.digest)
    expect((await heldAt).digest).toBe(blob.digest)
    proxy.release()
    expect(sha((await pending).body!)).toBe(blob.digest)
  })
})

describe('fault decisions', () => {
  const digests = Array.from({length: 2000}, (_, i) => sha(Buffer.from(String(i))))

  it('are a pure function of seed, digest and attempt', () => {
    const plan = {seed: 42, rate: 0.2}
    const first = digests.map((d) => decide(plan, d, 1, 0))
    const again = [...digests]
      .reverse()
      .map((d) => decide(plan, d, 1, 0))
      .reverse()
    expect(again).toEqual(first)
    const otherSeed = digests.map((d) => decide({...plan, seed: 43}, d, 1, 0).kind)
    expect(otherSeed).not.toEqual(first.map((d) => d.kind))
  })

  it('fault about the requested fraction of GETs, with every kind', () => {
    const plan = {seed: 7, rate: 0.2}
    const decisions = digests.map((d) => decide(plan, d, 1, 0))
    const faulted = decisions.filter((d) => d.kind !== 'pass')
    expect(faulted.length / digests.length).toBeGreaterThan(0.17)
    expect(faulted.length / digests.length).toBeLessThan(0.23)
    expect(new Set(faulted.map((d) => d.kind))).toEqual(new Set(['status', 'cut', 'stall', 'flip']))
  })

  it('persistent plans fault every attempt of a selected digest', () => {
    const plan = {seed: 3, rate: 0.5, persistent: true, kinds: ['flip' as const]}
    for (const d of digests.slice(0, 50)) {
      const kinds = [1, 2, 3, 4].map((n) => decide(plan, d, n, 0).kind)
      expect(new Set(kinds).size).toBe(1)
    }
  })
})
