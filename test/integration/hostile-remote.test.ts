// Hostile servers (issue 17): chart archives, repository indexes and token services that answer far more bytes than
// any real one. Each is refused with exit 4, a message naming the artifact and the limit (with the variable that
// raises it), and a peak RSS of the CLI process far below 300 MB, measured by GNU time. Inputs are built on the fly;
// where a budget is large by default, the test lowers it through its environment variable (as Helm's tests do) so
// the hostile input stays small. bench/hostile.ts repeats the rows at their real sizes.

import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {gzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'
import {stringify} from 'yaml'

import {addonProfile} from '../fixtures/bad/corpus.js'
import {runCli} from '../helpers/cli.js'
import {tarOf} from '../helpers/seed.js'

vi.setConfig({testTimeout: 120_000, hookTimeout: 60_000})

const MiB = 1024 * 1024
const RSS_BOUND_MIB = 300
const STACK = /^\s+at .+:\d+:\d+\)?$/m

const chartYaml = (name: string) => `apiVersion: v2\nname: ${name}\nversion: 1.0.0\n`

/** `helm package` layout: `<name>/…` entries, gzip. */
function chartTgz(files: Record<string, Buffer | string>): Buffer {
  return gzipSync(tarOf(files), {level: 1})
}

interface Served {
  status?: number
  headers?: Record<string, string>
  /** A fixed body, or a generator streamed with backpressure (a body far larger than memory). */
  body: Buffer | (() => Iterable<Buffer>)
}

let server: http.Server
let base = ''
let dir: string
const routes = new Map<string, Served>()
/** Bytes each streamed route managed to send before the client hung up. */
const sent = new Map<string, number>()

function route(p: string, served: Served): string {
  routes.set(p, served)
  return `${base}${p}`
}

function helmRepo(prefix: string, name: string, archive: Buffer): string {
  route(`${prefix}/index.yaml`, {
    headers: {'content-type': 'application/x-yaml'},
    body: Buffer.from(
      stringify({
        apiVersion: 'v1',
        entries: {[name]: [{apiVersion: 'v2', name, version: '1.0.0', urls: [`${name}-1.0.0.tgz`]}]},
      }),
    ),
  })
  route(`${prefix}/${name}-1.0.0.tgz`, {headers: {'content-type': 'application/gzip'}, body: archive})
  return `${base}${prefix}`
}

async function profileWith(content: string): Promise<string> {
  const file = path.join(dir, `profile-${routes.size}.json`)
  const values = `pack:\n  namespace: web\n  content:\n${content}`
  await writeFile(file, JSON.stringify(addonProfile({name: 'hostile', values})))
  return file
}

async function resolveChart(repository: string, name: string, env: Record<string, string> = {}) {
  const profile = await profileWith(
    `    charts:\n      - repo: ${repository}\n        name: ${name}\n        version: 1.0.0\n`,
  )
  return runCli(
    ['profile', 'resolve', profile, '--arch', 'amd64', '--cache-dir', await mkdtemp(path.join(dir, 'cache-'))],
    {env, measureRss: true},
  )
}

