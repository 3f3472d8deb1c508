import {open, type FileHandle} from 'node:fs/promises'

// Reads byte ranges of one logical file that may be stored as several files laid end to end (the parts of a
// split bundle), without joining them.

export class ConcatenatedFiles {
  private constructor(
    private readonly files: {path: string; handle: FileHandle; start: number; size: number}[],
    readonly size: number,
  ) {}

  /** Opens `paths` in order; their concatenation is the file. */
  static async open(paths: readonly string[]): Promise<ConcatenatedFiles> {
    const files: {path: string; handle: FileHandle; start: number; size: number}[] = []
    let start = 0
    try {
      for (const p of paths) {
        const handle = await open(p, 'r')
        files.push({path: p, handle, start, size: 0})
        const size = (await handle.stat()).size
        files[files.length - 1].size = size
        start += size
      }
    } catch (error) {
      for (const f of files) await f.handle.close().catch(() => {})
      throw error
    }
    return new ConcatenatedFiles(files, start)
  }

  /** Every file with where it starts in the whole. */
  get parts(): {path: string; start: number; size: number}[] {
    return this.files.map((f) => ({path: f.path, start: f.start, size: f.size}))
  }

  /** Exactly `length` bytes from `offset`; throws if the files end (or shrank) before. */
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size)
      throw new Error(`read of ${length} bytes at ${offset} is outside the ${this.size}-byte file`)
    const out = Buffer.allocUnsafe(length)
    let done = 0
    for (const f of this.files) {
      if (done === length) break
      const at = offset + done
      if (at >= f.start + f.size || f.size === 0) continue
      const want = Math.min(length - done, f.start + f.size - at)
      let got = 0
      while (got < want) {
        const {bytesRead} = await f.handle.read(out, done + got, want - got, at - f.start + got)
        if (bytesRead === 0)
          throw new Error(`${f.path} ended at ${at - f.start + got} bytes while reading; it was ${f.size} when opened`)
        got += bytesRead
      }
      done += want
    }
    return out
  }

  async close(): Promise<void> {
    for (const f of this.files) await f.handle.close().catch(() => {})
  }
}
