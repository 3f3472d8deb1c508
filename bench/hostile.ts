// The rows of issue 17 at their real sizes (the test suite builds them small, with budgets lowered): each hostile
// input is built once under --work-dir (kept between runs), then the CLI under test runs against it, measured by
// GNU time (peak RSS of the largest process) and a /proc poll of the whole tree (node + zstd).
//
//   node --import tsx bench/hostile.ts [--bin DIR/bin/run.js] [--rows chart-yaml,token,...] [--work-dir DIR]
//
// Run it once with the airpack before the change (--bin of a build of that commit) and once after, to compare.
// Needs ~6 GB of free disk in --work-dir for the largest inputs (the 4 GiB chart entry is stored gzip'd: ~4 MB).

import {spawn} from 'node:child_process'
import {generateKeyPairSync, createHash} from 'node:crypto'
import {createWriteStream, existsSync} from 'node:fs'
import {mkdir, rm, symlink, truncate, writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {createGzip} from 'node:zlib'
import {stringify} from 'yaml'

import {encodeFileHeader, padding} from '../src/bundle/tar.js'
import {bundleJson, rawTar, zstd, zstdFrames} from '../support/hostile-bytes.js'
import {addonProfile} from '../support/profiles.js'
import {measure} from './lib/measure.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const MiB = 1024 * 1024
const GiB = 1024 * MiB

const {values: args} = parseArgs({
  options: {
    bin: {type: 'string', default: path.join(ROOT, 'bin', 'run.js')},
    rows: {type: 'string'},
    'work-dir': {type: 'string', default: '/tmp/airpack-hostile-bench'},
  },
})
const work = path.resolve(args['work-dir']!)
const BIN = path.resolve(args.bin!)

const header = (name: string, size: number) => encodeFileHeader(name, size, {mtime: 0})

async function* repeat(chunk: Buffer, total: number): AsyncGenerator<Buffer> {
  for (let left = total; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left)
}

async function writeStream(file: string, parts: () => AsyncGenerator<Buffer>, transform?: 'gzip'): Promise<void> {
  if (existsSync(file)) return
  const tmp = `${file}.tmp`
  if (transform === 'gzip') await pipeline(Readable.from(parts()), createGzip({level: 1}), createWriteStream(tmp))
  else await pipeline(Readable.from(parts()), createWriteStream(tmp))
  await import('node:fs/promises').then((fs) => fs.rename(tmp, file))
}

/** A tar stream through `zstd -T0 -1` into `file`, without holding it. */
async function zstdStream(file: string, parts: () => AsyncGenerator<Buffer>): Promise<void> {
  if (existsSync(file)) return
  const child = spawn('zstd', ['-q', '-T0', '-1', '-c'], {stdio: ['pipe', 'pipe', 'inherit']})
  const out = pipeline(child.stdout, createWriteStream(`${file}.tmp`))
  await pipeline(Readable.from(parts()), child.stdin)
  await out
  await import('node:fs/promises').then((fs) => fs.rename(`${file}.tmp`, file))
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')
const OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}'
const INDEX = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
const validTar = (extra: {path: string; body: Buffer}[] = [], end = true) =>
  rawTar(
    [
      {
        name: 'airpack/bundle.json',
        body: bundleJson([{path: 'oci-layout', body: OCI_LAYOUT}, {path: 'index.json', body: INDEX}, ...extra]),
      },
      {name: 'oci-layout', body: OCI_LAYOUT},
      {name: 'index.json', body: INDEX},
    ],
    {end},
  )

// ------------------------------------------------------------------------------------------------ the server
const routes = new Map<
  string,
  {
    headers: Record<string, string>
    status?: number
    file?: string
    stream?: () => AsyncGenerator<Buffer>
    body?: string
  }
>()
const server = http.createServer(async (req, res) => {
  const r = routes.get(new URL(req.url ?? '/', 'http://x').pathname)
  if (!r) return void res.writeHead(404).end()
  res.writeHead(r.status ?? 200, r.headers)
  res.on('error', () => {})
  if (r.body !== undefined) return void res.end(r.body)
  const source = r.file ? (await import('node:fs')).createReadStream(r.file) : Readable.from(r.stream!())
  source.on('error', () => res.destroy())
  res.on('close', () => source.destroy())
  source.pipe(res)
})

interface Row {
  id: string
  what: string
  args: (base: string) => Promise<string[]>
  timeoutMs?: number
}

async function chartProfile(base: string, prefix: string, name: string): Promise<string> {
  const file = path.join(work, `${prefix}.profile.json`)
  await writeFile(
    file,
    JSON.stringify(
      addonProfile({
        name: 'hostile',
        namespace: 'web',
        images: [],
        chart: {repo: `${base}/${prefix}`, name, version: '1.0.0'},
      }),
    ),
  )
  return file
}

function helmRepo(prefix: string, name: string, archive: string): void {
  routes.set(`/${prefix}/index.yaml`, {
    headers: {'content-type': 'application/x-yaml'},
    body: stringify({
      apiVersion: 'v1',
      entries: {[name]: [{apiVersion: 'v2', name, version: '1.0.0', urls: [`${name}-1.0.0.tgz`]}]},
    }),
  })
  routes.set(`/${prefix}/${name}-1.0.0.tgz`, {headers: {'content-type': 'application/gzip'}, file: archive})
}

const resolveArgs = async (profile: string) => [
  'profile',
  'resolve',
  profile,
  '--arch',
  'amd64',
  '--cache-dir',
  path.join(work, `cache-${Date.now()}-${Math.random().toString(36).slice(2)}`),
]

const rows: Row[] = [
  {
    id: 'chart-yaml',
    what: 'chart .tgz holding a 600 MB Chart.yaml',
    async args(base) {
      const file = path.join(work, 'chart-yaml.tgz')
      const head = Buffer.from('apiVersion: v2\nname: evil\nversion: 1.0.0\ndescription: ')
      const size = head.length + 600 * 1000 * 1000 + 1
      await writeStream(
        file,
        async function* () {
          yield header('evil/Chart.yaml', size)
          yield head
          yield* repeat(Buffer.alloc(MiB, 0x78), 600 * 1000 * 1000)
          yield Buffer.from('\n')
          yield padding(size)
          yield Buffer.alloc(1024)
        },
        'gzip',
      )
      helmRepo('chart-yaml', 'evil', file)
      return resolveArgs(await chartProfile(base, 'chart-yaml', 'evil'))
    },
  },
  {
    id: 'chart-zeros',
    what: 'chart .tgz with a 4 GiB entry of zeros before Chart.yaml',
    async args(base) {
      const file = path.join(work, 'chart-zeros.tgz')
      const chart = Buffer.from('apiVersion: v2\nname: zeros\nversion: 1.0.0\n')
      await writeStream(
        file,
        async function* () {
          yield header('zeros/blob.bin', 4 * GiB)
          yield* repeat(Buffer.alloc(4 * MiB), 4 * GiB)
          yield header('zeros/Chart.yaml', chart.length)
          yield chart
          yield padding(chart.length)
          yield Buffer.alloc(1024)
        },
        'gzip',
      )
      helmRepo('chart-zeros', 'zeros', file)
      return resolveArgs(await chartProfile(base, 'chart-zeros', 'zeros'))
    },
  },
  {
    id: 'index-gzip',
    what: 'repository index.yaml that gunzips to 1.5 GB',
    async args(base) {
      const file = path.join(work, 'index.yaml.gz')
      await writeStream(file, () => repeat(Buffer.alloc(MiB, '# padding line\n'), 1500 * 1000 * 1000), 'gzip')
      routes.set('/index-gzip/index.yaml', {
        headers: {'content-type': 'application/x-yaml', 'content-encoding': 'gzip'},
        file,
      })
      return resolveArgs(await chartProfile(base, 'index-gzip', 'anything'))
    },
  },
  {
    id: 'token',
    what: 'token service answering a 600 MB JSON body',
    async args(base) {
      routes.set('/v2/', {
        status: 401,
        headers: {'www-authenticate': `Bearer realm="${base}/token",service="hostile"`},
        body: '{}',
      })
      routes.set('/token', {
        headers: {'content-type': 'application/json'},
        stream: async function* () {
          yield Buffer.from('{"token":"')
          yield* repeat(Buffer.alloc(MiB, 0x61), 600 * 1000 * 1000)
          yield Buffer.from('"}')
        },
      })
      const file = path.join(work, 'token.profile.json')
      await writeFile(
        file,
        JSON.stringify(
          addonProfile({name: 'hostile', namespace: 'web', images: [`${base.replace('http://', '')}/app:1.0`]}),
        ),
      )
      return resolveArgs(file)
    },
  },
  {
    id: 'json-entries',
    what: 'bundle verify: 400 listed "JSON" entries of 4 MiB each',
    async args() {
      const file = path.join(work, 'json-entries', 'b.tar.zst')
      await mkdir(path.dirname(file), {recursive: true})
      const docs = (i: number) => Buffer.from(JSON.stringify({schemaVersion: 2, n: i, pad: 'x'.repeat(4 * MiB - 64)}))
      await zstdStream(file, async function* () {
        const entries = Array.from({length: 400}, (_, i) => {
          const body = docs(i)
          return {path: `blobs/sha256/${sha256(body)}`, body}
        })
        const tar = validTar(entries, false)
        yield tar
        for (let i = 0; i < 400; i++) yield rawTar([{name: entries[i]!.path, body: docs(i)}], {end: false})
        yield Buffer.alloc(1024)
      })
      return ['bundle', 'verify', file]
    },
  },
  {
    id: 'sig-1g',
    what: 'bundle verify --public-key with a 1 GB NAME.tar.zst.sig beside the bundle',
    async args() {
      const dir = path.join(work, 'sig')
      await mkdir(dir, {recursive: true})
      await writeFile(path.join(dir, 'b.tar.zst'), zstd(validTar()))
      await writeFile(
        path.join(dir, 'pub.pem'),
        generateKeyPairSync('ed25519').publicKey.export({type: 'spki', format: 'pem'}) as string,
      )
      await writeFile(path.join(dir, 'b.tar.zst.sig'), '')
      await truncate(path.join(dir, 'b.tar.zst.sig'), 1000 * 1000 * 1000)
      return ['bundle', 'verify', path.join(dir, 'b.tar.zst'), '--public-key', path.join(dir, 'pub.pem')]
    },
  },
  {
    id: 'dev-zero',
    what: 'split bundle whose part is a symlink to /dev/zero (parts.json: 0 bytes)',
    timeoutMs: 60_000,
    async args() {
      const dir = path.join(work, 'dev-zero')
      await rm(dir, {recursive: true, force: true})
      await mkdir(dir, {recursive: true})
      const whole = zstd(validTar())
      await writeFile(path.join(dir, 'b.tar.zst.000'), whole)
      await symlink('/dev/zero', path.join(dir, 'b.tar.zst.001'))
      const parts = [
        {name: 'b.tar.zst.000', size: whole.length, sha256: sha256(whole)},
        {name: 'b.tar.zst.001', size: 0, sha256: sha256('')},
      ]
      await writeFile(
        path.join(dir, 'b.parts.json'),
        JSON.stringify({
          formatVersion: 1,
          file: 'b.tar.zst',
          size: whole.length,
          sha256: sha256(whole),
          partSize: 1 << 20,
          parts,
        }),
      )
      return ['bundle', 'verify', path.join(dir, 'b.parts.json')]
    },
  },
  {
    id: 'trailing',
    what: 'bundle verify: 4 GiB of zeros after the tar end marker',
    async args() {
      const file = path.join(work, 'trailing.tar.zst')
      if (!existsSync(file)) await writeFile(file, zstdFrames([validTar(), {chunk: Buffer.alloc(64 * MiB), times: 64}]))
      return ['bundle', 'verify', file]
    },
  },
  ...(['verify', 'inspect'] as const).map((command) => ({
    id: `unlisted-${command}`,
    what: `bundle ${command}: a 16 GiB zero entry bundle.json does not list`,
    async args() {
      const file = path.join(work, 'unlisted.tar.zst')
      if (!existsSync(file)) {
        const name = 'blobs/sha256/' + '1'.repeat(64)
        await writeFile(
          file,
          zstdFrames([
            Buffer.concat([validTar([], false), header(name, 16 * GiB)]),
            {chunk: Buffer.alloc(64 * MiB), times: 256},
            Buffer.alloc(1024),
          ]),
        )
      }
      return ['bundle', command, file]
    },
  })),
]

async function main(): Promise<void> {
  await mkdir(work, {recursive: true})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`
  const wanted = args.rows ? new Set(args.rows.split(',')) : undefined
  const lines = [
    '| row | exit | seconds | peak RSS (MiB, GNU time) | tree RSS (MiB) |',
    '| --- | --- | --- | --- | --- |',
  ]
  for (const row of rows) {
    if (wanted && !wanted.has(row.id)) continue
    const cliArgs = await row.args(base)
    const m = await measure(['node', BIN, ...cliArgs], {
      rssFile: path.join(work, 'rss.txt'),
      timeoutMs: row.timeoutMs ?? 600_000,
      env: {...process.env, NO_COLOR: '1'},
    })
    const line = `| ${row.what} | ${m.timedOut ? 'killed (timeout)' : m.exitCode} | ${m.seconds.toFixed(1)} | ${m.maxRssMiB?.toFixed(0) ?? '?'} | ${m.treeRssMiB.toFixed(0)} |`
    lines.push(line)
    console.error(line)
    console.error(`    ${m.stderrTail.split('\n').filter(Boolean).slice(0, 3).join('\n    ').slice(0, 600)}`)
  }
  console.log(lines.join('\n'))
  server.closeAllConnections()
  server.close()
  await rm(path.join(work, 'rss.txt'), {force: true})
}

await main()
