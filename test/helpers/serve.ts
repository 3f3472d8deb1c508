// `airpack bundle serve` as a child process on a free loopback port, the way a site runs it, for the tests that
// read from it (skopeo, a pull-through registry, containerd).

import {spawn, type ChildProcess} from 'node:child_process'
import path from 'node:path'

import {PROJECT_ROOT} from './cli.js'
import {freePort, stopChild} from './registry.js'

export interface ServedBundle {
  /** `127.0.0.1:PORT` */
  host: string
  url: string
  child: ChildProcess
  stdout(): string
  stderr(): string
  /** SIGTERM, and the exit code it ended with. */
  stop(): Promise<number | null>
}

export async function serveBundle(bundle: string, extra: string[] = [], scheme = 'http'): Promise<ServedBundle> {
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const child = spawn(
    'node',
    [path.join(PROJECT_ROOT, 'bin', 'run.js'), 'bundle', 'serve', bundle, '--listen', host, ...extra],
    {
      env: {...process.env, NO_COLOR: '1', DEBUG: undefined},
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  let err = ''
  child.stdout!.on('data', (d) => (out += d.toString()))
  child.stderr!.on('data', (d) => (err += d.toString()))
  const url = `${scheme}://${host}`
  const deadline = Date.now() + 30_000
  // Ready once it printed its URL (stdout is written after the socket listens).
  while (!out.includes(host) || (scheme === 'http' && !(await answers(url)))) {
    if (child.exitCode !== null) throw new Error(`bundle serve exited early (${child.exitCode}): ${err}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`bundle serve did not answer on ${url} within 30 s: ${err}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    host,
    url,
    child,
    stdout: () => out,
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null) return child.exitCode
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
      child.kill('SIGTERM')
      const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 8000))])
      if (child.exitCode === null) await stopChild(child)
      return code
    },
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`)
    await res.arrayBuffer()
    return res.status === 200
  } catch {
    return false
  }
}
