import {createHash, type Hash} from 'node:crypto'
import {createReadStream, createWriteStream, type ReadStream} from 'node:fs'
import {link, mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import {Readable, Transform} from 'node:stream'

import {digestMismatch, IntegrityError, ResolveError} from '../errors.js'
import type {Descriptor} from '../oci/descriptor.js'
import type {RangedBody, ResumingWritableStore, Store} from '../store/types.js'
import {verifiedStream} from '../store/verify.js'
import {digestHex, sha256Digest} from '../util/digest.js'

// The content-addressed blob cache of PRODUCT.md §6.
//
//   <root>/blobs/sha256/<hex>   verified blobs only, published by rename (atomic, so readers never see half a blob)
//   <root>/partial/<hex>        an interrupted download, resumed with an HTTP Range request
//   <root>/partial/<hex>.lock   held by the process currently downloading <hex> (pid inside); a dead owner's
//                               lock is taken over, so a SIGKILLed build resumes where it stopped
//
// Several processes can share one cache: they never write the same partial file at once, and a blob that
// another process publishes meanwhile is simply used.

export interface BlobSource {
  /** Opens the blob's bytes from `offset` on. `start` is where the returned body really begins (0 if the
   *  server ignored the Range request). */
  (offset: number): Promise<{body: AsyncIterable<Uint8Array> | Readable; start: number}>
}

export interface IngestResult {
  digest: string
  size: number
  /** Already in the cache: nothing was downloaded. */
  hit: boolean
  /** Bytes transferred by this call (0 on a hit; less than size when resumed). */
  transferred: number
  resumedFrom: number
}

/**
 * A blob this process is downloading into the cache, readable while it grows: `available` bytes from the start of
 * `path` (the partial file) are written and will not change while `generation` stays the same. The generation
 * changes when the partial file is thrown away or started over (a server that ignored the Range request of a
 * retry, a digest mismatch): bytes read under an older generation are then not the blob's. Nothing here is
 * verified: the blob is verified once its download ends, when the fetch's gate for it opens (`ready`).
 */
export interface GrowingBlob {
  readonly path: string
  readonly available: number
  readonly generation: number
  /** Resolves the next time `available` or `generation` changes, or the download ends. */
  changed(): Promise<void>
}

class GrowingPartial implements GrowingBlob {
  available = 0
  generation = 0
  private waiters: (() => void)[] = []

  constructor(readonly path: string) {}

  grew(bytes: number): void {
    this.available += bytes
    this.wake()
  }

  /** The partial file now holds `have` bytes; anything else than what was announced is a new generation. */
  startsAt(have: number): void {
    if (have === this.available) return
    this.generation++
    this.available = have
    this.wake()
  }

  wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve))
  }
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache')
  return path.join(base, 'airpack')
}

/** The cache, also as a store (`exists`, `fetch`, `push`, `pushFrom`) for `copyGraph`: content named by digest
 *  whatever the repository it came from. */
export class BlobStore implements Store, ResumingWritableStore {
  /** Downloads under way in this process, by digest, and who waits for one to start (see growing()). */
  private readonly partials = new Map<string, GrowingPartial>()
  private readonly partialWaiters = new Map<string, ((g: GrowingBlob) => void)[]>()

  constructor(readonly root: string) {}

  /**
   * Resolves once this process starts downloading `digest` into the cache (at once if it has), with the partial
   * file as it grows; never resolves for a blob it does not download (a hit, another process's download): race
   * it with the fetch's gate for the blob.
   */
  growing(digest: string): Promise<GrowingBlob> {
    const current = this.partials.get(digest)
    if (current) return Promise.resolve(current)
    return new Promise((resolve) => {
      const waiters = this.partialWaiters.get(digest) ?? []
      waiters.push(resolve)
      this.partialWaiters.set(digest, waiters)
    })
  }

  /** The partial of `digest` this process is writing, announced to whoever waits for it. */
  private partialOf(digest: string): GrowingPartial {
    let partial = this.partials.get(digest)
    if (!partial) {
      partial = new GrowingPartial(this.partialPath(digest))
      this.partials.set(digest, partial)
      for (const resolve of this.partialWaiters.get(digest) ?? []) resolve(partial)
      this.partialWaiters.delete(digest)
    }
    return partial
  }

  /** The download of `digest` ended (published, or failed for good: followers learn which from the fetch). */
  private partialEnded(digest: string, discarded: boolean): void {
    const partial = this.partials.get(digest)
    if (!partial) return
    if (discarded) partial.startsAt(-1)
    partial.wake()
    this.partials.delete(digest)
  }

