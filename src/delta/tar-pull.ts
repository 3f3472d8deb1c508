import {TarParser, type TarEntryHeader} from '../bundle/tar.js'

// A tar read entry by entry at the consumer's pace, over a stream of chunks (src/bundle/decompress.ts): what lets
// `bundle patch` and `verify --base` walk a base and a delta side by side, in digest order, without holding either.
// The push parser is fed one chunk whenever the consumer wants more than is queued, so at most one chunk's
// entries wait here.

type Item = {header: TarEntryHeader} | {data: Buffer} | {end: true}

export class TarPuller {
  private readonly queue: Item[] = []
  private readonly parser: TarParser
  private readonly chunks: AsyncIterator<Buffer>
  private inEntry = false
  private finished = false

  constructor(
    chunks: AsyncIterable<Buffer>,
    /** Every chunk of the tar, in order (for a whole-stream hash). */
    private readonly onChunk?: (chunk: Buffer) => Promise<void> | undefined,
  ) {
    this.chunks = chunks[Symbol.asyncIterator]()
    this.parser = new TarParser((header) => {
      this.queue.push({header})
      return {data: (data) => void this.queue.push({data}), end: () => void this.queue.push({end: true})}
    })
  }

  private async pull(): Promise<Item | undefined> {
    while (this.queue.length === 0) {
      if (this.finished) return undefined
      const next = await this.chunks.next()
      if (next.done) {
        this.finished = true
        this.parser.end()
        continue
      }
      await this.onChunk?.(next.value)
      this.parser.push(next.value)
    }
    return this.queue.shift()
  }

  /** The next entry's header (the rest of the current entry is skipped), or undefined at the end of the tar. */
  async next(): Promise<TarEntryHeader | undefined> {
    for (;;) {
      const item = await this.pull()
      if (!item) return undefined
      if ('header' in item) {
        this.inEntry = true
        return item.header
      }
      if ('end' in item) this.inEntry = false
    }
  }

  /** The current entry's bytes. */
  async *body(): AsyncGenerator<Buffer> {
    while (this.inEntry) {
      const item = await this.pull()
      if (!item) return
      if ('data' in item) yield item.data
      else if ('end' in item) this.inEntry = false
      else throw new Error('tar entry ended without its end marker')
    }
  }

  /** Reads (and discards) everything left: the whole-stream hash then covers the whole tar. */
  async drain(): Promise<void> {
    while (await this.pull());
  }

  /** Stop reading (leaves the source iterator, which stops its decompressor). */
  async close(): Promise<void> {
    await this.chunks.return?.()
  }
}
