// The airpack benchmark of issue 6 (docs/benchmarks.md says how to run it and what the targets are).
//
//   node --import tsx bench/run.ts [--sizes 1G,4G] [--reps 5] [--images 4] [--platforms amd64,arm64] [--arch amd64]
//                                  [--pairs cold,warm,verify] [--work-dir DIR] [--out DIR] [--concurrency N] [--keep]
//                                  [--format 2|1]  (the bundle format airpack writes, and so verifies; default 2)
//                                  [--sign] [--split-size SIZE]  (the sealed pair's build: signed and/or split)
//
// For every size (bytes per platform) it seeds a fresh loopback docker-registry with multi-arch content, writes an
// exported add-on profile listing the images, then runs the pairs below `--reps` times, alternating which side of a
// pair goes first so drift (page cache, thermal) does not favour one side (targets of issue 12):
//   cold   : peer pipeline (skopeo copy of every image into ONE OCI layout, then tar | zstd -T0 -3)
//            vs airpack bundle build with an empty cache                        target: airpack/peer ≤ 0.5
//   warm   : the physical floor (cat of the cold build's cached blobs into one file, then sync)
//            vs airpack bundle build with the cache of that rep's cold build      target: airpack/peer ≤ 0.2
//            (the peer of the same rep; the ratio to the floor is reported beside it)
//   verify : zstd -d -c bundle | sha256sum  vs  airpack bundle verify bundle      target: speed ratio ≥ 2
//   size   : (rep 1 only) a warm `--format 1` build: bundle size ratio            target: ≤ 1.01
//   sealed : airpack warm build vs the same warm build signed (--sign: an RSA key made with openssl) and/or
//            split (--split-size)                                              target: sealed/plain ≤ 1.1
// and reports medians, per-pair ratios (median of the per-rep ratios), and airpack's peak memory, airpack and its
// children (≤ 150 MB, and within 10 % between the smallest and the largest size). Results: a markdown table on
// stdout and in OUT/results.md, all raw runs in OUT/results.json.

