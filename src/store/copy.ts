// The one graph copy (oras-go's CopyGraph): everything that moves OCI content from one store to another — registry
// → cache, cache → bundle, bundle → site registry, base + delta → bundle — is `copyGraph` over the interfaces of
// ./types.ts.
//
// How to use it:
//
//   await copyGraph(source, destination, rootDescriptor, {concurrency: 8})
//
// - Children before parents: a manifest or index is pushed only after everything it names that is copied is in
//   the destination (a registry refuses a manifest whose blobs it lacks). `order: 'parents-first'` is for
//   content-addressed destinations that need no such order (the cache): a document is pushed as soon as it is
//   read, so a reader waiting on it (the bundle writer plans from the index manifests) starts early.
// - What a document names is `successors(d, bytes)`; the default follows an index to its manifests and a manifest
//   to its config and layers (never to its `subject`, which points up). A sparse copy filters it:
//   `successorsWhere((child) => wanted.has(child.digest))` descends only into the children the caller wants (one
//   platform, what a lock pins), `successorsWhere((child) => source.exists(child))` only into those the source
//   has.
// - Each node is checked with `destination.exists` before anything is fetched; what the destination holds is
//   skipped (a `skipped` event). A document the destination holds is still descended into unless
//   `existing: 'prune'` (right for a registry, which only holds a manifest whose content it holds; wrong for the
//   cache, where an interrupted fetch leaves manifests without their layers). Its bytes are then read from the
//   destination when that is readable, so a warm copy reads nothing from the source.
// - Concurrency and deduplication belong to a `CopySession`: pass one session to several copies (one per root)
//   and each blob is copied once however many roots name it, with at most `concurrency` transfers at once over
//   all of them (`order` in the session picks which waiting transfer goes next). Without a session, each call
//   has its own.
// - Progress: `onEvent` receives `started` (a transfer begins), `bytes` (a chunk arrived), `copied` (pushed;
//   bytes this copy transferred, cut attempts included), `skipped` (the destination had it) and `failed` for the
//   nodes this call copies; a blob another copy of the same session is already moving is waited for, not
//   reported twice.
// - When both stores allow it (`RangeReadableStore` source, `ResumingWritableStore` destination) a blob is
//   pulled by the destination from an offset, so a partial copy resumes; `retry` wraps each blob's transfer.
// - Failures do not stop the other branches: every blob that could not be copied is collected, its parents are
//   not pushed, and the copy rejects with a `CopyGraphError` (exit 5 if any was an integrity failure, else 4)
//   whose `failures` name each blob and both stores.

import {Readable} from 'node:stream'

import {AirpackError, digestMismatch, ExitCode, IntegrityError} from '../errors.js'
import {readBounded} from '../limits.js'
import type {Descriptor, ManifestDocument} from '../oci/descriptor.js'
import {isGraphType, isIndexType} from '../oci/media-types.js'
import {describeError} from '../registry/errors.js'
import {sha256Digest} from '../util/digest.js'
import type {RangeReadableStore, ReadableStore, ResumingWritableStore, WritableStore} from './types.js'

export type CopyEvent =
  | {type: 'started'; descriptor: Descriptor}
  | {type: 'bytes'; descriptor: Descriptor; bytes: number}
  | {type: 'copied'; descriptor: Descriptor; bytes: number}
  | {type: 'skipped'; descriptor: Descriptor}
  | {type: 'failed'; descriptor: Descriptor; error: unknown}

/** The children of document `d` (its bytes given) that the copy should bring along. */
export type Successors = (d: Descriptor, bytes: Buffer) => Descriptor[] | Promise<Descriptor[]>

export interface CopyOptions {
  /** Transfers at once (default 8); ignored when `session` is given (the session's bound holds). */
  concurrency?: number
  /** Shared deduplication and concurrency across several copies. */
  session?: CopySession
  successors?: Successors
  onEvent?: (event: CopyEvent) => void
  /** Default 'children-first'. */
  order?: 'children-first' | 'parents-first'
  /** A document the destination already holds: 'descend' (default) still checks its children, 'prune' does not. */
  existing?: 'descend' | 'prune'
  /** Wraps each blob's transfer (retries with backoff; each attempt resumes when the stores allow it). */
  retry?: (d: Descriptor, transfer: () => Promise<void>) => Promise<void>
}

export interface CopySummary {
  copied: number
  skipped: number
  /** Bytes transferred by this call. */
  bytes: number
}

