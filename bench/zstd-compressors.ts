// Which compressor makes format 2's compressed frames (issue 12): the same input cut into fixed-size frames and
// compressed by each candidate that installs from the npm registry without a toolchain, plus today's `zstd` CLI
// stream for reference.
//
//   node --import tsx bench/zstd-compressors.ts [--input FILE] [--size 256M] [--frame 4M] [--level 3]
//
// Without --input it compresses the first --size bytes of a tar of /usr/lib (real binaries and text, about 2:1).
// Reported per candidate: wall seconds, MB/s, CPU seconds (this process and its children), output bytes and ratio.
// zstd-napi (node-gyp build from source, needs gcc/make/python3 on every machine) and Node ≥ 22.15's experimental
// zlib zstd (not in Node 20) are not run here; ecosystem.md §3 has their figures.

import {execFileSync, spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {parseArgs} from 'node:util'

import {compressFrame, loadZstdWasm} from '../src/zstd/wasm.js'
import {parseSize} from '../support/bench-content.js'

const {values: args} = parseArgs({
  options: {
    input: {type: 'string'},
    size: {type: 'string', default: '256M'},
    frame: {type: 'string', default: '4M'},
    level: {type: 'string', default: '3'},
  },
})

const size = parseSize(args.size!)
const frame = parseSize(args.frame!)
const level = Number(args.level)
const data = args.input
  ? readFileSync(args.input).subarray(0, size)
  : execFileSync('bash', ['-c', `tar cf - -C /usr lib 2>/dev/null | head -c ${size}`], {
      maxBuffer: size + 1024,
      encoding: 'buffer',
    })

/** CPU seconds of this process plus its reaped children (utime, stime, cutime, cstime of /proc/self/stat). */
function cpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100
}

function frames(): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < data.length; at += frame) out.push(data.subarray(at, Math.min(at + frame, data.length)))
  return out
}

/** Runs `compress` (which returns the output size) and prints one table row. */
function run(name: string, compress: () => number): void {
  const wall0 = process.hrtime.bigint()
  const cpu0 = cpuSeconds()
  const out = compress()
  const seconds = Number(process.hrtime.bigint() - wall0) / 1e9
  const cpu = cpuSeconds() - cpu0
  console.log(
    `| ${name} | ${seconds.toFixed(2)} | ${(data.length / 1e6 / seconds).toFixed(0)} | ${cpu.toFixed(2)} | ${out} | ${(data.length / out).toFixed(3)} |`,
  )
}

const zstd = await loadZstdWasm()
console.log(`input ${data.length} bytes, frames of ${frame} bytes, level ${level}`)
console.log('| compressor | wall s | MB/s | CPU-s | output bytes | ratio |')
console.log('| --- | --- | --- | --- | --- | --- |')
const sum = (sizes: number[]) => sizes.reduce((a, b) => a + b, 0)
run(`@bokuweb/zstd-wasm, one frame per ${args.frame}`, () =>
  sum(frames().map((piece) => compressFrame(zstd, piece, level).length)),
)
run(`zstd CLI, one child per ${args.frame} frame`, () =>
  sum(
    frames().map(
      (piece) => spawnSync('zstd', [`-${level}`, '-q', '-c'], {input: piece, maxBuffer: 2 * frame}).stdout.length,
    ),
  ),
)
for (const threads of ['-T1', '-T0']) {
  run(
    `zstd CLI ${threads}, one stream (format 1, not seekable)`,
    () =>
      spawnSync('zstd', [threads, `-${level}`, '-q', '-c'], {input: data, maxBuffer: data.length + 1024}).stdout.length,
  )
}
