// `bundle build` through the fault proxy's model of real servers (issue 9): every transient fault — a FIN
// mid-body while airpack applies backpressure, an RST, a body shorter or longer than its Content-Length, junk
// after a body, a chunked or gzip-encoded body, 429 with Retry-After, blobs redirected to storage that refuses
// Authorization — gives the byte-identical bundle of a clean build; every permanent one — the same faults on
// every attempt, a redirect loop, a 401 loop — ends with exit 4 naming the artifact, no stack trace and no
// output (not even a .partial). Never exit 1.

import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import type {FaultKind, FaultPlan} from '../helpers/fault-proxy.js'
import {
  amd64Layers,
  BUNDLE_NAME,
  finalOutputs,
  listFiles,
  sha256File,
  startFaultFixture,
  unverifiedCacheBlobs,
  type FaultFixture,
} from '../helpers/fault-fixture.js'

vi.setConfig({testTimeout: 240_000, hookTimeout: 240_000})

let fx: FaultFixture
let cleanHash: string

const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m

beforeAll(async () => {
  // Layers of a few MiB: large enough that the proxy outruns the cache writer (backpressure), small enough for
  // a dozen builds.
  fx = await startFaultFixture({bytesPerPlatform: 3 * 1024 * 1024, images: 2, seed: 'airpack-fault-model'})
  const cache = await fx.fresh('cache')
  const output = await fx.fresh('out')
  const clean = await fx.build({cache, output})
  expect(clean.exitCode, clean.stderr).toBe(0)
  cleanHash = await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))
}, 240_000)

afterAll(async () => {
  await fx?.stop()
})

async function expectIdentical(name: string, plan: FaultPlan, extra: string[] = []): Promise<void> {
  const cache = await fx.fresh('cache')
  const output = await fx.fresh('out')
  fx.proxy.setPlan(plan)
  fx.proxy.resetCounters()
  const result = await fx.build({cache, output, extra})
  expect(result.exitCode, `${name}: ${result.stderr}`).toBe(0)
  expect(await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`)), name).toBe(cleanHash)
  expect(await unverifiedCacheBlobs(cache), name).toEqual([])
}

async function expectExit4(name: string, plan: FaultPlan, mentions: string[], extra: string[] = []): Promise<string> {
  const cache = await fx.fresh('cache')
  const output = await fx.fresh('out')
  fx.proxy.setPlan(plan)
  fx.proxy.resetCounters()
  const result = await fx.build({cache, output, extra})
  expect(result.exitCode, `${name}: ${result.stderr}`).toBe(4)
  for (const m of mentions) expect(result.stderr, name).toContain(m)
  expect(result.stderr, name).not.toMatch(STACK_LINE)
  expect(result.stderr, name).not.toContain('AssertionError')
  expect(await finalOutputs(output), name).toEqual([])
  expect(
    (await listFiles(output)).filter((f) => f.includes('partial')),
    name,
  ).toEqual([])
  expect(await unverifiedCacheBlobs(cache), name).toEqual([])
  return result.stderr
}

describe('transient faults of real servers: the identical bundle', () => {
  const kinds: FaultKind[] = ['fin', 'rst', 'short', 'long', 'junk', 'chunked', 'gzip']
  for (const kind of kinds) {
    it(`every blob GET answered once with '${kind}'`, async () => {
      await expectIdentical(kind, {seed: 5, rate: 1, kinds: [kind], maxFaultsPerDigest: 1})
      expect(fx.proxy.counters.faults[kind], kind).toBeGreaterThanOrEqual(amd64Layers(fx.content).length)
    })
  }

  it('a FIN mid-body on every blob, twice each, at the start, middle and end of the body', async () => {
    for (const at of [0.05, 0.5, 0.97]) {
      await expectIdentical(`fin at ${at}`, {rate: 1, kinds: ['fin'], at, maxFaultsPerDigest: 2})
      expect(fx.proxy.counters.faults.fin).toBeGreaterThanOrEqual(2 * amd64Layers(fx.content).length)
    }
  })

  it('429 with Retry-After: 1 on every blob GET once: waited for, then the identical bundle', async () => {
    await expectIdentical('429', {
      rate: 1,
      kinds: ['status'],
      statusCodes: [429],
      retryAfter: '1',
      maxFaultsPerDigest: 1,
    })
    expect(fx.proxy.counters.faults.status).toBeGreaterThanOrEqual(amd64Layers(fx.content).length)
  })

  it('blobs redirected to storage that refuses any Authorization header (presigned URLs), behind Basic auth', async () => {
    const config = path.join(fx.dir, 'docker-config')
    await mkdir(config, {recursive: true})
    await writeFile(
      path.join(config, 'config.json'),
      JSON.stringify({auths: {[fx.proxy.host]: {auth: Buffer.from('dave:pw-storage').toString('base64')}}}),
    )
    await expectIdentical(
      'storage',
      {routes: {basicAuth: {username: 'dave', password: 'pw-storage'}, blobsToStorage: true}},
      ['--docker-config', config],
    )
    expect(fx.proxy.counters.storageLog.length).toBeGreaterThanOrEqual(amd64Layers(fx.content).length)
    expect(fx.proxy.counters.storageLog.filter((r) => r.authorization !== undefined)).toEqual([])
  })
})

describe('permanent faults: exit 4 naming the artifact, no stack trace, no output', () => {
  it('one layer cut by a FIN (Connection: close) on every attempt', async () => {
    const image = fx.content.images[1]!
    const layer = image.platforms.amd64!.layerDigests[1]!
    const stderr = await expectExit4(
      'fin always',
      {rate: 1, kinds: ['fin'], at: 0.5, digests: [layer], persistent: true, routes: {ignoreRange: true}},
      [layer, image.repository],
    )
    expect(stderr).toContain('closed the connection after')
  })

  it('one layer reset (RST) on every attempt', async () => {
    const image = fx.content.images[0]!
    const layer = image.platforms.amd64!.layerDigests[1]!
    await expectExit4(
      'rst always',
      {rate: 1, kinds: ['rst'], at: 0.3, digests: [layer], persistent: true, routes: {ignoreRange: true}},
      [layer, image.repository],
    )
  })

  it('503 on every blob GET', async () => {
    await expectExit4('503 always', {rate: 1, kinds: ['status'], statusCodes: [503], persistent: true}, [
      '503',
      fx.content.images[0]!.repository,
    ])
  })

  it('blob GETs that redirect in a loop', async () => {
    await expectExit4('blob redirect loop', {routes: {blobRedirectLoop: true}}, [
      'redirects in a loop',
      fx.content.images[0]!.repository,
    ])
  })

  it('a 401 loop: a token the registry never accepts', async () => {
    await expectExit4('401 loop', {routes: {authLoop: true}}, [
      'requires authentication',
      fx.content.images[0]!.repository,
    ])
  })
})
