// Builds through the fault proxy (PRODUCT.md §6, issue 6): with 20 % of blob GETs failing (5xx, cut mid-blob,
// stalled), the build succeeds and produces the byte-identical bundle of a clean build; with a flipped byte in a
// layer, it fails with exit 5 naming the image and the digest, keeps nothing unverified in the cache and
// publishes no bundle.

import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {
  amd64Layers,
  BUNDLE_NAME,
  finalOutputs,
  sha256File,
  startFaultFixture,
  unverifiedCacheBlobs,
  type FaultFixture,
} from '../helpers/fault-fixture.js'

// Whole builds through the CLI, some at zstd level 19, on a 2-core machine shared with other suites.
vi.setConfig({testTimeout: 240_000, hookTimeout: 240_000})

let fx: FaultFixture
let cleanHash: string
let cleanBlobGets: number

beforeAll(async () => {
  fx = await startFaultFixture()
  const cache = await fx.fresh('cache')
  const output = await fx.fresh('out')
  fx.proxy.setPlan({})
  fx.proxy.resetCounters()
  const clean = await fx.build({cache, output})
  expect(clean.exitCode, clean.stderr).toBe(0)
  cleanHash = await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))
  cleanBlobGets = fx.proxy.counters.blobGets
}, 240_000)

afterAll(async () => {
  await fx?.stop()
})

