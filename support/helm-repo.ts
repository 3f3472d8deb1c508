// A classic Helm chart repository over loopback HTTP (node:http): `index.yaml` plus chart archives, the way
// `helm repo index` lays them out, with switches for the faults tests need (HTML answers, wrong digests,
// redirects to another origin, Basic auth).

import {gzipSync} from 'node:zlib'
import http from 'node:http'
import {stringify} from 'yaml'

import {blobOf, tarOf, type Blob} from './seed.js'

export interface ChartSpec {
  name: string
  version: string
  appVersion?: string
  /** Extra files under `<name>/`. */
  files?: Record<string, string>
  /** `<name>/values.yaml` (default: an nginx:1.27 image). */
  values?: string
}

/** A chart archive as `helm package` makes it: `<name>/Chart.yaml`, `<name>/values.yaml`, … */
export function chartArchive(spec: ChartSpec): Blob {
  const chartYaml = stringify({
    apiVersion: 'v2',
    name: spec.name,
    version: spec.version,
    ...(spec.appVersion ? {appVersion: spec.appVersion} : {}),
    description: `${spec.name} test chart`,
  })
  const files: Record<string, string> = {
    [`${spec.name}/Chart.yaml`]: chartYaml,
    [`${spec.name}/values.yaml`]: spec.values ?? 'image:\n  repository: nginx\n  tag: "1.27"\n',
  }
  for (const [k, v] of Object.entries(spec.files ?? {})) files[`${spec.name}/${k}`] = v
  return blobOf(gzipSync(tarOf(files), {level: 1}))
}

export interface HelmRepoOptions {
  charts: ChartSpec[]
  /** Put `digest:` into index.yaml (default true). */
  digests?: boolean
  /** Archive URLs in the index: relative (`charts/x.tgz`, default) or absolute. */
  absoluteUrls?: boolean
  /** Serve an HTML page for every request. */
  html?: boolean
  /** Basic auth required. */
  auth?: {username: string; password: string}
  /** Write a wrong digest for this chart name into the index. */
  wrongDigestFor?: string
}

export interface HelmRepo {
  url: string
  archives: Map<string, Blob>
  /** Request paths, with the Authorization header presence. */
  requests: {path: string; authorized: boolean}[]
  stop(): Promise<void>
}

export async function startHelmRepo(options: HelmRepoOptions): Promise<HelmRepo> {
  const archives = new Map<string, Blob>()
  for (const c of options.charts) archives.set(`/charts/${c.name}-${c.version}.tgz`, chartArchive(c))
  const requests: HelmRepo['requests'] = []
  let base = ''
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    requests.push({path, authorized: Boolean(req.headers.authorization)})
    if (options.html) {
      res.writeHead(200, {'content-type': 'text/html; charset=utf-8'})
      res.end('<!doctype html><html><body>Please sign in</body></html>')
      return
    }
    if (options.auth) {
      const want = 'Basic ' + Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')
      if (req.headers.authorization !== want) {
        res.writeHead(401, {'www-authenticate': 'Basic realm="charts"'})
        res.end()
        return
      }
    }
    if (path === '/index.yaml') {
      const entries: Record<string, unknown[]> = {}
      for (const c of options.charts) {
        const archive = archives.get(`/charts/${c.name}-${c.version}.tgz`)!
        const digest = options.wrongDigestFor === c.name ? 'f'.repeat(64) : archive.digest.slice(7)
        ;(entries[c.name] ??= []).push({
          apiVersion: 'v2',
          name: c.name,
          version: c.version,
          urls: [
            options.absoluteUrls ? `${base}/charts/${c.name}-${c.version}.tgz` : `charts/${c.name}-${c.version}.tgz`,
          ],
          ...(options.digests === false ? {} : {digest}),
          created: '2024-01-01T00:00:00Z',
        })
      }
      res.writeHead(200, {'content-type': 'application/x-yaml'})
      res.end(stringify({apiVersion: 'v1', entries, generated: '2024-01-01T00:00:00Z'}))
      return
    }
    const archive = archives.get(path)
    if (archive) {
      res.writeHead(200, {'content-type': 'application/gzip', 'content-length': archive.size})
      res.end(archive.bytes)
      return
    }
    res.writeHead(404)
    res.end('not found')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as import('node:net').AddressInfo
  base = `http://127.0.0.1:${port}`
  return {
    url: base,
    archives,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
