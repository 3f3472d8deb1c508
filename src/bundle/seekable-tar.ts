import type {FileHandle} from 'node:fs/promises'

import type {SeekableWriter} from '../zstd/seekable-writer.js'
import {frameModeFor, TAR_END_LENGTH} from './framing.js'
import {BLOCK, encodeFileHeader, padding, type HeaderOptions} from './tar.js'

// The tar of a format 2 bundle written straight into the seekable frame writer: every entry is one frame group
// (framing.ts), the same bytes TarWriter writes, but nothing is hashed here (format 2's identity is the sha256 of
// bundle.json, whose entries were hashed when they were made or verified when they entered the cache) and a blob
// goes from its cache file into raw frames with one read and one write per MiB, never through a stream.

export class SeekableTarWriter {
  private written = 0

  constructor(
    private readonly frames: SeekableWriter,
    private readonly options: HeaderOptions,
  ) {}

  /** Bytes of the tar written so far. */
  get bytesWritten(): number {
    return this.written
  }

  /** An entry whose bytes are in memory; `mediaType` (of a blob) decides its frames. */
  async addBuffer(path: string, data: Buffer, mediaType?: string): Promise<void> {
    await this.begin(path, data.length, mediaType)
    await this.put(data)
    await this.end(data.length)
  }

  /**
   * An entry of `size` bytes read from `file` (a cache blob, open for reading). The file must be exactly `size`
   * bytes: the cache checked it, and a file that is not is refused here rather than framed short or long.
   */
  async addFile(path: string, size: number, file: FileHandle, mediaType?: string): Promise<void> {
    const actual = (await file.stat()).size
    if (actual !== size)
      throw new Error(`${path}: its source file is ${actual} bytes, the entry's recorded size ${size}`)
    await this.begin(path, size, mediaType)
    try {
      await this.frames.writeFile(file, size)
    } catch (error) {
      throw new Error(`${path}: ${(error as Error).message}`, {cause: error})
    }
    this.written += size
    await this.end(size)
  }

  /**
   * An entry of `size` bytes still being appended to `file` (a blob the fetch is downloading, see follow.ts):
   * framed in steps, each up to the bytes `upTo(position)` says are written. Its errors are passed on as they are.
   */
  async addGrowingFile(
    path: string,
    size: number,
    file: FileHandle,
    upTo: (position: number) => Promise<number>,
    mediaType?: string,
  ): Promise<void> {
    await this.begin(path, size, mediaType)
    let position = 0
    while (position < size) {
      const end = Math.min(size, await upTo(position))
      await this.frames.writeFile(file, end - position, position)
      position = end
    }
    this.written += size
    await this.end(size)
  }

  /** An entry of `size` bytes from a stream (`bundle patch`), each chunk also handed to `onChunk`. */
  async addStream(
    path: string,
    size: number,
    body: AsyncIterable<Buffer>,
    mediaType?: string,
    onChunk?: (chunk: Buffer) => void,
  ): Promise<void> {
    await this.begin(path, size, mediaType)
    let seen = 0
    for await (const chunk of body) {
      seen += chunk.length
      if (seen > size) throw new Error(`${path}: source is longer than its recorded ${size} bytes`)
      onChunk?.(chunk)
      await this.put(chunk)
    }
    if (seen !== size) throw new Error(`${path}: source ended after ${seen} of ${size} bytes`)
    await this.end(size)
  }

  /** The two zero blocks that end the tar, as the last frame group; returns the tar's size. */
  async finish(): Promise<number> {
    this.frames.beginSegment('compressed', TAR_END_LENGTH)
    await this.put(Buffer.alloc(2 * BLOCK))
    return this.written
  }

  /** A new frame group for the entry, and its header. */
  private async begin(path: string, size: number, mediaType: string | undefined): Promise<void> {
    const header = encodeFileHeader(path, size, this.options)
    this.frames.beginSegment(frameModeFor(mediaType), header.length + size + padding(size).length)
    await this.put(header)
  }

  private async end(size: number): Promise<void> {
    await this.put(padding(size))
  }

  private async put(bytes: Buffer): Promise<void> {
    if (bytes.length === 0) return
    this.written += bytes.length
    if (!this.frames.write(bytes)) await this.frames.waitForRoom()
  }
}