import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {cp, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {benchProfile, parseSize, seedBenchContent, type BenchContent} from '../support/bench-content.js'
import {startRegistry, type TestRegistry} from '../support/registry.js'
import {killActiveRuns, measure, median, type Measurement} from './lib/measure.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// Set in main(): the airpack under test, a snapshot of the built CLI taken at the start (see snapshotAirpack).
let BIN = path.join(ROOT, 'bin', 'run.js')
let AIRPACK_ROOT = ROOT

const {values: args} = parseArgs({
  options: {
    sizes: {type: 'string', default: '1G'},
    reps: {type: 'string', default: '3'},
    images: {type: 'string', default: '4'},
    'layers-per-image': {type: 'string', default: '2'},
    'base-fraction': {type: 'string', default: '0.3'},
    platforms: {type: 'string', default: 'amd64,arm64'},
    arch: {type: 'string', default: 'amd64'},
    pairs: {type: 'string', default: 'cold,warm,verify,size'},
    'work-dir': {type: 'string'},
    out: {type: 'string', default: path.join(ROOT, 'bench', 'results')},
    concurrency: {type: 'string'},
    'compression-level': {type: 'string', default: '3'},
    format: {type: 'string', default: '2'},
    sign: {type: 'boolean', default: false},
    'split-size': {type: 'string'},
    'run-timeout': {type: 'string', default: '1800'},
    keep: {type: 'boolean', default: false},
    'no-snapshot': {type: 'boolean', default: false},
    help: {type: 'boolean', default: false},
  },
})

if (args.help) {
  console.log(
    'usage: node --import tsx bench/run.ts [--sizes 1G,4G] [--reps N] [--images N] [--layers-per-image N] [--base-fraction F]\n' +
      '       [--platforms amd64,arm64] [--arch amd64] [--pairs cold,warm,verify] [--work-dir DIR] [--out DIR]\n' +
      '       [--concurrency N] [--compression-level N] [--format 2|1] [--sign] [--split-size SIZE]\n' +
      '       [--run-timeout SECONDS] [--keep] [--no-snapshot]',
  )
  process.exit(0)
}

type Side =
  | 'peer'
  | 'airpackCold'
  | 'floor'
  | 'airpackWarm'
  | 'zstdSha'
  | 'airpackVerify'
  | 'airpackWarmF1'
  | 'airpackWarmPlain'
  | 'airpackWarmSealed'
const PAIRS = {
  cold: {a: 'peer', b: 'airpackCold', target: 'airpack/peer ≤ 0.5', limit: 0.5},
  warm: {a: 'floor', b: 'airpackWarm', target: 'airpack warm/peer ≤ 0.2', limit: 0.2},
  verify: {a: 'zstdSha', b: 'airpackVerify', target: 'speed airpack/(zstd -d \\| sha256sum) ≥ 2', limit: 2},
  sealed: {a: 'airpackWarmPlain', b: 'airpackWarmSealed', target: 'sealed/plain warm ≤ 1.1', limit: 1.1},
} as const satisfies Record<string, {a: Side; b: Side; target: string; limit: number}>
type PairName = keyof typeof PAIRS | 'size'
/** Peak RSS of airpack and its children, in MB (10^6 bytes), and its spread between sizes. */
const RSS_LIMIT_MB = 150
const RSS_SPREAD = 0.1
const SIZE_LIMIT = 1.01

interface Run extends Measurement {
  side: Side
  rep: number
  order: number
  /** The 1-minute load average when the run ended (the machine is shared: figures are noisy under load). */
  load1?: number
  /** Bytes the side produced (bundle / archive), when it produces a file. */
  outputBytes?: number
  skipped?: string
}

const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`)
const reps = Number(args.reps)
const pairs = args.pairs!.split(',').map((p) => p.trim()) as PairName[]
for (const p of pairs)
  if (!(p in PAIRS) && p !== 'size') throw new Error(`unknown pair ${p}; use cold, warm, verify, size, sealed`)
if (pairs.includes('sealed') && !args.sign && args['split-size'] === undefined)
  throw new Error('the sealed pair needs --sign and/or --split-size (what makes the sealed build)')
const arch = args.arch!
const level = args['compression-level']!
const timeoutMs = Number(args['run-timeout']) * 1000

function toolVersion(cmd: string, argv: string[]): string {
  try {
    return execFileSync(cmd, argv, {stdio: ['ignore', 'pipe', 'pipe']})
      .toString()
      .trim()
      .split('\n')[0]!
  } catch {
    return 'unavailable'
  }
}

const airpackHas = (topic: string, command: string) =>
  existsSync(path.join(AIRPACK_ROOT, 'dist', 'commands', topic, `${command}.js`))

/**
 * Copy the built CLI (bin, dist, package.json, manifest; node_modules linked) into the work dir, so that a
 * rebuild of dist/ during a long benchmark cannot change or break the airpack being measured.
 */
async function snapshotAirpack(workRoot: string): Promise<string> {
  const snap = path.join(workRoot, 'airpack-snapshot')
  await rm(snap, {recursive: true, force: true})
  await mkdir(snap, {recursive: true})
  for (const entry of ['bin', 'dist', 'package.json', 'oclif.manifest.json']) {
    if (existsSync(path.join(ROOT, entry))) await cp(path.join(ROOT, entry), path.join(snap, entry), {recursive: true})
  }
  await symlink(path.join(ROOT, 'node_modules'), path.join(snap, 'node_modules'))
  return snap
}

async function emptyDir(dir: string): Promise<string> {
  await rm(dir, {recursive: true, force: true})
  await mkdir(dir, {recursive: true})
  return dir
}

async function findBundle(outputDir: string): Promise<string | undefined> {
  try {
    const names = await readdir(outputDir)
    const whole = names.find((n) => n.endsWith('.tar.zst'))
    return whole ? path.join(outputDir, whole) : undefined
  } catch {
    return undefined
  }
}

async function benchSize(sizeText: string, workRoot: string): Promise<Record<string, unknown>> {
  const bytesPerPlatform = parseSize(sizeText)
  const work = await emptyDir(path.join(workRoot, `size-${sizeText}`))
  const registry: TestRegistry = await startRegistry()
  try {
    log(`size ${sizeText}/platform: seeding ${registry.host} (${args.platforms})`)
    const content: BenchContent = await seedBenchContent(registry, {
      bytesPerPlatform,
      platforms: args.platforms!.split(','),
      images: Number(args.images),
      layersPerImage: Number(args['layers-per-image']),
      baseFraction: Number(args['base-fraction']),
      log,
    })
    const profileFile = path.join(work, 'bench-profile.json')
    await writeFile(profileFile, JSON.stringify(benchProfile(content.images.map((i) => i.reference)), null, 2))

    const runs: Run[] = []
    const rssFile = path.join(work, 'rss.txt')
    const sealFlags = await sealedBuildFlags(work)
    const airpackBuild = (cacheDir: string, outputDir: string, format = args.format!, extra: string[] = []) => [
      'node',
      BIN,
      'bundle',
      'build',
      profileFile,
      '--arch',
      arch,
      '--name',
      'bench',
      '--insecure-registry',
      registry.host,
      '--cache-dir',
      cacheDir,
      '--output',
      outputDir,
      '--compression-level',
      level,
      '--format',
      format,
      ...(args.concurrency ? ['--concurrency', args.concurrency] : []),
      ...extra,
    ]

    for (let rep = 1; rep <= reps; rep++) {
      const repDir = await emptyDir(path.join(work, `rep-${rep}`))
      const cache = path.join(repDir, 'cache')
      const coldOut = path.join(repDir, 'out-cold')
      const warmOut = path.join(repDir, 'out-warm')
      const floorFile = path.join(repDir, 'floor.bin')
      let coldDone = false
      const sides: Record<Side, () => Promise<Omit<Run, 'side' | 'rep' | 'order'>>> = {
        async peer() {
          const layout = await emptyDir(path.join(repDir, 'peer-layout'))
          const archive = path.join(repDir, 'peer.tar.zst')
          const copies = content.images
            .map(
              (image, i) =>
                `skopeo copy -q --override-os linux --override-arch ${arch} --src-tls-verify=false docker://${image.reference} oci:${layout}:image-${i}`,
            )
            .join('\n')
          const m = await measure(`${copies}\ntar -cf - -C ${layout} . | zstd -q -T0 -${level} -o ${archive}`, {
            rssFile,
            timeoutMs,
          })
          const outputBytes = existsSync(archive) ? await fileSize(archive) : undefined
          await rm(layout, {recursive: true, force: true})
          await rm(archive, {force: true})
          return {...m, outputBytes}
        },
        async airpackCold() {
          if (!airpackHas('bundle', 'build')) return skipped('airpack bundle build is not built (npm run build)')
          await emptyDir(cache)
          await rm(coldOut, {recursive: true, force: true})
          const m = await measure(airpackBuild(cache, coldOut), {rssFile, timeoutMs})
          coldDone = m.exitCode === 0
          const bundle = await findBundle(coldOut)
          return {...m, outputBytes: bundle ? await fileSize(bundle) : undefined}
        },
        async floor() {
          // The physical floor of a warm build: the bundle's blobs copied from the cache into one new file, synced
          // (a bundle is fsynced before it is published), no hashing, framing or compression.
          const blobsDir = coldDone ? path.join(cache, 'blobs', 'sha256') : undefined
          if (!blobsDir || !existsSync(blobsDir)) return skipped('needs the blobs of a cold airpack build')
          await rm(floorFile, {force: true})
          const m = await measure(`cat ${blobsDir}/* > ${floorFile} && sync ${floorFile}`, {rssFile, timeoutMs})
          await rm(floorFile, {force: true})
          return m
        },
        airpackWarm: () => warmBuild(warmOut),
        // The sealed pair: the plain warm build beside the signed and/or split one, each into its own output.
        airpackWarmPlain: () => warmBuild(path.join(repDir, 'out-warm-plain'), [], true),
        airpackWarmSealed: () => warmBuild(path.join(repDir, 'out-warm-sealed'), sealFlags, true),
        async airpackWarmF1() {
          if (!coldDone) return skipped('needs a successful cold build first')
          const f1Out = path.join(repDir, 'out-warm-f1')
          await rm(f1Out, {recursive: true, force: true})
          const m = await measure(airpackBuild(cache, f1Out, '1'), {rssFile, timeoutMs})
          const bundle = await findBundle(f1Out)
          const outputBytes = bundle ? await fileSize(bundle) : undefined
          await rm(f1Out, {recursive: true, force: true})
          return {...m, outputBytes}
        },
        async zstdSha() {
          const bundle = (await findBundle(warmOut)) ?? (await findBundle(coldOut))
          if (!bundle) return skipped('needs a bundle from airpack bundle build')
          return measure(`zstd -q -d -c ${bundle} | sha256sum > /dev/null`, {rssFile, timeoutMs})
        },
        async airpackVerify() {
          const bundle = (await findBundle(warmOut)) ?? (await findBundle(coldOut))
          if (!airpackHas('bundle', 'verify')) return skipped('airpack bundle verify is not built (npm run build)')
          if (!bundle) return skipped('needs a bundle from airpack bundle build')
          return measure(['node', BIN, 'bundle', 'verify', bundle], {rssFile, timeoutMs})
        },
      }
      /** A warm build with the cold build's cache into `out` (removed afterwards when `discard`). */
      async function warmBuild(out: string, extra: string[] = [], discard = false) {
        if (!coldDone) return skipped('needs a successful cold build first')
        await rm(out, {recursive: true, force: true})
        const m = await measure(airpackBuild(cache, out, args.format!, extra), {rssFile, timeoutMs})
        const bundle = await findBundle(out)
        const outputBytes = bundle ? await fileSize(bundle) : undefined
        if (discard) await rm(out, {recursive: true, force: true})
        return {...m, outputBytes}
      }
      // The cold pair runs first in every rep: warm and verify need its cache and bundle.
      for (const pairName of (['cold', 'warm', 'verify', 'size', 'sealed'] as PairName[]).filter(
        (p) => pairs.includes(p) || (p === 'cold' && pairs.some((q) => q !== 'cold')),
      )) {
        if (pairName === 'size' && rep > 1) continue
        const order: Side[] =
          pairName === 'size'
            ? ['airpackWarmF1']
            : rep % 2 === 1
              ? [PAIRS[pairName].a, PAIRS[pairName].b]
              : [PAIRS[pairName].b, PAIRS[pairName].a]
        // A warm build must follow the cold one; only the floor may swap around it, which it does.
        for (const [i, side] of order.entries()) {
          const result = await sides[side]()
          const run: Run = {side, rep, order: i, ...result, load1: Number(os.loadavg()[0].toFixed(2))}
          runs.push(run)
          log(
            `rep ${rep} ${side.padEnd(13)} load ${run.load1} ${run.skipped ? 'skipped: ' + run.skipped : `${run.seconds.toFixed(2)} s, exit ${run.exitCode}, rss ${fmt(run.maxRssMiB)} MiB (tree ${run.treeRssMiB.toFixed(0)} MiB)${run.outputBytes ? `, output ${(run.outputBytes / 2 ** 20).toFixed(0)} MiB` : ''}`}`,
          )
          if (!run.skipped && run.exitCode !== 0) log(`  ${side} failed:\n${run.stderrTail}`)
        }
      }
      if (!args.keep) await rm(repDir, {recursive: true, force: true})
    }
    return {
      size: sizeText,
      bytesPerPlatform: content.bytesPerPlatform,
      images: content.images.length,
      runs,
      summary: summarize(runs),
    }
  } finally {
    await registry.stop()
    if (!args.keep) await rm(work, {recursive: true, force: true})
  }
}

