// Runs the built CLI (`bin/run.js` over `dist/`, built by `npm test`'s pretest) as a user would, and returns
// its exit code and both streams. End-to-end tests assert on these, never on internals.

import {execa} from 'execa'
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
}

export async function runCli(
  args: string[],
  options: {cwd?: string; env?: Record<string, string | undefined>; input?: string; timeout?: number} = {},
): Promise<CliResult> {
  const result = await execa('node', [BIN, ...args], {
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
  return {
    exitCode: result.exitCode ?? -1,
    stdout,
    stderr: String(result.stderr ?? ''),
    json() {
      return JSON.parse(stdout)
    },
  }
}
