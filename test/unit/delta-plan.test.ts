import {describe, expect, it} from 'vitest'

import type {Lock} from '../../src/lock/types.js'
import {canonicalJson} from '../../src/util/canonical-json.js'
import {sha256Digest} from '../../src/util/digest.js'
import {
  changedArtifactKeys,
  deltaProblems,
  parseDeltaJson,
  planDelta,
  serializeDelta,
  siteKeptBlobs,
  type DeltaManifest,
} from '../../src/delta/format.js'
import {missingAtSite, parseSiteContent} from '../../src/delta/site-content.js'
import {TarPuller} from '../../src/delta/tar-pull.js'
import {tarOf} from '../../support/seed.js'
import {content, digest, hex, manifestOf} from '../helpers/delta-fixtures.js'

// The pure parts of day-2 deltas (PRODUCT.md §11): what a delta carries and borrows (one base, a mixed fleet),
// delta.json's shape and its ties to bundle.json, the site-content listing of the preflight, and the pull reader
// `patch` merges two tars with.

const app = (d: string) => ({reference: 'r.io/app:1', digest: digest(d)})

describe('planDelta', () => {
  const n = content('n', [app('a'), {reference: 'r.io/old:1', digest: digest('o')}], {a: 10, base: 100, o: 5})
  const n1 = content('n1', [app('b'), {reference: 'r.io/new:1', digest: digest('x')}], {b: 11, base: 100, x: 7})

  it('borrows the blobs the base holds, carries the rest, and lists the references the base held and N+1 does not', () => {
    const plan = planDelta(n1, [n])
    expect(plan.borrowed).toEqual([{digest: digest('base'), size: 100}])
    expect(plan.carried).toEqual({blobs: 2, bytes: 18})
    expect(plan.carries(digest('b'))).toBe(true)
    expect(plan.carries(digest('base'))).toBe(false)
    expect(plan.removed).toEqual([{kind: 'image', reference: 'r.io/old:1', digest: digest('o')}])
  })

  it('a mixed fleet: borrows only what every base holds (N+1 minus the intersection)', () => {
    const other = content('m', [app('b')], {b: 11, x: 7})
    const plan = planDelta(n1, [n, other])
    expect(plan.borrowed).toEqual([])
    expect(plan.carried).toEqual({blobs: 3, bytes: 118})
    const both = content('m2', [], {base: 100, x: 7})
    const plan2 = planDelta(n1, [n, {...both, blobs: new Map([...both.blobs, [digest('b'), 11]])}])
    expect(plan2.borrowed.map((b) => b.digest)).toEqual([digest('base')])
  })

  it('compares by digest and size, never by reference: a blob of another size is carried', () => {
    const resized = content('n', [], {base: 99})
    expect(planDelta(n1, [resized]).borrowed).toEqual([])
  })

  it("carries a blob every base holds when a site's containerd does not keep it (chart and supply-chain content)", () => {
    const plan = planDelta(n1, [n], (d) => d !== digest('base'))
    expect(plan.borrowed).toEqual([])
    expect(plan.carries(digest('base'))).toBe(true)
    const lock = {
      images: {
        a: {
          digest: digest('i'),
          platformManifest: {digest: digest('m')},
          blobs: [{digest: digest('c')}, {digest: digest('l')}],
          supplyChain: [{blobs: [{digest: digest('sig')}]}],
        },
      },
      charts: {c: {manifest: {digest: digest('chart')}, blobs: [{digest: digest('tgz')}]}},
    } as unknown as Lock
    expect([...siteKeptBlobs(lock)].sort()).toEqual([digest('i'), digest('m'), digest('c'), digest('l')].sort())
  })

  it('borrowed blobs come sorted by digest', () => {
    const big = content('big', [], {p: 1, q: 2, r: 3, s: 4})
    const plan = planDelta(big, [big])
    const digests = plan.borrowed.map((b) => b.digest)
    expect(digests).toEqual([...digests].sort())
    expect(plan.carried).toEqual({blobs: 0, bytes: 0})
  })

  it('--delta-mode artifacts keeps the artifacts new or changed against some base', () => {
    const keys = changedArtifactKeys(n1, [n])
    expect([...keys].sort()).toEqual(['image r.io/app:1', 'image r.io/new:1'])
    expect([...changedArtifactKeys(n, [n])]).toEqual([])
  })
})