/** Shared state of several copies: in-flight deduplication by destination and digest, and the concurrency bound. */
export class CopySession {
  private readonly inFlight = new Map<string, Promise<void>>()
  private readonly limiter: Limiter

  constructor(options: {concurrency?: number; order?: (a: Descriptor, b: Descriptor) => number} = {}) {
    this.limiter = new Limiter(Math.max(1, options.concurrency ?? 8), options.order)
  }

  /** The copy of `d` into `dst` already under way in this session, or `start()`'s. */
  once(dst: WritableStore, d: Descriptor, start: () => Promise<void>): Promise<void> {
    const key = `${dst.name}\0${d.digest}`
    let p = this.inFlight.get(key)
    if (!p) {
      p = start()
      this.inFlight.set(key, p)
      // Every waiter handles it; the session itself must not leave an unhandled rejection behind.
      p.catch(() => {})
    }
    return p
  }

  /** `fn` once a transfer slot is free (in the session's order among those waiting). */
  run<T>(d: Descriptor, fn: () => Promise<T>): Promise<T> {
    return this.limiter.run(d, fn)
  }
}

/** One blob that could not be copied: names the blob and both stores. */
export class BlobCopyError extends Error {
  constructor(
    readonly descriptor: Descriptor,
    readonly source: string,
    readonly destination: string,
    readonly reason: unknown,
  ) {
    super(
      `blob ${descriptor.digest} (${descriptor.mediaType}) from ${source} to ${destination}: ${describeError(reason)}`,
      {cause: reason},
    )
    this.name = 'BlobCopyError'
  }

  /** The content did not match its digest or size (as opposed to a store that failed to serve or take it). */
  get integrity(): boolean {
    const r = this.reason as {exitCode?: unknown; failure?: unknown}
    return this.reason instanceof IntegrityError || r?.exitCode === ExitCode.integrity || r?.failure === 'integrity'
  }
}

/** A copy that could not copy everything: every failed blob, each naming itself and both stores. */
export class CopyGraphError extends AirpackError {
  readonly exitCode: ExitCode

  constructor(
    readonly failures: BlobCopyError[],
    source: string,
    destination: string,
  ) {
    const n = failures.length
    super('COPY_FAILED', `${n} blob${n === 1 ? '' : 's'} could not be copied from ${source} to ${destination}`, {
      details: {problems: failures.map((f) => f.message)},
      hint: failures.some((f) => f.integrity)
        ? 'Nothing unverified was kept. Check the source store, then retry.'
        : 'Check that both stores are reachable and writable; a retry copies only what is still missing.',
    })
    this.exitCode = failures.some((f) => f.integrity) ? ExitCode.integrity : ExitCode.unresolved
  }
}

/** The default successors: an index's manifests; a manifest's config and layers (not its subject). */
export function defaultSuccessors(d: Descriptor, bytes: Buffer): Descriptor[] {
  const doc = JSON.parse(bytes.toString('utf8')) as ManifestDocument
  if (isIndexType(d.mediaType) || (doc.manifests && !doc.config)) return doc.manifests ?? []
  return [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]
}

/** `base`'s successors, only those `keep` accepts (a sparse index: the platforms wanted, the children present). */
export function successorsWhere(
  keep: (child: Descriptor, parent: Descriptor) => boolean | Promise<boolean>,
  base: Successors = defaultSuccessors,
): Successors {
  return async (d, bytes) => {
    const children = await base(d, bytes)
    const kept = await Promise.all(children.map((c) => keep(c, d)))
    return children.filter((_, i) => kept[i])
  }
}

/** Copies the graph under `root` from `src` to `dst` (see the top of this file). */
export async function copyGraph(
  src: ReadableStore,
  dst: WritableStore,
  root: Descriptor,
  options: CopyOptions = {},
): Promise<CopySummary> {
  const ctx = new CopyRun(src, dst, options)
  try {
    await ctx.visit(root)
  } catch (error) {
    if (ctx.failures.size === 0 || !(error instanceof BlobCopyError || error instanceof SubtreeIncomplete)) throw error
  }
  if (ctx.failures.size > 0) throw new CopyGraphError([...ctx.failures.values()], src.name, dst.name)
  return ctx.summary
}

/** A parent left out because content under it failed; those failures are the ones reported, by every copy that
 *  waited for the parent (in a session, the copy that walked the subtree may be another one). */
