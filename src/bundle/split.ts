import {open, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import {Writable} from 'node:stream'

import {UsageError} from '../errors.js'
import {atomicOutput, type AtomicOutput} from '../util/atomic.js'
import type {EntryHash} from './hash.js'
import type {FileSeal} from './sign.js'

// Splitting for removable media (PRODUCT.md §8): plain byte ranges of the one .tar.zst, so
// `cat NAME.tar.zst.* > NAME.tar.zst` rebuilds it. The compressed stream is cut into parts as it is written
// (BundleFiles); nothing is written twice and nothing is held in memory beyond the writer's queue.

const GIB = 2 ** 30

/** Part size of each medium; undefined = no split (exFAT holds files of any practical size). */
export const MEDIA_PART_SIZE: Record<'fat32' | 'exfat' | 'dvd' | 'bd25', number | undefined> = {
  fat32: 4 * GIB - 1,
  exfat: undefined,
  dvd: Math.floor(4.37 * GIB),
  bd25: Math.floor(23.3 * GIB),
}

/** Smallest part accepted: anything smaller is a typo, not a medium. */
export const MIN_PART_SIZE = 1024
/** Parts are numbered .000–.999 so that a shell glob lists them in order. */
export const MAX_PARTS = 1000

const UNIT: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: GIB,
  gib: GIB,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
}

/**
 * `3G`, `500M`, `4GiB`, `700MB`, `1048576`. Like GNU split: K/M/G and KiB/MiB/GiB are powers of 1024,
 * KB/MB/GB powers of 1000.
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = match ? UNIT[match[2].toLowerCase()] : undefined
  if (!match || unit === undefined) {
    throw new UsageError('BAD_SIZE', `--split ${JSON.stringify(text)} is not a size`, {
      hint: 'Write a number with an optional unit: 3G, 500M, 4GiB, 700MB (K/M/G = 1024-based, KB/MB/GB = 1000-based).',
    })
  }
  const bytes = Math.floor(Number(match[1]) * unit)
  if (bytes < MIN_PART_SIZE) {
    throw new UsageError(
      'BAD_SIZE',
      `--split ${text} is ${bytes} bytes; parts must be at least ${MIN_PART_SIZE} bytes`,
      {
        hint: 'Use a size such as 3G, or --media fat32|exfat|dvd|bd25.',
      },
    )
  }
  return bytes
}

export function partName(bundleFile: string, index: number): string {
  return `${bundleFile}.${String(index).padStart(3, '0')}`
}

export interface WrittenPart {
  name: string
  size: number
  sha256: string
  output: AtomicOutput
}

/** What BundleFiles wrote: the whole file's size, and with a seal its sha256, signature and (split) parts. */
export interface WrittenBundle {
  size: number
  sha256?: string
  signature?: Buffer
  parts?: WrittenPart[]
}

/** One file at a (temporary) path, or parts of `partSize` bytes named after `bundleFile` in `dir`. */
export type BundleFilesTarget = {file: string} | {dir: string; bundleFile: string; partSize: number}

interface OpenFile {
  handle: FileHandle
  path: string
  size: number
  /** Bytes handed to this file and not written yet, in order. */
  queued: Buffer[]
  /** A part's name, output and hash. */
  part?: {name: string; output: AtomicOutput; hash?: EntryHash}
}

/**
 * The compressed bytes of a bundle written into their files as they come: one file, or the parts of a split
 * bundle (PRODUCT.md §8), plain byte ranges so that `cat NAME.tar.zst.* > NAME.tar.zst` rebuilds the file. With a
 * seal, every byte is hashed on the way (the whole file, each part) and the detached signature made from it: no
 * file is read back. The frame writer (format 2) writes here directly; zstd's stdout (format 1) is piped here.
 *
 * A chunk is done with once its write callback ran (the seal copies it before): a writer may reuse its buffers.
 * Queued chunks go to the file with one writev per part. Nothing is published here: the part files are under
 * temporary names (`outputs`) that the caller commits once the whole build succeeded, or aborts once this stream
 * has closed.
 */
export class BundleFiles extends Writable {
  /** The part files created so far (split), in order. */
  readonly outputs: AtomicOutput[] = []
  private readonly parts: {name: string; size: number; sha256?: Promise<string>; output: AtomicOutput}[] = []
  private current: OpenFile | undefined
  private total = 0
  /** The write or close in progress: a destroy waits for it before closing the file. */
  private busy: Promise<void> = Promise.resolve()

