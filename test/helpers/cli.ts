// Runs the built CLI (`bin/run.js` over `dist/`, built by `npm test`'s pretest) as a user would, and returns
// its exit code and both streams. End-to-end tests assert on these, never on internals.

import {execa} from 'execa'
import {randomBytes} from 'node:crypto'
import {readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(PROJECT_ROOT, 'bin', 'run.js')

export interface CliResult {
  exitCode: number
  stdout: string
  stderr: string
  /** stdout parsed as the one JSON document `--json` promises (throws if it is not exactly that). */
  json<T = any>(): T
  /** With `measureRss`: the CLI process's peak resident set in MiB, as GNU time measured it. */
  peakRssMiB?: number
}

export async function runCli(
  args: string[],
  options: {
    cwd?: string
    env?: Record<string, string | undefined>
    input?: string
    timeout?: number
    measureRss?: boolean
  } = {},
): Promise<CliResult> {
  // GNU time (Debian's `time`, installed by scripts/install-system-deps.sh) reports the child's peak RSS in KiB.
  const rssFile = options.measureRss
    ? path.join(os.tmpdir(), `airpack-rss-${process.pid}-${randomBytes(4).toString('hex')}`)
    : undefined
  const [command, commandArgs] = rssFile
    ? ['/usr/bin/time', ['-f', '%M', '-o', rssFile, 'node', BIN, ...args]]
    : ['node', [BIN, ...args]]
  const result = await execa(command, commandArgs, {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: {NO_COLOR: '1', DEBUG: undefined, ...options.env},
    extendEnv: true,
    reject: false,
    input: options.input,
    stdin: options.input === undefined ? 'ignore' : undefined,
    timeout: options.timeout ?? 120_000,
    stripFinalNewline: false,
  })
  const stdout = String(result.stdout ?? '')
  let peakRssMiB: number | undefined
  if (rssFile) {
    const text = await readFile(rssFile, 'utf8').catch(() => '')
    await rm(rssFile, {force: true})
    // GNU time writes "Command exited with non-zero status N" before the figure when the CLI fails.
    const kib = Number(text.trim().split('\n').at(-1))
    if (!Number.isFinite(kib) || kib <= 0) throw new Error(`GNU time reported no peak RSS: ${JSON.stringify(text)}`)
    peakRssMiB = kib / 1024
  }
  return {
    peakRssMiB,
    exitCode: result.exitCode ?? -1,
    stdout,
    stderr: String(result.stderr ?? ''),
    json() {
      return JSON.parse(stdout)
    },
  }
}