class SubtreeIncomplete extends Error {
  constructor(
    d: Descriptor,
    readonly failures: BlobCopyError[],
  ) {
    super(`${d.digest}: not copied, some of its content failed`)
    this.name = 'SubtreeIncomplete'
  }
}

/** The failures under a document's children, or the first unexpected error (a bug) as is. */
function subtreeFailures(settled: PromiseSettledResult<void>[]): BlobCopyError[] {
  const failures: BlobCopyError[] = []
  for (const s of settled) {
    if (s.status === 'fulfilled') continue
    if (s.reason instanceof BlobCopyError) failures.push(s.reason)
    else if (s.reason instanceof SubtreeIncomplete) failures.push(...s.reason.failures)
    else throw s.reason
  }
  return failures
}

/** One call of copyGraph: its stores, options, what it copied and what failed. */
class CopyRun {
  readonly failures = new Map<string, BlobCopyError>()
  readonly summary: CopySummary = {copied: 0, skipped: 0, bytes: 0}
  private readonly session: CopySession
  private readonly successors: Successors

  constructor(
    readonly src: ReadableStore,
    readonly dst: WritableStore,
    readonly options: CopyOptions,
  ) {
    this.session = options.session ?? new CopySession({concurrency: options.concurrency})
    this.successors = options.successors ?? defaultSuccessors
  }

  /** `d` and everything under it, once per session; a failure is recorded by every copy that needed the blob. */
  async visit(d: Descriptor): Promise<void> {
    try {
      await this.session.once(this.dst, d, () => (isGraphType(d.mediaType) ? this.copyDocument(d) : this.copyBlob(d)))
    } catch (error) {
      const failures =
        error instanceof BlobCopyError ? [error] : error instanceof SubtreeIncomplete ? error.failures : []
      for (const f of failures) if (!this.failures.has(f.descriptor.digest)) this.failures.set(f.descriptor.digest, f)
      throw error
    }
  }

  /** `fn` in a transfer slot, its failure named after `d` and both stores. */
  private step<T>(d: Descriptor, fn: () => Promise<T>): Promise<T> {
    return this.session.run(d, async () => {
      try {
        return await fn()
      } catch (error) {
        if (error instanceof BlobCopyError) throw error
        this.options.onEvent?.({type: 'failed', descriptor: d, error})
        throw new BlobCopyError(d, this.src.name, this.dst.name, error)
      }
    })
  }

  private emit(event: CopyEvent): void {
    if (event.type === 'copied') {
      this.summary.copied++
      this.summary.bytes += event.bytes
    } else if (event.type === 'skipped') this.summary.skipped++
    this.options.onEvent?.(event)
  }

  private async copyBlob(d: Descriptor): Promise<void> {
    await this.step(d, () => this.copyBytes(d))
  }

  /** `d`'s bytes into the destination unless it holds them (the caller holds a slot); whether it held them. */
  private async copyBytes(d: Descriptor): Promise<boolean> {
    if (await this.dst.exists(d)) {
      this.emit({type: 'skipped', descriptor: d})
      return true
    }
    this.emit({type: 'started', descriptor: d})
    // Counted over every attempt: bytes of a cut attempt crossed the network too.
    let bytes = 0
    const received = (n: number) => {
      bytes += n
      if (this.options.onEvent) this.emit({type: 'bytes', descriptor: d, bytes: n})
    }
    const transfer = () => this.transfer(d, received)
    await (this.options.retry ? this.options.retry(d, transfer) : transfer())
    this.emit({type: 'copied', descriptor: d, bytes})
    return false
  }

  /**
   * A document: copy its successors, and push it in its turn. Parents-first into a destination that can be read
   * back, it is transferred like any blob (so a destination that pulls under its own lock, the cache, fetches it
   * once across processes) and then read from there; otherwise it is read (from the destination when it has it)
   * and pushed after its children.
   */
  private async copyDocument(d: Descriptor): Promise<void> {
    const parentsFirst = this.options.order === 'parents-first'
    let existed: boolean
    let bytes: Buffer
    if (parentsFirst && isReadable(this.dst)) {
      existed = await this.step(d, () => this.copyBytes(d))
      if (existed && this.options.existing === 'prune') return
      bytes = await this.step(d, () => readDocument(this.dst as WritableStore & ReadableStore, d))
    } else {
      existed = await this.step(d, () => this.dst.exists(d))
      if (existed) this.emit({type: 'skipped', descriptor: d})
      if (existed && this.options.existing === 'prune') return
      const from = existed && isReadable(this.dst) ? this.dst : this.src
      bytes = await this.step(d, () => readDocument(from, d))
      if (!existed && parentsFirst) await this.pushDocument(d, bytes)
    }
    const children = await this.step(d, async () => this.successors(d, bytes))
    const settled = await Promise.allSettled(children.map((c) => this.visit(c)))
    const failures = subtreeFailures(settled)
    if (failures.length > 0) throw new SubtreeIncomplete(d, failures)
    if (!existed && !parentsFirst) await this.pushDocument(d, bytes)
  }

