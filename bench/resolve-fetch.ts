// Resolve and fetch figures for issue 3, against a loopback docker-registry:
//
//   node --import tsx bench/resolve-fetch.ts [--images 200] [--layer-mib 32] [--layers 8] [--reps 3] [--concurrency 8]
//                                            [--supply-chain carry|skip]
//
// 1. resolve: a profile of `--images` multi-arch images (OCI index + attestation, two platforms each) resolved to
//    digests for linux/amd64 (index + platform manifest + single-manifest config reads, no layers): seconds and
//    images per second, median of --reps runs, each with a fresh client (cold token/ping caches).
// 2. fetch: one image of `--layers` random layers of `--layer-mib` MiB fetched into an empty cache (MiB/s, median),
//    then again into the warm cache (must download 0 bytes), next to `skopeo copy` of the same image into an OCI
//    directory as the peer figure. Peak RSS of this process is printed too (blobs are streamed, never buffered).

import {execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {BlobStore} from '../src/cache/store.js'
import {fetchLock, resolveArtifacts, writeLock} from '../src/resolve/index.js'
import {startRegistry} from '../support/registry.js'
import {blobOf, layerOf, pushBlob, pushImage, pushManifest, MT} from '../support/seed.js'

const {values: args} = parseArgs({
  options: {
    images: {type: 'string', default: '200'},
    'layer-mib': {type: 'string', default: '32'},
    layers: {type: 'string', default: '8'},
    reps: {type: 'string', default: '3'},
    concurrency: {type: 'string', default: '8'},
    'supply-chain': {type: 'string', default: 'carry'},
  },
})
const images = Number(args.images)
const layerMib = Number(args['layer-mib'])
const layerCount = Number(args.layers)
const reps = Number(args.reps)
const concurrency = Number(args.concurrency)

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const secs = async (fn: () => Promise<unknown>) => {
  const t = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t) / 1e9
}

const work = await mkdtemp(path.join(os.tmpdir(), 'airpack-bench-rf-'))
const reg = await startRegistry()
try {
  process.stderr.write(`seeding ${images} multi-arch images…\n`)
  const base = layerOf({'etc/os-release': 'bench base'})
  const refs: string[] = []
  for (let i = 0; i < images; i++) {
    const img = await pushImage(
      reg,
      `bench/app${i}`,
      '1.0',
      [
        {architecture: 'amd64', layers: [base, layerOf({'bin/app': `amd64 ${i}`})]},
        {architecture: 'arm64', layers: [base, layerOf({'bin/app': `arm64 ${i}`})]},
      ],
      {attestations: true},
    )
    refs.push(img.reference)
  }
  const requests = refs.map((reference) => ({reference, kind: 'image' as const}))
  const platform = {os: 'linux', architecture: 'amd64'}
  const resolveTimes: number[] = []
  for (let r = 0; r < reps; r++)
    resolveTimes.push(
      await secs(() =>
        resolveArtifacts(
          {images: requests, charts: []},
          {platform, concurrency, supplyChain: args['supply-chain'] === 'skip' ? 'skip' : 'carry'},
        ),
      ),
    )

  process.stderr.write(`seeding one image of ${layerCount} × ${layerMib} MiB layers…\n`)
  const layers = []
  for (let i = 0; i < layerCount; i++) {
    const l = blobOf(randomBytes(layerMib * 1024 * 1024))
    await pushBlob(reg, 'bench/big', l)
    layers.push({mediaType: MT.ociLayer, digest: l.digest, size: l.size})
  }
  const config = blobOf(JSON.stringify({architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: []}}))
  await pushBlob(reg, 'bench/big', config)
  await pushManifest(
    reg,
    'bench/big',
    '1',
    MT.ociManifest,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        config: {mediaType: MT.ociConfig, digest: config.digest, size: config.size},
        layers,
      }),
    ),
  )
  const bigRef = `${reg.host}/bench/big:1`
  const {lock} = await resolveArtifacts({images: [{reference: bigRef, kind: 'image'}], charts: []}, {platform})
  const totalBytes = layers.reduce((a, l) => a + l.size, 0)
  const lockFile = path.join(work, 'big.lock.json')
  await writeLock(lockFile, lock)
  const workerRss: number[] = []
  const cold: number[] = []
  const warm: number[] = []
  const peer: number[] = []
  for (let r = 0; r < reps; r++) {
    const cacheDir = path.join(work, `cache${r}`)
    const store = new BlobStore(cacheDir)
    // The cold fetch runs in its own process so that its peak RSS is its own, not the seeding's.
    const out = execFileSync('node', [
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'fetch-worker.ts'),
      lockFile,
      cacheDir,
      String(concurrency),
    ])
    const result = JSON.parse(out.toString()) as {seconds: number; downloadedBytes: number; maxRssKiB: number}
    if (result.downloadedBytes !== totalBytes + config.size + lock.images[bigRef].size) {
      throw new Error(`cold fetch downloaded ${result.downloadedBytes} bytes`)
    }
    cold.push(result.seconds)
    workerRss.push(result.maxRssKiB / 1024)
    let downloaded = -1
    warm.push(await secs(async () => (downloaded = (await fetchLock(lock, store, {concurrency})).downloadedBytes)))
    if (downloaded !== 0) throw new Error(`warm fetch downloaded ${downloaded} bytes`)
    await rm(cacheDir, {recursive: true, force: true})
    const ociDir = path.join(work, `skopeo${r}`)
    peer.push(
      await secs(async () =>
        execFileSync('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${bigRef}`, `oci:${ociDir}:big`]),
      ),
    )
    await rm(ociDir, {recursive: true, force: true})
  }
  const mib = totalBytes / (1024 * 1024)
  // What node + tsx take before any work, to read the fetch's own share of the peak.
  const idleRss =
    Number(
      execFileSync('node', [
        '--import',
        'tsx',
        '-e',
        'process.stdout.write(String(process.resourceUsage().maxRSS))',
      ]).toString(),
    ) / 1024
  const rows = [
    ['what', 'median', 'runs'],
    [
      `resolve ${images} images (linux/amd64, concurrency ${concurrency})`,
      `${median(resolveTimes).toFixed(2)} s (${(images / median(resolveTimes)).toFixed(0)} images/s)`,
      resolveTimes.map((t) => t.toFixed(2)).join(', '),
    ],
    [
      `fetch ${mib.toFixed(0)} MiB cold (${layerCount} layers)`,
      `${median(cold).toFixed(2)} s (${(mib / median(cold)).toFixed(0)} MiB/s)`,
      cold.map((t) => t.toFixed(2)).join(', '),
    ],
    ['fetch warm (0 bytes downloaded)', `${median(warm).toFixed(3)} s`, warm.map((t) => t.toFixed(3)).join(', ')],
    [
      `skopeo copy same image → oci: (peer)`,
      `${median(peer).toFixed(2)} s (${(mib / median(peer)).toFixed(0)} MiB/s)`,
      peer.map((t) => t.toFixed(2)).join(', '),
    ],
    [
      `peak RSS of the cold fetch process (${mib.toFixed(0)} MiB fetched)`,
      `${median(workerRss).toFixed(0)} MiB (idle node+tsx: ${idleRss.toFixed(0)} MiB)`,
      workerRss.map((x) => x.toFixed(0)).join(', '),
    ],
  ]
  for (const row of rows) console.log(`| ${row.join(' | ')} |`)
} finally {
  await reg.stop()
  await rm(work, {recursive: true, force: true})
}
