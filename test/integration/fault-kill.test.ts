// Interrupted builds (issue 6): SIGKILL during the fetch and during packing, then a re-run with the same cache
// completes, re-downloads only what was missing, and produces the identical bundle; SIGINT stops cleanly with a
// message and leaves no partial output under a final name. The fault proxy's hold tells the test exactly when a
// blob is in flight; a zstd child of the airpack process tells it that packing has begun (level 19 makes packing
// last seconds rather than milliseconds). Format 2 (issue 12) packs in-process while the blobs arrive: its tests
// hold the tar's last layer mid-download and kill once the partial bundle file has grown past the layers before it.

import {generateKeyPairSync} from 'node:crypto'
import {existsSync} from 'node:fs'
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {runCli} from '../helpers/cli.js'
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

/**
 * A build stopped by SIGINT: a non-zero end, a message saying so and no stack trace, no file left in the output
 * directory (a clean stop removes its temporary files too; a SIGKILL cannot, the next build does), and a cache
 * holding only verified blobs.
 */
async function expectCleanInterrupt(
  result: {exitCode?: number; signal?: string; stderr: unknown},
  output: string,
  cache: string,
): Promise<void> {
  const said = `${result.stderr}`
  expect(result.exitCode ?? result.signal, `exit ${result.exitCode} signal ${result.signal}\n${said}`).not.toBe(0)
  expect(said).toMatch(/interrupt|cancel|SIGINT|stopp|abort/i)
  expect(said).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
  expect(await listFiles(output)).toEqual([])
  expect(await unverifiedCacheBlobs(cache)).toEqual([])
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
      // An orphaned zstd could still be writing: nothing may appear under a final name meanwhile.
      await new Promise((r) => setTimeout(r, 500))
      expect(await finalOutputs(output)).toEqual([])
      await expectCleanInterrupt(result, output, cache)
    })
  }
})

