import {randomBytes} from 'node:crypto'
import {mkdir, open, readdir, rename, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'

// A file appears under its final name only when it is complete: write to a hidden temporary name in the same
// directory (so rename is atomic on one filesystem), fsync, then rename. A crash leaves only `.NAME.*.partial`.

export function temporaryNameFor(finalPath: string): string {
  const dir = path.dirname(finalPath)
  return path.join(dir, `.${path.basename(finalPath)}.${process.pid}.${randomBytes(4).toString('hex')}.partial`)
}

const TEMPORARY_NAME = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.partial$/

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it runs under another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

/**
 * Removes the temporary outputs (temporaryNameFor) of files named `STEM.*` or `STEM-*` in `dir` that a process no
 * longer running left behind: a build killed without warning (SIGKILL, power loss) runs no clean-up, and its half
 * bundle would stay hidden on the stick, taking the space the next build needs. A build still running keeps its
 * own (the pid in the name). Returns the names removed.
 */
export async function removeAbandonedTemporaries(dir: string, stem: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[])
  const removed: string[] = []
  for (const name of names) {
    const m = TEMPORARY_NAME.exec(name)
    if (!m || !(m[1].startsWith(`${stem}.`) || m[1].startsWith(`${stem}-`))) continue
    if (processRuns(Number(m[2]))) continue
    await rm(path.join(dir, name), {force: true, recursive: true})
    removed.push(name)
  }
  return removed
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
