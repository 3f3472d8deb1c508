import {createCipheriv, createHash} from 'node:crypto'
import {createWriteStream, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {open as openFile, readFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {PassThrough, Readable, type Writable} from 'node:stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {frameModeFor, TAR_END_LENGTH, tarEntryLength} from '../../src/bundle/framing.js'
import {TarParser, TarWriter} from '../../src/bundle/tar.js'
import {IntegrityError} from '../../src/errors.js'
import {
  blockHeader,
  MAX_BLOCK_SIZE,
  parseBlockHeader,
  parseFrameHeader,
  rawFrameHeader,
  rawFrameSize,
} from '../../src/zstd/frame.js'
import {encodeSeekTable, frameAt, parseSeekTable, SEEKABLE_MAGIC} from '../../src/zstd/seek-table.js'
import {hasSeekTable, SeekableReader} from '../../src/zstd/seekable-reader.js'
import {SeekableWriter, type FrameMode, type SeekableWriterOptions} from '../../src/zstd/seekable-writer.js'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'airpack-seekable-'))
afterAll(() => rmSync(tmp, {recursive: true, force: true}))

/** Deterministic incompressible bytes. */
function noise(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

function text(size: number): Buffer {
  const line = Buffer.from('{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1234}\n')
  const out = Buffer.alloc(size)
  for (let i = 0; i < size; i += line.length) line.copy(out, i)
  return out
}

interface Segment {
  mode: FrameMode
  data: Buffer
}

/** Writes `segments` through a SeekableWriter, feeding each in chunks of `chunk` bytes. */
async function writeSeekable(segments: Segment[], options: Partial<SeekableWriterOptions> = {}, chunk = 65536) {
  const out = new PassThrough()
  const pieces: Buffer[] = []
  out.on('data', (c: Buffer) => pieces.push(c))
  const w = await SeekableWriter.create(out, {level: 3, ...options})
  for (const s of segments) {
    w.beginSegment(s.mode, s.data.length)
    for (let i = 0; i < s.data.length; i += chunk) if (!w.write(s.data.subarray(i, i + chunk))) await w.waitForRoom()
  }
  const summary = await w.finish()
  out.end()
  return {bytes: Buffer.concat(pieces), summary}
}

function fileOf(name: string, bytes: Buffer): string {
  const p = path.join(tmp, name)
  writeFileSync(p, bytes)
  return p
}

async function refusal(promise: Promise<unknown>): Promise<IntegrityError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(IntegrityError)
  expect((error as IntegrityError).exitCode).toBe(5)
  return error as IntegrityError
}

describe('raw zstd frames (RFC 8878)', () => {
  it('writes a Window_Descriptor of 1 MiB, not Single_Segment, and the smallest Frame_Content_Size field', () => {
    const empty = rawFrameHeader(0)
    expect([...empty]).toEqual([0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x50, 0, 0, 0, 0])
    expect(rawFrameHeader(300).length).toBe(8) // 2-byte field, value - 256
    expect(rawFrameHeader(300).readUInt16LE(6)).toBe(44)
    expect(rawFrameHeader(2 ** 32).length).toBe(14)
    for (const size of [0, 255, 256, 65791, 65792, 2 ** 30, 2 ** 32 + 5]) {
      const h = parseFrameHeader(rawFrameHeader(size))
      expect(h).toMatchObject({
        contentSize: size,
        singleSegment: false,
        contentChecksum: false,
        dictionaryId: 0,
        windowSize: 1 << 20,
      })
      expect(h.headerSize).toBe(rawFrameHeader(size).length)
    }
  })

  it('encodes block headers as Last_Block, Block_Type and Block_Size', () => {
    expect([...blockHeader(MAX_BLOCK_SIZE, 'raw', false)]).toEqual([0x00, 0x00, 0x10])
    expect([...blockHeader(0, 'raw', true)]).toEqual([0x01, 0x00, 0x00])
    expect(parseBlockHeader(blockHeader(1234, 'compressed', true))).toEqual({
      size: 1234,
      type: 'compressed',
      last: true,
    })
  })

  it('refuses what is not a frame header', () => {
    expect(() => parseFrameHeader(Buffer.from('not a zstd frame'))).toThrow(/no zstd frame magic/)
    expect(() => parseFrameHeader(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x88, 0x50]))).toThrow(/reserved bit/)
  })
})

