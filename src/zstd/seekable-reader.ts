import path from 'node:path'

import {IntegrityError} from '../errors.js'
import {ConcatenatedFiles} from './file-range.js'
import {
  BLOCK_HEADER_SIZE,
  MAX_BLOCK_SIZE,
  MAX_FRAME_HEADER_SIZE,
  parseBlockHeader,
  parseFrameHeader,
  rawBlockCount,
  rawBlockLocation,
  SKIPPABLE_MAGIC_MAX,
  SKIPPABLE_MAGIC_MIN,
  writeBlockHeader,
} from './frame.js'
import {
  frameAt,
  parseSeekTable,
  parseSeekTableFooter,
  SEEK_TABLE_FOOTER_SIZE,
  seekTableSize,
  type LocatedFrame,
  type SeekTable,
} from './seek-table.js'
import {decompressFrame, loadZstdWasm, type ZstdWasm} from './wasm.js'

// Random access into a seekable zstd file (seekable-writer.ts), whole or split into parts: the seek table is read
// from the end and checked against the file, and a range of the decompressed stream is read by touching only
// the frames that cover it. Raw frames are read in place (their blocks sit at fixed offsets); compressed frames
// are decoded whole, and they are small (4 MiB from airpack's writer).

/** A compressed frame is decoded whole in memory; anything larger is refused rather than allocated. */
export const MAX_DECODED_FRAME = 64 * 1024 * 1024
/** Raw frames are read this many bytes at a time. */
const RAW_READ = 1024 * 1024
/**
 * The largest window `zstd -d` accepts without --long (ZSTD_WINDOWLOG_LIMIT_DEFAULT): a frame claiming more is not
 * read in place, since stock zstd would refuse what this reader accepted.
 */
const MAX_PLAIN_WINDOW = 2 ** 27
/** Frame headers read concurrently when a file is opened (checkFrameHeaders). */
const HEADER_READS_AT_ONCE = 32

export interface OpenSeekableOptions {
  /** How errors name the file (default: the first path's base name). */
  name?: string
  /** Read every frame's header at open and check it against the seek table (default true). */
  checkFrames?: boolean
}

function seekTableError(name: string, problem: string): IntegrityError {
  return new IntegrityError('SEEK_TABLE_INVALID', `${name}: ${problem}`, {
    hint: 'The file is truncated or was altered after it was written: copy it again from the original, or rebuild it.',
    details: {file: name, problem},
  })
}

function frameError(name: string, frame: LocatedFrame, problem: string): IntegrityError {
  return new IntegrityError(
    'FRAME_INVALID',
    `${name}: frame ${frame.index} (compressed bytes ${frame.compressedOffset}–${frame.compressedOffset + frame.compressedSize}): ${problem}`,
    {
      hint: 'The file is corrupt or was altered after it was written: copy it again from the original, or rebuild it.',
      details: {file: name, frame: frame.index, compressedOffset: frame.compressedOffset, problem},
    },
  )
}

/** True when the file (or the concatenation of `paths`) ends with a seek table footer: a format 2 bundle. */
export async function hasSeekTable(paths: string | readonly string[]): Promise<boolean> {
  const files = await ConcatenatedFiles.open(typeof paths === 'string' ? [paths] : paths)
  try {
    if (files.size < seekTableSize(0)) return false
    const footer = parseSeekTableFooter(await files.read(files.size - SEEK_TABLE_FOOTER_SIZE, SEEK_TABLE_FOOTER_SIZE))
    return !('problem' in footer)
  } finally {
    await files.close()
  }
}

interface FrameInfo {
  headerSize: number
  /** Its blocks are all Raw, at the fixed offsets of rawBlockLocation. */
  raw: boolean
}

/**
 * Where the bytes of a range of the stream sit in the file when every frame covering it is raw: from `start`, a
 * run of `segments` (kind, length) pairs: HASH bytes are the content, CHECK bytes are block headers that must equal
 * the next bytes of `expected`, SKIP bytes are frame headers (checked at open) or content outside the range. What a
 * worker thread needs to hash the range without a zstd decoder, or this reader.
 */
export interface RawLayout {
  start: number
  segments: number[]
  expected: Buffer
}

