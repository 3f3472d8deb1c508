import {Readable} from 'node:stream'
import {describe, expect, it} from 'vitest'

import {ExitCode} from '../../src/errors.js'
import type {Descriptor} from '../../src/oci/descriptor.js'
import {MediaType} from '../../src/oci/media-types.js'
import {CopyGraphError, CopySession, copyGraph, successorsWhere, type CopyEvent} from '../../src/store/copy.js'
import type {RangedBody, ReadableStore, WritableStore} from '../../src/store/types.js'
import {verifiedStream} from '../../src/store/verify.js'
import {sha256Digest} from '../../src/util/digest.js'

// copyGraph's ordering, deduplication, concurrency bound, sparse descent and failure naming, over a store that
// holds bytes in a Map: these are properties of the walk alone (the integration test copies from a real registry).

class MemoryStore implements ReadableStore, WritableStore {
  readonly blobs = new Map<string, Buffer>()
  /** Digests in the order they were pushed. */
  readonly pushed: string[] = []
  fetches: string[] = []
  active = 0
  maxActive = 0
  /** Digests whose fetch fails (a store that lost them). */
  readonly broken = new Set<string>()

  constructor(readonly name: string) {}

  add(bytes: Buffer | string, mediaType: string): Descriptor {
    const b = Buffer.from(bytes)
    const d = {mediaType, digest: sha256Digest(b), size: b.length}
    this.blobs.set(d.digest, b)
    return d
  }

  async exists(d: Descriptor): Promise<boolean> {
    return this.blobs.has(d.digest)
  }

  async fetch(d: Descriptor): Promise<Readable> {
    this.fetches.push(d.digest)
    this.active++
    this.maxActive = Math.max(this.maxActive, this.active)
    await new Promise((r) => setTimeout(r, 5))
    this.active--
    const b = this.blobs.get(d.digest)
    if (!b || this.broken.has(d.digest)) throw new Error(`${this.name} has no ${d.digest}`)
    return verifiedStream(Readable.from([b]), d, this.name)
  }

  async push(d: Descriptor, content: Readable): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of content) chunks.push(c as Buffer)
    this.blobs.set(d.digest, Buffer.concat(chunks))
    this.pushed.push(d.digest)
  }
}

/** An image: an index of `platforms` manifests, each a config and the given layers. */
function image(store: MemoryStore, platforms: Record<string, Descriptor[]>) {
  const manifests: Record<string, Descriptor> = {}
  const configs: Record<string, Descriptor> = {}
  for (const [arch, layers] of Object.entries(platforms)) {
    const config = store.add(JSON.stringify({architecture: arch, os: 'linux'}), MediaType.ociConfig)
    configs[arch] = config
    const m = store.add(
      JSON.stringify({schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers}),
      MediaType.ociManifest,
    )
    manifests[arch] = {...m, platform: {os: 'linux', architecture: arch}}
  }
  const index = store.add(
    JSON.stringify({schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: Object.values(manifests)}),
    MediaType.ociIndex,
  )
  return {index, manifests, configs}
}

const layer = (store: MemoryStore, text: string) => store.add(text, MediaType.ociLayerGzip)