  get name(): string {
    return `cache ${this.root}`
  }

  async exists(d: Descriptor): Promise<boolean> {
    return this.has(d.digest)
  }

  /** A cached blob, hashed again while it is read (a disk can rot; a stream that does not match errors). */
  async fetch(d: Descriptor): Promise<Readable> {
    const size = await this.size(d.digest)
    if (size === undefined)
      throw new ResolveError('NOT_IN_CACHE', `${this.name} does not hold ${d.digest}`, {
        hint: 'Fetch it first (airpack bundle build fills the cache).',
        details: {digest: d.digest},
      })
    return verifiedStream(this.openRead(d.digest), d, this.name)
  }

  /** `content` as `d`, verified before it is published; content already cached is not read. */
  async push(d: Descriptor, content: Readable): Promise<void> {
    const r = await this.ingest(d.digest, d.size, async () => ({body: content, start: 0}))
    if (r.hit || r.resumedFrom > 0) content.destroy()
  }

  /** Resumes what an interrupted copy left in the partial file: `open(offset)` is asked for the rest. */
  async pushFrom(d: Descriptor, open: (offset: number) => Promise<RangedBody>): Promise<void> {
    await this.ingest(d.digest, d.size, open)
  }

  blobPath(digest: string): string {
    return path.join(this.root, 'blobs', 'sha256', digestHex(digest))
  }

  private partialPath(digest: string): string {
    return path.join(this.root, 'partial', digestHex(digest))
  }

  async init(): Promise<void> {
    await mkdir(path.join(this.root, 'blobs', 'sha256'), {recursive: true})
    await mkdir(path.join(this.root, 'partial'), {recursive: true})
  }