describe('delta.json', () => {
  const manifest = manifestOf('site-v2', [app('b')], {b: 11, base: 100})
  const bundleJson = Buffer.from(canonicalJson(manifest))
  const side = {formatVersion: 1, identity: digest('id'), bundleJsonSha256: digest('bj')}
  const delta: DeltaManifest = {
    kind: 'delta',
    deltaVersion: 1,
    target: {name: 'site-v2', ...side, bundleJsonSha256: sha256Digest(bundleJson), file: 'site-v2.tar.zst'},
    bases: [{name: 'site-v1', ...side}],
    carried: {blobs: 1, bytes: 11},
    borrowed: [{digest: digest('base'), size: 100}],
    removed: [],
  }

  it('parses what it serializes, and fits the bundle.json it names', () => {
    const parsed = parseDeltaJson(serializeDelta(delta))
    expect(parsed).toEqual(delta)
    const {problems, absent} = deltaProblems(delta, manifest, bundleJson)
    expect(problems).toEqual([])
    expect([...absent]).toEqual([[`blobs/sha256/${hex('base')}`, {size: 100, sha256: hex('base')}]])
  })

  it('names what is wrong with a malformed delta.json', () => {
    const bad = (v: unknown) => parseDeltaJson(Buffer.from(JSON.stringify(v))) as string
    expect(bad({...delta, kind: 'bundle'})).toMatch(/"kind": "delta"/)
    expect(bad({...delta, deltaVersion: 9})).toMatch(/deltaVersion 9; this airpack reads version 1/)
    expect(bad({...delta, bases: []})).toMatch(/names no base/)
    expect(bad({...delta, target: {...delta.target, identity: 'nope'}})).toMatch(/not a sha256 digest/)
    expect(bad({...delta, borrowed: [{digest: 'sha256:zz', size: 1}]})).toMatch(/malformed borrowed blob/)
    expect(parseDeltaJson(Buffer.from('{'))).toMatch(/not valid JSON/)
  })

  it('refuses a delta.json that does not fit its bundle.json', () => {
    const problems = (d: DeltaManifest, m = manifest, b = bundleJson) => deltaProblems(d, m, b).problems
    expect(problems(delta, manifest, Buffer.from(canonicalJson({...manifest, name: 'x'})))[0]).toMatch(
      /hashes to sha256:.*, but airpack\/delta.json says the target's is/,
    )
    expect(problems({...delta, borrowed: [{digest: digest('zzz'), size: 1}]})).toEqual([
      expect.stringMatching(/borrows sha256:.*, which the target's airpack\/bundle.json does not list/),
    ])
    expect(problems({...delta, borrowed: [{digest: digest('base'), size: 7}]})).toEqual([
      expect.stringMatching(/borrows sha256:.* as 7 bytes, airpack\/bundle.json says 100/),
    ])
    const twice = [
      {digest: digest('base'), size: 100},
      {digest: digest('base'), size: 100},
    ]
    expect(problems({...delta, borrowed: twice})[0]).toMatch(/out of order or twice/)
    const f2 = {...manifest, formatVersion: 2 as const}
    const f2Json = Buffer.from(canonicalJson(f2))
    expect(problems({...delta, target: {...delta.target, bundleJsonSha256: sha256Digest(f2Json)}}, f2, f2Json)).toEqual(
      [expect.stringMatching(/a format 2 bundle's identity is its airpack\/bundle.json's sha256/)],
    )
  })
})

describe('--site-content', () => {
  it('reads `ctr content ls -q` and the full `ctr content ls` table', () => {
    const q = `${digest('a')}\n${digest('b')}\n`
    expect(parseSiteContent(q)).toEqual({digests: new Set([digest('a'), digest('b')])})
    const table = `DIGEST\t\t\t\tSIZE\tAGE\t\tLABELS\n${digest('a')}\t1.2kB\t3 minutes\tcontainerd.io/gc.ref.content.l.0=${digest('c')}\n`
    expect(parseSiteContent(table)).toEqual({digests: new Set([digest('a')])})
    expect(parseSiteContent('')).toEqual({digests: new Set()})
  })

  it('names a line that is not a digest', () => {
    expect(parseSiteContent(`${digest('a')}\nREF TYPE DIGEST\n`)).toEqual({badLine: 2, line: 'REF TYPE DIGEST'})
  })

  it('lists the borrowed blobs the site lacks', () => {
    const borrowed = [
      {digest: digest('a'), size: 1},
      {digest: digest('b'), size: 2},
    ]
    expect(missingAtSite(borrowed, new Set([digest('a')]))).toEqual([{digest: digest('b'), size: 2}])
    expect(missingAtSite(borrowed, new Set([digest('a'), digest('b')]))).toEqual([])
  })
})

describe('TarPuller', () => {
  async function* chunked(buf: Buffer, size: number) {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size)
  }

  it('hands out entries at the consumer pace, whatever the chunking; skipping a body is allowed', async () => {
    const tar = tarOf({'a.txt': 'alpha', 'b.bin': Buffer.alloc(3000, 7), 'c.txt': ''})
    for (const size of [1, 511, 512, 4096, tar.length]) {
      let streamed = 0
      const pull = new TarPuller(chunked(tar, size), (c) => void (streamed += c.length))
      expect((await pull.next())?.path).toBe('a.txt')
      const body: Buffer[] = []
      for await (const c of pull.body()) body.push(c)
      expect(Buffer.concat(body).toString()).toBe('alpha')
      expect((await pull.next())?.path).toBe('b.bin') // its body is skipped by the next call
      const c = await pull.next()
      expect(c).toMatchObject({path: 'c.txt', size: 0})
      for await (const _ of pull.body()) throw new Error('an empty entry has no body')
      expect(await pull.next()).toBeUndefined()
      await pull.drain()
      expect(streamed).toBe(tar.length)
    }
  })

  it('a truncated tar is an error, not a quiet end', async () => {
    const tar = tarOf({'a.txt': 'alpha'})
    const pull = new TarPuller(chunked(tar.subarray(0, 700), 100))
    await expect(pull.drain()).rejects.toThrow(/truncated/)
  })
})