// Format 2 has no zstd child: the airpack process writes the seekable frames itself, while the blobs arrive (cold)
// and from the cache (warm). Killed mid-write, it leaves only hidden `.NAME….partial` files; the rerun must publish
// exactly the bundle an uninterrupted build publishes. Once whole, once split into parts and signed (RSA: a
// deterministic signature, so the `.sig` and the bundle.json.sig inside compare byte for byte too).
describe('interrupted format 2 builds', () => {
  const PARTIAL = new RegExp(`^\\.${BUNDLE_NAME}\\..*\\.partial$`)
  const variants: {label: string; extra: () => string[]}[] = [
    {label: 'whole', extra: () => ['--format', '2']},
    {label: 'split and signed', extra: () => ['--format', '2', '--split', '1M', '--sign-key', signingKey]},
  ]
  let signingKey: string
  /** The cache of an uninterrupted build: the layers' sizes. */
  let cleanCache: string
  /** Per variant: every published file of an uninterrupted build and its sha256 (the report, which has timings, aside). */
  const clean = new Map<string, Map<string, string>>()

  /** Hidden temporary files the build left in `output`, with their sizes. */
  async function partials(output: string): Promise<{name: string; size: number}[]> {
    const names = (await listFiles(output)).filter((f) => PARTIAL.test(path.basename(f)))
    return Promise.all(names.map(async (name) => ({name, size: (await stat(path.join(output, name))).size})))
  }

  async function published(output: string): Promise<Map<string, string>> {
    const files = (await finalOutputs(output)).filter((f) => !f.endsWith('.report.json'))
    return new Map(await Promise.all(files.map(async (f) => [f, await sha256File(path.join(output, f))] as const)))
  }

  beforeAll(async () => {
    signingKey = path.join(fx.dir, 'sign-rsa.pem')
    const pair = generateKeyPairSync('rsa', {modulusLength: 2048})
    await writeFile(signingKey, pair.privateKey.export({type: 'pkcs8', format: 'pem'}) as string)
    cleanCache = await fx.fresh('cache')
    for (const v of variants) {
      const output = await fx.fresh('out')
      fx.proxy.setPlan({})
      const result = await fx.build({cache: cleanCache, output, extra: v.extra()})
      expect(result.exitCode, result.stderr).toBe(0)
      expect(await partials(output)).toEqual([])
      clean.set(v.label, await published(output))
    }
    expect([...clean.get('split and signed')!.keys()]).toEqual(
      expect.arrayContaining([
        `${BUNDLE_NAME}.tar.zst.000`,
        `${BUNDLE_NAME}.tar.zst.001`,
        `${BUNDLE_NAME}.tar.zst.sig`,
      ]),
    )
  }, 240_000)

  /**
   * Starts a build of variant `v` whose tar's last layer is held mid-download, and resolves once the partial bundle
   * file(s) hold more than every layer before it: the build is packing (format 2 packs while the blobs arrive).
   */
  async function buildHeldWhilePacking(v: (typeof variants)[number]) {
    const cache = await fx.fresh('cache')
    const output = await fx.fresh('out')
    fx.proxy.setPlan({})
    fx.proxy.resetCounters()
    // Blobs go into the tar sorted by digest: hold the last layer, so every blob before it is packed while it waits.
    const layers = amd64Layers(fx.content).sort()
    const last = layers.at(-1)!
    const before = layers.slice(0, -1)
    const beforeBytes = (
      await Promise.all(
        before.map(async (d) => (await stat(path.join(cleanCache, 'blobs', 'sha256', d.slice(7)))).size),
      )
    ).reduce((a, b) => a + b, 0)
    const held = fx.proxy.holdBlobs({afterBytes: 256 * 1024, digests: [last]})
    const child = fx.spawnBuild({cache, output, extra: v.extra()})
    await held
    const written = await waitFor(
      'the partial bundle to hold the layers before the held one',
      async () => {
        const files = await partials(output)
        const bytes = files.reduce((sum, f) => sum + f.size, 0)
        return bytes > beforeBytes ? {files, bytes} : undefined
      },
      120_000,
    )
    if (process.env.AIRPACK_FAULT_DEBUG)
      console.log(`packing: ${written.bytes} bytes in ${written.files.map((f) => f.name).join(', ')}`)
    return {cache, output, child, before}
  }

  for (const v of variants) {
    it(`SIGKILL while packing (${v.label}), then a re-run: nothing published, a verified cache, the identical bundle`, async () => {
      const {cache, output, child, before} = await buildHeldWhilePacking(v)
      child.kill('SIGKILL')
      const killed = await child
      fx.proxy.release()
      expect(killed.signal).toBe('SIGKILL')

      // Nothing under a final name, only hidden partial files; every cached blob hashes to its name.
      expect(await finalOutputs(output)).toEqual([])
      const left = await partials(output)
      expect(left.length).toBeGreaterThan(0)
      expect(await listFiles(output)).toEqual(left.map((f) => f.name))
      expect(await unverifiedCacheBlobs(cache)).toEqual([])
      // The partial file is never taken for the bundle: the bundle's name does not exist (exit 2), and the partial
      // itself, read as a bundle, is an incomplete one (exit 5).
      const first = v.label === 'whole' ? `${BUNDLE_NAME}.tar.zst` : `${BUNDLE_NAME}.tar.zst.000`
      const missing = await runCli(['bundle', 'verify', path.join(output, first)])
      expect(missing.exitCode, missing.stderr).toBe(2)
      const biggest = left.reduce((a, b) => (b.size > a.size ? b : a))
      const incomplete = await runCli(['bundle', 'verify', path.join(output, biggest.name)])
      expect(incomplete.exitCode, incomplete.stderr).toBe(5)

      const cached = await cachedDigests(cache)
      for (const d of before) expect(cached.has(d), d).toBe(true)
      fx.proxy.resetCounters()
      const rerun = await fx.build({cache, output, extra: v.extra()})
      expect(rerun.exitCode, rerun.stderr).toBe(0)
      // The blobs that were complete were not fetched again.
      expect([...cached].filter((d) => fx.proxy.counters.perDigest[d] !== undefined)).toEqual([])
      // Byte for byte what the uninterrupted build published, and the killed run's partial files are gone.
      expect(await published(output)).toEqual(clean.get(v.label))
      expect(await partials(output)).toEqual([])
      expect(await unverifiedCacheBlobs(cache)).toEqual([])
    })

    it(`SIGINT while packing (${v.label}): stops with a message, no stack trace, no file left at all`, async () => {
      const {cache, output, child} = await buildHeldWhilePacking(v)
      child.kill('SIGINT')
      const result = await child
      fx.proxy.release()
      await expectCleanInterrupt(result, output, cache)
    })
  }
})
