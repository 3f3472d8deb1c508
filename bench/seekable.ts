// Format 2 frame layer benchmark (issue 12): how much a bundle's compression step costs today, and with raw frames
// for already-compressed data plus 4 MiB zstd-wasm frames for the rest.
//
//   node --import tsx bench/seekable.ts [--random 1G] [--compressible 64M] [--reps 3] [--work-dir DIR] [--keep]
//
// It writes the input once into a work dir, as a warm build finds it in the cache: `--random` bytes of
// already-compressed (random) blobs in 128 MiB files, and `--compressible` bytes of JSON-like text (configs,
// manifests, and one uncompressed layer) in files of 4 KiB to 16 MiB. Then, `--reps` times, alternating the order,
// each variant runs in its own process reading those files as one tar stream:
//   format1 : tar → `zstd -T0 -3` child writing the file (today's writer)
//   format2 : tar → SeekableWriter → file (raw frames for the random blobs, compressed frames for the rest)
//   floor   : the same tar bytes written uncompressed (what copying costs)
//   startup : node + tsx loading these modules and exiting (the fixed cost inside every figure above)
// and then reads each rep's outputs back whole, as `verify` would stream them:
//   read1   : `zstd -dc format1-output | sha256sum` (today's verify baseline)
//   read2cli: `zstd -dc format2-output | sha256sum` (stock tools on format 2)
//   read2   : SeekableReader over the format 2 output, sha256 in the same process (raw frames read in place)
// and reports median wall seconds, MB/s of tar input, CPU seconds (the process and its children, GNU time %U+%S),
// peak RSS of the process tree, and the output size (format2 / format1 must stay ≤ 1.01). Each output is checked
// once: `zstd -d | sha256sum` must give the sha256 of the floor's plain tar.

import {execFileSync} from 'node:child_process'
import {createCipheriv, createHash} from 'node:crypto'
import {once} from 'node:events'
import {createReadStream, createWriteStream, existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type {Writable} from 'node:stream'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {encodeFileHeader, padding} from '../src/bundle/tar.js'
import {startCompressor, type ZstdProcess} from '../src/bundle/zstd.js'
import {SeekableReader} from '../src/zstd/seekable-reader.js'
import {SeekableWriter} from '../src/zstd/seekable-writer.js'
import {parseSize} from '../support/bench-content.js'
import {measure, median} from './lib/measure.js'

const SELF = fileURLToPath(import.meta.url)
const MIB = 1024 * 1024
const VARIANTS = ['startup', 'format1', 'format2', 'floor'] as const
const READ_VARIANTS = ['read1', 'read2cli', 'read2'] as const
type Variant = (typeof VARIANTS)[number] | (typeof READ_VARIANTS)[number]

const {values: args} = parseArgs({
  options: {
    random: {type: 'string', default: '1G'},
    compressible: {type: 'string', default: '64M'},
    reps: {type: 'string', default: '3'},
    level: {type: 'string', default: '3'},
    'work-dir': {type: 'string'},
    keep: {type: 'boolean', default: false},
    // Internal: run one variant (in the measured child process).
    variant: {type: 'string'},
    out: {type: 'string'},
  },
})

interface InputFile {
  name: string
  path: string
  size: number
  mode: 'raw' | 'compressed'
}

/** Seeded random bytes (AES-CTR keystream), as incompressible as a gzip layer. */
function randomChunk(cipher: ReturnType<typeof createCipheriv>, size: number): Buffer {
  return cipher.update(Buffer.alloc(size))
}

/** JSON-like lines with varying numbers and digests: compresses about like manifests and configs (≈ 3:1). */
function textChunk(seed: number, size: number): Buffer {
  const lines: string[] = []
  let length = 0
  let x = seed
  while (length < size) {
    x = (x * 1103515245 + 12345) >>> 0
    const line = `{"digest":"sha256:${x.toString(16).padStart(8, '0')}${(x ^ 0x5bd1e995).toString(16).padStart(8, '0')}","size":${x % 100000},"annotations":{"org.opencontainers.image.title":"file-${x % 977}.txt"}}\n`
    lines.push(line)
    length += line.length
  }
  return Buffer.from(lines.join('')).subarray(0, size)
}

async function prepare(dir: string, randomBytes: number, compressibleBytes: number): Promise<InputFile[]> {
  const files: InputFile[] = []
  const manifestPath = path.join(dir, 'inputs.json')
  if (existsSync(manifestPath)) {
    const cached = JSON.parse(await readFile(manifestPath, 'utf8')) as {
      random: number
      compressible: number
      files: InputFile[]
    }
    if (cached.random === randomBytes && cached.compressible === compressibleBytes) return cached.files
  }
  await mkdir(path.join(dir, 'blobs'), {recursive: true})
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16))
  for (let i = 0, left = randomBytes; left > 0; i++) {
    const size = Math.min(128 * MIB, left)
    const p = path.join(dir, 'blobs', `layer-${i}`)
    const out = createWriteStream(p)
    for (let done = 0; done < size; done += 4 * MIB)
      if (!out.write(randomChunk(cipher, Math.min(4 * MIB, size - done)))) await once(out, 'drain')
    out.end()
    await once(out, 'close')
    files.push({name: `blobs/sha256/layer-${i}`, path: p, size, mode: 'raw'})
    left -= size
  }
  // Many small configs and manifests, a few mid-size, and one uncompressed layer with the rest.
  let left = compressibleBytes
  const sizes = [...Array(200).fill(4096), ...Array(8).fill(256 * 1024)]
  let seed = 1
  for (const size of [...sizes, Number.POSITIVE_INFINITY]) {
    if (left <= 0) break
    const n = Math.min(size, left)
    const p = path.join(dir, 'blobs', `text-${seed}`)
    await writeFile(p, textChunk(seed, n))
    files.push({name: `blobs/sha256/text-${seed}`, path: p, size: n, mode: 'compressed'})
    left -= n
    seed++
  }
  files.sort((a, b) => (a.name < b.name ? -1 : 1))
  await writeFile(manifestPath, JSON.stringify({random: randomBytes, compressible: compressibleBytes, files}))
  return files
}

