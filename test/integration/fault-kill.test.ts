// Interrupted builds (issue 6): SIGKILL during the fetch and during packing, then a re-run with the same cache
// completes, re-downloads only what was missing, and produces the identical bundle; SIGINT stops cleanly with a
// message and leaves no partial output under a final name. The fault proxy's hold tells the test exactly when a
// blob is in flight; a zstd child of the airpack process tells it that packing has begun (level 19 makes packing
// last seconds rather than milliseconds).

import {existsSync} from 'node:fs'
import {readdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {
  amd64Layers,
  BUNDLE_NAME,
  cachedDigests,
  finalOutputs,
  listFiles,
  sha256File,
  startFaultFixture,
  unverifiedCacheBlobs,
  waitFor,
  type FaultFixture,
} from '../helpers/fault-fixture.js'

// Whole builds through the CLI, some at zstd level 19, on a 2-core machine shared with other suites.
vi.setConfig({testTimeout: 240_000, hookTimeout: 240_000})

// Format 1: these tests watch the `zstd` child that packs a format 1 bundle (format 2, the default since a364b79,
// compresses in-process and has none to wait for or kill).
const LEVEL = ['--format', '1', '--compression-level', '19']
let fx: FaultFixture
let cleanHash: string

async function zstdChildOf(pid: number): Promise<number | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    // pid (comm) state ppid …
    const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat)
    if (m && m[1] === 'zstd' && Number(m[2]) === pid) return Number(entry)
  }
  return undefined
}

beforeAll(async () => {
  fx = await startFaultFixture({bytesPerPlatform: 8 * 1024 * 1024, seed: 'airpack-kill-tests'})
  const cache = await fx.fresh('cache')
  const output = await fx.fresh('out')
  const clean = await fx.build({cache, output, extra: LEVEL})
  expect(clean.exitCode, clean.stderr).toBe(0)
  cleanHash = await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))
}, 240_000)

afterAll(async () => {
  await fx?.stop()
})

describe('interrupted builds', () => {
  it('SIGKILL during the fetch, then a re-run: completes, fetches only what was missing, identical bundle', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    const base = fx.content.images[0]!.platforms.amd64!.layerDigests[0]!
    fx.proxy.setPlan({})
    fx.proxy.resetCounters()
    const held = fx.proxy.holdBlobs({afterBytes: 256 * 1024, digests: [base]})
    const child = fx.spawnBuild({cache, output, extra: LEVEL})
    await held
    // Let the other downloads run on while the base layer is held mid-way, then kill without warning.
    await waitFor(
      'a blob in the cache',
      async () => ((await cachedDigests(cache)).size > 0 ? true : undefined),
      30_000,
    ).catch(() => undefined)
    child.kill('SIGKILL')
    const killed = await child
    fx.proxy.release()
    expect(killed.signal).toBe('SIGKILL')
    expect(await finalOutputs(output)).toEqual([])
    expect(await unverifiedCacheBlobs(cache)).toEqual([])

    const before = await cachedDigests(cache)
    const partial = path.join(cache, 'partial', base.slice(7))
    const partialBytes = existsSync(partial) ? (await stat(partial)).size : 0
    if (process.env.AIRPACK_FAULT_DEBUG)
      console.log(`killed with ${before.size} blobs cached, ${partialBytes} bytes of the held blob in partial/`)
    fx.proxy.resetCounters()
    const rerun = await fx.build({cache, output, extra: LEVEL})
    expect(rerun.exitCode, rerun.stderr).toBe(0)
    expect(await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))).toBe(cleanHash)
    // Blobs that were complete were not fetched again …
    const refetched = [...before].filter((d) => fx.proxy.counters.perDigest[d] !== undefined)
    expect(refetched).toEqual([])
    // … and the half-downloaded one resumed where it stopped.
    const baseCounters = fx.proxy.counters.perDigest[base]
    const baseSize = (await stat(path.join(cache, 'blobs', 'sha256', base.slice(7)))).size
    if (partialBytes > 0) {
      expect(baseCounters?.rangeGets, 'resumed with Range').toBeGreaterThanOrEqual(1)
      expect(baseCounters!.bytesSent).toBeLessThanOrEqual(baseSize - partialBytes)
    }
    for (const d of amd64Layers(fx.content)) expect((await cachedDigests(cache)).has(d), d).toBe(true)
  })

  it('SIGKILL during packing, then a re-run: downloads nothing, identical bundle', async () => {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    fx.proxy.setPlan({})
    const child = fx.spawnBuild({cache, output, extra: LEVEL})
    // The build packs while it fetches: wait until the fetch is over and only packing is left.
    await waitFor('zstd to start packing', () => zstdChildOf(child.pid!), 120_000)
    const layers = amd64Layers(fx.content)
    await waitFor(
      'every layer in the cache',
      async () => {
        const cached = await cachedDigests(cache)
        return layers.every((d) => cached.has(d)) ? true : undefined
      },
      120_000,
    )
    expect(await zstdChildOf(child.pid!), 'still packing when killed').toBeTruthy()
    child.kill('SIGKILL')
    const killed = await child
    expect(killed.signal).toBe('SIGKILL')
    // The orphaned zstd sees its input end and exits; nothing may be published under a final name meanwhile.
    await new Promise((r) => setTimeout(r, 500))
    expect(await finalOutputs(output)).toEqual([])
    for (const d of amd64Layers(fx.content)) expect((await cachedDigests(cache)).has(d), d).toBe(true)

    fx.proxy.resetCounters()
    const rerun = await fx.build({cache, output, extra: LEVEL})
    expect(rerun.exitCode, rerun.stderr).toBe(0)
    expect(fx.proxy.counters.blobGets, JSON.stringify(fx.proxy.counters.perDigest)).toBe(0)
    expect(await sha256File(path.join(output, `${BUNDLE_NAME}.tar.zst`))).toBe(cleanHash)
  })

  for (const phase of ['fetch', 'packing'] as const) {
    it(`SIGINT during ${phase}: stops with a message, no stack trace, no output under a final name`, async () => {
      const cache = await fx.fresh('cache')
      const output = await fx.fresh('out')
      fx.proxy.setPlan({})
      const held = phase === 'fetch' ? fx.proxy.holdBlobs({afterBytes: 128 * 1024}) : undefined
      const child = fx.spawnBuild({cache, output, extra: LEVEL})
      if (held) await held
      else await waitFor('zstd to start packing', () => zstdChildOf(child.pid!), 120_000)
      child.kill('SIGINT')
      const result = await child
      fx.proxy.release()
      const said = `${result.stderr}`
      expect(result.exitCode ?? result.signal, `exit ${result.exitCode} signal ${result.signal}\n${said}`).not.toBe(0)
      expect(said).toMatch(/interrupt|cancel|SIGINT|stopp|abort/i)
      expect(said).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
      await new Promise((r) => setTimeout(r, 500))
      expect(await finalOutputs(output)).toEqual([])
      // A clean stop also removes its temporary files.
      expect(await listFiles(output)).toEqual([])
      expect(await unverifiedCacheBlobs(cache)).toEqual([])
    })
  }
})