/**
 * The flags of the sealed pair's build: `--sign-key` with an RSA key made by openssl (the kind Palette signs with;
 * one signature per build, so its size does not matter) and/or `--split`.
 */
async function sealedBuildFlags(work: string): Promise<string[]> {
  const flags: string[] = []
  if (args.sign) {
    const key = path.join(work, 'bench-signing-key.pem')
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072', '-out', key], {
      stdio: 'ignore',
    })
    flags.push('--sign-key', key)
  }
  if (args['split-size'] !== undefined) flags.push('--split', args['split-size'])
  return flags
}

function skipped(reason: string): Omit<Run, 'side' | 'rep' | 'order'> {
  return {seconds: Number.NaN, exitCode: -1, treeRssMiB: 0, stderrTail: '', skipped: reason}
}

async function fileSize(file: string): Promise<number> {
  return (await stat(file)).size
}

function fmt(n: number | undefined, digits = 0): string {
  return n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits)
}

interface PairSummary {
  pair: keyof typeof PAIRS
  target: string
  medianA: number
  medianB: number
  /** cold: median over reps of b/a (time ratio); warm: of b/peer; verify: of a/b (speed ratio). */
  ratio: number
  /** warm: median over reps of airpack warm / the physical floor (cat + sync). */
  ratioToFloor?: number
  met?: boolean
  reps: number
}