export const RAW_HASH = 0
export const RAW_CHECK = 1
export const RAW_SKIP = 2

export class SeekableReader {
  private readonly info = new Map<number, FrameInfo>()
  private decoded: {index: number; data: Buffer} | undefined

  private constructor(
    private readonly files: ConcatenatedFiles,
    readonly table: SeekTable,
    readonly name: string,
    private readonly zstd: ZstdWasm,
  ) {}

  /**
   * Opens a seekable file, or the parts of one in order. Throws IntegrityError (exit 5) naming what is wrong if
   * the seek table is missing, truncated or does not match the file.
   */
  static async open(paths: string | readonly string[], options: OpenSeekableOptions = {}): Promise<SeekableReader> {
    const list = typeof paths === 'string' ? [paths] : [...paths]
    const name = options.name ?? path.basename(list[0] ?? '')
    const files = await ConcatenatedFiles.open(list)
    try {
      const table = await readSeekTable(files, name)
      const reader = new SeekableReader(files, table, name, await loadZstdWasm())
      if (options.checkFrames ?? true) await reader.checkFrameHeaders()
      return reader
    } catch (error) {
      await files.close()
      throw error
    }
  }

  /** Size of the decompressed stream. */
  get size(): number {
    return this.table.decompressedSize
  }

  /** Size of the file (all parts), seek table included. */
  get fileSize(): number {
    return this.files.size
  }

  /** The files the stream is read from, in order, with where each starts in the whole. */
  get parts(): {path: string; start: number; size: number}[] {
    return this.files.parts
  }

  async close(): Promise<void> {
    await this.files.close()
  }

  /**
   * Checks that a frame with the recorded sizes starts where the seek table says each frame does. The headers are
   * read HEADER_READS_AT_ONCE at a time (one small read each: a bundle of thousands of entries opens in tens of
   * milliseconds, not hundreds); the first bad frame in file order is the one named.
   */
  async checkFrameHeaders(): Promise<void> {
    const frames = this.table.frames
    for (let from = 0; from < frames.length; from += HEADER_READS_AT_ONCE) {
      const batch = frames.slice(from, from + HEADER_READS_AT_ONCE)
      const results = await Promise.allSettled(batch.map((frame) => this.frameInfo(frame)))
      const failed = results.find((r) => r.status === 'rejected')
      if (failed) throw failed.reason
    }
  }