describe('bundle build through a faulty link', () => {
  it('the clean build fetched every amd64 layer once through the proxy', () => {
    for (const d of amd64Layers(fx.content)) expect(fx.proxy.counters.perDigest[d]?.gets, d).toBe(1)
    expect(cleanBlobGets).toBeGreaterThan(0)
  })

  it('20 % of blob GETs failing (5xx, cut mid-blob, stalled): succeeds with the identical bundle', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    // Two faults at most per blob, so any client that retries a few times must get through.
    fx.proxy.setPlan({seed: 6, rate: 0.2, kinds: ['status', 'cut', 'stall'], stallMs: 1500, maxFaultsPerDigest: 2})
    fx.proxy.resetCounters()
    const result = await fx.build({cache, output})
    const faults = fx.proxy.counters.faults
    expect(result.exitCode, result.stderr).toBe(0)
    expect(faults.status + faults.cut + faults.stall, JSON.stringify(fx.proxy.counters.events)).toBeGreaterThan(0)
    expect(await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))).toBe(cleanHash)
    expect(await unverifiedCacheBlobs(cache)).toEqual([])
  })

  it('every blob GET failing once, each kind in turn: still the identical bundle', async () => {
    for (const kind of ['status', 'cut', 'stall'] as const) {
      const cache = await fx.fresh('cache')
      const output = await fx.fresh('out')
      fx.proxy.setPlan({seed: 9, rate: 1, kinds: [kind], stallMs: 500, maxFaultsPerDigest: 1})
      fx.proxy.resetCounters()
      const result = await fx.build({cache, output})
      expect(result.exitCode, `${kind}: ${result.stderr}`).toBe(0)
      expect(fx.proxy.counters.faults[kind], kind).toBeGreaterThanOrEqual(amd64Layers(fx.content).length)
      expect(await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`)), kind).toBe(cleanHash)
    }
  }, 240_000)

  it('a read that stalls and then dies (a hung mirror that finally drops the connection): identical bundle', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    fx.proxy.setPlan({seed: 11, rate: 1, kinds: ['stall'], stallMs: 1000, afterStall: 'cut', maxFaultsPerDigest: 1})
    fx.proxy.resetCounters()
    const result = await fx.build({cache, output})
    expect(result.exitCode, result.stderr).toBe(0)
    expect(fx.proxy.counters.faults.stall).toBeGreaterThanOrEqual(amd64Layers(fx.content).length)
    expect(await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))).toBe(cleanHash)
  })

  it('a read that stalls for good (the server never sends another byte): the client gives up on it, retries, identical bundle', async () => {
    // Costs about one client body timeout (60 s in src/registry/http.ts) of mostly idle wall time.
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    const layer = amd64Layers(fx.content)[1]!
    fx.proxy.setPlan({rate: 1, kinds: ['stall'], stallMs: 600_000, at: 0.4, digests: [layer], maxFaultsPerDigest: 1})
    fx.proxy.resetCounters()
    const result = await fx.build({cache, output})
    expect(result.exitCode, result.stderr).toBe(0)
    expect(fx.proxy.counters.perDigest[layer]!.gets).toBeGreaterThanOrEqual(2)
    expect(await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))).toBe(cleanHash)
  })

  it('a cut blob is resumed with a Range request, not downloaded again from byte 0', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    const layer = amd64Layers(fx.content)[0]!
    fx.proxy.setPlan({rate: 1, kinds: ['cut'], at: 0.5, digests: [layer], maxFaultsPerDigest: 1})
    fx.proxy.resetCounters()
    const result = await fx.build({cache, output})
    expect(result.exitCode, result.stderr).toBe(0)
    const counters = fx.proxy.counters.perDigest[layer]!
    expect(counters.rangeGets).toBeGreaterThanOrEqual(1)
    // Half the blob before the cut, the other half after: about one blob's worth in all, never two.
    const size = (await readFile(path.join(cache, 'blobs', 'sha256', layer.slice(7)))).length
    expect(counters.bytesSent).toBeLessThan(size * 1.5)
  })

  it('a cut blob whose retry is answered from byte 0 (Range ignored) while it is being framed: identical bundle', async () => {
    // The writer frames blobs as they arrive (src/bundle/follow.ts); a download that starts over must not leave
    // the first attempt's bytes in the bundle: the bundle is written again from the verified cache.
    // The base layer (shared by every image, the one blob over the writer's 1 MiB threshold here) stalls after 60 %
    // of its bytes, so the writer is framing it, then is cut; its retry gets the whole body again.
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    const base = fx.content.images[0]!.platforms.amd64!.layerDigests.find((d) =>
      fx.content.images.every((i) => i.platforms.amd64!.layerDigests.includes(d)),
    )!
    fx.proxy.setPlan({
      rate: 1,
      kinds: ['stall'],
      stallMs: 800,
      afterStall: 'cut',
      at: 0.6,
      digests: [base],
      maxFaultsPerDigest: 1,
      routes: {ignoreRange: true},
    })
    fx.proxy.resetCounters()
    const result = await fx.build({cache, output})
    expect(result.exitCode, result.stderr).toBe(0)
    expect(fx.proxy.counters.faults.stall).toBe(1)
    expect(fx.proxy.counters.perDigest[base]!.gets).toBe(2)
    expect(await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))).toBe(cleanHash)
    expect(await unverifiedCacheBlobs(cache)).toEqual([])
  })

  it('a flipped byte in a layer: exit 5 naming image and digest, nothing unverified cached, no bundle', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    const image = fx.content.images[1]!
    const layer = image.platforms.amd64!.layerDigests[1]!
    fx.proxy.setPlan({rate: 1, kinds: ['flip'], digests: [layer], persistent: true})
    fx.proxy.resetCounters()
    const result = await fx.build({cache, output})
    expect(result.exitCode, result.stderr).toBe(5)
    expect(result.stderr).toContain(layer)
    expect(result.stderr).toContain(image.repository)
    expect(result.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
    expect(fx.proxy.counters.faults.flip).toBeGreaterThanOrEqual(1)
    expect(await unverifiedCacheBlobs(cache)).toEqual([])
    expect(await finalOutputs(output)).toEqual([])
  })

  it('the same under --json: one error document with exit 5 and the digest', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    const layer = fx.content.images[2]!.platforms.amd64!.layerDigests[2]!
    fx.proxy.setPlan({rate: 1, kinds: ['flip'], digests: [layer], persistent: true})
    const result = await fx.build({cache, output, json: true})
    expect(result.exitCode).toBe(5)
    const doc = result.json()
    expect(doc).toMatchObject({status: 'error', exitCode: 5})
    expect(JSON.stringify(doc)).toContain(layer)
    expect(await finalOutputs(output)).toEqual([])
  })
})