interface SizeSummary {
  format2Bytes?: number
  format1Bytes?: number
  ratio?: number
  met?: boolean
}

const ok = (r: Run) => !r.skipped && r.exitCode === 0

/** Median over reps of `f(run of side x, run of side y)` where both ran. */
function perRep(runs: Run[], x: Side, y: Side, f: (rx: Run, ry: Run) => number): number {
  const values: number[] = []
  for (let rep = 1; rep <= reps; rep++) {
    const rx = runs.find((r) => r.rep === rep && r.side === x && ok(r))
    const ry = runs.find((r) => r.rep === rep && r.side === y && ok(r))
    if (rx && ry) values.push(f(rx, ry))
  }
  return median(values)
}

function pairSummary(runs: Run[], pair: keyof typeof PAIRS): PairSummary {
  const {a, b, target, limit} = PAIRS[pair]
  const ratio =
    pair === 'verify'
      ? perRep(runs, a, b, (ra, rb) => ra.seconds / rb.seconds)
      : perRep(runs, b, pair === 'warm' ? 'peer' : a, (rb, rp) => rb.seconds / rp.seconds)
  return {
    pair,
    target,
    medianA: median(runs.filter((r) => r.side === a && ok(r)).map((r) => r.seconds)),
    medianB: median(runs.filter((r) => r.side === b && ok(r)).map((r) => r.seconds)),
    ratio,
    ...(pair === 'warm' ? {ratioToFloor: perRep(runs, b, a, (rb, ra) => rb.seconds / ra.seconds)} : {}),
    ...(Number.isNaN(ratio) ? {} : {met: pair === 'verify' ? ratio >= limit : ratio <= limit}),
    reps: runs.filter((r) => r.side === b && ok(r)).length,
  }
}