  /** `length` bytes of the decompressed stream from `offset`, in pieces, decoding only the frames that hold them. */
  async *read(offset: number, length: number): AsyncGenerator<Buffer> {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      throw new RangeError(
        `${this.name}: range of ${length} bytes at ${offset} is outside the ${this.size}-byte stream`,
      )
    }
    let at = offset
    const end = offset + length
    while (at < end) {
      const frame = frameAt(this.table, at)!
      const from = at - frame.decompressedOffset
      const to = Math.min(frame.decompressedSize, end - frame.decompressedOffset)
      yield* this.readFrame(frame, from, to)
      at = frame.decompressedOffset + to
    }
  }

  /** The same as read(), joined into one buffer: for small ranges (an inventory, a manifest). */
  async readBuffer(offset: number, length: number): Promise<Buffer> {
    const pieces: Buffer[] = []
    for await (const piece of this.read(offset, length)) pieces.push(piece)
    return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces)
  }

  /**
   * The file layout of stream bytes [offset, offset + length) when every frame holding them is raw and was checked
   * (the reader was opened with checkFrames); undefined otherwise (read() decodes such a range).
   */
  rawLayout(offset: number, length: number): RawLayout | undefined {
    if (length <= 0 || offset + length > this.size) return undefined
    const layout = new RawLayoutBuilder()
    const end = offset + length
    for (let at = offset; at < end;) {
      const frame = frameAt(this.table, at)!
      const info = this.info.get(frame.index)
      if (!info?.raw) return undefined
      const to = Math.min(end, frame.decompressedOffset + frame.decompressedSize)
      layout.frame(frame, info.headerSize, at - frame.decompressedOffset, to - frame.decompressedOffset)
      at = to
    }
    return layout.done()
  }

  private async frameInfo(frame: LocatedFrame): Promise<FrameInfo> {
    const known = this.info.get(frame.index)
    if (known) return known
    const head = await this.files.read(frame.compressedOffset, Math.min(frame.compressedSize, MAX_FRAME_HEADER_SIZE))
    if (head.length >= 4) {
      const magic = head.readUInt32LE(0)
      if (magic >= SKIPPABLE_MAGIC_MIN && magic <= SKIPPABLE_MAGIC_MAX) {
        // The format allows skippable frames among the data; they decompress to nothing.
        if (frame.decompressedSize !== 0)
          throw frameError(
            this.name,
            frame,
            `a skippable frame, but the seek table says it holds ${frame.decompressedSize} bytes`,
          )
        const info = {headerSize: 8, raw: false}
        this.info.set(frame.index, info)
        return info
      }
    }
    let header
    try {
      header = parseFrameHeader(head)
    } catch (error) {
      throw frameError(this.name, frame, `${(error as Error).message}: the seek table does not match the file`)
    }
    if (header.contentSize === undefined)
      throw frameError(this.name, frame, 'its header does not record its content size')
    if (header.contentSize !== frame.decompressedSize) {
      throw frameError(
        this.name,
        frame,
        `its header records ${header.contentSize} bytes of content, the seek table ${frame.decompressedSize}`,
      )
    }
    const rawLayoutSize = header.headerSize + rawBlockCount(header.contentSize) * BLOCK_HEADER_SIZE + header.contentSize
    const raw =
      !header.contentChecksum &&
      header.dictionaryId === 0 &&
      header.windowSize <= MAX_PLAIN_WINDOW &&
      frame.compressedSize === rawLayoutSize
    const info = {headerSize: header.headerSize, raw}
    this.info.set(frame.index, info)
    return info
  }

  private async *readFrame(frame: LocatedFrame, from: number, to: number): AsyncGenerator<Buffer> {
    if (from >= to) return
    const info = await this.frameInfo(frame)
    if (info.raw) {
      const pieces = await this.readRawBlocks(frame, info, from, from + Math.min(to - from, MAX_BLOCK_SIZE))
      if (pieces) {
        // The first block matched the raw layout; the rest of the frame is read the same way.
        yield* pieces
        let at = from + pieces.reduce((s, p) => s + p.length, 0)
        while (at < to) {
          const next = await this.readRawBlocks(frame, info, at, Math.min(to, at + RAW_READ))
          if (!next) throw frameError(this.name, frame, 'a block header does not match a frame of raw blocks')
          yield* next
          at += next.reduce((s, p) => s + p.length, 0)
        }
        return
      }
      // A frame whose size matches the raw layout by coincidence: decode it like any other.
    }
    yield (await this.decodeFrame(frame)).subarray(from, to)
  }

  /** Content bytes [from, to) of a raw frame, or undefined if a block header there is not the expected one. */
  private async readRawBlocks(
    frame: LocatedFrame,
    info: FrameInfo,
    from: number,
    to: number,
  ): Promise<Buffer[] | undefined> {
    const first = Math.floor(from / MAX_BLOCK_SIZE)
    const last = Math.floor((to - 1) / MAX_BLOCK_SIZE)
    const start = rawBlockLocation(frame.decompressedSize, info.headerSize, first)
    const end = rawBlockLocation(frame.decompressedSize, info.headerSize, last)
    const bytes = await this.files.read(
      frame.compressedOffset + start.offset,
      end.offset + BLOCK_HEADER_SIZE + end.size - start.offset,
    )
    const pieces: Buffer[] = []
    for (let k = first; k <= last; k++) {
      const loc = rawBlockLocation(frame.decompressedSize, info.headerSize, k)
      const at = loc.offset - start.offset
      const block = parseBlockHeader(bytes, at)
      if (block.type !== 'raw' || block.size !== loc.size || block.last !== loc.last) return undefined
      const blockStart = k * MAX_BLOCK_SIZE
      const lo = Math.max(from, blockStart) - blockStart
      const hi = Math.min(to, blockStart + loc.size) - blockStart
      pieces.push(bytes.subarray(at + BLOCK_HEADER_SIZE + lo, at + BLOCK_HEADER_SIZE + hi))
    }
    return pieces
  }

  private async decodeFrame(frame: LocatedFrame): Promise<Buffer> {
    if (this.decoded?.index === frame.index) return this.decoded.data
    if (frame.compressedSize > MAX_DECODED_FRAME || frame.decompressedSize > MAX_DECODED_FRAME) {
      throw frameError(
        this.name,
        frame,
        `a compressed frame of ${frame.decompressedSize} bytes, larger than a reader decodes in memory (${MAX_DECODED_FRAME})`,
      )
    }
    const bytes = await this.files.read(frame.compressedOffset, frame.compressedSize)
    let data: Buffer
    try {
      data = decompressFrame(this.zstd, bytes, frame.decompressedSize)
    } catch (error) {
      throw frameError(this.name, frame, (error as Error).message)
    }
    this.decoded = {index: frame.index, data}
    return data
  }
}

