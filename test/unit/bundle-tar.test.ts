import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import {gunzipSync} from 'node:zlib'
import {describe, expect, it} from 'vitest'

import {buildDefinitionTgz, gzipStored, profileFileName, slug} from '../../src/bundle/definition.js'
import {MEDIA_PART_SIZE, parseSize} from '../../src/bundle/split.js'
import {encodeFileHeader, TarFormatError, TarParser, TarWriter, type TarEntryHeader} from '../../src/bundle/tar.js'
import {unsafePathReason} from '../../src/bundle/reader.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function tarOf(entries: {path: string; data: Buffer}[], mtime = 0): Promise<{bytes: Buffer; sha256: string}> {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  const w = new TarWriter(out, {mtime})
  for (const e of entries) await w.addBuffer(e.path, e.data)
  const {sha256} = await w.finish()
  out.end()
  return {bytes: Buffer.concat(chunks), sha256}
}

function parse(bytes: Buffer, chunkSize = 100): {headers: TarEntryHeader[]; bodies: Map<string, Buffer>} {
  const headers: TarEntryHeader[] = []
  const bodies = new Map<string, Buffer>()
  const parser = new TarParser((h) => {
    headers.push(h)
    const parts: Buffer[] = []
    return {data: (c) => parts.push(Buffer.from(c)), end: () => bodies.set(h.path, Buffer.concat(parts))}
  })
  for (let i = 0; i < bytes.length; i += chunkSize) parser.push(bytes.subarray(i, i + chunkSize))
  parser.end()
  return {headers, bodies}
}

const LONG = `blobs/${'deep/'.repeat(30)}file.json`

describe('tar writer', () => {
  it('writes fixed headers: golden hash of a small archive (any change here changes every bundle)', async () => {
    const {bytes, sha256} = await tarOf([
      {path: 'airpack/bundle.json', data: Buffer.from('{"formatVersion":1}\n')},
      {path: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}')},
      {path: LONG, data: Buffer.from('x'.repeat(700))},
    ])
    expect(sha256).toBe(sha(bytes))
    expect(sha256).toBe('567a4d14ec1bbe73cd6e2b3bf396186bd98a78b5a03726418474b37cb13b2afa')
  })

  it('uses mode 0644, uid/gid 0, no user or group names, and mtime 0 or SOURCE_DATE_EPOCH', async () => {
    const header = encodeFileHeader('index.json', 10, {mtime: 0})
    expect(header.subarray(100, 108).toString()).toBe('0000644\0')
    expect(header.subarray(108, 124).toString()).toBe('0000000\u00000000000\0')
    expect(header.subarray(265, 329).every((b) => b === 0)).toBe(true)
    expect(header.subarray(136, 148).toString()).toBe('00000000000\0')
    const dated = encodeFileHeader('index.json', 10, {mtime: 1_700_000_000})
    expect(Number.parseInt(dated.subarray(136, 147).toString(), 8)).toBe(1_700_000_000)
  })

  it('is read back by GNU tar, long paths included (PAX)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-tar-'))
    try {
      const {bytes} = await tarOf([
        {path: 'a.txt', data: Buffer.from('hello')},
        {path: LONG, data: Buffer.from('deep')},
      ])
      writeFileSync(path.join(dir, 't.tar'), bytes)
      const listing = execFileSync('tar', ['-tvf', 't.tar'], {cwd: dir}).toString()
      expect(listing).toContain(LONG)
      expect(listing).toMatch(/0\/0 .* 1970-01-01 00:00 a\.txt/)
      execFileSync('tar', ['-xf', 't.tar'], {cwd: dir})
      expect(execFileSync('cat', [path.join(dir, LONG)]).toString()).toBe('deep')
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('streams an entry from a source and refuses a source of the wrong length', async () => {
    const out = new PassThrough()
    out.resume()
    const w = new TarWriter(out, {mtime: 0})
    await w.addStream(
      'blob',
      6,
      (async function* () {
        yield Buffer.from('abc')
        yield Buffer.from('def')
      })(),
    )
    await expect(
      w.addStream(
        'short',
        10,
        (async function* () {
          yield Buffer.from('abc')
        })(),
      ),
    ).rejects.toThrow(/ended after 3 of 10 bytes/)
  })
})

describe('tar parser', () => {
  it('round-trips what the writer writes, in chunks of any size', async () => {
    const entries = [
      {path: 'airpack/bundle.json', data: Buffer.from('{}')},
      {path: LONG, data: Buffer.alloc(1500, 7)},
      {path: 'empty', data: Buffer.alloc(0)},
    ]
    const {bytes} = await tarOf(entries)
    for (const size of [1, 511, 512, 513, 4096, bytes.length]) {
      const {headers, bodies} = parse(bytes, size)
      expect(headers.map((h) => h.path)).toEqual(entries.map((e) => e.path))
      for (const e of entries) expect(bodies.get(e.path)).toEqual(e.data)
    }
  })

  it('rejects a bad checksum, a truncated archive and a missing end marker', async () => {
    const {bytes} = await tarOf([{path: 'a', data: Buffer.from('hello')}])
    const bad = Buffer.from(bytes)
    bad[0] ^= 1
    expect(() => parse(bad)).toThrow(TarFormatError)
    expect(() => parse(bytes.subarray(0, 600))).toThrow(/middle of an entry/)
    expect(() => parse(bytes.subarray(0, 1024))).toThrow(/end-of-archive/)
    // A byte in the padding after a body: no digest covers it, so it is refused.
    const padded = Buffer.from(bytes)
    padded[512 + 5 + 100] = 1
    expect(() => parse(padded)).toThrow(/padding/)
  })

  it('reports links and devices with their type', () => {
    const h = encodeFileHeader('link', 0, {mtime: 0})
    h[156] = '2'.charCodeAt(0)
    h.write('/etc/shadow', 157)
    // fix the checksum
    h.write('        ', 148)
    let sum = 0
    for (const b of h) sum += b
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
    const {headers} = parse(Buffer.concat([h, Buffer.alloc(1024)]))
    expect(headers[0]).toMatchObject({path: 'link', type: 'symlink', linkName: '/etc/shadow'})
  })
})

