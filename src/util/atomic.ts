import {randomBytes} from 'node:crypto'
import {mkdir, open, rename, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'

// A file appears under its final name only when it is complete: write to a hidden temporary name in the same
// directory (so rename is atomic on one filesystem), fsync, then rename. A crash leaves only `.NAME.*.partial`.

export function temporaryNameFor(finalPath: string): string {
  const dir = path.dirname(finalPath)
  return path.join(dir, `.${path.basename(finalPath)}.${process.pid}.${randomBytes(4).toString('hex')}.partial`)
}

export async function writeFileAtomic(finalPath: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(finalPath), {recursive: true})
  const tmp = temporaryNameFor(finalPath)
  try {
    await writeFile(tmp, data)
    await fsyncPath(tmp)
    await rename(tmp, finalPath)
  } catch (error) {
    await rm(tmp, {force: true})
    throw error
  }
}

/**
 * For outputs written by a stream or a child process: hands out the temporary path, then either publishes it
 * under the final name or removes it. Callers must call exactly one of commit() or abort().
 */
export interface AtomicOutput {
  readonly finalPath: string
  readonly tmpPath: string
  commit(): Promise<void>
  abort(): Promise<void>
}

export async function atomicOutput(finalPath: string): Promise<AtomicOutput> {
  await mkdir(path.dirname(finalPath), {recursive: true})
  const tmpPath = temporaryNameFor(finalPath)
  pendingOutputs.add(tmpPath)
  return {
    finalPath,
    tmpPath,
    async commit() {
      await fsyncPath(tmpPath)
      await rename(tmpPath, finalPath)
      pendingOutputs.delete(tmpPath)
    },
    async abort() {
      await rm(tmpPath, {force: true, recursive: true})
      pendingOutputs.delete(tmpPath)
    },
  }
}

// Temporary outputs still open; removed synchronously on SIGINT/SIGTERM so an interrupted build leaves nothing
// that looks finished (and, as far as possible, nothing at all).
const pendingOutputs = new Set<string>()
export function pendingTemporaryOutputs(): string[] {
  return [...pendingOutputs]
}

export async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