  /** Size of a cached blob, or undefined. Only verified blobs are ever under blobs/, so presence is proof. */
  async size(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size
    } catch {
      return undefined
    }
  }

  async has(digest: string): Promise<boolean> {
    return (await this.size(digest)) !== undefined
  }

  openRead(digest: string, options: {highWaterMark?: number} = {}): ReadStream {
    return createReadStream(this.blobPath(digest), {highWaterMark: options.highWaterMark ?? 1 << 20})
  }

  async readBytes(digest: string): Promise<Buffer> {
    return readFile(this.blobPath(digest))
  }

  /** Store small content held in memory (manifests, generated configs). Returns its digest. */
  async putBytes(bytes: Uint8Array, expectedDigest?: string): Promise<string> {
    const digest = sha256Digest(bytes)
    if (expectedDigest !== undefined && expectedDigest !== digest) {
      throw digestMismatch(`content digest is ${digest}, expected ${expectedDigest}`, {
        expected: expectedDigest,
        actual: digest,
      })
    }
    if (await this.has(digest)) return digest
    await this.init()
    const tmp = `${this.partialPath(digest)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    await writeFile(tmp, bytes)
    await rename(tmp, this.blobPath(digest))
    return digest
  }

  /**
   * Bring one blob into the cache from `source`, verifying size and sha256 before publishing it. On a broken
   * stream the partial file is kept (the next call resumes it); on a digest or size mismatch it is deleted and
   * an IntegrityError is thrown, so nothing unverified survives.
   */
  async ingest(digest: string, expectedSize: number | undefined, source: BlobSource): Promise<IngestResult> {
    const cached = await this.size(digest)
    if (cached !== undefined) return {digest, size: cached, hit: true, transferred: 0, resumedFrom: 0}
    await this.init()
    const release = await this.lock(digest)
    try {
      const raced = await this.size(digest)
      if (raced !== undefined) return {digest, size: raced, hit: true, transferred: 0, resumedFrom: 0}
      const result = await this.download(digest, expectedSize, source)
      this.partialEnded(digest, false)
      return result
    } catch (error) {
      // A cut stream keeps its partial file for the retry (same generation); a mismatch deleted it.
      if (error instanceof IntegrityError) this.partialEnded(digest, true)
      throw error
    } finally {
      await release()
    }
  }

  /** How much of `digest` an earlier run left in its partial file (0 when none, or more than it can be), hashed. */
  private async partialState(digest: string, expectedSize: number | undefined): Promise<{have: number; hash: Hash}> {
    const partial = this.partialPath(digest)
    let have = 0
    try {
      have = (await stat(partial)).size
    } catch {}
    if (expectedSize !== undefined && have > expectedSize) {
      await rm(partial, {force: true})
      have = 0
    }
    const hash = createHash('sha256')
    if (have > 0) await hashFilePrefix(partial, have, hash)
    return {have, hash}
  }

  private async download(digest: string, expectedSize: number | undefined, source: BlobSource): Promise<IngestResult> {
    const partial = this.partialPath(digest)
    const {have, hash} = await this.partialState(digest, expectedSize)
    if (expectedSize !== undefined && have === expectedSize && have > 0) {
      // Every byte arrived before the last run stopped (killed between the last write and the rename): a Range
      // request from the end would be refused (416). Publish it if it is right, else start over.
      if (`sha256:${hash.digest('hex')}` === digest) {
        await rename(partial, this.blobPath(digest))
        return {digest, size: have, hit: false, transferred: 0, resumedFrom: have}
      }
      await rm(partial, {force: true})
      return this.download(digest, expectedSize, source)
    }

    const growing = this.partialOf(digest)
    growing.startsAt(have)
    const {body, start} = await source(have)
    // Read after an await or two (opening the partial file, or a restart): an early stream error must not be an
    // unhandled 'error' event; iterating the errored stream still throws it.
    if (body instanceof Readable) body.on('error', () => {})
    if (start !== have) {
      // The server sent the whole body (no Range support): start over.
      if (start !== 0) throw new Error(`source answered from offset ${start}, asked for ${have}`)
      hash.destroy?.()
      return this.restart(digest, expectedSize, body)
    }
    const transferred = await this.appendBody(digest, body as AsyncIterable<Uint8Array>, {
      have,
      limit: expectedSize,
      hash,
      written: (bytes) => growing.grew(bytes),
    })
    const size = have + transferred
    if (expectedSize !== undefined && size !== expectedSize) {
      // Short body with a clean end: keep the bytes, a retry resumes from here.
      throw new TruncatedBlobError(digest, size, expectedSize)
    }
    await this.publishVerified(digest, hash)
    return {digest, size, hit: false, transferred, resumedFrom: have}
  }

  /**
   * Appends `body` to the partial file, hashing it; returns the bytes received. A plain loop rather than a stream
   * pipeline (Readable.from → Transform → WriteStream): three stream layers per 64 KiB network chunk cost a cold
   * 1 GiB build about a second of garbage collection on the main thread. Chunks are batched into writes of
   * ~256 KiB, one write in flight while the next batch is received; on a broken stream every byte received is
   * written before the error propagates, so a retry resumes after it.
   */
  private async appendBody(
    digest: string,
    body: AsyncIterable<Uint8Array>,
    o: {have: number; limit?: number; hash: Hash; written?: (bytes: number) => void},
  ): Promise<number> {
    const partial = this.partialPath(digest)
    let transferred = 0
    const fh = await open(partial, o.have > 0 ? 'a' : 'w')
    let batch: Uint8Array[] = []
    let batchBytes = 0
    let writing: Promise<unknown> = Promise.resolve()
    const flush = async () => {
      await writing
      if (batchBytes === 0) return
      const chunks = batch
      const bytes = batchBytes
      batch = []
      batchBytes = 0
      const w = writeAll(fh, chunks).then(() => o.written?.(bytes))
      w.catch(() => {}) // awaited by the next flush; never an unhandled rejection meanwhile
      writing = w
    }
    try {
      try {
        for await (const chunk of body) {
          transferred += chunk.length
          if (o.limit !== undefined && o.have + transferred > o.limit) {
            throw new IntegrityError(
              'BLOB_TOO_LARGE',
              `blob ${digest} is larger than its descriptor's ${o.limit} bytes`,
              {details: {digest}},
            )
          }
          o.hash.update(chunk)
          batch.push(chunk)
          batchBytes += chunk.length
          if (batchBytes >= WRITE_BATCH) await flush()
        }
      } finally {
        // Keep what was received (also on a cut stream), unless the content is known to be wrong.
        await flush()
        await writing
      }
      await fh.close()
    } catch (error) {
      await fh.close().catch(() => {})
      if (error instanceof IntegrityError) await rm(partial, {force: true})
      throw error
    }
    return transferred
  }

  /** The complete partial file becomes the blob if it hashes to its digest; otherwise it is removed (exit 5). */
  private async publishVerified(digest: string, hash: Hash): Promise<void> {
    const partial = this.partialPath(digest)
    const actual = `sha256:${hash.digest('hex')}`
    if (actual !== digest) {
      await rm(partial, {force: true})
      throw digestMismatch(`blob content hashes to ${actual}, not ${digest}`, {
        hint: 'The registry or a proxy served different bytes than the manifest names. Nothing was kept; retry, or check the mirror.',
        expected: digest,
        actual,
      })
    }
    await rename(partial, this.blobPath(digest))
  }

  /**
   * Bring in content whose digest is not known in advance (a classic Helm chart archive): streamed to a private
   * temporary file while hashing, then published under the digest it really has. With `expectedDigest` (a Helm
   * index digest), a cached copy is used as is and a mismatch deletes the download and throws IntegrityError.
   */
  async ingestUnknown(
    open: () => Promise<AsyncIterable<Uint8Array> | Readable>,
    expectedDigest?: string,
  ): Promise<IngestResult> {
    if (expectedDigest !== undefined) {
      const cached = await this.size(expectedDigest)
      if (cached !== undefined) return {digest: expectedDigest, size: cached, hit: true, transferred: 0, resumedFrom: 0}
    }
    await this.init()
    const tmp = path.join(this.root, 'partial', `unknown.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`)
    const hash = createHash('sha256')
    let size = 0
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length
        hash.update(chunk)
        cb(null, chunk)
      },
    })
    try {
      await pipeline(toReadable(await open()), meter, createWriteStream(tmp))
      const digest = `sha256:${hash.digest('hex')}`
      if (expectedDigest !== undefined && digest !== expectedDigest) {
        throw digestMismatch(`content hashes to ${digest}, not ${expectedDigest}`, {
          hint: 'The server sent different bytes than its index names. Nothing was kept; check the repository or mirror.',
          expected: expectedDigest,
          actual: digest,
        })
      }
      const hit = await this.has(digest)
      if (hit) await rm(tmp, {force: true})
      else await rename(tmp, this.blobPath(digest))
      return {digest, size, hit, transferred: size, resumedFrom: 0}
    } catch (error) {
      await rm(tmp, {force: true})
      throw error
    }
  }

  private async restart(
    digest: string,
    expectedSize: number | undefined,
    body: AsyncIterable<Uint8Array> | Readable,
  ): Promise<IngestResult> {
    await rm(this.partialPath(digest), {force: true})
    return this.download(digest, expectedSize, async () => ({body, start: 0}))
  }

  /**
   * Creates the lock file with its owner's pid already inside: written under a private name, then linked into
   * place (link fails if the lock exists). Creating it empty and writing the pid afterwards let another process,
   * under load, read an empty lock, take it for a dead owner's and download the same blob a second time.
   */
  private async tryLock(lockPath: string): Promise<boolean> {
    const tmp = `${lockPath}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    await writeFile(tmp, String(process.pid))
    try {
      await link(tmp, lockPath)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      return false
    } finally {
      await rm(tmp, {force: true})
    }
  }

  /** Exclusive per-blob lock across processes; a lock whose owner process is gone is taken over. */
  private async lock(digest: string): Promise<() => Promise<void>> {
    const lockPath = `${this.partialPath(digest)}.lock`
    for (let attempt = 0; ; attempt++) {
      if (await this.tryLock(lockPath)) {
        return async () => {
          await rm(lockPath, {force: true})
        }
      }
      const owner = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10)
      if (!Number.isFinite(owner) || !processAlive(owner)) {
        // Stale: its owner died (SIGKILL, crash). Remove it and race for it again.
        await rm(lockPath, {force: true})
        continue
      }
      if (await this.has(digest)) return async () => {}
      await new Promise((r) => setTimeout(r, Math.min(50 * (attempt + 1), 500)))
    }
  }
}

export class TruncatedBlobError extends Error {
  constructor(
    readonly digest: string,
    readonly received: number,
    readonly expected: number,
  ) {
    super(`blob ${digest} ended after ${received} of ${expected} bytes`)
    this.name = 'TruncatedBlobError'
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function hashFilePrefix(file: string, length: number, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(file, {start: 0, end: length - 1, highWaterMark: 1 << 20}))
    hash.update(chunk as Buffer)
}

const WRITE_BATCH = 256 * 1024

/** Writes every chunk, in order, at the end of the file (a short writev is continued). */
async function writeAll(fh: FileHandle, chunks: Uint8Array[]): Promise<void> {
  let rest = chunks
  while (rest.length > 0) {
    const {bytesWritten} = await fh.writev(rest)
    let left = bytesWritten
    let i = 0
    while (i < rest.length && left >= rest[i].length) left -= rest[i++].length
    rest = rest.slice(i)
    if (left > 0) rest[0] = rest[0].subarray(left)
  }
}

function toReadable(body: AsyncIterable<Uint8Array> | Readable): Readable {
  return body instanceof Readable ? body : Readable.from(body, {objectMode: false})
}
