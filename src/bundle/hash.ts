import {spawn, spawnSync} from 'node:child_process'
import {createHash, type KeyObject} from 'node:crypto'
import {Worker} from 'node:worker_threads'

// SHA-256 of multi-GB streams. Large streams are hashed by node:crypto on a worker thread (TarHashes), so that
// hashing never holds up the main thread's I/O; small ones in process. Large files on disk are read and hashed
// by an `openssl dgst` child directly (no bytes cross into Node); without an `openssl` binary, node:crypto.

/** Bytes a writer may queue in memory ahead of a child's stdin before it waits (memory stays bounded). */
export const PIPE_AHEAD = 8 * 1024 * 1024

export interface StreamHash {
  /** Feed a chunk; returns a promise only when the consumer asks to wait (backpressure). */
  write(chunk: Buffer): Promise<void> | undefined
  /** The hex digest, once everything was written. */
  digest(): Promise<string>
  /** Stop early (on failure): no digest will be asked for. */
  destroy(): void
}

let opensslAvailable: boolean | undefined

function haveOpenssl(): boolean {
  if (opensslAvailable === undefined) {
    opensslAvailable = spawnSync('openssl', ['version'], {stdio: 'ignore'}).status === 0
  }
  return opensslAvailable
}

class NodeHash implements StreamHash {
  private readonly hash = createHash('sha256')
  write(chunk: Buffer): undefined {
    this.hash.update(chunk)
    return undefined
  }
  async digest(): Promise<string> {
    return this.hash.digest('hex')
  }
  destroy(): void {}
}

/**
 * node:crypto (SHA-NI through Node's OpenSSL, ≈ 1.8 GB/s here with 1 MiB chunks) on a worker thread: see
 * TarHashes, of which this is the whole-stream part. Where a pipe to an `openssl dgst` child costs two kernel
 * copies and a wake-up per 64 KiB, this is one user-space copy per chunk: on a warm 1 GiB build, 0.7 s less
 * system time.
 */
class WorkerHash implements StreamHash {
  private readonly hashes = new TarHashes()
  write(chunk: Buffer): Promise<void> | undefined {
    return this.hashes.chunk(chunk)
  }
  digest(): Promise<string> {
    return this.hashes.digest()
  }
  destroy(): void {
    this.hashes.destroy()
  }
}

export type HasherKind = 'worker' | 'node'

/**
 * A hasher for a stream of about `expectedBytes`: on a worker thread when that is large, in process when it is
 * small (or when `kind` asks for the main thread).
 */
export function streamHash(expectedBytes = Number.POSITIVE_INFINITY, kind: HasherKind = 'worker'): StreamHash {
  if (expectedBytes < 8 * 1024 * 1024 || kind === 'node') return new NodeHash()
  return new WorkerHash()
}

/** sha256 (hex) of a file: `openssl dgst` reads it directly when it is large, else node:crypto. */
export async function hashFile(file: string, size: number): Promise<string> {
  if (size >= 8 * 1024 * 1024 && haveOpenssl()) {
    const child = spawn('openssl', ['dgst', '-sha256', '-r', file], {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d: string) => (out += d))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', resolve)
    })
    const hex = /^([a-f0-9]{64})/.exec(out.trim())
    if (code !== 0 || !hex) throw new Error(`openssl dgst ${file} failed (${code}): ${err.trim()}`)
    return hex[1]
  }
  const {createReadStream} = await import('node:fs')
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20})) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

// The worker's whole program (CommonJS, evaluated: no file to ship beside dist/ or to transform under tests).
// A message carries one slab of the stream and the entry pieces within it; the slab goes back to be reused.
const TAR_HASH_WORKER = `
const {parentPort} = require('node:worker_threads')
const {createHash, createSign} = require('node:crypto')
const whole = createHash('sha256')
let signer
let signingKey
const entries = new Map()
const entry = (id) => {
  let h = entries.get(id)
  if (!h) entries.set(id, (h = createHash('sha256')))
  return h
}
parentPort.on('message', (m) => {
  if (m.t === 'c') {
    const v = new Uint8Array(m.b, 0, m.n)
    whole.update(v)
    if (signer) signer.update(v)
    const s = m.s
    for (let i = 0; i < s.length; i += 3) entry(s[i]).update(v.subarray(s[i + 1], s[i + 2]))
    parentPort.postMessage({t: 'ack', b: m.b}, [m.b])
  } else if (m.t === 'b') entry(m.id).update(m.b)
  else if (m.t === 'e') {
    const hex = entry(m.id).digest('hex')
    entries.delete(m.id)
    parentPort.postMessage({t: 'e', id: m.id, hex})
  } else if (m.t === 'd') parentPort.postMessage({t: 'd', hex: whole.digest('hex'), sig: signer && signer.sign(signingKey)})
  else if (m.t === 'k') {
    signingKey = m.key
    signer = createSign('sha256')
  }
})
`