describe('seek table (zstd seekable format 0.1.0)', () => {
  it('reads back what it writes, with every frame located', () => {
    const frames = [
      {compressedSize: 100, decompressedSize: 4096},
      {compressedSize: 7, decompressedSize: 0},
      {compressedSize: 50, decompressedSize: 1000},
    ]
    const table = encodeSeekTable(frames)
    expect(table.length).toBe(8 + 3 * 8 + 9)
    expect(table.readUInt32LE(0)).toBe(0x184d2a5e)
    expect(table.readUInt32LE(4)).toBe(table.length - 8)
    expect(table.readUInt32LE(table.length - 4)).toBe(SEEKABLE_MAGIC)
    expect(table[table.length - 5]).toBe(0) // no checksums
    const parsed = parseSeekTable(table, 157 + table.length)
    expect(parsed.frames.map((f) => [f.compressedOffset, f.decompressedOffset])).toEqual([
      [0, 0],
      [100, 4096],
      [107, 4096],
    ])
    expect(parsed.decompressedSize).toBe(5096)
    expect(frameAt(parsed, 0)?.index).toBe(0)
    expect(frameAt(parsed, 4095)?.index).toBe(0)
    expect(frameAt(parsed, 4096)?.index).toBe(2) // the empty frame holds no byte
    expect(frameAt(parsed, 5095)?.index).toBe(2)
    expect(frameAt(parsed, 5096)).toBeUndefined()
  })

  it('refuses a table whose sizes do not add up to the bytes before it', () => {
    const table = encodeSeekTable([{compressedSize: 100, decompressedSize: 10}])
    expect(() => parseSeekTable(table, 99 + table.length)).toThrow(/add up to 100 compressed bytes, but 99/)
  })
})

