// Day-2 update sizes (issue 13): what a blob-level delta carries for a realistic update, against the whole bundle.
//
//   node --import tsx bench/delta.ts [--size 1G] [--format 1|2] [--work-dir DIR] [--keep]
//
// Seeds a real registry (Debian's docker-registry on loopback) with six single-platform images: one base layer
// (30 % of --size) shared by all, and two own layers each (incompressible, like real layers). Builds bundle N of
// the six; then the update: app-0 rebuilt (its top layer changes, its lower layer and the base stay), app-5
// removed, app-6 added (the shared base plus two own layers); builds N+1 from the same cache with
// `--delta-from N.inventory.json`, which writes the whole N+1 and the real NAME.delta.tar.zst. Then
// `airpack bundle diff` of N and N+1 (bundles, then their inventory files) gives the blobs a delta would carry,
// timed to show it reads only bundle.json, and `bundle patch N DELTA` rebuilds N+1 (checked with cmp, timed).
// Prints the figures as a table and one JSON line.

import {execFileSync} from 'node:child_process'
import {mkdtemp, rm, stat, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {
  benchProfile,
  parseSize,
  pushGeneratedLayer,
  pushPlatformManifest,
  type GeneratedLayer,
} from '../support/bench-content.js'
import {startRegistry, type TestRegistry} from '../support/registry.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const MIB = 2 ** 20

const {values: args} = parseArgs({
  options: {
    size: {type: 'string', default: '1G'},
    format: {type: 'string', default: '2'},
    'work-dir': {type: 'string'},
    keep: {type: 'boolean', default: false},
  },
})

async function pushApp(reg: TestRegistry, repo: string, layers: GeneratedLayer[]): Promise<string> {
  await pushPlatformManifest(reg, repo, 'amd64', layers, {reference: 'v1'})
  return `${reg.host}/${repo}:v1`
}

function airpack(cliArgs: string[]): {stdout: string; seconds: number} {
  const t = process.hrtime.bigint()
  const stdout = execFileSync('node', [BIN, ...cliArgs], {
    maxBuffer: 256 * MIB,
    stdio: ['ignore', 'pipe', 'inherit'],
  }).toString()
  return {stdout, seconds: Number(process.hrtime.bigint() - t) / 1e9}
}

async function main(): Promise<void> {
  const size = parseSize(args.size!)
  const work = args['work-dir'] ?? (await mkdtemp(path.join(os.tmpdir(), 'airpack-bench-delta-')))
  const reg = await startRegistry()
  try {
    const baseSize = Math.floor(size * 0.3)
    const own = Math.floor((size - baseSize) / 12)
    const layer = (repo: string, name: string, bytes: number) =>
      pushGeneratedLayer(reg.url, repo, `airpack-bench-delta/${name}`, bytes)
    const refsN: string[] = []
    const tops: GeneratedLayer[] = []
    for (let i = 0; i < 6; i++) {
      const repo = `bench/app-${i}`
      const lower = await layer(repo, `app-${i}/lower`, own)
      tops[i] = await layer(repo, `app-${i}/top`, own)
      refsN.push(await pushApp(reg, repo, [await layer(repo, 'base', baseSize), lower, tops[i]!]))
    }
    const profile = (name: string, refs: string[]) => {
      const file = path.join(work, `${name}.json`)
      return writeFile(file, JSON.stringify(benchProfile(refs, 'bench'))).then(() => file)
    }
    const build = (name: string, file: string, extra: string[] = []) =>
      airpack([
        'bundle',
        'build',
        file,
        '--arch',
        'amd64',
        '--name',
        name,
        '--output',
        path.join(work, name),
        '--cache-dir',
        path.join(work, 'cache'),
        '--insecure-registry',
        reg.host,
        '--format',
        args.format!,
        ...extra,
        '--json',
      ])
    const n = build('bench-n', await profile('n', refsN))

    // The update: app-0 rebuilt (new top layer), app-5 removed, app-6 added.
    const lower0 = await layer('bench/app-0', 'app-0/lower', own)
    const bumped = await pushApp(reg, 'bench/app-0', [
      await layer('bench/app-0', 'base', baseSize),
      lower0,
      await layer('bench/app-0', 'app-0/top-2', own),
    ])
    const added = await pushApp(reg, 'bench/app-6', [
      await layer('bench/app-6', 'base', baseSize),
      await layer('bench/app-6', 'app-6/lower', own),
      await layer('bench/app-6', 'app-6/top', own),
    ])
    const n1 = build('bench-n1', await profile('n1', [bumped, ...refsN.slice(1, 5), added]), [
      '--delta-from',
      path.join(work, 'bench-n', 'bench-n.inventory.json'),
    ])
    const n1Report = JSON.parse(n1.stdout)

    const bundleN = path.join(work, 'bench-n', 'bench-n.tar.zst')
    const bundleN1 = path.join(work, 'bench-n1', 'bench-n1.tar.zst')
    const onBundles = airpack(['bundle', 'diff', bundleN, bundleN1, '--json'])
    const onInventories = airpack([
      'bundle',
      'diff',
      path.join(work, 'bench-n', 'bench-n.inventory.json'),
      path.join(work, 'bench-n1', 'bench-n1.inventory.json'),
      '--json',
    ])
    const diff = JSON.parse(onBundles.stdout)
    const same = JSON.stringify(JSON.parse(onInventories.stdout).blobs) === JSON.stringify(diff.blobs)
    const wholeCompressed = (await stat(bundleN1)).size
    const inventoryBytes = (await stat(path.join(work, 'bench-n1', 'bench-n1.inventory.json'))).size
    const deltaBytes = diff.blobs.carried.bytes + diff.metadataBytes
    const deltaFile = path.join(work, 'bench-n1', 'bench-n1.delta.tar.zst')
    const deltaFileBytes = (await stat(deltaFile)).size
    const patched = path.join(work, 'patched')
    const patch = airpack(['bundle', 'patch', bundleN, deltaFile, '--output', patched, '--json'])
    execFileSync('cmp', [path.join(patched, 'bench-n1.tar.zst'), bundleN1])
    const figures = {
      size: args.size,
      wholeBlobBytes: diff.blobs.whole.bytes,
      wholeCompressedBytes: wholeCompressed,
      carriedBlobs: diff.blobs.carried.count,
      carriedBlobBytes: diff.blobs.carried.bytes,
      metadataBytes: diff.metadataBytes,
      deltaShareOfWhole: Number((deltaBytes / wholeCompressed).toFixed(4)),
      format: Number(args.format),
      deltaFileBytes,
      deltaFileShareOfWhole: Number((deltaFileBytes / wholeCompressed).toFixed(4)),
      deltaBorrowed: n1Report.delta.borrowed,
      patchSeconds: Number(patch.seconds.toFixed(2)),
      artifacts: {
        added: diff.artifacts.added.length,
        removed: diff.artifacts.removed.length,
        changed: diff.artifacts.changed.length,
        unchanged: diff.artifacts.unchanged,
      },
      diffSecondsOnBundles: Number(onBundles.seconds.toFixed(2)),
      diffSecondsOnInventories: Number(onInventories.seconds.toFixed(2)),
      inventoryBytes,
      inventoriesAgree: same,
      buildSeconds: {n: Number(n.seconds.toFixed(1)), n1: Number(n1.seconds.toFixed(1))},
    }
    console.log(
      `whole N+1:            ${(wholeCompressed / MIB).toFixed(1)} MiB compressed, ${diff.blobs.whole.count} blobs, ${(diff.blobs.whole.bytes / MIB).toFixed(1)} MiB of blobs`,
    )
    console.log(
      `blob-level delta:     ${diff.blobs.carried.count} blobs, ${(diff.blobs.carried.bytes / MIB).toFixed(1)} MiB + ${(diff.metadataBytes / 1024).toFixed(1)} KiB metadata = ${(100 * figures.deltaShareOfWhole).toFixed(1)} % of the whole`,
    )
    console.log(
      `NAME.delta.tar.zst:   ${(deltaFileBytes / MIB).toFixed(2)} MiB = ${(100 * figures.deltaFileShareOfWhole).toFixed(1)} % of the whole N+1 (format ${args.format}); borrows ${n1Report.delta.borrowed.blobs} blobs, ${(n1Report.delta.borrowed.bytes / MIB).toFixed(1)} MiB`,
    )
    console.log(`bundle patch N DELTA: ${figures.patchSeconds} s, output cmp-identical to the whole N+1`)
    console.log(
      `artifacts:            ${figures.artifacts.added} added, ${figures.artifacts.removed} removed, ${figures.artifacts.changed} changed, ${figures.artifacts.unchanged} unchanged (the definition counts as one)`,
    )
    console.log(
      `bundle diff:          ${figures.diffSecondsOnBundles} s on the bundles, ${figures.diffSecondsOnInventories} s on the ${(inventoryBytes / 1024).toFixed(1)} KiB inventories (same answer: ${same})`,
    )
    console.log(JSON.stringify(figures))
  } finally {
    await reg.stop()
    if (!args.keep && !args['work-dir']) await rm(work, {recursive: true, force: true})
  }
}

await main()
