// A real forward proxy for the proxy tests: Debian's `tinyproxy`, started on a free loopback port with its own
// config (Basic auth optional) and log file. The log is the evidence that a request went through it: tinyproxy
// writes one `Request (file descriptor N): GET http://host/path HTTP/1.1` line per plain request and one
// `Request (…): CONNECT host:port HTTP/1.1` line per tunnel.

import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import {freePort, stopChild} from './registry.js'

export interface TestHttpProxy {
  /** `http://[user:pass@]127.0.0.1:PORT` — the value for HTTP(S)_PROXY. */
  url: string
  host: string
  /** Request lines tinyproxy logged so far (`GET http://…`, `CONNECT host:port`), in order. */
  requests(): Promise<string[]>
  stop(): Promise<void>
}

export async function startHttpProxy(
  options: {basicAuth?: {username: string; password: string}} = {},
): Promise<TestHttpProxy> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-tinyproxy-'))
  const port = await freePort()
  const log = path.join(dir, 'tinyproxy.log')
  const lines = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Allow 127.0.0.1',
    'Timeout 60',
    'MaxClients 64',
    `LogFile "${log}"`,
    'LogLevel Connect',
    `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
    'DisableViaHeader Yes',
    ...(options.basicAuth ? [`BasicAuth ${options.basicAuth.username} ${options.basicAuth.password}`] : []),
  ]
  const config = path.join(dir, 'tinyproxy.conf')
  await writeFile(config, lines.join('\n') + '\n')
  const child: ChildProcess = spawn('tinyproxy', ['-d', '-c', config], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr?.on('data', (d) => (stderr += d.toString()))
  const host = `127.0.0.1:${port}`
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tinyproxy exited early (${child.exitCode}): ${stderr}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (up) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`tinyproxy did not listen on ${host} within 10 s: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  const auth = options.basicAuth
    ? `${encodeURIComponent(options.basicAuth.username)}:${encodeURIComponent(options.basicAuth.password)}@`
    : ''
  return {
    url: `http://${auth}${host}`,
    host,
    async requests() {
      const text = await readFile(log, 'utf8').catch(() => '')
      return [...text.matchAll(/Request \(file descriptor \d+\): (\S+ \S+) HTTP\/1\.[01]/g)].map((m) => m[1]!)
    },
    async stop() {
      await stopChild(child)
      await rm(dir, {recursive: true, force: true})
    },
  }
}