/**
 * Bytes per slab sent to the worker, and how many may be in flight before a writer waits: 4 MiB is a couple of
 * milliseconds of hashing, so the worker never starves, and every slab in flight is memory the process holds.
 */
const SLAB = 1 << 20
const MAX_SLABS_IN_FLIGHT = 4
const MAX_POOLED_SLABS = MAX_SLABS_IN_FLIGHT + 1

export interface EntryHash {
  /** A piece of the chunk last passed to TarHashes.chunk() (a subarray of it; anything else is copied). */
  write(piece: Buffer): void
  digest(): Promise<string>
}

/** An entry's hash in this thread (node:crypto): for entries too small to be worth a worker. */
export function nodeEntryHash(): EntryHash {
  const hash = createHash('sha256')
  return {
    write: (piece) => void hash.update(piece),
    digest: async () => hash.digest('hex'),
  }
}

/**
 * The hashes a reader needs over an uncompressed tar, in one pass on one worker thread: the whole stream's (the
 * identity) and each entry's. Chunks are copied once into 1 MiB slabs that travel to the worker and back (a
 * fixed pool: no garbage, at most 4 MiB in flight); an entry's pieces travel as offsets into the slab, so
 * every byte crosses threads once however many hashes it feeds. (A hasher per entry plus one for the identity
 * copied every byte twice and started a thread or a child per large entry; fresh copies per chunk left ~100 MB
 * of transferred buffers waiting for the worker's garbage collector.) The same pass serves a file being written
 * (FileSeal in sign.ts): the whole file's sha256, each part's as an entry, and an ECDSA signature (`signWith`).
 */
export interface TarHashesOptions {
  /**
   * A private key whose SHA-256 signature over the whole stream the worker makes as it hashes (the detached
   * signature of an ECDSA key: Node signs ECDSA only over data it hashes itself, never over a digest).
   */
  signWith?: KeyObject
}

export class TarHashes {
  private readonly worker = new Worker(TAR_HASH_WORKER, {eval: true})
  private readonly pool: ArrayBuffer[] = []
  private slab: Uint8Array | undefined
  private used = 0
  /** Entry pieces inside the current slab, flat (id, start, end) triples. */
  private slices: number[] = []
  private current: Buffer | undefined
  private currentBase = 0
  private inFlight = 0
  private nextId = 0
  private waiter: {resolve: () => void; reject: (e: unknown) => void} | undefined
  private readonly results = new Map<number | 'whole', {resolve: (hex: string) => void; reject: (e: unknown) => void}>()
  private failed: Error | undefined
  private signature: Buffer | undefined

  constructor(options: TarHashesOptions = {}) {
    if (options.signWith) this.worker.postMessage({t: 'k', key: options.signWith})
    this.worker.on(
      'message',
      (m: {t: 'ack'; b: ArrayBuffer} | {t: 'e'; id: number; hex: string} | {t: 'd'; hex: string; sig?: Uint8Array}) => {
        if (m.t === 'ack') {
          this.inFlight--
          if (this.pool.length < MAX_POOLED_SLABS) this.pool.push(m.b)
          if (this.waiter && this.inFlight <= MAX_SLABS_IN_FLIGHT / 2) {
            const w = this.waiter
            this.waiter = undefined
            w.resolve()
          }
          return
        }
        if (m.t === 'd' && m.sig) this.signature = Buffer.from(m.sig.buffer, m.sig.byteOffset, m.sig.byteLength)
        const key = m.t === 'e' ? m.id : 'whole'
        this.results.get(key)?.resolve(m.hex)
        this.results.delete(key)
      },
    )
    this.worker.on('error', (error) => this.fail(error))
    this.worker.on('exit', (code) => this.fail(new Error(`the hash worker exited early (${code})`)))
  }

