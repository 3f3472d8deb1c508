// A real OCI registry for integration tests: Debian's `docker-registry` (CNCF distribution 2.8), started on a
// free loopback port with its own storage directory, and stopped afterwards. Optional TLS (a throwaway CA made
// with openssl), htpasswd basic auth, token auth against an issuer the test provides, or pull-through cache mode.

import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {Agent} from 'undici'

export interface RegistryOptions {
  tls?: boolean
  /** username → password; enables htpasswd basic auth. */
  htpasswd?: Record<string, string>
  /** Token auth: the registry trusts JWTs signed by `rootCertPem`'s key, issued at `realm`. */
  token?: {realm: string; service: string; issuer: string; rootCertPem: string}
  /** Pull-through cache mode (`proxy.remoteurl`): a read-only mirror of the registry at this URL. */
  proxy?: {remoteurl: string}
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` — the host part of image references. */
  host: string
  /** `http://127.0.0.1:PORT` or `https://…`. */
  url: string
  /** With tls: PEM of the CA that signed the server certificate, and its file. */
  caPem?: string
  caFile?: string
  dir: string
  stop(): Promise<void>
  /** fetch() against this registry (trusts its CA; sends basic auth when htpasswd is set and `auth` given). */
  fetch(pathname: string, init?: RequestInit & {auth?: {username: string; password: string}}): Promise<Response>
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** A CA and a server certificate for 127.0.0.1/localhost, made with stock openssl. */
export function makeTlsMaterial(dir: string): {caFile: string; caPem: string; certFile: string; keyFile: string} {
  const run = (args: string[]) => execFileSync('openssl', args, {cwd: dir, stdio: 'pipe'})
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=airpack test CA',
  ])
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'])
  execFileSync(
    'bash',
    ['-c', 'printf "subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n" > ext.cnf'],
    {cwd: dir},
  )
  run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
  ])
  const caFile = path.join(dir, 'ca.pem')
  return {
    caFile,
    caPem: execFileSync('cat', [caFile]).toString(),
    certFile: path.join(dir, 'server.pem'),
    keyFile: path.join(dir, 'server.key'),
  }
}

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-registry-'))
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const lines = [
    'version: 0.1',
    'log: {level: error, accesslog: {disabled: true}}',
    'storage:',
    `  filesystem: {rootdirectory: ${JSON.stringify(path.join(dir, 'storage'))}}`,
    '  delete: {enabled: true}',
    '  cache: {}',
    'http:',
    `  addr: ${host}`,
    `  secret: airpack-test-secret`,
  ]
  let tls: ReturnType<typeof makeTlsMaterial> | undefined
  if (options.tls) {
    tls = makeTlsMaterial(dir)
    lines.push('  tls:', `    certificate: ${JSON.stringify(tls.certFile)}`, `    key: ${JSON.stringify(tls.keyFile)}`)
  }
  if (options.htpasswd) {
    const file = path.join(dir, 'htpasswd')
    const entries = Object.entries(options.htpasswd).map(([user, pass]) =>
      execFileSync('htpasswd', ['-nbB', user, pass]).toString().trim(),
    )
    await writeFile(file, entries.join('\n') + '\n')
    lines.push('auth:', '  htpasswd:', '    realm: airpack-test', `    path: ${JSON.stringify(file)}`)
  } else if (options.token) {
    const bundle = path.join(dir, 'token-root.pem')
    await writeFile(bundle, options.token.rootCertPem)
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${JSON.stringify(options.token.realm)}`,
      `    service: ${JSON.stringify(options.token.service)}`,
      `    issuer: ${JSON.stringify(options.token.issuer)}`,
      `    rootcertbundle: ${JSON.stringify(bundle)}`,
    )
  }
  if (options.proxy) lines.push('proxy:', `  remoteurl: ${JSON.stringify(options.proxy.remoteurl)}`)
  const configFile = path.join(dir, 'config.yml')
  await writeFile(configFile, lines.join('\n') + '\n')

  const child: ChildProcess = spawn('docker-registry', ['serve', configFile], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr?.on('data', (d) => (stderr += d.toString()))
  const url = `${tls ? 'https' : 'http'}://${host}`
  const dispatcher = tls ? new Agent({connect: {ca: tls.caPem}}) : undefined

  const registryFetch: TestRegistry['fetch'] = (pathname, init = {}) => {
    const headers = new Headers(init.headers)
    if (init.auth)
      headers.set(
        'authorization',
        'Basic ' + Buffer.from(`${init.auth.username}:${init.auth.password}`).toString('base64'),
      )
    return fetch(url + pathname, {...init, headers, ...(dispatcher ? {dispatcher} : {})} as RequestInit)
  }

  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited early (${child.exitCode}): ${stderr}`)
    try {
      const res = await registryFetch('/v2/')
      await res.arrayBuffer()
      if (res.status === 200 || res.status === 401) break
    } catch {}
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`docker-registry did not answer on ${url} within 15 s: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }

  return {
    host,
    url,
    dir,
    ...(tls ? {caPem: tls.caPem, caFile: tls.caFile} : {}),
    fetch: registryFetch,
    async stop() {
      await stopChild(child)
      await dispatcher?.close()
      await rm(dir, {recursive: true, force: true})
    },
  }
}

/** Stops a server process the test started: SIGTERM, then SIGKILL if it has not exited within 3 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
  if (child.exitCode === null) child.kill('SIGKILL')
}
