// Property/fuzz test of the bundle reader (src/bundle/): the push tar parser and `readBundle` in verify mode,
// over seeded mutations of a small but complete, valid bundle (one image: manifest, config, layer).
//   - TarParser: for any bytes, in any chunking, it reports the same entries and bodies or throws TarFormatError;
//     never another exception.
//   - readBundle: for any mutation of the tar or of the compressed stream, it returns a report whose identity is
//     the sha256 of the tar it read, or throws an AirpackError (exit 5, or 2 for unreadable input); never another
//     exception. A byte flipped inside any listed entry's body (a blob, index.json, oci-layout) is always
//     caught, with exit 5.
//   - readBundle on format 2 (seekable frames, a seek table): for any mutation of the file, the seek table's end
//     above all, verify and inspect return a report or throw an AirpackError (exit 2 or 5); a verify that passes
//     read exactly what stock `zstd -d` decodes.
//   - loadBundleContent (bundle.json only, for `bundle diff`): the same mutations give a content or an
//     AirpackError (exit 2 or 5), never another exception.

import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import {afterAll, describe, expect, it} from 'vitest'

import {readBundle} from '../../src/bundle/reader.js'
import {loadBundleContent} from '../../src/delta/content.js'
import {TarFormatError, TarParser, type TarEntryHeader} from '../../src/bundle/tar.js'
import {AirpackError} from '../../src/errors.js'
import {SeekableWriter} from '../../src/zstd/seekable-writer.js'
import {rawTar, zstd, type RawTarEntry} from '../fixtures/bad/corpus.js'
import {int, mulberry32, mutateBytes} from '../fixtures/bad/mutate.js'

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')
const LAYER_SIZE = 3000

/** A valid one-image bundle tar, and the byte ranges of every entry body in it. */
function validBundle(formatVersion: 1 | 2 = 1): {tar: Buffer; bodies: {path: string; start: number; end: number}[]} {
  const layer = Buffer.from(Array.from({length: LAYER_SIZE}, (_, i) => (i * 7919) & 0xff))
  const config = Buffer.from(
    JSON.stringify({architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: ['sha256:' + sha(layer)]}}),
  )
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: 'sha256:' + sha(config),
        size: config.length,
      },
      layers: [
        {mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + sha(layer), size: layer.length},
      ],
    }),
  )
  const reference = 'docker.io/library/fuzz:1.0'
  const md = {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: 'sha256:' + sha(manifest),
    size: manifest.length,
  }
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{...md, annotations: {'org.opencontainers.image.ref.name': reference}}],
    }),
  )
  const blobs = [layer, config, manifest]
    .map((b) => ({path: `blobs/sha256/${sha(b)}`, body: b}))
    .sort((a, b) => (a.path < b.path ? -1 : 1))
  const listed = [
    {path: 'oci-layout', body: Buffer.from('{"imageLayoutVersion":"1.0.0"}')},
    {path: 'index.json', body: index},
    ...blobs,
  ]
  const bundleJson = Buffer.from(
    JSON.stringify({
      formatVersion,
      name: 'fuzz',
      platform: {os: 'linux', architecture: 'amd64'},
      airpack: {version: '0.1.0'},
      compression: {algorithm: 'zstd', version: '1.5.4', level: 3},
      profiles: [],
      artifacts: [
        {
          kind: 'image',
          reference,
          ...md,
          platform: {os: 'linux', architecture: 'amd64'},
          platformManifest: md,
          source: 'local',
          omittedPlatforms: [],
          contentSize: manifest.length + config.length + layer.length,
        },
      ],
      entries: listed.map((e) => ({path: e.path, size: e.body.length, sha256: sha(e.body)})),
      totals: {artifacts: 1, images: 1, charts: 0, blobs: 3, blobBytes: manifest.length + config.length + layer.length},
    }),
  )
  const entries: RawTarEntry[] = [
    {name: 'airpack/bundle.json', body: bundleJson},
    ...listed.map((e) => ({name: e.path, body: e.body})),
  ]
  const bodies: {path: string; start: number; end: number}[] = []
  let offset = 0
  for (const e of entries) {
    const len = (e.body as Buffer).length
    bodies.push({path: e.name, start: offset + 512, end: offset + 512 + len})
    offset += 512 + Math.ceil(len / 512) * 512
  }
  return {tar: rawTar(entries), bodies}
}

/** The tar as format 2 writes it: a frame group per entry (raw for the already-compressed layer), a seek table. */
async function seekableOf(tar: Buffer, bodies: {path: string; start: number; end: number}[]): Promise<Buffer> {
  const pieces: Buffer[] = []
  const out = new PassThrough()
  out.on('data', (c: Buffer) => pieces.push(c))
  const writer = await SeekableWriter.create(out, {level: 3})
  const starts = [...bodies.map((b) => b.start - 512), tar.length - 1024, tar.length]
  for (let i = 0; i + 1 < starts.length; i++) {
    const raw = bodies[i] !== undefined && bodies[i]!.end - bodies[i]!.start === LAYER_SIZE
    writer.beginSegment(raw ? 'raw' : 'compressed', starts[i + 1]! - starts[i]!)
    if (!writer.write(tar.subarray(starts[i], starts[i + 1]))) await writer.waitForRoom()
  }
  await writer.finish()
  out.end()
  return Buffer.concat(pieces)
}

