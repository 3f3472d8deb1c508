import {once} from 'node:events'
import {createWriteStream, type WriteStream} from 'node:fs'
import path from 'node:path'
import type {Readable} from 'node:stream'

import {UsageError} from '../errors.js'
import {atomicOutput, type AtomicOutput} from '../util/atomic.js'
import {streamHash, type StreamHash} from './hash.js'

// Splitting for removable media (PRODUCT.md §8): plain byte ranges of the one .tar.zst, so
// `cat NAME.tar.zst.* > NAME.tar.zst` rebuilds it. The compressed stream is cut into parts as it comes out of
// zstd; nothing is written twice and nothing is held in memory beyond one chunk.

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

export interface SplitResult {
  parts: WrittenPart[]
  size: number
  sha256: string
}

interface OpenPart {
  stream: WriteStream
  hash: StreamHash
  size: number
  output: AtomicOutput
  name: string
  error?: Error
}

/** The parts written so far and the one being written, each hashed, under temporary names. */
class PartWriter {
  readonly parts: WrittenPart[] = []
  private current: OpenPart | undefined

  constructor(private readonly options: {dir: string; bundleFile: string; partSize: number}) {}

  /** Writes `chunk`, opening and closing parts at every partSize boundary. */
  async write(chunk: Buffer): Promise<void> {
    const {partSize} = this.options
    while (chunk.length > 0) {
      const c = this.current ?? (await this.openNext())
      const room = partSize - c.size
      const piece = chunk.length <= room ? chunk : chunk.subarray(0, room)
      chunk = chunk.length <= room ? Buffer.alloc(0) : chunk.subarray(room)
      const partHashing = c.hash.write(piece)
      if (partHashing) await partHashing
      c.size += piece.length
      if (!c.stream.write(piece)) await waitDrain(c.stream)
      if (c.size === partSize) await this.closeCurrent()
    }
  }

  private async openNext(): Promise<OpenPart> {
    const index = this.parts.length
    if (index >= MAX_PARTS) {
      throw new UsageError(
        'TOO_MANY_PARTS',
        `the bundle would need more than ${MAX_PARTS} parts of ${this.options.partSize} bytes`,
        {
          hint: 'Choose a larger --split size.',
        },
      )
    }
    const name = partName(this.options.bundleFile, index)
    const output = await atomicOutput(path.join(this.options.dir, name))
    const stream = createWriteStream(output.tmpPath)
    const entry: OpenPart = {stream, hash: streamHash(this.options.partSize), size: 0, output, name}
    // Kept and rethrown at close: a write error (ENOSPC) must fail the build, never drop bytes silently.
    stream.on('error', (error) => (entry.error = error))
    this.current = entry
    return entry
  }

  async closeCurrent(): Promise<void> {
    if (!this.current) return
    const c = this.current
    this.current = undefined
    c.stream.end()
    await closed(c.stream)
    if (c.error) {
      this.current = c
      throw c.error
    }
    this.parts.push({name: c.name, size: c.size, sha256: await c.hash.digest(), output: c.output})
  }

  async abort(): Promise<void> {
    const c = this.current
    if (c) {
      c.hash.destroy()
      c.stream.destroy()
      // The file may still be being opened: remove it only once the stream has closed.
      await closed(c.stream)
      await c.output.abort()
    }
    for (const p of this.parts) await p.output.abort()
  }
}

/**
 * Consumes `source` (zstd's stdout) into parts of at most `partSize` bytes under temporary names in `dir`.
 * `onChunk` sees every byte once, in order (for the detached signature). Nothing is published here: the caller
 * commits the outputs once the whole build succeeded.
 */
export async function writeParts(
  source: Readable,
  options: {dir: string; bundleFile: string; partSize: number; onChunk?: (chunk: Buffer) => void},
): Promise<SplitResult> {
  const whole = streamHash()
  const writer = new PartWriter(options)
  let total = 0
  try {
    for await (const raw of source) {
      const chunk = raw as Buffer
      options.onChunk?.(chunk)
      const hashing = whole.write(chunk)
      if (hashing) await hashing
      total += chunk.length
      await writer.write(chunk)
    }
    await writer.closeCurrent()
  } catch (error) {
    whole.destroy()
    await writer.abort()
    throw error
  }
  return {parts: writer.parts, size: total, sha256: await whole.digest()}
}

/** Resolves when the stream has closed, even after an error (events.once would reject on 'error'). */
function closed(stream: WriteStream): Promise<void> {
  if (stream.closed) return Promise.resolve()
  return new Promise((resolve) => stream.once('close', () => resolve()))
}

async function waitDrain(stream: WriteStream): Promise<void> {
  const ac = new AbortController()
  try {
    await Promise.race([
      once(stream, 'drain', {signal: ac.signal}),
      once(stream, 'error', {signal: ac.signal}).then(([error]) => {
        throw error
      }),
    ])
  } finally {
    ac.abort()
  }
}