  /** Every pending wait and digest rejects, so that nobody awaits a worker that is gone. */
  private fail(error: Error): void {
    this.failed ??= error
    this.waiter?.reject(this.failed)
    this.waiter = undefined
    for (const r of this.results.values()) r.reject(this.failed)
    this.results.clear()
  }

  private takeSlab(min: number): Uint8Array {
    const i = this.pool.findIndex((b) => b.byteLength >= min)
    return i === -1 ? new Uint8Array(Math.max(SLAB, min)) : new Uint8Array(this.pool.splice(i, 1)[0])
  }

  /** Sends the current slab (and the entry pieces in it) to the worker. */
  private flush(): void {
    this.current = undefined
    if (!this.slab || this.used === 0) return
    const b = this.slab.buffer as ArrayBuffer
    this.worker.postMessage({t: 'c', b, n: this.used, s: this.slices}, [b])
    this.inFlight++
    this.slab = undefined
    this.used = 0
    this.slices = []
  }

  /** The next chunk of the stream; returns a promise when the caller should wait (bounded memory). */
  chunk(chunk: Buffer): Promise<void> | undefined {
    if (this.failed) throw this.failed
    if (chunk.length === 0) return undefined
    if (this.slab && this.used + chunk.length > this.slab.length) this.flush()
    this.slab ??= this.takeSlab(chunk.length)
    this.slab.set(chunk, this.used)
    this.current = chunk
    this.currentBase = this.used
    this.used += chunk.length
    // A full slab is sent by the next chunk or digest, so that this chunk's entry pieces can still join it.
    if (this.inFlight < MAX_SLABS_IN_FLIGHT) return undefined
    return handled(new Promise((resolve, reject) => (this.waiter = {resolve, reject})))
  }

  entry(): EntryHash {
    const id = this.nextId++
    return {
      write: (piece) => {
        if (this.failed || piece.length === 0) return
        const c = this.current
        const offset = c && piece.buffer === c.buffer ? piece.byteOffset - c.byteOffset : -1
        if (c && offset >= 0 && offset + piece.length <= c.length) {
          this.slices.push(id, this.currentBase + offset, this.currentBase + offset + piece.length)
          return
        }
        // Not a piece of the current chunk (or its slab is already on its way): send a copy, in order.
        const copy = new Uint8Array(piece.length)
        copy.set(piece)
        this.flush()
        this.worker.postMessage({t: 'b', id, b: copy}, [copy.buffer])
      },
      digest: () => {
        this.flush()
        return this.ask(id, {t: 'e', id})
      },
    }
  }

  /** The whole stream's sha256 (hex); the worker stops afterwards. */
  async digest(): Promise<string> {
    this.flush()
    try {
      return await this.ask('whole', {t: 'd'})
    } finally {
      this.destroy()
    }
  }

  /** The whole stream's sha256 (hex), and the signature of `signWith` over the stream; the worker stops afterwards. */
  async signedDigest(): Promise<{hex: string; signature?: Buffer}> {
    const hex = await this.digest()
    return {hex, signature: this.signature}
  }

  private ask(key: number | 'whole', message: object): Promise<string> {
    if (this.failed) return Promise.reject(this.failed)
    const hex = handled(new Promise<string>((resolve, reject) => this.results.set(key, {resolve, reject})))
    this.worker.postMessage(message)
    return hex
  }

  destroy(): void {
    this.worker.removeAllListeners('exit')
    this.fail(new Error('hashing stopped'))
    void this.worker.terminate()
  }
}

