// Property/fuzz test of the bundle reader (src/bundle/): the push tar parser and `readBundle` in verify mode,
// over seeded mutations of a small but complete, valid bundle (one image: manifest, config, layer).
//   - TarParser: for any bytes, in any chunking, it reports the same entries and bodies or throws TarFormatError;
//     never another exception.
//   - readBundle: for any mutation of the tar or of the compressed stream, it returns a report whose identity is
//     the sha256 of the tar it read, or throws an AirpackError (exit 5, or 2 for unreadable input); never another
//     exception. A byte flipped inside any listed entry's body (a blob, index.json, oci-layout) is always
//     caught, with exit 5.
//   - loadBundleContent (bundle.json only, for `bundle diff`): the same mutations give a content or an
//     AirpackError (exit 2 or 5), never another exception.

import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {readBundle} from '../../src/bundle/reader.js'
import {loadBundleContent} from '../../src/delta/content.js'
import {TarFormatError, TarParser, type TarEntryHeader} from '../../src/bundle/tar.js'
import {AirpackError} from '../../src/errors.js'
import {rawTar, zstd, type RawTarEntry} from '../fixtures/bad/corpus.js'
import {int, mulberry32, mutateBytes} from '../fixtures/bad/mutate.js'

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

/** A valid one-image bundle tar, and the byte ranges of every entry body in it. */
function validBundle(): {tar: Buffer; bodies: {path: string; start: number; end: number}[]} {
  const layer = Buffer.from(Array.from({length: 3000}, (_, i) => (i * 7919) & 0xff))
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
      formatVersion: 1,
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
})
