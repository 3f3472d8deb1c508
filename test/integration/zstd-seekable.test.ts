import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {once} from 'node:events'
import {createWriteStream, mkdtempSync, readdirSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {encodeFileHeader, padding} from '../../src/bundle/tar.js'
import {hasSeekTable, SeekableReader} from '../../src/zstd/seekable-reader.js'
import {SeekableWriter, type FrameMode, type SeekableSummary} from '../../src/zstd/seekable-writer.js'
import {randomBytesStream} from '../../support/bench-content.js'

// A format 2 style tar.zst read by the stock tools: one frame group per tar entry, a 200 MiB already-compressed
// entry in one raw frame (over zstd's 128 MiB limit for a Single_Segment window), several 4 MiB compressed
// frames, the seek table at the end. `zstd -d` of the file and of the `cat` of its parts must give exactly the
// tar, and `tar` must list it.

const BIG = 200 * 1024 * 1024
const MIB = 1024 * 1024

let root: string
let file: string
let tarSha256: string
let tarSize: number
let summary: SeekableSummary
/** Where each entry's body starts in the tar, and its size. */
const bodies = new Map<string, {offset: number; size: number; sha256: string}>()
/** A probe of the big entry's bytes, deep inside its raw frame. */
const probe = {offset: 150 * MIB + 12345, bytes: Buffer.alloc(0)}

function sh(script: string): string {
  return execFileSync('bash', ['-o', 'pipefail', '-c', script], {encoding: 'utf8', maxBuffer: 16 * MIB}).trim()
}

function manifestLike(size: number): Buffer {
  const line = '{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0123456789abcdef","size":42}\n'
  return Buffer.from(line.repeat(Math.ceil(size / line.length)).slice(0, size))
}

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'airpack-seekable-it-'))
  file = path.join(root, 'site.tar.zst')
  const out = createWriteStream(file)
  const writer = await SeekableWriter.create(out, {level: 3})
  const tarHash = createHash('sha256')
  let offset = 0
  const put = async (chunk: Buffer) => {
    tarHash.update(chunk)
    offset += chunk.length
    if (!writer.write(chunk)) await writer.waitForRoom()
  }
  const entry = async (name: string, mode: FrameMode, size: number, body: AsyncIterable<Buffer>) => {
    const header = encodeFileHeader(name, size, {mtime: 0})
    writer.beginSegment(mode, header.length + size + padding(size).length)
    await put(header)
    const start = offset
    const hash = createHash('sha256')
    for await (const chunk of body) {
      const at = offset - start
      if (name.endsWith('big') && at <= probe.offset && probe.offset < at + chunk.length)
        probe.bytes = Buffer.from(chunk.subarray(probe.offset - at, probe.offset - at + 1000))
      hash.update(chunk)
      await put(chunk)
    }
    bodies.set(name, {offset: start, size, sha256: hash.digest('hex')})
    await put(padding(size))
  }
  const once1 = (b: Buffer) =>
    (async function* () {
      yield b
    })()
  await entry('airpack/bundle.json', 'compressed', 5000, once1(manifestLike(5000)))
  await entry('blobs/sha256/big', 'raw', BIG, randomBytesStream('big layer', BIG))
  await entry('blobs/sha256/config', 'compressed', 9 * MIB + 7, once1(manifestLike(9 * MIB + 7)))
  await entry('blobs/sha256/small-layer', 'raw', 3000, randomBytesStream('small layer', 3000))
  writer.beginSegment('compressed', 1024)
  await put(Buffer.alloc(1024))
  summary = await writer.finish()
  out.end()
  await once(out, 'close')
  tarSha256 = tarHash.digest('hex')
  tarSize = offset
}, 180_000)

afterAll(() => rmSync(root, {recursive: true, force: true}))