describe('copyGraph', () => {
  it('copies every node under the root, children before parents', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const [l1, l2, l3] = ['a', 'b', 'c'].map((t) => layer(src, t))
    const img = image(src, {amd64: [l1, l2], arm64: [l2, l3]})
    const summary = await copyGraph(src, dst, img.index)
    expect(summary.copied).toBe(8) // index, 2 manifests, 2 configs, 3 layers
    expect(new Set(dst.pushed).size).toBe(8)
    const at = (d: Descriptor) => dst.pushed.indexOf(d.digest)
    for (const arch of ['amd64', 'arm64']) {
      const m = img.manifests[arch]
      expect(at(m)).toBeLessThan(at(img.index))
      for (const child of [img.configs[arch], ...(arch === 'amd64' ? [l1, l2] : [l2, l3])])
        expect(at(child)).toBeLessThan(at(m))
    }
    expect(at(img.index)).toBe(7)
  })

  it('parents-first pushes a document as soon as it is read', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const img = image(src, {amd64: [layer(src, 'a')]})
    await copyGraph(src, dst, img.index, {order: 'parents-first'})
    expect(dst.pushed[0]).toBe(img.index.digest)
    expect(dst.pushed[1]).toBe(img.manifests.amd64.digest)
  })

  it('fetches nothing the destination holds; a held document is read from the destination', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const img = image(src, {amd64: [layer(src, 'a'), layer(src, 'b')]})
    await copyGraph(src, dst, img.index)
    src.fetches = []
    const events: CopyEvent[] = []
    const summary = await copyGraph(src, dst, img.index, {onEvent: (e) => events.push(e)})
    expect(src.fetches).toEqual([])
    expect(summary).toEqual({copied: 0, skipped: 5, bytes: 0})
    expect(events.every((e) => e.type === 'skipped')).toBe(true)
  })

  it('descends into a held document unless told to prune', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const l = layer(src, 'lost')
    const img = image(src, {amd64: [l]})
    await copyGraph(src, dst, img.index)
    dst.blobs.delete(l.digest) // an interrupted fetch: the manifests are there, a layer is not
    expect((await copyGraph(src, dst, img.index, {existing: 'prune'})).copied).toBe(0)
    expect(dst.blobs.has(l.digest)).toBe(false)
    expect((await copyGraph(src, dst, img.index)).copied).toBe(1)
    expect(dst.blobs.has(l.digest)).toBe(true)
  })

  it('copies a blob shared by several roots once per session, and bounds transfers over all of them', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const shared = layer(src, 'shared')
    const roots = Array.from({length: 4}, (_, i) =>
      image(src, {amd64: [shared, ...Array.from({length: 5}, (_, j) => layer(src, `own ${i} ${j}`))]}),
    )
    const session = new CopySession({concurrency: 3})
    const copiedBy = roots.map(() => [] as string[])
    await Promise.all(
      roots.map((r, i) =>
        copyGraph(src, dst, r.index, {
          session,
          onEvent: (e) => e.type === 'copied' && copiedBy[i].push(e.descriptor.digest),
        }),
      ),
    )
    expect(src.fetches.filter((d) => d === shared.digest)).toHaveLength(1)
    expect(dst.pushed.filter((d) => d === shared.digest)).toHaveLength(1)
    expect(copiedBy.filter((c) => c.includes(shared.digest))).toHaveLength(1)
    expect(new Set(src.fetches).size).toBe(src.fetches.length)
    expect(src.maxActive).toBeLessThanOrEqual(3)
    expect(src.maxActive).toBeGreaterThan(1)
  })

  it('starts waiting transfers in the session order', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const layers = ['e', 'd', 'c', 'b', 'a'].map((t) => layer(src, t))
    const root = src.add(
      JSON.stringify({schemaVersion: 2, config: layer(src, 'config'), layers}),
      MediaType.ociManifest,
    )
    const session = new CopySession({concurrency: 1, order: (a, b) => (a.digest < b.digest ? -1 : 1)})
    await copyGraph(src, dst, root, {session})
    const layerFetches = src.fetches.filter((d) => layers.some((l) => l.digest === d))
    expect(layerFetches).toEqual([...layerFetches].sort())
  })

  it('orders everything asked for together before giving the first free slots', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const layers = Array.from({length: 6}, (_, i) => layer(src, `layer ${i}`))
    const byDigest = (a: Descriptor, b: Descriptor) => (a.digest < b.digest ? -1 : 1)
    const session = new CopySession({concurrency: 2, order: byDigest})
    await Promise.all(
      [...layers]
        .sort(byDigest)
        .reverse()
        .map((l) => copyGraph(src, dst, l, {session})),
    )
    expect(src.fetches).toEqual(layers.map((l) => l.digest).sort())
  })

  it('descends a sparse index only into the children wanted', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const a = layer(src, 'amd64 only')
    const b = layer(src, 'arm64 only')
    const img = image(src, {amd64: [a], arm64: [b]})
    src.blobs.delete(img.manifests.arm64.digest) // a sparse source: one platform's manifest is not there
    await copyGraph(src, dst, img.index, {
      successors: successorsWhere((child) => child.platform?.architecture !== 'arm64'),
    })
    expect(dst.blobs.has(a.digest)).toBe(true)
    expect(dst.blobs.has(b.digest)).toBe(false)
    expect(dst.blobs.has(img.index.digest)).toBe(true)

    const dst2 = new MemoryStore('memory dst2')
    await copyGraph(src, dst2, img.index, {successors: successorsWhere((child) => src.exists(child))})
    expect([...dst2.blobs.keys()].sort()).toEqual([...dst.blobs.keys()].sort())
  })

  it('names every failed blob and both stores, copies the rest, and leaves their parents out', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const good = layer(src, 'good')
    const lost = layer(src, 'lost')
    const img = image(src, {amd64: [good, lost], arm64: [good]})
    src.broken.add(lost.digest)
    const error = await copyGraph(src, dst, img.index).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(CopyGraphError)
    const e = error as CopyGraphError
    expect(e.exitCode).toBe(ExitCode.unresolved)
    expect(e.failures).toHaveLength(1)
    expect(e.message).toBe('1 blob could not be copied from memory src to memory dst')
    expect(e.failures[0].message).toContain(
      `blob ${lost.digest} (${MediaType.ociLayerGzip}) from memory src to memory dst`,
    )
    expect(e.failures[0].message).toContain(`memory src has no ${lost.digest}`)
    expect(dst.blobs.has(good.digest)).toBe(true)
    expect(dst.blobs.has(img.manifests.arm64.digest)).toBe(true)
    expect(dst.blobs.has(img.manifests.amd64.digest)).toBe(false)
    expect(dst.blobs.has(img.index.digest)).toBe(false)
  })

  it('fails with exit 5 when the bytes do not match the descriptor', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const l = layer(src, 'real bytes')
    const lie = {...l, digest: sha256Digest('other bytes')}
    src.blobs.set(lie.digest, Buffer.from('real bytes'))
    const error = (await copyGraph(src, dst, lie).catch((e: unknown) => e)) as CopyGraphError
    expect(error.exitCode).toBe(ExitCode.integrity)
    expect(error.failures[0].integrity).toBe(true)
    expect(dst.blobs.has(lie.digest)).toBe(false)
  })

  it('resumes through pushFrom when the source can start at an offset', async () => {
    const bytes = Buffer.from('0123456789'.repeat(100))
    const d = {mediaType: MediaType.ociLayerGzip, digest: sha256Digest(bytes), size: bytes.length}
    const offsets: number[] = []
    const src = {
      name: 'ranged src',
      exists: async () => true,
      fetch: async () => Readable.from([bytes]),
      fetchFrom: async (_d: Descriptor, offset: number): Promise<RangedBody> => {
        offsets.push(offset)
        return {body: Readable.from([bytes.subarray(offset)]), start: offset}
      },
    }
    let stored = Buffer.alloc(0)
    const partial = 400
    const dst = {
      name: 'resuming dst',
      exists: async () => false,
      push: async () => {
        throw new Error('push used instead of pushFrom')
      },
      pushFrom: async (_d: Descriptor, open: (offset: number) => Promise<RangedBody>) => {
        const {body} = await open(partial)
        const chunks: Buffer[] = [bytes.subarray(0, partial)]
        for await (const c of body) chunks.push(Buffer.from(c))
        stored = Buffer.concat(chunks)
      },
    }
    const summary = await copyGraph(src, dst, d)
    expect(offsets).toEqual([partial])
    expect(stored.equals(bytes)).toBe(true)
    expect(summary.bytes).toBe(bytes.length - partial)
  })

  it('a copy waiting on a document another copy of the session walks reports the failure under it too', async () => {
    const src = new MemoryStore('memory src')
    const dst = new MemoryStore('memory dst')
    const lost = layer(src, 'lost')
    const img = image(src, {amd64: [lost]})
    src.broken.add(lost.digest)
    const session = new CopySession()
    const errors = await Promise.all(
      [img.index, img.manifests.amd64].map((root) =>
        copyGraph(src, dst, root, {session}).catch((e: unknown) => e as CopyGraphError),
      ),
    )
    for (const e of errors) {
      expect(e).toBeInstanceOf(CopyGraphError)
      expect((e as CopyGraphError).failures.map((f) => f.descriptor.digest)).toEqual([lost.digest])
    }
  })

  it('retry wraps each blob transfer; the bytes of a failed attempt are counted', async () => {
    const src = new MemoryStore('memory src')
    const l = layer(src, 'x'.repeat(1000))
    let attempts = 0
    const dst = new MemoryStore('memory dst')
    const push = dst.push.bind(dst)
    dst.push = async (d, content) => {
      if (++attempts === 1) {
        for await (const chunk of content) void chunk // read everything, then fail
        throw new Error('disk hiccup')
      }
      return push(d, content)
    }
    const retried: string[] = []
    const summary = await copyGraph(src, dst, l, {
      retry: async (d, transfer) => {
        retried.push(d.digest)
        await transfer().catch(() => transfer())
      },
    })
    expect(retried).toEqual([l.digest])
    expect(attempts).toBe(2)
    expect(summary.bytes).toBe(2000)
    expect(dst.blobs.get(l.digest)?.toString()).toBe('x'.repeat(1000))
  })
})