/**
 * `destroy()` rejects every pending wait and digest; a reader that stopped early may no longer await some of them.
 * Such a rejection must not be an unhandled one (it killed `bundle verify` with exit 1 under Node 24's timing);
 * whoever awaits the promise still gets the error.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {})
  return promise
}

// The program of a range-hashing worker (CommonJS, evaluated, like TAR_HASH_WORKER). It opens the bundle's files
// itself and reads a task's bytes with blocking reads into one reused buffer (a worker has nothing else to do),
// following the task's layout: HASH runs are hashed, CHECK runs compared with the expected bytes, SKIP runs passed.
const RANGE_HASH_WORKER = `
const {parentPort} = require('node:worker_threads')
const {createHash} = require('node:crypto')
const {openSync, readSync} = require('node:fs')
const WINDOW = 4 * 1024 * 1024 + 4096
const buf = Buffer.allocUnsafe(WINDOW)
let files = []
function fill(offset, length) {
  let done = 0
  for (const f of files) {
    if (done === length) break
    const at = offset + done
    if (at >= f.start + f.size) continue
    const want = Math.min(length - done, f.start + f.size - at)
    let got = 0
    while (got < want) {
      const n = readSync(f.fd, buf, done + got, want - got, at - f.start + got)
      if (n === 0) throw new Error(f.path + ' ended while reading it')
      got += n
    }
    done += want
  }
  if (done !== length) throw new Error('the file ended at ' + (offset + done) + ' while reading it')
}
function run(t) {
  const hash = createHash('sha256')
  const seg = t.segments
  let end = t.start
  for (let i = 1; i < seg.length; i += 2) end += seg[i]
  let winStart = t.start
  let winEnd = t.start
  let pos = t.start
  let e = 0
  for (let i = 0; i < seg.length; i += 2) {
    if (seg[i] === 2) {
      pos += seg[i + 1]
      continue
    }
    let left = seg[i + 1]
    while (left > 0) {
      if (pos >= winEnd) {
        winStart = pos
        winEnd = Math.min(end, pos + WINDOW)
        fill(winStart, winEnd - winStart)
      }
      const take = Math.min(left, winEnd - pos)
      const piece = buf.subarray(pos - winStart, pos - winStart + take)
      if (seg[i] === 0) hash.update(piece)
      else {
        const want = t.expected.subarray(e, e + take)
        if (!piece.equals(want))
          throw new Error('a block header at byte ' + pos + ' of the file is not the raw block the seek table implies')
        e += take
      }
      pos += take
      left -= take
    }
  }
  return hash.digest('hex')
}
parentPort.on('message', (m) => {
  if (m.t === 'files') {
    files = m.files.map((f) => ({...f, fd: openSync(f.path, 'r')}))
    return
  }
  try {
    parentPort.postMessage({id: m.id, hex: run(m)})
  } catch (error) {
    parentPort.postMessage({id: m.id, error: String(error && error.message ? error.message : error)})
  }
})
`

/** A range of a file to hash in a worker: where it starts and its (kind, length) runs (RawLayout of the reader). */
export interface RangeHashTask {
  start: number
  segments: number[]
  expected: Buffer
}

/**
 * Hashes ranges of one file (or a split file's parts) on worker threads, so that `bundle verify` of a format 2
 * bundle hashes its large entries on every core while the main thread walks the tar. Each task goes to the worker
 * with the fewest bytes outstanding; the files are opened once per worker and read with blocking reads there.
 */
export class RangeHashers {
  private readonly workers: {worker: Worker; outstanding: number}[] = []
  private readonly pending = new Map<number, {resolve: (hex: string) => void; reject: (e: Error) => void}>()
  private nextId = 0
  private failed: Error | undefined

  constructor(files: {path: string; start: number; size: number}[], count: number) {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(RANGE_HASH_WORKER, {eval: true})
      const slot = {worker, outstanding: 0}
      worker.on('message', (m: {id: number; hex?: string; error?: string}) => {
        const p = this.pending.get(m.id)
        this.pending.delete(m.id)
        if (m.error !== undefined) p?.reject(new Error(m.error))
        else p?.resolve(m.hex!)
      })
      worker.on('error', (error) => this.fail(error))
      worker.on('exit', (code) => this.fail(new Error(`a hash worker exited early (${code})`)))
      worker.postMessage({t: 'files', files})
      this.workers.push(slot)
    }
  }

  /** The sha256 (hex) of the task's HASH bytes; rejects naming a CHECK run that does not match. */
  hash(task: RangeHashTask, bytes: number): Promise<string> {
    if (this.failed) return Promise.reject(this.failed)
    const slot = this.workers.reduce((a, b) => (b.outstanding < a.outstanding ? b : a))
    slot.outstanding += bytes
    const id = this.nextId++
    const done = handled(
      new Promise<string>((resolve, reject) => this.pending.set(id, {resolve, reject})).finally(() => {
        slot.outstanding -= bytes
      }),
    )
    slot.worker.postMessage({id, start: task.start, segments: task.segments, expected: task.expected})
    return done
  }

  private fail(error: Error): void {
    this.failed ??= error
    for (const p of this.pending.values()) p.reject(this.failed)
    this.pending.clear()
  }

  destroy(): void {
    for (const {worker} of this.workers) {
      worker.removeAllListeners('exit')
      void worker.terminate()
    }
    this.fail(new Error('hashing stopped'))
  }
}