describe('SeekableWriter', () => {
  it('starts a frame at every segment and cuts segments at fixed sizes', async () => {
    const segments: Segment[] = [
      {mode: 'compressed', data: text(10_000)},
      {mode: 'raw', data: noise('a', 2_500_000)},
      {mode: 'compressed', data: text(9 * 1024 * 1024 + 3)},
      {mode: 'raw', data: Buffer.alloc(0)},
      {mode: 'raw', data: noise('b', 700)},
    ]
    const {bytes, summary} = await writeSeekable(segments, {rawFrameSize: 1024 * 1024})
    expect(summary.frames.map((f) => f.decompressedSize)).toEqual([
      10_000,
      1 << 20,
      1 << 20,
      2_500_000 - 2 * (1 << 20),
      4 << 20,
      4 << 20,
      (1 << 20) + 3,
      700,
    ])
    // Raw frames are exactly header + a 3-byte header per 128 KiB block + content.
    expect(summary.frames[1].compressedSize).toBe(rawFrameSize(1 << 20))
    expect(summary.frames[1].compressedSize).toBe(10 + 8 * 3 + (1 << 20))
    expect(summary.frames[7].compressedSize).toBe(rawFrameSize(700))
    expect(summary.frames[0].compressedSize).toBeLessThan(1000)
    expect(summary.decompressedSize).toBe(segments.reduce((s, x) => s + x.data.length, 0))
    expect(summary.compressedSize).toBe(bytes.length)
    // Each frame starts where the table says, with its content size in its header.
    let at = 0
    for (const f of summary.frames) {
      expect(parseFrameHeader(bytes.subarray(at, at + 18)).contentSize).toBe(f.decompressedSize)
      at += f.compressedSize
    }
    expect(bytes.length - at).toBe(summary.tableSize)
    expect(
      parseSeekTable(bytes.subarray(at), bytes.length).frames.map(({compressedSize, decompressedSize}) => ({
        compressedSize,
        decompressedSize,
      })),
    ).toEqual(summary.frames)
  })

  it('writes the same bytes however the input is chunked', async () => {
    const segments: Segment[] = [
      {mode: 'compressed', data: text(5 * 1024 * 1024 + 17)},
      {mode: 'raw', data: noise('c', 300_001)},
      {mode: 'compressed', data: Buffer.from('{"a":1}\n')},
    ]
    const reference = (await writeSeekable(segments, {}, 1 << 20)).bytes
    for (const chunk of [1, 511, 4096, 131_071, 131_073, 8 << 20]) {
      const small = chunk === 1 ? segments.map((s) => ({...s, data: s.data.subarray(0, 5000)})) : segments
      const expected = chunk === 1 ? (await writeSeekable(small, {}, 7777)).bytes : reference
      expect(
        createHash('sha256')
          .update((await writeSeekable(small, {}, chunk)).bytes)
          .digest('hex'),
      ).toBe(createHash('sha256').update(expected).digest('hex'))
    }
  })

  it('writes the same bytes from a file (writeFile: readv between block headers) as from memory, into a file or a pipe', async () => {
    // Raw segments over several frames and 4 MiB chunks, starting mid-block (a tar header first) and at a frame
    // boundary; a compressed segment read straight into the frame buffer.
    const big = noise('file', 5 * 1024 * 1024 + 4321)
    const json = text(4 * 1024 * 1024 + 999)
    const bigFile = fileOf('writefile-big.bin', big)
    const jsonFile = fileOf('writefile-json.bin', json)
    const head = Buffer.alloc(512, 7)
    const options = {rawFrameSize: 3 * 1024 * 1024 + 5}
    const expected = (
      await writeSeekable(
        [
          {mode: 'raw', data: Buffer.concat([head, big])},
          {mode: 'raw', data: big},
          {mode: 'compressed', data: json},
        ],
        options,
      )
    ).bytes
    for (const target of ['pipe', 'file'] as const) {
      const outFile = path.join(tmp, 'writefile-out.bin')
      const pieces: Buffer[] = []
      const out: Writable = target === 'file' ? createWriteStream(outFile) : new PassThrough()
      if (target === 'pipe') out.on('data', (c: Buffer) => pieces.push(Buffer.from(c)))
      const w = await SeekableWriter.create(out, {level: 3, ...options, reuseBuffers: target === 'file'})
      const [bigHandle, jsonHandle] = [await openFile(bigFile, 'r'), await openFile(jsonFile, 'r')]
      w.beginSegment('raw', head.length + big.length)
      w.write(head)
      await w.writeFile(bigHandle, big.length)
      w.beginSegment('raw', big.length)
      await w.writeFile(bigHandle, 100)
      await w.writeFile(bigHandle, big.length - 100, 100)
      w.beginSegment('compressed', json.length)
      await w.writeFile(jsonHandle, json.length)
      await w.finish()
      out.end()
      await new Promise((resolve) => out.on(target === 'file' ? 'close' : 'finish', resolve))
      await Promise.all([bigHandle.close(), jsonHandle.close()])
      const bytes = target === 'file' ? await readFile(outFile) : Buffer.concat(pieces)
      expect(bytes.equals(expected), target).toBe(true)
    }
    // A file shorter than the segment says is refused, not framed short.
    const w = await SeekableWriter.create(new PassThrough().resume(), {level: 3})
    const short = await openFile(jsonFile, 'r')
    w.beginSegment('raw', json.length + 10)
    await expect(w.writeFile(short, json.length + 10)).rejects.toThrow(/ended 10 bytes short/)
    await short.close()
  })

  it('writes the pinned bytes for a pinned input (a zstd-wasm or frame-layout change shows up here)', async () => {
    // Same input, same bytes on every machine: compressed frames come from the pinned WebAssembly build, raw
    // frames from frame.ts. If this changes, bundles stop being byte-identical to earlier builds of the same
    // inputs: say so in docs/bundle-format.md before updating the hash.
    const json = Buffer.from(
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}\n'.repeat(2000),
    )
    const raw = Buffer.from(Array.from({length: 300000}, (_, i) => (i * 7919) % 251))
    const {bytes} = await writeSeekable([
      {mode: 'compressed', data: json},
      {mode: 'raw', data: raw},
    ])
    expect(bytes.length).toBe(300155)
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(
      '7ba523ea24b0b32ecda98e23bddbb0c4e97c26934b3b72409026c658c55f988e',
    )
  })

  it('refuses writes past a segment and a segment left short', async () => {
    const w = await SeekableWriter.create(new PassThrough(), {level: 3})
    expect(() => w.write(Buffer.from('x'))).toThrow(/before beginSegment/)
    w.beginSegment('raw', 3)
    expect(() => w.write(Buffer.from('abcd'))).toThrow(/4 bytes written to a segment of 3/)
    expect(w.write(Buffer.from('ab'))).toBe(true)
    expect(() => w.beginSegment('compressed', 1)).toThrow(/ended after 2 of its 3 bytes/)
    await expect(w.finish()).rejects.toThrow(/ended after 2 of its 3 bytes/)
  })

  it('fails a write that waits on an output that closed', async () => {
    const out = new PassThrough({highWaterMark: 1024})
    const w = await SeekableWriter.create(out, {level: 3})
    const data = noise('closed', 9 * 1024 * 1024)
    w.beginSegment('raw', data.length)
    expect(w.write(data)).toBe(false)
    const waiting = w.waitForRoom()
    out.destroy()
    await expect(waiting).rejects.toThrow(/closed early/)
    expect(w.destroyed).toBe(true)
  })

  it('waits for a slow output to drain (bounded memory)', async () => {
    const out = new PassThrough({highWaterMark: 1024})
    const w = await SeekableWriter.create(out, {level: 3})
    const data = noise('d', 24 * 1024 * 1024)
    w.beginSegment('raw', data.length)
    let settled = false
    const writing = (async () => {
      for (let i = 0; i < data.length; i += 1 << 20)
        if (!w.write(data.subarray(i, i + (1 << 20)))) await w.waitForRoom()
      settled = true
    })()
    await new Promise((r) => setTimeout(r, 50))
    expect(settled).toBe(false)
    expect(out.writableLength).toBeLessThan(10 * 1024 * 1024)
    out.resume()
    await writing
    expect(settled).toBe(true)
  })
})