async function writeTo(out: Writable, chunk: Buffer): Promise<void> {
  if (!out.write(chunk) && out.writableLength > 8 * MIB) await once(out, 'drain')
}

/** One variant, in this (measured) process: the tar of `files` into `outFile`. */
async function runVariant(variant: Variant, files: InputFile[], outFile: string, level: number): Promise<void> {
  if (variant === 'startup') return
  if (variant === 'read2') {
    const reader = await SeekableReader.open(outFile)
    const hash = createHash('sha256')
    for await (const piece of reader.read(0, reader.size)) hash.update(piece)
    await reader.close()
    process.stdout.write(hash.digest('hex'))
    return
  }
  let zstd: ZstdProcess | undefined
  let sink: Writable
  let seekable: SeekableWriter | undefined
  if (variant === 'format1') {
    zstd = await startCompressor({level, outputFile: outFile})
    sink = zstd.stdin
  } else {
    sink = createWriteStream(outFile)
    if (variant === 'format2') seekable = await SeekableWriter.create(sink, {level})
  }
  const put = async (chunk: Buffer) => {
    if (seekable) {
      if (!seekable.write(chunk)) await seekable.waitForRoom()
    } else await writeTo(sink, chunk)
  }
  for (const f of files) {
    const header = encodeFileHeader(f.name, f.size, {mtime: 0})
    seekable?.beginSegment(f.mode, header.length + f.size + padding(f.size).length)
    await put(header)
    for await (const chunk of createReadStream(f.path, {highWaterMark: MIB})) await put(chunk as Buffer)
    await put(padding(f.size))
  }
  seekable?.beginSegment('compressed', 1024)
  await put(Buffer.alloc(1024))
  await seekable?.finish()
  sink.end()
  if (zstd) await zstd.done
  else await once(sink, 'close')
}

function sha256Of(file: string, zstd: boolean): string {
  return execFileSync(
    'bash',
    ['-o', 'pipefail', '-c', zstd ? `zstd -q -dc ${file} | sha256sum` : `sha256sum < ${file}`],
    {encoding: 'utf8'},
  ).split(/\s/)[0]!
}

interface Run {
  variant: Variant
  seconds: number
  cpuSeconds: number
  treeRssMiB: number
  size: number
}