function expectRefused(result: Awaited<ReturnType<typeof runCli>>, mentions: RegExp[]) {
  const context = `exit ${result.exitCode}, peak RSS ${result.peakRssMiB?.toFixed(0)} MiB\n${result.stderr}`
  expect(result.exitCode, context).toBe(4)
  expect(result.stderr, context).not.toMatch(STACK)
  for (const m of mentions) expect(result.stderr, context).toMatch(m)
  expect(result.peakRssMiB, context).toBeLessThan(RSS_BOUND_MIB)
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-hostile-remote-'))
  server = http.createServer((req, res) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname
    const served = routes.get(p)
    if (!served) {
      res.writeHead(404)
      res.end()
      return
    }
    res.writeHead(served.status ?? 200, served.headers ?? {})
    if (Buffer.isBuffer(served.body)) {
      res.end(served.body)
      return
    }
    const chunks = served.body()[Symbol.iterator]()
    let total = 0
    const pump = () => {
      for (;;) {
        const next = chunks.next()
        if (next.done) return void res.end()
        total += next.value.length
        sent.set(p, total)
        if (!res.write(next.value)) return void res.once('drain', pump)
      }
    }
    res.on('close', () => sent.set(p, total))
    res.on('error', () => {})
    pump()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`
})

afterAll(async () => {
  server?.closeAllConnections()
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  if (dir) await rm(dir, {recursive: true, force: true})
})

describe('hostile servers', () => {
  it('a chart whose Chart.yaml is over the per-file budget: exit 4 at that entry, bounded memory', async () => {
    const repo = helmRepo(
      '/big-chart-yaml',
      'evil',
      chartTgz({'evil/Chart.yaml': chartYaml('evil') + `description: ${'x'.repeat(8 * MiB)}\n`}),
    )
    const result = await resolveChart(repo, 'evil', {AIRPACK_MAX_CHART_FILE_BYTES: '256KiB'})
    expectRefused(result, [/evil\/Chart\.yaml/, /256 KiB/, /AIRPACK_MAX_CHART_FILE_BYTES/, /evil-1\.0\.0\.tgz/])
  })

  it('a chart with a huge entry of zeros before Chart.yaml: refused at its header', async () => {
    const repo = helmRepo(
      '/zero-entry',
      'zeros',
      chartTgz({'zeros/blob.bin': Buffer.alloc(48 * MiB), 'zeros/Chart.yaml': chartYaml('zeros')}),
    )
    const result = await resolveChart(repo, 'zeros', {AIRPACK_MAX_CHART_FILE_BYTES: '1MiB'})
    expectRefused(result, [/zeros\/blob\.bin/, /48 MiB, more than the 1 MiB/, /AIRPACK_MAX_CHART_FILE_BYTES/])
  })

  it("a chart under the per-file budget whose files add up to more than Helm's chart budget", async () => {
    const files: Record<string, Buffer | string> = {'many/Chart.yaml': chartYaml('many')}
    for (let i = 0; i < 24; i++) files[`many/templates/t${i}.yaml`] = Buffer.alloc(512 * 1024, 0x61)
    const repo = helmRepo('/many-files', 'many', chartTgz(files))
    const result = await resolveChart(repo, 'many', {AIRPACK_MAX_CHART_BYTES: '4MiB'})
    expectRefused(result, [/decompressed chart archive/, /4 MiB/, /AIRPACK_MAX_CHART_BYTES/])
  })

  it('a repository index.yaml that gunzips far past its budget: reading stops at the budget', async () => {
    // 64 MiB of YAML comments, gzip-encoded on the wire (a few hundred KiB), with the budget lowered to 1 MiB.
    const index = gzipSync(Buffer.alloc(64 * MiB, '# padding line\n'), {level: 9})
    route('/gzip-bomb/index.yaml', {
      headers: {'content-type': 'application/x-yaml', 'content-encoding': 'gzip'},
      body: index,
    })
    const result = await resolveChart(`${base}/gzip-bomb`, 'anything', {AIRPACK_MAX_REPOSITORY_INDEX_BYTES: '1MiB'})
    expectRefused(result, [/gzip-bomb\/index\.yaml/, /1 MiB/, /AIRPACK_MAX_REPOSITORY_INDEX_BYTES/])
  })

  it('a token service answering a 600 MB JSON body: refused at the default 1 MiB budget, after about 1 MiB', async () => {
    const realm = `${base}/token`
    route('/v2/', {
      status: 401,
      headers: {'www-authenticate': `Bearer realm="${realm}",service="hostile"`, 'content-type': 'application/json'},
      body: Buffer.from('{}'),
    })
    const chunk = Buffer.alloc(MiB, 0x20)
    route('/token', {
      headers: {'content-type': 'application/json'},
      body: function* () {
        yield Buffer.from('{"token":"')
        for (let i = 0; i < 600; i++) yield chunk
        yield Buffer.from('"}')
      },
    })
    const profile = await profileWith(`    images:\n      - image: ${base.replace('http://', '')}/app:1.0\n`)
    const result = await runCli(
      ['profile', 'resolve', profile, '--arch', 'amd64', '--cache-dir', await mkdtemp(path.join(dir, 'cache-'))],
      {measureRss: true},
    )
    expectRefused(result, [/token service/, /1 MiB/, /AIRPACK_MAX_TOKEN_RESPONSE_BYTES/])
    // The client stopped reading near the budget: the server never got to send the whole body (retries included).
    expect(sent.get('/token')).toBeLessThan(200 * MiB)
  })
})