describe('SeekableReader', () => {
  const segments: Segment[] = [
    {mode: 'compressed', data: text(3000)},
    {mode: 'raw', data: noise('e', 3 * MAX_BLOCK_SIZE + 77)},
    {mode: 'compressed', data: text(9 * 1024 * 1024)},
    {mode: 'raw', data: noise('f', 1_500_000)},
    {mode: 'compressed', data: Buffer.alloc(1024)},
  ]
  const whole = Buffer.concat(segments.map((s) => s.data))
  let file = ''
  let bytes = Buffer.alloc(0)

  beforeAll(async () => {
    ;({bytes} = await writeSeekable(segments, {rawFrameSize: 1 << 20}))
    file = fileOf('mixed.zst', bytes)
  })

  it('reads any range back, decoding only the frames that cover it', async () => {
    const reader = await SeekableReader.open(file)
    try {
      expect(reader.size).toBe(whole.length)
      expect(reader.fileSize).toBe(bytes.length)
      const r1 = 3000
      const ranges: [number, number][] = [
        [0, 0],
        [0, 10],
        [2990, 20], // across a compressed and a raw frame
        [r1 + MAX_BLOCK_SIZE - 2, 5], // across two raw blocks
        [r1 + 3 * MAX_BLOCK_SIZE, 77],
        [r1 + 100, 3 * MAX_BLOCK_SIZE + 77 - 100 + 4 * 1024 * 1024 + 5], // raw into the second compressed frame
        [whole.length - 1500_000 - 1024 - 3, 1_500_000 + 10], // across 1 MiB raw frames
        [whole.length - 1, 1],
        [0, whole.length],
      ]
      for (const [offset, length] of ranges)
        expect((await reader.readBuffer(offset, length)).equals(whole.subarray(offset, offset + length))).toBe(true)
      await expect(reader.readBuffer(whole.length - 1, 2)).rejects.toThrow(RangeError)
    } finally {
      await reader.close()
    }
  })

  it('serves concurrent reads (verify hashes entries on both cores from one reader)', async () => {
    const reader = await SeekableReader.open(file)
    try {
      const ranges: [number, number][] = Array.from({length: 24}, (_, i) => [
        (i * 390_001) % (whole.length - 300_000),
        1000 + i * 12_345,
      ])
      const got = await Promise.all(ranges.map(([o, l]) => reader.readBuffer(o, l)))
      got.forEach((g, i) => expect(g.equals(whole.subarray(ranges[i][0], ranges[i][0] + ranges[i][1]))).toBe(true))
    } finally {
      await reader.close()
    }
  })

  it('reads a split file from its parts, cut anywhere (inside a frame, inside the seek table)', async () => {
    const cuts = [1, 4000, Math.floor(bytes.length / 2), bytes.length - 20, bytes.length - 3]
    expect(cuts[2]).toBeGreaterThan(4000)
    const parts: string[] = []
    let from = 0
    for (const [i, cut] of [...cuts, bytes.length].entries()) {
      parts.push(fileOf(`mixed.zst.${String(i).padStart(3, '0')}`, bytes.subarray(from, cut)))
      from = cut
    }
    expect(await hasSeekTable(parts)).toBe(true)
    const reader = await SeekableReader.open(parts, {name: 'mixed.tar.zst'})
    try {
      expect(reader.table.frames.length).toBeGreaterThan(5)
      expect((await reader.readBuffer(0, whole.length)).equals(whole)).toBe(true)
      expect((await reader.readBuffer(3990, 20)).equals(whole.subarray(3990, 4010))).toBe(true)
    } finally {
      await reader.close()
    }
  })

  it('refuses a file without a seek table (a format 1 bundle, a plain zstd file)', async () => {
    const plain = fileOf('plain.zst', bytes.subarray(0, bytes.length - 100))
    expect(await hasSeekTable(plain)).toBe(false)
    const e = await refusal(SeekableReader.open(plain, {name: 'old.tar.zst'}))
    expect(e.message).toMatch(/^old\.tar\.zst: does not end with a seek table/)
    expect(e.code).toBe('ERR_AIRPACK_SEEK_TABLE_INVALID')
    await refusal(SeekableReader.open(fileOf('tiny.zst', Buffer.from('abc'))))
  })

  it('refuses a truncated file', async () => {
    for (const cut of [1, 9, 40, bytes.length - 1000]) {
      const e = await refusal(SeekableReader.open(fileOf('cut.zst', bytes.subarray(0, bytes.length - cut))))
      expect(e.message).toMatch(/seek table|truncated/)
    }
    // The table intact but a frame's bytes missing: the sizes no longer add up.
    const table = parseSeekTableOf(bytes)
    const dropped = Buffer.concat([bytes.subarray(0, 10), bytes.subarray(20)])
    const e = await refusal(SeekableReader.open(fileOf('hole.zst', dropped)))
    expect(e.message).toMatch(
      new RegExp(
        `add up to ${table.compressedSize} compressed bytes, but ${table.compressedSize - 10} bytes precede the table`,
      ),
    )
  })

  it('refuses a tampered seek table, naming what is wrong', async () => {
    const table = parseSeekTableOf(bytes)
    const tableStart = bytes.length - table.tableSize
    const tamper = (edit: (b: Buffer) => void) => {
      const copy = Buffer.from(bytes)
      edit(copy)
      return fileOf('tampered.zst', copy)
    }
    // One frame 1 byte longer, the next 1 byte shorter: the sum still holds, the frame headers do not.
    let e = await refusal(
      SeekableReader.open(
        tamper((b) => {
          b.writeUInt32LE(b.readUInt32LE(tableStart + 8) + 1, tableStart + 8)
          b.writeUInt32LE(b.readUInt32LE(tableStart + 16) - 1, tableStart + 16)
        }),
      ),
    )
    expect(e.code).toBe('ERR_AIRPACK_FRAME_INVALID')
    expect(e.message).toMatch(/frame 1 .*no zstd frame magic.*seek table does not match/)
    // The first frame 1 byte longer, the last 1 byte shorter: every frame in between is misplaced (their headers
    // are read concurrently), and the first of them in file order is the one named.
    const last = table.frames.length - 1
    e = await refusal(
      SeekableReader.open(
        tamper((b) => {
          b.writeUInt32LE(b.readUInt32LE(tableStart + 8) + 1, tableStart + 8)
          b.writeUInt32LE(b.readUInt32LE(tableStart + 8 + 8 * last) - 1, tableStart + 8 + 8 * last)
        }),
      ),
    )
    expect(last).toBeGreaterThan(3)
    expect(e.message).toMatch(/frame 1 .*seek table does not match/)
    // A decompressed size changed: the frame's header disagrees.
    e = await refusal(
      SeekableReader.open(tamper((b) => b.writeUInt32LE(b.readUInt32LE(tableStart + 12) + 5, tableStart + 12))),
    )
    expect(e.message).toMatch(/frame 0 .*its header records 3000 bytes of content, the seek table 3005/)
    // Number_Of_Frames, the descriptor, the skippable magic.
    e = await refusal(SeekableReader.open(tamper((b) => b.writeUInt32LE(table.frames.length + 1, b.length - 9))))
    expect(e.message).toMatch(/not the skippable magic|add up/)
    e = await refusal(SeekableReader.open(tamper((b) => b.writeUInt32LE(0x7fffffff, b.length - 9))))
    expect(e.message).toMatch(/claims 2147483647 frames/)
    e = await refusal(SeekableReader.open(tamper((b) => (b[b.length - 5] = 0x04))))
    expect(e.message).toMatch(/reserved bits/)
    e = await refusal(SeekableReader.open(tamper((b) => (b[tableStart] ^= 0xff))))
    expect(e.message).toMatch(/not the skippable magic/)
    e = await refusal(SeekableReader.open(tamper((b) => b.writeUInt32LE(5, tableStart + 4))))
    expect(e.message).toMatch(/Frame_Size is 5/)
  })

  it('refuses a corrupt compressed frame when it is read', async () => {
    const copy = Buffer.from(bytes)
    const table = parseSeekTableOf(bytes)
    const f = table.frames[0]
    copy[f.compressedOffset + f.compressedSize - 10] ^= 0x55
    const reader = await SeekableReader.open(fileOf('corrupt.zst', copy))
    try {
      const e = await refusal(reader.readBuffer(0, 100))
      expect(e.message).toMatch(/frame 0 .*zstd could not decode it|frame 0 .*decodes to/)
      // Frames that are intact still read.
      expect((await reader.readBuffer(3000, 100)).equals(whole.subarray(3000, 3100))).toBe(true)
    } finally {
      await reader.close()
    }
  })

  it('refuses a raw frame whose block headers were altered', async () => {
    const copy = Buffer.from(bytes)
    const f = parseSeekTableOf(bytes).frames[1]
    // Block 2's header: turn it into a compressed block.
    const blockAt = f.compressedOffset + 10 + 2 * (3 + MAX_BLOCK_SIZE)
    copy[blockAt] |= 0x04
    const reader = await SeekableReader.open(fileOf('rawcorrupt.zst', copy))
    try {
      expect((await reader.readBuffer(3000, 100)).equals(whole.subarray(3000, 3100))).toBe(true)
      const e = await refusal(reader.readBuffer(3000 + 2 * MAX_BLOCK_SIZE, 10))
      expect(e.message).toMatch(/frame 1 /)
    } finally {
      await reader.close()
    }
  })
})