/** Accumulates a RawLayout frame by frame, merging neighbouring runs of one kind. */
class RawLayoutBuilder {
  private start: number | undefined
  private readonly segments: number[] = []
  private readonly headers: Buffer[] = []

  /** Content [from, to) of a raw frame whose header is `headerSize` bytes. */
  frame(frame: LocatedFrame, headerSize: number, from: number, to: number): void {
    const first = Math.floor(from / MAX_BLOCK_SIZE)
    const last = Math.floor((to - 1) / MAX_BLOCK_SIZE)
    const firstLoc = rawBlockLocation(frame.decompressedSize, headerSize, first)
    this.at(frame.compressedOffset + firstLoc.offset)
    for (let k = first; k <= last; k++) {
      const loc = rawBlockLocation(frame.decompressedSize, headerSize, k)
      const header = Buffer.alloc(BLOCK_HEADER_SIZE)
      writeBlockHeader(header, 0, loc.size, 'raw', loc.last)
      this.headers.push(header)
      this.add(RAW_CHECK, BLOCK_HEADER_SIZE)
      const blockStart = k * MAX_BLOCK_SIZE
      const lo = Math.max(from, blockStart) - blockStart
      const hi = Math.min(to, blockStart + loc.size) - blockStart
      this.add(RAW_SKIP, lo)
      this.add(RAW_HASH, hi - lo)
      this.add(RAW_SKIP, loc.size - hi)
    }
  }

  done(): RawLayout {
    while (this.segments.length > 0 && this.segments[this.segments.length - 2] === RAW_SKIP) this.segments.length -= 2
    return {start: this.start ?? 0, segments: this.segments, expected: Buffer.concat(this.headers)}
  }

  /** Starts the layout at file offset `offset`, or skips up to it from where the last frame ended. */
  private at(offset: number): void {
    if (this.start === undefined) this.start = offset
    else this.add(RAW_SKIP, offset - this.end())
  }

  private end(): number {
    let n = this.start ?? 0
    for (let i = 1; i < this.segments.length; i += 2) n += this.segments[i]
    return n
  }

  private add(kind: number, length: number): void {
    if (length <= 0) return
    const n = this.segments.length
    if (n > 0 && this.segments[n - 2] === kind) this.segments[n - 1] += length
    else this.segments.push(kind, length)
  }
}

/** Reads and validates the seek table at the end of `files`. */
async function readSeekTable(files: ConcatenatedFiles, name: string): Promise<SeekTable> {
  if (files.size < seekTableSize(0))
    throw seekTableError(name, `is ${files.size} bytes, too short to hold a seek table: truncated`)
  const footer = parseSeekTableFooter(await files.read(files.size - SEEK_TABLE_FOOTER_SIZE, SEEK_TABLE_FOOTER_SIZE))
  if ('problem' in footer) throw seekTableError(name, footer.problem)
  const size = seekTableSize(footer.frameCount, footer.checksums)
  if (size > files.size) {
    throw seekTableError(
      name,
      `seek table claims ${footer.frameCount} frames (${size} bytes) but the file has only ${files.size} bytes: truncated or tampered`,
    )
  }
  try {
    return parseSeekTable(await files.read(files.size - size, size), files.size)
  } catch (error) {
    throw seekTableError(name, (error as Error).message)
  }
}
