// `bundle push` against the shell-script way to load a bundle into a site registry (issue 14): `zstd -d` of the
// bundle, then `skopeo copy oci-archive:…` of each image into the registry. Target: push ≤ 0.5× the script.
//
//   node --import tsx bench/push.ts [--size 1G] [--work-dir DIR] [--keep]
//
// Seeds a loopback registry with four single-platform images (--size of incompressible layers, 30 % in a base
// layer they share), builds a format 2 bundle of them, then times, each into its own fresh Debian docker-registry
// 2.8 on loopback: (1) `airpack bundle push --index platform` (2.8 refuses sparse indexes), (2) the same push again
// (idempotent: uploads nothing), (3) `zstd -d` + one `skopeo copy oci-archive:` per image. The machine is shared:
// the 1-minute load average is recorded with each figure. Prints a table and one JSON line.

import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {parseSize} from '../support/bench-content.js'
import {startRegistry} from '../support/registry.js'
import {measure, type Measurement} from './lib/measure.js'
import {BIN, buildSiteBundle} from './lib/site-bundle.js'

const MIB = 2 ** 20

const {values: args} = parseArgs({
  options: {
    size: {type: 'string', default: '1G'},
    'work-dir': {type: 'string'},
    keep: {type: 'boolean', default: false},
  },
})

interface Figure {
  what: string
  seconds: number
  mibPerSecond: number
  maxRssMiB?: number
  load1: number
}

async function timed(what: string, command: string[] | string, work: string, bytes: number): Promise<Figure> {
  const load1 = os.loadavg()[0]!
  const m: Measurement = await measure(command, {rssFile: path.join(work, 'rss'), timeoutMs: 3_600_000})
  if (m.exitCode !== 0) throw new Error(`${what} failed (${m.exitCode}): ${m.stderrTail}`)
  return {
    what,
    seconds: Number(m.seconds.toFixed(2)),
    mibPerSecond: Number((bytes / MIB / m.seconds).toFixed(1)),
    ...(m.maxRssMiB ? {maxRssMiB: Math.round(m.maxRssMiB)} : {}),
    load1: Number(load1.toFixed(2)),
  }
}

async function main(): Promise<void> {
  const size = parseSize(args.size!)
  const work = args['work-dir'] ?? (await mkdtemp(path.join(os.tmpdir(), 'airpack-bench-push-')))
  const log = (line: string) => process.stderr.write(`${line}\n`)
  try {
    const site = await buildSiteBundle(work, size, log)
    const figures: Figure[] = []
    const forPush = await startRegistry()
    try {
      const push = ['node', BIN, 'bundle', 'push', site.bundle, '--to', `${forPush.host}/edge`, '--index', 'platform']
      figures.push(await timed('airpack bundle push --index platform', push, work, site.blobBytes))
      figures.push(await timed('airpack bundle push again (uploads nothing)', push, work, site.blobBytes))
    } finally {
      await forPush.stop()
    }
    const forSkopeo = await startRegistry()
    try {
      const tar = path.join(work, 'site.tar')
      const copies = site.references
        .map(
          (ref) =>
            `skopeo copy --quiet --dest-tls-verify=false oci-archive:${tar}:${ref} docker://${forSkopeo.host}/edge/${ref}`,
        )
        .join(' && ')
      figures.push(
        await timed(
          'zstd -d + skopeo copy oci-archive: per image',
          `zstd -d -q -f ${site.bundle} -o ${tar} && ${copies}`,
          work,
          site.blobBytes,
        ),
      )
      await rm(tar, {force: true})
    } finally {
      await forSkopeo.stop()
    }
    const ratio = figures[0]!.seconds / figures[2]!.seconds
    log(
      `\n${(site.blobBytes / MIB).toFixed(0)} MiB of blobs, ${site.references.length} images, ${os.cpus().length} cores`,
    )
    for (const f of figures)
      log(
        `${f.what.padEnd(48)} ${f.seconds.toFixed(2).padStart(8)} s ${String(f.mibPerSecond).padStart(8)} MiB/s  load ${f.load1}`,
      )
    log(`push / script: ${ratio.toFixed(2)}× (target ≤ 0.5×)`)
    process.stdout.write(
      JSON.stringify({bench: 'push', blobBytes: site.blobBytes, figures, ratio: Number(ratio.toFixed(3))}) + '\n',
    )
  } finally {
    if (!args.keep && !args['work-dir']) await rm(work, {recursive: true, force: true})
  }
}

await main()