function sizeSummary(runs: Run[]): SizeSummary {
  const f1 = runs.find((r) => r.side === 'airpackWarmF1' && ok(r))?.outputBytes
  const f2 = runs.find((r) => r.side === 'airpackWarm' && r.rep === 1 && ok(r))?.outputBytes
  if (f1 === undefined || f2 === undefined) return {format1Bytes: f1, format2Bytes: f2}
  return {format1Bytes: f1, format2Bytes: f2, ratio: f2 / f1, met: f2 / f1 <= SIZE_LIMIT}
}

function summarize(runs: Run[]): {
  pairs: PairSummary[]
  size?: SizeSummary
  airpackPeakRssMiB?: number
  airpackPeakTreeRssMiB?: number
} {
  const out = pairs.filter((p): p is keyof typeof PAIRS => p in PAIRS).map((p) => pairSummary(runs, p))
  // The format 1 build only measures size; its memory is format 1's, not the build under test.
  const airpack = runs.filter((r) => r.side.startsWith('airpack') && r.side !== 'airpackWarmF1' && ok(r))
  const rss = airpack.map((r) => r.maxRssMiB).filter((v): v is number => v !== undefined)
  return {
    pairs: out,
    ...(pairs.includes('size') ? {size: sizeSummary(runs)} : {}),
    ...(rss.length ? {airpackPeakRssMiB: Math.max(...rss)} : {}),
    // The tree is sampled every 50 ms and can miss a short peak that GNU time saw in the largest process.
    ...(airpack.length
      ? {airpackPeakTreeRssMiB: Math.max(...airpack.map((r) => Math.max(r.treeRssMiB, r.maxRssMiB ?? 0)))}
      : {}),
  }
}

const MB_PER_MIB = 2 ** 20 / 1e6