  private async pushDocument(d: Descriptor, bytes: Buffer): Promise<void> {
    await this.step(d, () => this.dst.push(d, Readable.from([bytes])))
    this.emit({type: 'copied', descriptor: d, bytes: bytes.length})
  }

  /** One attempt at `d`'s bytes from source to destination, resumed from an offset when both stores can. */
  private async transfer(d: Descriptor, received: (bytes: number) => void): Promise<void> {
    const {src, dst} = this
    if (isRanged(src) && isResuming(dst)) {
      await dst.pushFrom(d, async (offset) => {
        const {body, start} = await src.fetchFrom(d, offset)
        return {body: countChunks(body, received), start}
      })
      return
    }
    const body = await src.fetch(d)
    try {
      await dst.push(d, Readable.from(countChunks(body, received), {objectMode: false}))
    } catch (error) {
      body.destroy()
      throw error
    }
  }
}

/** A document's bytes (at most the manifest budget), checked against its digest whatever the store promised. */
async function readDocument(store: ReadableStore, d: Descriptor): Promise<Buffer> {
  const bytes = await readBounded(await store.fetch(d), 'manifest', `${d.digest} in ${store.name}`)
  const actual = sha256Digest(bytes)
  if (actual !== d.digest || bytes.length !== d.size)
    throw digestMismatch(`${store.name} served ${bytes.length} bytes hashing to ${actual} for ${d.digest}`, {
      expected: d.digest,
      actual,
    })
  return bytes
}

/** Passes chunks through, telling `onChunk` each one's size. */
async function* countChunks(
  body: Readable | AsyncIterable<Uint8Array>,
  onChunk: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  // Iteration starts a little later: an early stream error must not be an unhandled 'error' event meanwhile
  // (iterating the errored stream still throws it).
  if (body instanceof Readable) body.on('error', () => {})
  for await (const chunk of body) {
    onChunk((chunk as Uint8Array).length)
    yield chunk as Uint8Array
  }
}

function isReadable(store: WritableStore): store is WritableStore & ReadableStore {
  return typeof (store as Partial<ReadableStore>).fetch === 'function'
}

function isRanged(store: ReadableStore): store is RangeReadableStore {
  return typeof (store as Partial<RangeReadableStore>).fetchFrom === 'function'
}

function isResuming(store: WritableStore): store is ResumingWritableStore {
  return typeof (store as Partial<ResumingWritableStore>).pushFrom === 'function'
}

/**
 * At most `limit` tasks at once; waiting tasks start in `order` (first come first served without it). A task
 * asked for never starts at once: it waits for the next turn of the event loop, so that everything asked for
 * together (every root of a fetch, issued in one loop) is ordered before the first slots are given.
 */
class Limiter {
  private active = 0
  private readonly waiting: {d: Descriptor; start: () => void}[] = []
  private draining = false

  constructor(
    private readonly limit: number,
    private readonly order?: (a: Descriptor, b: Descriptor) => number,
  ) {}

  async run<T>(d: Descriptor, fn: () => Promise<T>): Promise<T> {
    await new Promise<void>((start) => {
      this.enqueue({d, start})
      this.scheduleDrain()
    })
    try {
      return await fn()
    } finally {
      this.active--
      this.drain()
    }
  }

  private scheduleDrain(): void {
    if (this.draining) return
    this.draining = true
    setImmediate(() => {
      this.draining = false
      this.drain()
    })
  }

  private drain(): void {
    while (this.active < this.limit && this.waiting.length > 0) {
      this.active++
      this.waiting.shift()!.start()
    }
  }

  private enqueue(task: {d: Descriptor; start: () => void}): void {
    const at = this.order ? this.waiting.findIndex((w) => this.order!(task.d, w.d) < 0) : -1
    if (at < 0) this.waiting.push(task)
    else this.waiting.splice(at, 0, task)
  }
}