async function main(): Promise<void> {
  const level = Number(args.level)
  if (args.variant) {
    const dir = args['work-dir']!
    const files = (JSON.parse(await readFile(path.join(dir, 'inputs.json'), 'utf8')) as {files: InputFile[]}).files
    await runVariant(args.variant as Variant, files, args.out!, level)
    return
  }
  const randomBytes = parseSize(args.random!)
  const compressibleBytes = parseSize(args.compressible!)
  const reps = Number(args.reps)
  const dir = args['work-dir'] ?? (await mkdtemp(path.join(os.tmpdir(), 'airpack-bench-seekable-')))
  await mkdir(dir, {recursive: true})
  console.error(`preparing ${args.random} random + ${args.compressible} compressible input in ${dir}`)
  const files = await prepare(dir, randomBytes, compressibleBytes)
  const tarSize =
    files.reduce(
      (s, f) => s + encodeFileHeader(f.name, f.size, {mtime: 0}).length + f.size + padding(f.size).length,
      0,
    ) + 1024
  const runs: Run[] = []
  const checked = new Set<Variant>()
  let tarSha: string | undefined
  for (let rep = 0; rep < reps; rep++) {
    // The floor's plain tar is the reference the others are checked against: it runs first in the first rep.
    const order =
      rep === 0
        ? (['floor', 'startup', 'format1', 'format2'] as Variant[])
        : rep % 2 === 0
          ? [...VARIANTS]
          : [...VARIANTS].reverse()
    for (const variant of order) {
      const outFile = path.join(dir, `out-${variant}`)
      const cpuFile = path.join(dir, `cpu-${variant}`)
      await rm(outFile, {force: true})
      const m = await measure(
        `/usr/bin/time -f '%U %S' -o ${cpuFile} ${process.execPath} --import tsx ${SELF} --variant ${variant} --work-dir ${dir} --out ${outFile} --level ${level}`,
        {rssFile: path.join(dir, 'rss'), cwd: path.dirname(path.dirname(SELF))},
      )
      if (m.exitCode !== 0) throw new Error(`${variant} failed: ${m.stderrTail}`)
      const [user, sys] = (await readFile(cpuFile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number)
      const size = variant === 'startup' ? 0 : (await stat(outFile)).size
      if (variant !== 'startup' && !checked.has(variant)) {
        checked.add(variant)
        tarSha ??= sha256Of(outFile, false)
        const got = sha256Of(outFile, variant !== 'floor')
        if (got !== tarSha)
          throw new Error(`${variant}: its output does not give back the tar (${got}, the floor's tar is ${tarSha})`)
      }
      runs.push({variant, seconds: m.seconds, cpuSeconds: user + sys, treeRssMiB: m.treeRssMiB, size})
      console.error(
        `rep ${rep + 1} ${variant}: ${m.seconds.toFixed(2)} s, ${(user + sys).toFixed(2)} CPU-s, ${m.treeRssMiB.toFixed(0)} MiB, ${size} bytes`,
      )
    }
    const readOrder = rep % 2 === 0 ? [...READ_VARIANTS] : [...READ_VARIANTS].reverse()
    for (const variant of readOrder) {
      const cpuFile = path.join(dir, `cpu-${variant}`)
      const shaFile = path.join(dir, `sha-${variant}`)
      const f1 = path.join(dir, 'out-format1')
      const f2 = path.join(dir, 'out-format2')
      const command =
        variant === 'read2'
          ? `${process.execPath} --import tsx ${SELF} --variant read2 --work-dir ${dir} --out ${f2}`
          : `bash -o pipefail -c 'zstd -q -dc ${variant === 'read1' ? f1 : f2} | sha256sum'`
      const m = await measure(`/usr/bin/time -f '%U %S' -o ${cpuFile} ${command} > ${shaFile}`, {
        rssFile: path.join(dir, 'rss'),
        cwd: path.dirname(path.dirname(SELF)),
      })
      if (m.exitCode !== 0) throw new Error(`${variant} failed: ${m.stderrTail}`)
      const [user, sys] = (await readFile(cpuFile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number)
      const sha = (await readFile(shaFile, 'utf8')).trim().split(/\s/)[0]
      if (sha !== tarSha) throw new Error(`${variant} read back ${sha}, not the tar ${tarSha}`)
      runs.push({variant, seconds: m.seconds, cpuSeconds: user + sys, treeRssMiB: m.treeRssMiB, size: 0})
      console.error(
        `rep ${rep + 1} ${variant}: ${m.seconds.toFixed(2)} s, ${(user + sys).toFixed(2)} CPU-s, ${m.treeRssMiB.toFixed(0)} MiB`,
      )
    }
  }
  const row = (variant: Variant) => {
    const r = runs.filter((x) => x.variant === variant)
    const s = median(r.map((x) => x.seconds))
    return {
      variant,
      seconds: s,
      mbps: tarSize / 1e6 / s,
      cpu: median(r.map((x) => x.cpuSeconds)),
      rss: Math.max(...r.map((x) => x.treeRssMiB)),
      size: r[0]!.size,
    }
  }
  const rows = [...VARIANTS, ...READ_VARIANTS].map(row)
  const f1 = rows.find((r) => r.variant === 'format1')!
  const f2 = rows.find((r) => r.variant === 'format2')!
  console.log(
    `input: ${files.length} entries, tar ${tarSize} bytes (${args.random} random, ${args.compressible} compressible), ${reps} reps, ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}`,
  )
  console.log('| variant | wall s (median) | MB/s | CPU-s (median) | peak RSS MiB (tree, max) | output bytes |')
  console.log('| --- | --- | --- | --- | --- | --- |')
  for (const r of rows) {
    const startup = r.variant === 'startup'
    const noOutput = startup || r.variant.startsWith('read')
    console.log(
      `| ${r.variant} | ${r.seconds.toFixed(2)} | ${startup ? '—' : r.mbps.toFixed(0)} | ${r.cpu.toFixed(2)} | ${r.rss.toFixed(0)} | ${noOutput ? '—' : r.size} |`,
    )
  }
  const [r1, r2] = [row('read1'), row('read2')]
  console.log(
    `read back: SeekableReader + sha256 ${(r1.seconds / r2.seconds).toFixed(2)}× the speed of \`zstd -dc | sha256sum\` on format 1, CPU ${(r2.cpu / r1.cpu).toFixed(2)}×`,
  )
  console.log(
    `format2 / format1: wall ${(f2.seconds / f1.seconds).toFixed(2)}×, CPU ${(f2.cpu / f1.cpu).toFixed(2)}×, size ${(f2.size / f1.size).toFixed(4)}× (target ≤ 1.01)`,
  )
  if (!args.keep && !args['work-dir']) await rm(dir, {recursive: true, force: true})
  else for (const n of await readdir(dir)) if (n.startsWith('out-')) await rm(path.join(dir, n), {force: true})
}

await main()
