// `bundle serve` throughput against reading the bundle file itself (issue 14).
//
//   node --import tsx bench/serve.ts [--size 1G] [--bundle FILE] [--work-dir DIR] [--keep]
//
// Builds a format 2 bundle of bench content (bench/lib/site-bundle.ts) unless --bundle names one, then measures,
// after one warm-up read that puts the file in the page cache: (1) reading the .tar.zst with node (1 MiB reads),
// the floor any server of this file has; (2) `sha256sum` of the file, what checking it costs with a stock tool;
// (3) GET of every blob of the bundle from `airpack bundle serve` on loopback, one at a time, each byte read through
// the seek table and verified; (4) the same GETs four at a time; and the server's peak RSS (VmHWM). The machine
// is shared: the 1-minute load average is recorded with each figure. Prints a table and one JSON line.

import {execFileSync, spawn} from 'node:child_process'
import {createReadStream} from 'node:fs'
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {parseSize} from '../support/bench-content.js'
import {freePort} from '../support/registry.js'
import {BIN, buildSiteBundle} from './lib/site-bundle.js'

const MIB = 2 ** 20

const {values: args} = parseArgs({
  options: {
    size: {type: 'string', default: '1G'},
    bundle: {type: 'string'},
    'work-dir': {type: 'string'},
    keep: {type: 'boolean', default: false},
  },
})

interface Figure {
  what: string
  seconds: number
  bytes: number
  mibPerSecond: number
  load1: number
}

async function timed(what: string, bytes: number, fn: () => Promise<number | void>): Promise<Figure> {
  const load1 = os.loadavg()[0]!
  const t = process.hrtime.bigint()
  const counted = (await fn()) ?? bytes
  const seconds = Number(process.hrtime.bigint() - t) / 1e9
  return {
    what,
    seconds: Number(seconds.toFixed(2)),
    bytes: counted,
    mibPerSecond: Number((counted / MIB / seconds).toFixed(0)),
    load1: Number(load1.toFixed(2)),
  }
}

async function readFileThrough(file: string): Promise<number> {
  let n = 0
  for await (const chunk of createReadStream(file, {highWaterMark: MIB})) n += (chunk as Buffer).length
  return n
}

function get(url: string): Promise<{status: number; body: Buffer | number}> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let n = 0
        const keep = res.statusCode !== 200 || !url.includes('/blobs/')
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => (keep ? chunks.push(c) : (n += c.length)))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body: keep ? Buffer.concat(chunks) : n}))
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

/** Every blob digest of the served bundle, by repository (from the API itself: tags, manifests). */
async function blobsOf(base: string): Promise<{repo: string; digest: string}[]> {
  const catalog = JSON.parse(((await get(`${base}/v2/_catalog`)).body as Buffer).toString()) as {repositories: string[]}
  const out = new Map<string, string>()
  for (const repo of catalog.repositories) {
    const {tags} = JSON.parse(((await get(`${base}/v2/${repo}/tags/list`)).body as Buffer).toString()) as {
      tags: string[]
    }
    const pending = tags.map((t) => `${base}/v2/${repo}/manifests/${t}`)
    while (pending.length > 0) {
      const doc = JSON.parse(((await get(pending.pop()!)).body as Buffer).toString()) as {
        manifests?: {digest: string}[]
        config?: {digest: string}
        layers?: {digest: string}[]
      }
      for (const m of doc.manifests ?? []) pending.push(`${base}/v2/${repo}/manifests/${m.digest}`)
      for (const b of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])])
        if (!out.has(b.digest)) out.set(b.digest, repo)
    }
  }
  return [...out].map(([digest, repo]) => ({repo, digest}))
}

async function getAll(base: string, blobs: {repo: string; digest: string}[], parallel: number): Promise<number> {
  let total = 0
  const queue = [...blobs]
  await Promise.all(
    Array.from({length: parallel}, async () => {
      for (let b = queue.shift(); b; b = queue.shift()) {
        const {status, body} = await get(`${base}/v2/${b.repo}/blobs/${b.digest}`)
        if (status !== 200) throw new Error(`GET ${b.digest}: ${status}`)
        total += body as number
      }
    }),
  )
  return total
}

async function main(): Promise<void> {
  const work = args['work-dir'] ?? (await mkdtemp(path.join(os.tmpdir(), 'airpack-bench-serve-')))
  const log = (line: string) => process.stderr.write(`${line}\n`)
  try {
    const bundle = args.bundle ?? (await buildSiteBundle(work, parseSize(args.size!), log)).bundle
    const size = (await stat(bundle)).size
    await readFileThrough(bundle) // warm the page cache: every figure below reads from memory
    const figures: Figure[] = []
    let peakRssMiB = 0
    figures.push(await timed('read the .tar.zst (node, 1 MiB reads)', size, () => readFileThrough(bundle)))
    figures.push(await timed('sha256sum of the .tar.zst', size, async () => void execFileSync('sha256sum', [bundle])))
    const port = await freePort()
    const child = spawn('node', [BIN, 'bundle', 'serve', bundle, '--listen', `127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      const base = `http://127.0.0.1:${port}`
      for (let ready = false; !ready;) {
        ready = await get(`${base}/v2/`).then(
          (r) => r.status === 200,
          () => false,
        )
        if (!ready) await new Promise((r) => setTimeout(r, 100))
      }
      const blobs = await blobsOf(base)
      figures.push(await timed('bundle serve: GET every blob, one at a time', 0, () => getAll(base, blobs, 1)))
      figures.push(await timed('bundle serve: GET every blob, four at a time', 0, () => getAll(base, blobs, 4)))
      // The server's peak resident set over both passes: memory stays bounded whatever the bundle's size.
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '')
      peakRssMiB = Math.round(Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024)
    } finally {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    }
    log(`\n${(size / MIB).toFixed(0)} MiB bundle, ${os.cpus().length} cores; bundle serve peak RSS ${peakRssMiB} MiB`)
    for (const f of figures)
      log(
        `${f.what.padEnd(48)} ${f.seconds.toFixed(2).padStart(7)} s ${String(f.mibPerSecond).padStart(6)} MiB/s  load ${f.load1}`,
      )
    process.stdout.write(JSON.stringify({bench: 'serve', bundleBytes: size, serveRssMiB: peakRssMiB, figures}) + '\n')
  } finally {
    if (!args.keep && !args['work-dir']) await rm(work, {recursive: true, force: true})
  }
}

await main()
