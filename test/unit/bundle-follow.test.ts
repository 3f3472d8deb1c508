// A cold build frames a blob while the fetch writes it into the cache (src/bundle/follow.ts): these drive a real
// BlobStore ingest chunk by chunk and check what the follower reads, when it gives the blob back to the cache
// path, and that a download that starts over is never framed as if it were one blob.

import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import type {FileHandle} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {Readable} from 'node:stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore, TruncatedBlobError} from '../../src/cache/store.js'
import {BlobRestartedError, followBlob} from '../../src/bundle/follow.js'

const MiB = 1024 * 1024
const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** A body whose chunks are released one at a time by `next()`; `cut()` ends it early with an error. */
function controlledBody(chunks: Buffer[]) {
  const waiting: (() => void)[] = []
  let released = 0
  let failure: Error | undefined
  const wake = () => waiting.splice(0).forEach((w) => w())
  async function* body() {
    for (let i = 0; i < chunks.length; i++) {
      while (released <= i && !failure) await new Promise<void>((r) => waiting.push(r))
      if (failure) throw failure
      yield chunks[i]
    }
  }
  return {
    body: body(),
    next() {
      released++
      wake()
    },
    all() {
      released = chunks.length
      wake()
    },
    cut() {
      failure = new Error('connection closed')
      wake()
    },
  }
}

/** Reads what follows through `upTo` into one buffer, recording how much was available at each step. */
function recorder(size: number) {
  const got = Buffer.alloc(size)
  const steps: number[] = []
  const frame = async (file: FileHandle, upTo: (position: number) => Promise<number>) => {
    let position = 0
    while (position < size) {
      const end = Math.min(size, await upTo(position))
      steps.push(end)
      // As the frame writer does: bytes said to be written must be there.
      const {bytesRead} = await file.read(got, position, end - position, position)
      if (bytesRead !== end - position) throw new Error(`read ${bytesRead} of ${end - position} bytes at ${position}`)
      position = end
    }
  }
  return {got, steps, frame}
}

const chunked = (data: Buffer, size: number) =>
  Array.from({length: Math.ceil(data.length / size)}, (_, i) => data.subarray(i * size, (i + 1) * size))

describe('following a blob while it downloads', () => {
  let dir: string
  const data = randomBytes(3 * MiB + 12345)
  const digest = digestOf(data)
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-follow-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('frames the bytes as the cache writes them, before the download ends, and returns once it is verified', async () => {
    const store = new BlobStore(path.join(dir, 'grow'))
    const source = controlledBody(chunked(data, 512 * 1024))
    const ingest = store.ingest(digest, data.length, async () => ({body: Readable.from(source.body), start: 0}))
    const rec = recorder(data.length)
    const followed = followBlob(
      digest,
      data.length,
      store.growing(digest),
      ingest.then(() => {}),
      rec.frame,
    )
    // Release the body a chunk at a time: the follower must have read some bytes while most are still unsent.
    for (let i = 0; i < 4; i++) {
      source.next()
      await new Promise((r) => setTimeout(r, 20))
    }
    source.all()
    expect(await followed).toBe(true)
    expect(rec.got.equals(data)).toBe(true)
    expect(rec.steps[0]).toBeLessThan(data.length)
    expect((await store.readBytes(digest)).equals(data)).toBe(true)
  })

  it('resumes with the same partial file after a cut: still one blob, framed to the end', async () => {
    const store = new BlobStore(path.join(dir, 'resume'))
    const first = controlledBody(chunked(data.subarray(0, 2 * MiB), 256 * 1024))
    let ready!: () => void
    let failed!: (e: unknown) => void
    const gate = new Promise<void>((res, rej) => ((ready = res), (failed = rej)))
    const rec = recorder(data.length)
    const followed = followBlob(digest, data.length, store.growing(digest), gate, rec.frame)
    const cut = store.ingest(digest, data.length, async () => ({body: Readable.from(first.body), start: 0}))
    first.next()
    first.next()
    await new Promise((r) => setTimeout(r, 20))
    first.cut()
    await expect(cut).rejects.toThrow()
    // The retry asks for the rest with a Range; the partial file keeps its bytes, so nothing starts over.
    await store
      .ingest(digest, data.length, async (offset) => ({body: Readable.from([data.subarray(offset)]), start: offset}))
      .then(ready, failed)
    expect(await followed).toBe(true)
    expect(rec.got.equals(data)).toBe(true)
  })

  it('a retry answered from byte 0 (Range ignored) starts over: BlobRestartedError, never a mixed blob', async () => {
    const store = new BlobStore(path.join(dir, 'restart'))
    const first = controlledBody([data.subarray(0, MiB + 1000), data.subarray(MiB + 1000, 2 * MiB)])
    let ready!: () => void
    let failed!: (e: unknown) => void
    const gate = new Promise<void>((res, rej) => ((ready = res), (failed = rej)))
    const rec = recorder(data.length)
    const followed = followBlob(digest, data.length, store.growing(digest), gate, rec.frame)
    followed.catch(() => {})
    const cut = store.ingest(digest, data.length, async () => ({body: Readable.from(first.body), start: 0}))
    first.next()
    await new Promise((r) => setTimeout(r, 50))
    first.cut()
    await expect(cut).rejects.toThrow()
    await store.ingest(digest, data.length, async () => ({body: Readable.from([data]), start: 0})).then(ready, failed)
    await expect(followed).rejects.toBeInstanceOf(BlobRestartedError)
    // The cache itself got the blob right.
    expect((await store.readBytes(digest)).equals(data)).toBe(true)
  })

  it('a blob that is ready before its download starts here (a cache hit) is left to the cache path', async () => {
    const store = new BlobStore(path.join(dir, 'hit'))
    await store.ingest(digest, data.length, async () => ({body: Readable.from([data]), start: 0}))
    const rec = recorder(data.length)
    expect(await followBlob(digest, data.length, store.growing(digest), Promise.resolve(), rec.frame)).toBe(false)
    expect(rec.steps).toEqual([])
  })

  it('a download that fails for good fails the follower with the fetch error', async () => {
    const store = new BlobStore(path.join(dir, 'fail'))
    const source = controlledBody(chunked(data, MiB))
    const rec = recorder(data.length)
    const failure = new TruncatedBlobError(digest, MiB, data.length)
    let failed!: (e: unknown) => void
    const gate = new Promise<void>((_res, rej) => (failed = rej))
    gate.catch(() => {})
    const followed = followBlob(digest, data.length, store.growing(digest), gate, rec.frame)
    const cut = store.ingest(digest, data.length, async () => ({body: Readable.from(source.body), start: 0}))
    source.next()
    await new Promise((r) => setTimeout(r, 20))
    source.cut()
    await expect(cut).rejects.toThrow()
    failed(failure)
    await expect(followed).rejects.toBe(failure)
  })
})
