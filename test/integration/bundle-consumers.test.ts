import {execFileSync} from 'node:child_process'
import {createHash, generateKeyPairSync} from 'node:crypto'
import {mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {buildDefinitionTgz} from '../../src/bundle/definition.js'
import {readBundle} from '../../src/bundle/reader.js'
import {loadPublicKey, loadSigningKey} from '../../src/bundle/sign.js'
import {writeBundle} from '../../src/bundle/writer.js'
import {rawFrameSize} from '../../src/zstd/frame.js'
import {parseSeekTable, parseSeekTableFooter, SEEK_TABLE_FOOTER_SIZE, seekTableSize} from '../../src/zstd/seek-table.js'
import {fixtureLock, type FixtureImage} from '../helpers/bundle-fixtures.js'
import {startContainerd, type TestContainerd} from '../helpers/containerd.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'

// The real consumers of a bundle (PRODUCT.md §4): skopeo reads it as an OCI archive after `zstd -d`, and a
// containerd started here imports it with `zstd -dc … | ctr images import --platform linux/amd64 -`.
// This machine is amd64, so the bundles are built for amd64. Every consumer reads both bundle formats: format 2
// (seekable frames, raw frames for compressed layers, a seek table) must stay one plain zstd file. A split and
// signed format 2 bundle (PRODUCT.md §7, §8) is read by every consumer from the `cat` of its parts, in a pipe,
// never joined on disk: the parts are plain byte ranges of that one file.

const variants = [
  {label: 'bundle format 1', formatVersion: 1, split: false},
  {label: 'bundle format 2', formatVersion: 2, split: false},
  {label: 'bundle format 2, split and signed', formatVersion: 2, split: true},
] as const

interface Ref {
  digest: string
  mediaType: string
}

/** The entries of a plain ustar archive (what airpack writes): where each header starts, its size, its length. */
function tarEntries(tar: Buffer): {path: string; offset: number; size: number; length: number}[] {
  const out: {path: string; offset: number; size: number; length: number}[] = []
  const field = (at: number, length: number) =>
    tar
      .subarray(at, at + length)
      .toString('latin1')
      .replace(/\0.*$/s, '')
  for (let at = 0; at + 512 <= tar.length && tar[at] !== 0;) {
    const size = Number.parseInt(field(at + 124, 12).trim(), 8)
    const length = 512 + Math.ceil(size / 512) * 512
    out.push({path: field(at, 100), offset: at, size, length})
    at += length
  }
  return out
}

describe.each(variants)('$label', ({formatVersion, split}) => {
  let root: string
  let bundle: string
  /** The bundle's files in order: the one .tar.zst, or its parts. */
  let files: string[]
  /** A shell command writing the compressed bundle to stdout: `cat` of the parts for a split bundle. */
  let compressed: string
  let tarFile: string
  let images: FixtureImage[]
  let charts: string[]
  let publicKey: string

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), `airpack-consumers-f${formatVersion}${split ? '-split' : ''}-`))
    // With a chart: containerd 1.6's `ctr import` unpacks every entry named by ref.name, and a Helm chart is not an
    // image, so the import only succeeds because charts are named under airpack's own annotation.
    const fx = await fixtureLock(path.join(root, 'cache'), {arch: 'amd64', withChart: true})
    charts = Object.values(fx.lock.charts).map((c) => c.reference)
    images = fx.images
    const definitionTgz = buildDefinitionTgz({
      name: 'site',
      cloudType: 'edge-native',
      profiles: fx.profiles,
      variables: {},
      mtime: 0,
    })
    const pair = generateKeyPairSync('rsa', {modulusLength: 2048})
    const privateKey = path.join(root, 'sign.pem')
    publicKey = path.join(root, 'sign.pub')
    writeFileSync(privateKey, pair.privateKey.export({type: 'pkcs8', format: 'pem'}))
    writeFileSync(publicKey, pair.publicKey.export({type: 'spki', format: 'pem'}))
    const pending = await writeBundle({
      name: 'site',
      outputDir: path.join(root, 'out'),
      lock: fx.lock,
      store: fx.store,
      profiles: fx.profiles,
      definitionTgz,
      compressionLevel: 3,
      formatVersion,
      airpackVersion: '0.1.0',
      ...(split ? {partSize: 4096, signingKey: await loadSigningKey(privateKey)} : {}),
    })
    await pending.commit()
    bundle = path.join(root, 'out', 'site.tar.zst')
    files = split
      ? readdirSync(path.join(root, 'out'))
          .filter((n) => /^site\.tar\.zst\.\d{3}$/.test(n))
          .sort()
          .map((n) => path.join(root, 'out', n))
      : [bundle]
    if (split) expect(files.length).toBeGreaterThan(2)
    compressed = `cat ${files.map((f) => `"${f}"`).join(' ')}`
    tarFile = path.join(root, 'site.tar')
    execFileSync('bash', ['-o', 'pipefail', '-c', `${compressed} | zstd -dc > "${tarFile}"`])
    // Which format was written: format 2 ends with the seekable magic, format 1 does not.
    const tail = readFileSync(files.at(-1)!).subarray(-4).readUInt32LE(0)
    if (formatVersion === 2) expect(tail).toBe(0x8f92eab1)
    else expect(tail).not.toBe(0x8f92eab1)
  })

  afterAll(() => rmSync(root, {recursive: true, force: true}))

  describe('zstd and tar', () => {
    it('`zstd -dc | tar -t` lists bundle.json first, the layout, and every blob', () => {
      const names = execFileSync('bash', ['-o', 'pipefail', '-c', `${compressed} | zstd -dc | tar -t`])
        .toString()
        .trim()
        .split('\n')
      expect(names[0]).toBe('airpack/bundle.json')
      expect(names).toEqual(expect.arrayContaining(['oci-layout', 'index.json', 'airpack/definition.tgz']))
      const manifest = JSON.parse(execFileSync('tar', ['-xOf', tarFile, 'airpack/bundle.json']).toString())
      expect(manifest.formatVersion).toBe(formatVersion)
      const listed = (manifest.entries as {path: string}[]).map((e) => e.path)
      expect(listed.filter((p) => p.startsWith('blobs/sha256/')).length).toBeGreaterThan(3)
      expect(names.slice(1).filter((n) => n !== 'airpack/bundle.json.sig')).toEqual(listed)
    })
  })

  if (formatVersion === 2) {
    describe('frames', () => {
      it('every tar entry is whole frames of its own; compressed media types in raw frames, JSON compressed', () => {
        const tar = readFileSync(tarFile)
        const entries = tarEntries(tar)
        // Each blob's media type, from the manifests and indexes in the tar that name it.
        const mediaTypes = new Map<string, string>()
        for (const e of entries.filter((x) => x.path.startsWith('blobs/sha256/'))) {
          const body = tar.subarray(e.offset + 512, e.offset + 512 + e.size)
          if (body[0] !== 0x7b) continue
          const doc = JSON.parse(body.toString()) as {config?: Ref; layers?: Ref[]; manifests?: Ref[]}
          for (const d of [doc.config, ...(doc.layers ?? []), ...(doc.manifests ?? [])])
            if (d?.digest) mediaTypes.set(`blobs/sha256/${d.digest.slice(7)}`, d.mediaType)
        }
        const bytes = Buffer.concat(files.map((f) => readFileSync(f)))
        const footer = parseSeekTableFooter(bytes.subarray(bytes.length - SEEK_TABLE_FOOTER_SIZE))
        if ('problem' in footer) throw new Error(footer.problem)
        const frames = parseSeekTable(
          bytes.subarray(bytes.length - seekTableSize(footer.frameCount, footer.checksums)),
          bytes.length,
        ).frames
        const isRaw = (f: (typeof frames)[number]) => f.compressedSize === rawFrameSize(f.decompressedSize)
        const seen = {raw: 0, compressed: 0}
        for (const e of [...entries, {path: '(end of archive)', offset: tar.length - 1024, size: 0, length: 1024}]) {
          const own = frames.filter(
            (f) => f.decompressedOffset >= e.offset && f.decompressedOffset < e.offset + e.length,
          )
          expect(own[0]?.decompressedOffset, `${e.path} starts a frame`).toBe(e.offset)
          expect(
            own.reduce((sum, f) => sum + f.decompressedSize, 0),
            `${e.path} ends with its last frame`,
          ).toBe(e.length)
          const mediaType = mediaTypes.get(e.path)
          if (mediaType && /[+.](gzip|zstd)$/.test(mediaType)) {
            expect(own.every(isRaw), `${e.path} (${mediaType}) in raw frames`).toBe(true)
            seen.raw++
          } else if (e.path === 'airpack/bundle.json' || mediaType?.endsWith('json')) {
            expect(own.some(isRaw), `${e.path} compressed`).toBe(false)
            expect(own.reduce((sum, f) => sum + f.compressedSize, 0)).toBeLessThan(e.length)
            seen.compressed++
          }
        }
        expect(frames.reduce((sum, f) => sum + f.decompressedSize, 0)).toBe(tar.length)
        expect(seen.raw).toBeGreaterThan(2)
        expect(seen.compressed).toBeGreaterThan(4)
      })
    })
  }

  if (split) {
    describe('parts and signature', () => {
      it('the parts file pins each part and the `cat` of them, and verify reads the parts in place', async () => {
        const parts = JSON.parse(readFileSync(path.join(root, 'out', 'site.parts.json'), 'utf8'))
        expect(parts.parts.map((p: {name: string}) => p.name)).toEqual(files.map((f) => path.basename(f)))
        const whole = execFileSync('bash', ['-o', 'pipefail', '-c', `${compressed} | sha256sum`])
          .toString()
          .split(' ')[0]
        expect(parts.sha256).toBe(whole)
        for (const [i, f] of files.entries())
          expect(createHash('sha256').update(readFileSync(f)).digest('hex')).toBe(parts.parts[i].sha256)
        const report = await readBundle(files[0], {mode: 'verify', publicKey: await loadPublicKey(publicKey)})
        expect(report).toMatchObject({formatVersion: 2, totals: {parts: files.length}})
        expect(report.signature).toMatchObject({signed: true, inner: 'valid', detached: 'valid'})
      })

      it('`openssl dgst -verify` accepts the detached signature over the `cat` of the parts, and refuses a changed byte', () => {
        const sig = path.join(root, 'out', 'site.tar.zst.sig')
        const openssl = (input: string) =>
          execFileSync('bash', [
            '-o',
            'pipefail',
            '-c',
            `${input} | openssl dgst -sha256 -verify "${publicKey}" -signature "${sig}"`,
          ]).toString()
        expect(openssl(compressed)).toContain('Verified OK')
        // The same bytes with one flipped in the middle.
        const bytes = Buffer.concat(files.map((f) => readFileSync(f)))
        bytes[bytes.length >> 1] ^= 0x01
        const tampered = path.join(root, 'tampered.tar.zst')
        writeFileSync(tampered, bytes)
        expect(() => openssl(`cat "${tampered}"`)).toThrow(/Verification failure|bad signature/)
      })
    })
  }

  describe('skopeo', () => {
    let reg: TestRegistry
    beforeAll(async () => {
      reg = await startRegistry()
    })
    afterAll(async () => {
      await reg?.stop()
    })

    it('inspects every OCI-typed image by its original reference', () => {
      for (const img of images.filter((i) => i.locked.mediaType.includes('oci'))) {
        const out = JSON.parse(
          execFileSync('skopeo', ['inspect', `oci-archive:${tarFile}:${img.locked.reference}`]).toString(),
        )
        expect(out.Architecture).toBe('amd64')
        expect(out.Digest).toBe(img.locked.digest)
      }
    })

    it('copies an image to a registry keeping its platform manifest digest', () => {
      const img = images.find((i) => i.locked.reference.endsWith('team/app:1.0'))!
      execFileSync('skopeo', [
        'copy',
        '--quiet',
        '--dest-tls-verify=false',
        `oci-archive:${tarFile}:${img.locked.reference}`,
        `docker://${reg.host}/copied/app:1.0`,
      ])
      const raw = execFileSync('skopeo', [
        'inspect',
        '--tls-verify=false',
        '--raw',
        `docker://${reg.host}/copied/app:1.0`,
      ])
      const digest = 'sha256:' + execFileSync('sha256sum', {input: raw}).toString().split(' ')[0]
      expect(digest).toBe(img.platformDigest)
    })
  })

  describe('containerd', () => {
    let containerd: TestContainerd

    beforeAll(async () => {
      containerd = await startContainerd()
    })

    afterAll(async () => {
      await containerd?.stop()
    })

    it('imports the bundle from a pipe and lists every image under its original name and index digest', () => {
      const out = execFileSync('bash', [
        '-c',
        `set -o pipefail; ${compressed} | zstd -dc | ctr --address "${containerd.socket}" -n k8s.io images import --platform linux/amd64 -`,
      ]).toString()
      expect(out).toContain('unpacking')
      const rows = containerd.images()
      for (const img of images) expect(rows.get(img.locked.reference), img.locked.reference).toBe(img.locked.digest)
      expect(rows.has('airpack.local/spc/site:latest')).toBe(true)
      expect(charts.length).toBeGreaterThan(0)
      for (const chart of charts) expect(rows.has(chart), chart).toBe(false)
    })
  })
})