describe('a seekable tar.zst and the stock zstd and tar', () => {
  it('holds the big entry in one raw frame over 128 MiB, and 4 MiB compressed frames', () => {
    expect(summary.frames.map((f) => f.decompressedSize)).toEqual([
      512 + 5120,
      512 + BIG,
      4 * MIB,
      4 * MIB,
      512 + MIB + 7 + 505,
      512 + 3072,
      1024,
    ])
    expect(summary.frames[1].decompressedSize).toBeGreaterThan(128 * MIB)
    expect(summary.decompressedSize).toBe(tarSize)
    // Raw: a 10-byte header and 3 bytes per 128 KiB block. The whole file: the compressible entries shrank.
    expect(summary.frames[1].compressedSize - summary.frames[1].decompressedSize).toBe(
      10 + 3 * Math.ceil((512 + BIG) / (128 * 1024)),
    )
    expect(summary.compressedSize).toBeLessThan(tarSize - 8 * MIB)
  })

  it('`zstd -d` gives exactly the tar; `zstd -l` counts every frame plus the seek table as a skippable one', () => {
    expect(sh(`zstd -q -dc ${file} | sha256sum`).split(/\s+/)[0]).toBe(tarSha256)
    sh(`zstd -q -t ${file}`)
    const list = sh(`zstd -l ${file}`)
    expect(list).toMatch(new RegExp(`^\\s*${summary.frames.length + 1}\\s+1\\s`, 'm'))
  })

  it('`tar` lists every entry with its size', () => {
    const listing = sh(`zstd -q -dc ${file} | tar -tvf -`)
    const lines = listing.split('\n')
    expect(lines.map((l) => l.split(/\s+/).pop())).toEqual([
      'airpack/bundle.json',
      'blobs/sha256/big',
      'blobs/sha256/config',
      'blobs/sha256/small-layer',
    ])
    expect(lines[1]).toContain(` ${BIG} `)
  })

  it('`cat` of the parts, cut at any size, decompresses to exactly the tar, and the reader reads the parts in place', async () => {
    sh(`cd ${root} && split -b 67108863 -d -a 3 site.tar.zst site.tar.zst.`)
    const parts = readdirSync(root)
      .filter((n) => /^site\.tar\.zst\.\d{3}$/.test(n))
      .sort()
      .map((n) => path.join(root, n))
    expect(parts.length).toBeGreaterThan(2)
    expect(sh(`cat ${parts.join(' ')} | zstd -q -dc | sha256sum`).split(/\s+/)[0]).toBe(tarSha256)
    expect(await hasSeekTable(parts)).toBe(true)
    const reader = await SeekableReader.open(parts, {name: 'site.tar.zst'})
    try {
      expect(reader.size).toBe(tarSize)
      expect(reader.table.frames.map((f) => f.decompressedSize)).toEqual(summary.frames.map((f) => f.decompressedSize))
      expect(reader.table.frames.map((f) => f.compressedSize)).toEqual(summary.frames.map((f) => f.compressedSize))
      // An entry's body, read by range across several compressed frames.
      const config = bodies.get('blobs/sha256/config')!
      const hash = createHash('sha256')
      for await (const piece of reader.read(config.offset, config.size)) hash.update(piece)
      expect(hash.digest('hex')).toBe(config.sha256)
      // 1000 bytes 150 MiB into the raw frame (and across a part boundary at 64 MiB it would not matter).
      const big = bodies.get('blobs/sha256/big')!
      expect((await reader.readBuffer(big.offset + probe.offset, 1000)).equals(probe.bytes)).toBe(true)
      // The whole big entry, streamed.
      const bigHash = createHash('sha256')
      for await (const piece of reader.read(big.offset, big.size)) bigHash.update(piece)
      expect(bigHash.digest('hex')).toBe(big.sha256)
    } finally {
      await reader.close()
    }
  })

  it('a plain zstd file (a format 1 bundle) has no seek table, and the reader says so with exit 5', async () => {
    const plain = path.join(root, 'plain.tar.zst')
    // The first 3 MB of the tar, compressed by the zstd CLI as format 1 did (zstd -dc stops early: head closed the pipe).
    sh(`(zstd -q -dc ${file} || true) | head -c 3000000 | zstd -q -3 -o ${plain}`)
    expect(await hasSeekTable(plain)).toBe(false)
    const error = await SeekableReader.open(plain).then(
      () => undefined,
      (e: unknown) => e as {exitCode?: number; message?: string},
    )
    expect(error?.exitCode).toBe(5)
    expect(error?.message).toMatch(/plain\.tar\.zst: does not end with a seek table .*format 1 bundle/)
  })
})
