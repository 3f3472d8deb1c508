import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, readdir, rm, writeFile, mkdir} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {Readable} from 'node:stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore, TruncatedBlobError} from '../../src/cache/store.js'
import {IntegrityError} from '../../src/errors.js'

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

describe('blob store', () => {
  let dir: string
  const data = randomBytes(64 * 1024)
  const digest = digestOf(data)
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-store-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('publishes a partial file that already holds every byte without asking the source (a Range from the end is a 416)', async () => {
    const store = new BlobStore(path.join(dir, 'complete-partial'))
    await mkdir(path.join(store.root, 'partial'), {recursive: true})
    await writeFile(path.join(store.root, 'partial', digest.slice(7)), data)
    const r = await store.ingest(digest, data.length, async () =>
      Promise.reject(new Error('the source must not be asked')),
    )
    expect(r).toEqual({digest, size: data.length, hit: false, transferred: 0, resumedFrom: data.length})
    expect((await store.readBytes(digest)).equals(data)).toBe(true)
  })

  it('starts over when a complete-sized partial file holds wrong bytes', async () => {
    const store = new BlobStore(path.join(dir, 'wrong-partial'))
    await mkdir(path.join(store.root, 'partial'), {recursive: true})
    await writeFile(path.join(store.root, 'partial', digest.slice(7)), Buffer.alloc(data.length))
    const offsets: number[] = []
    const r = await store.ingest(digest, data.length, async (offset) => {
      offsets.push(offset)
      return {body: Readable.from([data.subarray(offset)]), start: offset}
    })
    expect(offsets).toEqual([0])
    expect(r.transferred).toBe(data.length)
    expect((await store.readBytes(digest)).equals(data)).toBe(true)
  })

  it('keeps a short body as a partial file and resumes it from the offset', async () => {
    const store = new BlobStore(path.join(dir, 'resume'))
    const offsets: number[] = []
    const cut = await store
      .ingest(digest, data.length, async (offset) => {
        offsets.push(offset)
        return {body: Readable.from([data.subarray(0, 1000)]), start: 0}
      })
      .catch((e) => e)
    expect(cut).toBeInstanceOf(TruncatedBlobError)
    expect(await store.has(digest)).toBe(false)
    const r = await store.ingest(digest, data.length, async (offset) => {
      offsets.push(offset)
      return {body: Readable.from([data.subarray(offset)]), start: offset}
    })
    expect(offsets).toEqual([0, 1000])
    expect(r).toEqual({digest, size: data.length, hit: false, transferred: data.length - 1000, resumedFrom: 1000})
    expect((await store.readBytes(digest)).equals(data)).toBe(true)
    expect((await store.ingest(digest, data.length, async () => Promise.reject(new Error('not called')))).hit).toBe(
      true,
    )
  })

  it('starts over when the server ignores Range, and deletes content that does not match its digest', async () => {
    const store = new BlobStore(path.join(dir, 'restart'))
    await mkdir(path.join(store.root, 'partial'), {recursive: true})
    await writeFile(path.join(store.root, 'partial', digest.slice(7)), data.subarray(0, 500))
    const r = await store.ingest(digest, data.length, async () => ({body: Readable.from([data]), start: 0}))
    expect(r.transferred).toBe(data.length)
    expect(await store.has(digest)).toBe(true)

    const other = randomBytes(100)
    const wrong = await store
      .ingest(digestOf(other), 100, async () => ({body: Readable.from([randomBytes(100)]), start: 0}))
      .catch((e) => e)
    expect(wrong).toBeInstanceOf(IntegrityError)
    expect(wrong.exitCode).toBe(5)
    expect(await readdir(path.join(store.root, 'partial'))).toEqual([])
    const big = await store
      .ingest(digestOf(other), 100, async () => ({body: Readable.from([randomBytes(200)]), start: 0}))
      .catch((e) => e)
    expect(big).toBeInstanceOf(IntegrityError)
    expect(await store.has(digestOf(other))).toBe(false)
  })

  it('ingests content of unknown digest, checking an expected one when given', async () => {
    const store = new BlobStore(path.join(dir, 'unknown'))
    const r = await store.ingestUnknown(async () => Readable.from([data.subarray(0, 10), data.subarray(10)]))
    expect(r.digest).toBe(digest)
    expect(r.size).toBe(data.length)
    expect((await store.ingestUnknown(async () => Promise.reject(new Error('not called')), digest)).hit).toBe(true)
    const e = await store
      .ingestUnknown(async () => Readable.from([Buffer.from('x')]), `sha256:${'0'.repeat(64)}`)
      .catch((x) => x)
    expect(e).toBeInstanceOf(IntegrityError)
    expect((await readdir(path.join(store.root, 'partial'))).filter((f) => f.endsWith('.tmp'))).toEqual([])
  })
})