function parseAll(
  bytes: Buffer,
  chunkSizes: () => number,
): {entries: (TarEntryHeader & {body: string})[]; error?: unknown} {
  const entries: (TarEntryHeader & {body: string})[] = []
  try {
    const parser = new TarParser((header) => {
      const hash = createHash('sha256')
      const entry = {...header, body: ''}
      entries.push(entry)
      return {data: (c) => hash.update(c), end: () => (entry.body = hash.digest('hex'))}
    })
    for (let at = 0; at < bytes.length;) {
      const n = Math.max(1, chunkSizes())
      parser.push(bytes.subarray(at, at + n))
      at += n
    }
    parser.end()
    return {entries}
  } catch (error) {
    return {entries, error}
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-fuzz-bundle-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
const SEED = 4242

describe('bundle reader under fuzzing', () => {
  const {tar, bodies} = validBundle()

  it('the seed bundle is valid (the mutations start from a bundle verify accepts)', async () => {
    const file = path.join(dir, 'seed.tar.zst')
    writeFileSync(file, zstd(tar))
    const report = await readBundle(file, {mode: 'verify'})
    expect(report.identity).toBe('sha256:' + sha(tar))
    expect(report.totals.blobs).toBe(3)
  })

  it('TarParser: same entries whatever the chunking; only TarFormatError on bad input', () => {
    const r = mulberry32(SEED)
    for (let i = 0; i < 400; i++) {
      const bytes = mutateBytes(r, tar)
      const whole = parseAll(bytes, () => bytes.length)
      const chunked = parseAll(bytes, () => 1 + int(r, 700))
      for (const outcome of [whole, chunked]) {
        if (outcome.error !== undefined && !(outcome.error instanceof TarFormatError)) {
          throw new Error(
            `seed ${SEED} #${i}: TarParser threw ${(outcome.error as Error).name}: ${(outcome.error as Error).message}`,
          )
        }
        for (const e of outcome.entries) {
          expect(
            Number.isSafeInteger(e.size) && e.size >= 0,
            `seed ${SEED} #${i}: entry ${JSON.stringify(e.path)} has size ${e.size}`,
          ).toBe(true)
        }
      }
      expect(chunked.entries, `seed ${SEED} #${i}: chunking changed the entries`).toEqual(whole.entries)
      expect(chunked.error === undefined, `seed ${SEED} #${i}: chunking changed the outcome`).toBe(
        whole.error === undefined,
      )
    }
  })

  it('TarParser: hostile PAX records give a TarFormatError or sane entries', () => {
    const r = mulberry32(SEED + 3)
    const sizes = [
      'abc',
      '-5',
      '1e3',
      '0x10',
      '99999999999999999999',
      '',
      ' 12',
      '12 ',
      'NaN',
      'Infinity',
      '9007199254740993',
    ]
    const problems = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const key = ['size', 'path', 'linkpath'][int(r, 3)]!
      const value =
        key === 'size' ? sizes[int(r, sizes.length)]! : ['../x', '/abs', 'a\0b', '', 'blobs/sha256/x'][int(r, 5)]!
      const record = ` ${key}=${value}\n`
      let len = record.length + 1
      if (String(len).length + record.length !== len) len = String(len + 1).length + record.length
      const bytes = rawTar([
        {name: 'PaxHeader', type: 'x', body: Buffer.from(`${len}${record}`)},
        {name: 'index.json', body: '{}'},
      ])
      const {entries, error} = parseAll(bytes, () => 1 + int(r, 600))
      if (error !== undefined && !(error instanceof TarFormatError))
        problems.add(`PAX ${JSON.stringify(record)}: threw ${(error as Error).name}: ${(error as Error).message}`)
      for (const e of entries)
        if (!(Number.isSafeInteger(e.size) && e.size >= 0))
          problems.add(`PAX ${JSON.stringify(record)}: entry reported with size ${e.size}`)
    }
    expect([...problems].sort()).toEqual([])
  })

  const outcome = async (file: string, context: string, tarBytes?: Buffer) => {
    try {
      const report = await readBundle(file, {mode: 'verify'})
      if (tarBytes) expect(report.identity, context).toBe('sha256:' + sha(tarBytes))
      return 'ok' as const
    } catch (error) {
      if (!(error instanceof AirpackError))
        throw new Error(
          `${context}: readBundle threw ${(error as Error)?.name}: ${(error as Error)?.message}\n${(error as Error)?.stack}`,
        )
      expect([2, 5], `${context}: ${error.message}`).toContain(error.exitCode)
      return error.exitCode
    }
  }

  it('readBundle: mutated tar or compressed stream → a report or an integrity error, never a crash', async () => {
    const r = mulberry32(SEED + 1)
    const seen = new Set<string | number>()
    for (let i = 0; i < 120; i++) {
      const file = path.join(dir, `m-${i}.tar.zst`)
      const onTar = i % 3 !== 0
      const tarBytes = onTar ? mutateBytes(r, tar) : undefined
      writeFileSync(file, onTar ? zstd(tarBytes!) : mutateBytes(r, zstd(tar)))
      seen.add(await outcome(file, `seed ${SEED + 1} #${i} (${onTar ? 'tar' : 'compressed'} mutation)`, tarBytes))
    }
    expect(seen.has(5)).toBe(true)
  }, 120_000)

  it('loadBundleContent (bundle diff: bundle.json only): mutated tar or compressed stream → a content or an AirpackError, never a crash', async () => {
    const r = mulberry32(SEED + 3)
    const seen = new Set<string | number>()
    for (let i = 0; i < 90; i++) {
      const file = path.join(dir, `c-${i}.tar.zst`)
      const onTar = i % 3 !== 0
      writeFileSync(file, onTar ? zstd(mutateBytes(r, tar)) : mutateBytes(r, zstd(tar)))
      const context = `seed ${SEED + 3} #${i} (${onTar ? 'tar' : 'compressed'} mutation)`
      try {
        const content = await loadBundleContent(file)
        for (const [digest, size] of content.blobs)
          expect(/^sha256:[a-f0-9]{64}$/.test(digest) && Number.isSafeInteger(size), context).toBe(true)
        seen.add('ok')
      } catch (error) {
        if (!(error instanceof AirpackError))
          throw new Error(
            `${context}: loadBundleContent threw ${(error as Error)?.name}: ${(error as Error)?.message}\n${(error as Error)?.stack}`,
          )
        expect([2, 5], `${context}: ${error.message}`).toContain(error.exitCode)
        seen.add(error.exitCode)
      }
    }
    expect(seen.has('ok')).toBe(true)
    expect(seen.has(5)).toBe(true)
  }, 120_000)

  it('readBundle: a byte flipped in any listed entry body is caught (exit 5)', async () => {
    const r = mulberry32(SEED + 2)
    // bundle.json itself is not covered by a hash (only a signature covers it): a flip there that keeps it valid
    // JSON changes only its own claims, which the other checks catch when they matter.
    const listed = bodies.filter((b) => b.path !== 'airpack/bundle.json')
    for (let i = 0; i < 60; i++) {
      const body = listed[i % listed.length]!
      const at = body.start + int(r, body.end - body.start)
      const bytes = Buffer.from(tar)
      bytes[at] = bytes[at]! ^ (1 << int(r, 8))
      const file = path.join(dir, `flip-${i}.tar.zst`)
      writeFileSync(file, zstd(bytes))
      expect(
        await outcome(file, `seed ${SEED + 2} #${i}: flip in ${body.path} at ${at}`),
        `flip in ${body.path} at ${at} went unnoticed`,
      ).toBe(5)
    }
  }, 120_000)

  it('readBundle on format 2: a mutated file (the seek table above all) → a report or an integrity error, never a crash', async () => {
    const seekable = validBundle(2)
    const good = await seekableOf(seekable.tar, seekable.bodies)
    const seed = path.join(dir, 'seed2.tar.zst')
    writeFileSync(seed, good)
    const report = await readBundle(seed, {mode: 'verify'})
    expect(report.formatVersion).toBe(2)
    const r = mulberry32(SEED + 4)
    const seen = new Set<string | number>()
    for (let i = 0; i < 120; i++) {
      // Half the mutations in the last 64 bytes: the seek table's entries and footer.
      const tail = i % 2 === 0
      const cut = tail ? good.length - 64 : 0
      const bytes = Buffer.concat([good.subarray(0, cut), mutateBytes(r, good.subarray(cut))])
      const file = path.join(dir, `s-${i}.tar.zst`)
      writeFileSync(file, bytes)
      const context = `seed ${SEED + 4} #${i} (${tail ? 'seek table' : 'anywhere'})`
      for (const mode of ['verify', 'inspect'] as const) {
        try {
          const read = await readBundle(file, {mode})
          seen.add(`${mode} ok`)
          if (mode !== 'verify') continue
          // What verify passed is what stock zstd decodes: the same bundle.json, the same tar length.
          const tarBytes = execFileSync('zstd', ['-q', '-dc', file], {maxBuffer: 1 << 26})
          expect(tarBytes.length, context).toBe(read.totals.tarBytes)
          const bundleJson = tarBytes.subarray(512, 512 + Number.parseInt(tarBytes.toString('ascii', 124, 135), 8))
          expect(read.identity, context).toBe(`sha256:${sha(bundleJson)}`)
        } catch (error) {
          if (!(error instanceof AirpackError) || error.exitCode === undefined)
            throw new Error(
              `${context}: ${mode} threw ${(error as Error)?.name}: ${(error as Error)?.message}\n${(error as Error)?.stack}`,
            )
          expect([2, 5], `${context}: ${mode}: ${error.message}`).toContain(error.exitCode)
          seen.add(error.exitCode)
        }
      }
    }
    expect(seen.has(5)).toBe(true)
  }, 120_000)
})