describe('unsafe paths', () => {
  it('names absolute, escaping and non-canonical paths', () => {
    expect(unsafePathReason('/etc/passwd')).toMatch(/absolute/)
    expect(unsafePathReason('../x')).toMatch(/\.\./)
    expect(unsafePathReason('blobs/../../x')).toMatch(/\.\./)
    expect(unsafePathReason('a//b')).toMatch(/non-canonical/)
    expect(unsafePathReason('./index.json')).toMatch(/non-canonical/)
    expect(unsafePathReason('blobs/sha256/abc')).toBeUndefined()
  })
})

describe('cluster definition', () => {
  const input = {
    name: 'store-v1',
    cloudType: 'edge-native',
    profiles: [
      {
        name: 'Edge K3s Infra',
        version: '1.0.0',
        document: {metadata: {name: 'Edge K3s Infra'}, spec: {version: '1.0.0'}},
      },
      {name: 'monitoring', version: '2.0.0', document: {metadata: {name: 'monitoring'}}},
    ],
    variables: {registry_host: 'registry.local:5000'},
    mtime: 0,
  }

  it('is a gzipped tar under spc/ that GNU tar reads, with metadata, profiles and variables', () => {
    const tgz = buildDefinitionTgz(input)
    const dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-def-'))
    try {
      writeFileSync(path.join(dir, 'd.tgz'), tgz)
      const names = execFileSync('tar', ['-tzf', 'd.tgz'], {cwd: dir}).toString().trim().split('\n')
      expect(names).toEqual([
        'spc/',
        'spc/profiles/',
        'spc/metadata.json',
        'spc/profiles/01-edge-k3s-infra.json',
        'spc/profiles/02-monitoring.json',
        'spc/variables.json',
      ])
      const meta = JSON.parse(execFileSync('tar', ['-xzOf', 'd.tgz', 'spc/metadata.json'], {cwd: dir}).toString())
      expect(meta).toEqual({
        cloudType: 'edge-native',
        name: 'store-v1',
        profiles: [
          {file: 'profiles/01-edge-k3s-infra.json', name: 'Edge K3s Infra', version: '1.0.0'},
          {file: 'profiles/02-monitoring.json', name: 'monitoring', version: '2.0.0'},
        ],
      })
      expect(JSON.parse(execFileSync('tar', ['-xzOf', 'd.tgz', 'spc/variables.json'], {cwd: dir}).toString())).toEqual(
        input.variables,
      )
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('is byte-identical for equal input (golden hash), and changes with SOURCE_DATE_EPOCH', () => {
    expect(sha(buildDefinitionTgz(input))).toBe(sha(buildDefinitionTgz(structuredClone(input))))
    expect(sha(buildDefinitionTgz(input))).toBe('851a4b05bc1f7c940749875ab2b3e8ec7d4635d3677c891f76e1b53363479897')
    expect(sha(buildDefinitionTgz({...input, mtime: 1_700_000_000}))).not.toBe(sha(buildDefinitionTgz(input)))
  })

  it('names profile files by order and slug', () => {
    expect(profileFileName(0, 'Edge K3s / Calico')).toBe('01-edge-k3s-calico.json')
    expect(slug('***')).toBe('profile')
  })

  it('writes stored gzip that any gunzip reads, across 64 KiB block boundaries', () => {
    const data = Buffer.alloc(200_000)
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251
    expect(gunzipSync(gzipStored(data))).toEqual(data)
    expect(gunzipSync(gzipStored(Buffer.alloc(0)))).toEqual(Buffer.alloc(0))
    expect(execFileSync('gzip', ['-dc'], {input: gzipStored(data)})).toEqual(data)
  })
})

describe('split sizes', () => {
  it('parses sizes like GNU split', () => {
    expect(parseSize('3G')).toBe(3 * 2 ** 30)
    expect(parseSize('500M')).toBe(500 * 2 ** 20)
    expect(parseSize('4GiB')).toBe(4 * 2 ** 30)
    expect(parseSize('700MB')).toBe(700_000_000)
    expect(parseSize('1048576')).toBe(1048576)
    expect(parseSize('1.5k')).toBe(1536)
  })

  it('rejects what is not a size', () => {
    expect(() => parseSize('big')).toThrow(/not a size/)
    expect(() => parseSize('3X')).toThrow(/not a size/)
    expect(() => parseSize('10')).toThrow(/at least/)
  })

  it('knows the media', () => {
    expect(MEDIA_PART_SIZE.fat32).toBe(4 * 2 ** 30 - 1)
    expect(MEDIA_PART_SIZE.exfat).toBeUndefined()
    expect(MEDIA_PART_SIZE.dvd).toBe(Math.floor(4.37 * 2 ** 30))
    expect(MEDIA_PART_SIZE.bd25).toBe(Math.floor(23.3 * 2 ** 30))
  })
})