describe('the bundle TarWriter writing into a SeekableWriter (how format 2 plugs in)', () => {
  it('starts every entry at a frame and gives back the same tar, identity included', async () => {
    const entries = [
      {path: 'airpack/bundle.json', data: text(2000), mediaType: undefined},
      {
        path: `blobs/sha256/${'a'.repeat(64)}`,
        data: noise('layer', 700_000),
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      },
      {
        path: `blobs/sha256/${'b'.repeat(64)}`,
        data: text(5 * 1024 * 1024),
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
      },
      {
        path: `very/long/${'n'.repeat(120)}`,
        data: Buffer.from('{}'),
        mediaType: 'application/vnd.oci.image.config.v1+json',
      },
    ]
    const out = new PassThrough()
    const pieces: Buffer[] = []
    out.on('data', (c: Buffer) => pieces.push(c))
    const frames = await SeekableWriter.create(out, {level: 3})
    // TarWriter needs write(), writableLength, destroyed and the 'drain'/'close' events: SeekableWriter has them.
    const tar = new TarWriter(frames as unknown as Writable, {mtime: 0})
    const starts: number[] = []
    for (const e of entries) {
      starts.push(frames.bytesIn)
      frames.beginSegment(frameModeFor(e.mediaType), tarEntryLength(e.path, e.data.length, {mtime: 0}))
      if (e.mediaType?.endsWith('gzip'))
        await tar.addStream(e.path, e.data.length, Readable.from([e.data.subarray(0, 1000), e.data.subarray(1000)]))
      else await tar.addBuffer(e.path, e.data)
    }
    frames.beginSegment('compressed', TAR_END_LENGTH)
    const identity = await tar.finish()
    const summary = await frames.finish()
    out.end()
    const bytes = Buffer.concat(pieces)
    const file = fileOf('tar-into-frames.zst', bytes)
    const reader = await SeekableReader.open(file)
    try {
      const whole = await reader.readBuffer(0, reader.size)
      expect(createHash('sha256').update(whole).digest('hex')).toBe(identity.sha256)
      expect(whole.length).toBe(identity.size)
      // Every entry's first byte is a frame's first byte.
      const frameStarts = new Set(reader.table.frames.map((f) => f.decompressedOffset))
      for (const at of [...starts, identity.size - TAR_END_LENGTH]) expect(frameStarts.has(at)).toBe(true)
      // The already-compressed layer is one raw frame: its compressed size is its content plus block headers.
      const layer = reader.table.frames.find((f) => f.decompressedOffset === starts[1])!
      expect(layer.compressedSize).toBe(rawFrameSize(layer.decompressedSize))
      expect(summary.frames.length).toBe(1 + 1 + 2 + 1 + 1)
      // And it is a tar that the project's own parser reads.
      const names: string[] = []
      const parser = new TarParser((h) => {
        names.push(h.path)
        return undefined
      })
      parser.push(whole)
      parser.end()
      expect(names).toEqual(entries.map((e) => e.path))
    } finally {
      await reader.close()
    }
  })
})

describe('frame modes of bundle entries', () => {
  it('stores already-compressed media types in raw frames', () => {
    for (const t of [
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar+zstd',
      'application/vnd.docker.image.rootfs.diff.tar.gzip',
      'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
      'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
    ]) {
      expect(frameModeFor(t)).toBe('raw')
    }
    for (const t of [
      'application/vnd.oci.image.layer.v1.tar',
      'application/vnd.oci.image.config.v1+json',
      'application/vnd.oci.image.manifest.v1+json',
      undefined,
    ]) {
      expect(frameModeFor(t)).toBe('compressed')
    }
  })
})

function parseSeekTableOf(bytes: Buffer) {
  const n = bytes.readUInt32LE(bytes.length - 9)
  const size = 8 + n * 8 + 9
  return parseSeekTable(bytes.subarray(bytes.length - size), bytes.length)
}