  constructor(
    private readonly target: BundleFilesTarget,
    private readonly seal?: FileSeal,
  ) {
    super()
  }

  /** The file being written now, for a writeback flusher. */
  get currentPath(): string | undefined {
    return this.current?.path
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.run(() => this.writeChunks([chunk]), callback)
  }

  override _writev(chunks: {chunk: Buffer}[], callback: (error?: Error | null) => void): void {
    this.run(() => this.writeChunks(chunks.map((c) => c.chunk)), callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.run(async () => {
      // A single file exists even if nothing was written to it.
      if ('file' in this.target && !this.current && this.total === 0) await this.openNext()
      await this.closeCurrent()
    }, callback)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (error || !this.writableFinished) this.seal?.destroy()
    const closing = this.busy.then(
      () => this.current?.handle.close(),
      () => this.current?.handle.close(),
    )
    closing.then(
      () => callback(error),
      (closeError: Error) => callback(error ?? closeError),
    )
  }

  /** Once the stream finished: the whole file's size, and with a seal its sha256, signature and parts. */
  async result(): Promise<WrittenBundle> {
    const parts =
      'file' in this.target
        ? undefined
        : await Promise.all(
            this.parts.map(async (p) => ({name: p.name, size: p.size, sha256: (await p.sha256)!, output: p.output})),
          )
    const sealed = await this.seal?.seal()
    return {size: this.total, ...sealed, ...(parts ? {parts} : {})}
  }

  private run(work: () => Promise<void>, callback: (error?: Error | null) => void): void {
    this.busy = work()
    this.busy.then(() => callback(), callback)
  }

  private async writeChunks(chunks: Buffer[]): Promise<void> {
    const partSize = 'file' in this.target ? Number.POSITIVE_INFINITY : this.target.partSize
    for (const chunk of chunks) {
      const hashing = this.seal?.write(chunk)
      for (let at = 0; at < chunk.length;) {
        const file = this.current ?? (await this.openNext())
        const piece = chunk.subarray(at, at + Math.min(partSize - file.size, chunk.length - at))
        // A piece of the chunk just handed to the seal: the worker hashes it from the same copy.
        file.part?.hash?.write(piece)
        file.queued.push(piece)
        file.size += piece.length
        this.total += piece.length
        at += piece.length
        if (file.size === partSize) await this.closeCurrent()
      }
      if (hashing) {
        if (this.current) await writeQueued(this.current)
        await hashing
      }
    }
    if (this.current) await writeQueued(this.current)
  }

  private async openNext(): Promise<OpenFile> {
    if ('file' in this.target) {
      const handle = await open(this.target.file, 'w')
      return (this.current = {handle, path: this.target.file, size: 0, queued: []})
    }
    const {dir, bundleFile, partSize} = this.target
    const index = this.parts.length
    if (index >= MAX_PARTS) {
      throw new UsageError(
        'TOO_MANY_PARTS',
        `the bundle would need more than ${MAX_PARTS} parts of ${partSize} bytes`,
        {
          hint: 'Choose a larger --split size.',
        },
      )
    }
    const name = partName(bundleFile, index)
    const output = await atomicOutput(path.join(dir, name))
    this.outputs.push(output)
    const handle = await open(output.tmpPath, 'w')
    const hash = this.seal?.part()
    return (this.current = {handle, path: output.tmpPath, size: 0, queued: [], part: {name, output, hash}})
  }

  private async closeCurrent(): Promise<void> {
    const file = this.current
    if (!file) return
    await writeQueued(file)
    this.current = undefined
    await file.handle.close()
    if (file.part) this.parts.push({...file.part, size: file.size, sha256: file.part.hash?.digest()})
  }
}

/** Writes a file's queued bytes with as few writev calls as it takes (a short write resumes where it stopped). */
async function writeQueued(file: OpenFile): Promise<void> {
  let rest = file.queued
  file.queued = []
  while (rest.length > 0) {
    let {bytesWritten} = await file.handle.writev(rest)
    while (rest.length > 0 && bytesWritten >= rest[0].length) bytesWritten -= rest.shift()!.length
    if (bytesWritten > 0) rest = [rest[0].subarray(bytesWritten), ...rest.slice(1)]
  }
}

/** Resolves when the stream has closed, even after an error (events.once would reject on 'error'). */
export function closed(stream: Writable): Promise<void> {
  if (stream.closed) return Promise.resolve()
  return new Promise((resolve) => stream.once('close', () => resolve()))
}
