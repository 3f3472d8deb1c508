import type {ResultPromise} from 'execa'
import type {Readable, Writable} from 'node:stream'

import {UsageError} from '../errors.js'

// zstd runs as a child process (Debian's zstd CLI): multi-threaded, streaming, and the fastest option measured
// (ecosystem.md §3). Input is always fed through stdin: zstd records the content size in the frame header for
// file input, so stdin keeps the output identical whatever the file system. -T0 and -T1/-T2 give identical
// bytes, so the thread count never changes a bundle.
//
// execa is imported on first use, not at load: it costs about 0.1 s of start-up (a hundred modules), and most runs
// never start zstd (format 2 compresses and reads in this process).
async function loadExeca() {
  return (await import('execa')).execa
}

const INSTALL_HINT =
  'Install the zstd command-line tool: `apt-get install zstd` (Debian/Ubuntu), `dnf install zstd`, or `brew install zstd`.'

export function zstdMissing(cause?: unknown): UsageError {
  return new UsageError(
    'ZSTD_MISSING',
    'the `zstd` program was not found on PATH; airpack needs it to compress and read bundles',
    {
      hint: INSTALL_HINT,
      cause,
    },
  )
}

function isNotFound(error: unknown): boolean {
  const e = error as {code?: string; errno?: string}
  return e?.code === 'ENOENT' || e?.errno === 'ENOENT'
}

let cachedVersion: string | undefined

/** `1.5.4` for Debian 12's zstd. Recorded in bundle.json because another zstd may compress differently. */
export async function zstdVersion(): Promise<string> {
  if (cachedVersion) return cachedVersion
  try {
    const execa = await loadExeca()
    const {stdout} = await execa('zstd', ['-V'], {reject: true})
    const match = /v(\d+\.\d+\.\d+)/.exec(String(stdout))
    if (!match) throw new Error(`unexpected \`zstd -V\` output: ${String(stdout)}`)
    cachedVersion = match[1]
    return cachedVersion
  } catch (error) {
    if (isNotFound(error)) throw zstdMissing(error)
    throw error
  }
}

export interface ZstdProcess {
  stdin: Writable
  /** Present when no output file was given (the compressed or decompressed bytes). */
  stdout?: Readable
  /** Resolves when the child exits 0; rejects with its stderr otherwise. */
  done: Promise<void>
  /** The error of a write into stdin (EPIPE when zstd stopped early: its exit status tells the real story). */
  readonly stdinError: unknown
  kill(): void
  /** Kill the child and wait for it: its own failure, if it had one (what explains a broken pipe on our side). */
  stop(): Promise<unknown>
}

// Children still running, so that an interrupted build can stop them at once (they would otherwise keep
// compressing into a file that no longer exists).
const running = new Set<ResultPromise>()

export function killAllZstd(): void {
  for (const child of running) child.kill('SIGKILL')
}

/** zstd with `args`, bytes in through stdin; out through stdout unless `toFile` (then zstd writes the file itself). */
async function spawnZstd(args: string[], what: string, toFile: boolean): Promise<ZstdProcess> {
  const execa = await loadExeca()
  const child = execa('zstd', args, {
    stdin: 'pipe',
    stdout: toFile ? 'ignore' : 'pipe',
    stderr: 'pipe',
    buffer: {stdout: false, stderr: true},
    reject: true,
  })
  running.add(child)
  const done = (async () => {
    try {
      await child
    } catch (error) {
      if (isNotFound(error)) throw zstdMissing(error)
      const e = error as {stderr?: string; isTerminated?: boolean; signal?: string; shortMessage?: string}
      const detail = String(e.stderr ?? '').trim() || e.shortMessage || String(error)
      throw new Error(`zstd ${what} failed: ${detail}`, {cause: error})
    } finally {
      running.delete(child)
    }
  })()
  // Attach a handler now so an early failure is not an unhandled rejection before a caller awaits it.
  done.catch(() => {})
  let stdinError: unknown
  child.stdin!.on('error', (error) => (stdinError = error))
  return {
    stdin: child.stdin!,
    stdout: child.stdout ?? undefined,
    done,
    get stdinError() {
      return stdinError
    },
    kill() {
      child.kill('SIGKILL')
    },
    stop() {
      child.kill('SIGKILL')
      return done.then(
        () => undefined,
        (e: unknown) => e,
      )
    },
  }
}

/** Compress stdin at `level` into `outputFile` (or to stdout when no file is given). */
export function startCompressor(options: {level: number; outputFile?: string}): Promise<ZstdProcess> {
  const args = ['-T0', `-${options.level}`, '-q', '-c']
  if (options.level > 19) args.unshift('--ultra')
  if (options.outputFile) args.splice(args.indexOf('-c'), 1, '-f', '-o', options.outputFile)
  return spawnZstd(args, 'compression', options.outputFile !== undefined)
}

/** Decompress whatever is written to stdin; the tar comes out of stdout. */
export function startDecompressor(): Promise<ZstdProcess> {
  return spawnZstd(['-d', '-c', '-q'], 'decompression', false)
}