function markdown(results: Record<string, any>[], meta: Record<string, unknown>): string {
  const lines = [
    `# airpack benchmark — ${meta.date}`,
    '',
    `Machine: ${meta.cpus} × ${meta.cpuModel}, ${meta.memGiB} GiB; node ${meta.node}; ${meta.zstd}; ${meta.skopeo}. ` +
      `Content: ${meta.images} images × (shared base + ${meta.layersPerImage} own layers), platforms ${meta.platforms}, bundle for linux/${meta.arch}, format ${meta.format}; ${meta.reps} reps, alternating. ` +
      (meta.sealedBuild ? `Sealed build: ${meta.sealedBuild}. ` : '') +
      `Load average at start: ${meta.loadStart}; at end: ${meta.loadEnd ?? '–'}.`,
    '',
    '| size/platform | pair | A | median A (s) | B | median B (s) | ratio (median of per-rep) | target | met |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for (const r of results) {
    for (const p of r.summary.pairs as PairSummary[]) {
      const {a, b} = PAIRS[p.pair]
      const floor = p.ratioToFloor === undefined ? '' : ` (vs floor: ${fmt(p.ratioToFloor, 2)})`
      lines.push(
        `| ${r.size} | ${p.pair} | ${a} | ${fmt(p.medianA, 2)} | ${b} | ${fmt(p.medianB, 2)} | ${fmt(p.ratio, 3)}${floor} | ${p.target} | ${p.met === undefined ? 'n/a' : p.met ? 'yes' : 'NO'} |`,
      )
    }
    const size = r.summary.size as SizeSummary | undefined
    if (size)
      lines.push(
        `| ${r.size} | size | format 1 | ${size.format1Bytes ?? '–'} B | format ${meta.format} | ${size.format2Bytes ?? '–'} B | ${fmt(size.ratio, 4)} | ≤ ${SIZE_LIMIT} | ${size.met === undefined ? 'n/a' : size.met ? 'yes' : 'NO'} |`,
      )
  }
  lines.push(
    '',
    '| size/platform | airpack peak RSS, largest process (MiB) | airpack peak RSS, airpack and its children (MiB / MB) |',
    '| --- | --- | --- |',
  )
  for (const r of results) {
    const tree = r.summary.airpackPeakTreeRssMiB as number | undefined
    lines.push(
      `| ${r.size} | ${fmt(r.summary.airpackPeakRssMiB)} | ${fmt(tree)} / ${tree === undefined ? '–' : fmt(tree * MB_PER_MIB)} |`,
    )
  }
  const rss = results
    .map((r) => r.summary.airpackPeakTreeRssMiB as number | undefined)
    .filter((v): v is number => v !== undefined)
  if (rss.length >= 1) {
    const spread = Math.max(...rss) / Math.min(...rss) - 1
    const under = Math.max(...rss) * MB_PER_MIB <= RSS_LIMIT_MB
    lines.push(
      '',
      `Peak memory (airpack and its children): every size ≤ ${RSS_LIMIT_MB} MB: ${under ? 'met' : 'NOT met'}` +
        (rss.length >= 2
          ? `; spread between sizes ${(spread * 100).toFixed(1)} % (target ≤ ${RSS_SPREAD * 100} %): ${spread <= RSS_SPREAD ? 'met' : 'NOT met'}.`
          : '.'),
    )
  }
  return lines.join('\n') + '\n'
}

async function main() {
  const workRoot = args['work-dir']
    ? path.resolve(args['work-dir'])
    : await mkdtemp(path.join(os.tmpdir(), 'airpack-bench-'))
  await mkdir(workRoot, {recursive: true})
  if (!args['no-snapshot'] && existsSync(path.join(ROOT, 'dist'))) {
    AIRPACK_ROOT = await snapshotAirpack(workRoot)
    BIN = path.join(AIRPACK_ROOT, 'bin', 'run.js')
    log(`measuring a snapshot of the built airpack in ${AIRPACK_ROOT}`)
  }
  if (!airpackHas('bundle', 'build'))
    log('note: dist/commands/bundle/build.js is missing — run `npm run build`; airpack sides will be skipped')
  const meta = {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    zstd: toolVersion('zstd', ['--version']),
    skopeo: toolVersion('skopeo', ['--version']),
    images: Number(args.images),
    layersPerImage: Number(args['layers-per-image']),
    platforms: args.platforms,
    arch,
    reps,
    compressionLevel: level,
    format: args.format,
    sealedBuild: [args.sign ? '--sign-key (RSA 3072)' : '', args['split-size'] ? `--split ${args['split-size']}` : '']
      .filter(Boolean)
      .join(' '),
    loadStart: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
    loadEnd: undefined as string | undefined,
    command: `node --import tsx bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
  }
  const results: Record<string, unknown>[] = []
  await mkdir(args.out!, {recursive: true})
  // Written after every size, so a long run that is stopped keeps what it finished.
  const save = async () => {
    const md = markdown(results, meta)
    await writeFile(path.join(args.out!, 'results.json'), JSON.stringify({meta, results}, null, 2) + '\n')
    await writeFile(path.join(args.out!, 'results.md'), md)
    return md
  }
  try {
    for (const size of args.sizes!.split(',')) {
      results.push(await benchSize(size.trim(), workRoot))
      await save()
    }
  } finally {
    if (!args.keep && !args['work-dir']) await rm(workRoot, {recursive: true, force: true})
  }
  meta.loadEnd = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')
  process.stdout.write(await save())
  log(`wrote ${path.join(args.out!, 'results.json')} and results.md`)
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the runs in flight`)
    killActiveRuns()
    process.exit(130)
  })
}

main().catch((error) => {
  log(`benchmark failed: ${error instanceof Error ? error.stack : String(error)}`)
  process.exit(1)
})
