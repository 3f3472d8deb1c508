import {execFileSync} from 'node:child_process'
import {createHash, generateKeyPairSync} from 'node:crypto'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore} from '../../src/cache/store.js'
import {buildDefinitionTgz} from '../../src/bundle/definition.js'
import {readBundle} from '../../src/bundle/reader.js'
import {loadPublicKey, loadSigningKey} from '../../src/bundle/sign.js'
import {encodeFileHeader, padding} from '../../src/bundle/tar.js'
import {writeBundle, type WriteBundleOptions} from '../../src/bundle/writer.js'
import {BLOCK_HEADER_SIZE, MAX_BLOCK_SIZE, parseFrameHeader} from '../../src/zstd/frame.js'
import {SeekableReader} from '../../src/zstd/seekable-reader.js'
import {fixtureLock} from '../helpers/bundle-fixtures.js'

// The bundle writer and reader on inputs made directly (a BlobStore and a Lock), without a registry.

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
let root: string
let keys: {priv: string; pub: string; otherPub: string}

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'airpack-bundle-'))
  const pair = generateKeyPairSync('rsa', {modulusLength: 2048})
  const other = generateKeyPairSync('rsa', {modulusLength: 2048})
  keys = {priv: path.join(root, 'key.pem'), pub: path.join(root, 'key.pub'), otherPub: path.join(root, 'other.pub')}
  writeFileSync(keys.priv, pair.privateKey.export({type: 'pkcs8', format: 'pem'}))
  writeFileSync(keys.pub, pair.publicKey.export({type: 'spki', format: 'pem'}))
  writeFileSync(keys.otherPub, other.publicKey.export({type: 'spki', format: 'pem'}))
})

afterAll(() => rmSync(root, {recursive: true, force: true}))

let counter = 0
async function build(
  extra: Partial<WriteBundleOptions> & {cache?: string; out?: string; fixture?: Parameters<typeof fixtureLock>[1]} = {},
) {
  const id = counter++
  const cache = extra.cache ?? path.join(root, `cache-${id}`)
  const out = extra.out ?? path.join(root, `out-${id}`)
  const {fixture, ...options} = extra
  const {store, lock, profiles} = await fixtureLock(cache, fixture)
  const definitionTgz = buildDefinitionTgz({
    name: 'demo',
    cloudType: 'edge-native',
    profiles,
    variables: {},
    mtime: extra.sourceDateEpoch ?? 0,
  })
  const pending = await writeBundle({
    name: 'demo',
    outputDir: out,
    lock,
    store,
    profiles,
    definitionTgz,
    compressionLevel: 3,
    airpackVersion: '0.1.0',
    ...options,
  })
  await pending.commit()
  return {pending, out, cache, store, lock}
}

function tarOf(file: string): Buffer {
  return execFileSync('zstd', ['-dc', file], {maxBuffer: 1 << 28})
}

function zstdOf(tar: Buffer, file: string): void {
  writeFileSync(file, execFileSync('zstd', ['-q', '-c', '-3'], {input: tar, maxBuffer: 1 << 28}))
}

/** Insert an extra regular entry just before the end-of-archive blocks. */
function withExtraEntry(tar: Buffer, name: string, body: Buffer): Buffer {
  const end = tar.length - 1024
  return Buffer.concat([
    tar.subarray(0, end),
    encodeFileHeader(name, body.length, {mtime: 0}),
    body,
    padding(body.length),
    Buffer.alloc(1024),
  ])
}

async function verifyError(
  file: string,
  publicKey?: string,
): Promise<{message: string; problems: string[]; exitCode: number}> {
  const error = await readBundle(file, {
    mode: 'verify',
    publicKey: publicKey ? await loadPublicKey(publicKey) : undefined,
  }).then(
    () => undefined,
    (e: any) => e,
  )
  expect(error, 'verify should have failed').toBeDefined()
  return {message: error.message, problems: error.details?.problems ?? [], exitCode: error.exitCode}
}

describe('bundle writer', () => {
  it('writes an OCI layout with bundle.json first, every blob once, sorted, and verifies', async () => {
    // Format 1, whose identity is the tar's sha256 (format 2's is bundle.json's: see the format 2 tests below).
    const {pending, out} = await build({formatVersion: 1})
    const tar = tarOf(path.join(out, 'demo.tar.zst'))
    expect(`sha256:${sha(tar)}`).toBe(pending.identity)
    const names = execFileSync('tar', ['-t'], {input: tar}).toString().trim().split('\n')
    expect(names.slice(0, 5)).toEqual([
      'airpack/bundle.json',
      'oci-layout',
      'index.json',
      'airpack/definition.tgz',
      'airpack/profiles/01-edge-addons.json',
    ])
    const blobs = names.filter((n) => n.startsWith('blobs/sha256/'))
    expect(blobs).toEqual([...blobs].sort())
    expect(new Set(blobs).size).toBe(blobs.length)

    const index = JSON.parse(execFileSync('tar', ['-xO', 'index.json'], {input: tar}).toString())
    const refs = index.manifests.map((m: any) => m.annotations['org.opencontainers.image.ref.name'])
    expect(refs).toEqual([
      'registry.example.com/legacy/tool:0.9',
      'registry.example.com/solo/one:latest',
      'registry.example.com/team/app:1.0',
      'registry.example.com/team/sidecar:2.1',
      'airpack.local/spc/demo:latest',
      undefined,
    ])
    // The chart is named for OCI tools, but not under the key containerd turns into an image.
    expect(index.manifests.at(-1).annotations).toEqual({
      'io.airpack.ref.name': 'registry.example.com/charts/hello:0.1.0',
    })
    const spc = index.manifests.find((m: any) => m.annotations['io.image.ref.spectrocloud.type'] === 'spc')
    expect(spc).toBeDefined()

    const manifest = JSON.parse(execFileSync('tar', ['-xO', 'airpack/bundle.json'], {input: tar}).toString())
    expect(manifest).toMatchObject({
      formatVersion: 1,
      name: 'demo',
      platform: {os: 'linux', architecture: 'amd64'},
      compression: {algorithm: 'zstd', level: 3},
    })
    expect(manifest.entries.map((e: any) => e.path)).toEqual(names.slice(1))
    const app = manifest.artifacts.find((a: any) => a.reference === 'registry.example.com/team/app:1.0')
    expect(app.omittedPlatforms).toEqual([
      {os: 'linux', architecture: 'arm64', variant: 'v8'},
      {os: 'unknown', architecture: 'unknown'},
    ])

    const report = await readBundle(path.join(out, 'demo.tar.zst'), {mode: 'verify'})
    expect(report.identity).toBe(pending.identity)
    expect(report.totals).toMatchObject({artifacts: 6, images: 4, charts: 1, parts: 1})
  })

  it('stores the image index byte-for-byte and only the target platform content', async () => {
    const {out, store, lock} = await build()
    const tar = tarOf(path.join(out, 'demo.tar.zst'))
    const app = lock.images['registry.example.com/team/app:1.0']
    const stored = execFileSync('tar', ['-xO', `blobs/sha256/${app.digest.slice(7)}`], {input: tar})
    expect(stored).toEqual(await store.readBytes(app.digest))
    const index = JSON.parse(stored.toString())
    const arm = index.manifests.find((m: any) => m.platform.architecture === 'arm64')
    const names = execFileSync('tar', ['-t'], {input: tar}).toString()
    expect(names).not.toContain(arm.digest.slice(7))
    expect(names).toContain(app.platformManifest.digest.slice(7))
  })

  it('is byte-identical from another cache filled in another order, and SOURCE_DATE_EPOCH is the only time used', async () => {
    const a = await build()
    // A second cache with unrelated extra blobs, filled after a different first write.
    const cacheB = path.join(root, 'cache-reordered')
    const other = new BlobStore(cacheB)
    await other.init()
    for (let i = 0; i < 5; i++) await other.putBytes(Buffer.from(`unrelated ${i}`))
    const b = await build({cache: cacheB})
    expect(b.pending.identity).toBe(a.pending.identity)
    expect(readFileSync(path.join(b.out, 'demo.tar.zst'))).toEqual(readFileSync(path.join(a.out, 'demo.tar.zst')))
    const dated = await build({sourceDateEpoch: 1_700_000_000})
    expect(dated.pending.identity).not.toBe(a.pending.identity)
    const again = await build({sourceDateEpoch: 1_700_000_000})
    expect(again.pending.identity).toBe(dated.pending.identity)
  })

  it('splits into plain byte ranges whose cat equals the unsplit file, with a parts file', async () => {
    const whole = await build()
    const split = await build({partSize: 2048})
    const names = readdirSync(split.out)
      .filter((n) => /^demo\.tar\.zst\.\d{3}$/.test(n))
      .sort()
    expect(names.length).toBeGreaterThan(1)
    expect(existsSync(path.join(split.out, 'demo.tar.zst'))).toBe(false)
    const joined = Buffer.concat(names.map((n) => readFileSync(path.join(split.out, n))))
    expect(joined).toEqual(readFileSync(path.join(whole.out, 'demo.tar.zst')))
    const parts = JSON.parse(readFileSync(path.join(split.out, 'demo.parts.json'), 'utf8'))
    expect(parts.sha256).toBe(sha(joined))
    expect(parts.parts.map((p: any) => p.name)).toEqual(names)
    for (const p of parts.parts) expect(p.sha256).toBe(sha(readFileSync(path.join(split.out, p.name))))
    for (const n of names.slice(0, -1)) expect(readFileSync(path.join(split.out, n)).length).toBe(2048)

    for (const input of ['demo.parts.json', 'demo.tar.zst.000', 'demo.tar.zst']) {
      const report = await readBundle(path.join(split.out, input), {mode: 'verify'})
      expect(report.identity).toBe(whole.pending.identity)
      expect(report.totals.parts).toBe(names.length)
    }
  })

  it('leaves no stale parts or unsplit file from an earlier build of the same name', async () => {
    const out = path.join(root, 'restale')
    await build({out, partSize: 1024})
    const many = readdirSync(out).filter((n) => n.includes('.tar.zst.')).length
    await build({out, partSize: 4096})
    const fewer = readdirSync(out)
      .filter((n) => n.includes('.tar.zst.'))
      .sort()
    expect(fewer.length).toBeLessThan(many)
    const parts = JSON.parse(readFileSync(path.join(out, 'demo.parts.json'), 'utf8'))
    expect(fewer).toEqual(parts.parts.map((p: any) => p.name))
    await build({out})
    expect(readdirSync(out).sort()).toEqual(['demo.tar.zst'])
  })

  it('signs bundle.json inside and the whole file beside, and verify checks both', async () => {
    const signingKey = await loadSigningKey(keys.priv)
    const {out} = await build({signingKey})
    const file = path.join(out, 'demo.tar.zst')
    const names = execFileSync('tar', ['-t'], {input: tarOf(file)})
      .toString()
      .trim()
      .split('\n')
    expect(names.slice(0, 2)).toEqual(['airpack/bundle.json', 'airpack/bundle.json.sig'])
    expect(
      execFileSync('openssl', ['dgst', '-sha256', '-verify', keys.pub, '-signature', `${file}.sig`, file]).toString(),
    ).toContain('Verified OK')
    const report = await readBundle(file, {mode: 'verify', publicKey: await loadPublicKey(keys.pub)})
    expect(report.signature).toMatchObject({signed: true, algorithm: 'rsa-sha256', inner: 'valid', detached: 'valid'})

    const wrong = await verifyError(file, keys.otherPub)
    expect(wrong.exitCode).toBe(5)
    expect(wrong.problems.join('\n')).toMatch(/signature of airpack\/bundle\.json does not verify/)
    expect(wrong.problems.join('\n')).toMatch(/detached signature demo\.tar\.zst\.sig does not verify/)
  })

  it('signed and split: the parts joined verify with openssl (RSA, ECDSA P-256, Ed25519); RSA and Ed25519 give the unsplit file and signature', async () => {
    const pairs = {
      rsa: generateKeyPairSync('rsa', {modulusLength: 2048}),
      ec: generateKeyPairSync('ec', {namedCurve: 'prime256v1'}),
      ed25519: generateKeyPairSync('ed25519'),
    }
    for (const [kind, pair] of Object.entries(pairs)) {
      const priv = path.join(root, `split-${kind}.pem`)
      const pub = path.join(root, `split-${kind}.pub`)
      writeFileSync(priv, pair.privateKey.export({type: 'pkcs8', format: 'pem'}))
      writeFileSync(pub, pair.publicKey.export({type: 'spki', format: 'pem'}))
      const signingKey = await loadSigningKey(priv)
      const whole = await build({signingKey})
      const split = await build({signingKey, partSize: 3000})
      const partsFile = JSON.parse(readFileSync(path.join(split.out, 'demo.parts.json'), 'utf8'))
      const joined = path.join(split.out, 'joined.tar.zst')
      writeFileSync(joined, Buffer.concat(partsFile.parts.map((p: any) => readFileSync(path.join(split.out, p.name)))))
      // ECDSA signatures are randomised, bundle.json's inside too: only RSA and Ed25519 builds repeat byte for byte.
      const deterministic = kind !== 'ec'
      const wholeFile = readFileSync(path.join(whole.out, 'demo.tar.zst'))
      expect(readFileSync(joined).equals(wholeFile), kind).toBe(deterministic)
      expect(partsFile.sha256).toBe(sha(readFileSync(joined)))
      expect(split.pending.compressedSha256).toBe(partsFile.sha256)
      expect(whole.pending.compressedSha256).toBe(sha(wholeFile))
      const sig = path.join(split.out, 'demo.tar.zst.sig')
      expect(readFileSync(sig).equals(split.pending.detachedSignature!)).toBe(true)
      if (kind === 'ed25519') {
        const digest = path.join(split.out, 'joined.sha256')
        writeFileSync(digest, createHash('sha256').update(readFileSync(joined)).digest())
        const args = ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', digest, '-sigfile', sig]
        expect(execFileSync('openssl', args).toString()).toContain('Signature Verified Successfully')
      } else {
        const args = ['dgst', '-sha256', '-verify', pub, '-signature', sig, joined]
        expect(execFileSync('openssl', args).toString()).toContain('Verified OK')
      }
      const same = readFileSync(sig).equals(readFileSync(path.join(whole.out, 'demo.tar.zst.sig')))
      expect(same, kind).toBe(deterministic)
      unlinkSync(joined)
      const report = await readBundle(path.join(split.out, 'demo.parts.json'), {
        mode: 'verify',
        publicKey: await loadPublicKey(pub),
      })
      expect(report.signature).toMatchObject({signed: true, inner: 'valid', detached: 'valid'})
    }
  })

  it('refuses a cache that is missing a blob, before writing anything', async () => {
    const cache = path.join(root, 'cache-missing')
    const out = path.join(root, 'out-missing')
    const {store, lock, profiles} = await fixtureLock(cache)
    const app = lock.images['registry.example.com/team/app:1.0']
    unlinkSync(store.blobPath(app.blobs[app.blobs.length - 1].digest))
    const definitionTgz = buildDefinitionTgz({
      name: 'demo',
      cloudType: 'edge-native',
      profiles,
      variables: {},
      mtime: 0,
    })
    const error = await writeBundle({
      name: 'demo',
      outputDir: out,
      lock,
      store,
      profiles,
      definitionTgz,
      compressionLevel: 3,
      airpackVersion: '0.1.0',
    }).catch((e) => e)
    expect(error).toMatchObject({code: 'ERR_AIRPACK_BLOB_NOT_CACHED', exitCode: 4})
    expect(error.details.problems[0]).toContain('registry.example.com/team/app:1.0')
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([])
  })

  it('packing while the cache fills (blobReady): each blob read only once it is ready, the same bytes as a warm write', async () => {
    const warm = await build()
    const cache = path.join(root, 'cache-filling')
    const out = path.join(root, 'out-filling')
    const {store, lock, profiles} = await fixtureLock(cache)
    const definitionTgz = buildDefinitionTgz({
      name: 'demo',
      cloudType: 'edge-native',
      profiles,
      variables: {},
      mtime: 0,
    })
    // Hide every blob, then hand each back only when the writer asks for it, a little later.
    const hidden = new Map<string, Buffer>()
    for (const image of Object.values(lock.images)) {
      for (const d of image.blobs) {
        if (hidden.has(d.digest) || !existsSync(store.blobPath(d.digest))) continue
        hidden.set(d.digest, readFileSync(store.blobPath(d.digest)))
        unlinkSync(store.blobPath(d.digest))
      }
    }
    const asked: string[] = []
    const blobReady = async (digest: string) => {
      asked.push(digest)
      await new Promise((r) => setTimeout(r, 5))
      const bytes = hidden.get(digest)
      if (bytes && !existsSync(store.blobPath(digest))) writeFileSync(store.blobPath(digest), bytes)
    }
    const pending = await writeBundle({
      name: 'demo',
      outputDir: out,
      lock,
      store,
      profiles,
      definitionTgz,
      compressionLevel: 3,
      airpackVersion: '0.1.0',
      blobReady,
    })
    await pending.commit()
    expect(pending.identity).toBe(warm.pending.identity)
    expect(sha(readFileSync(path.join(out, 'demo.tar.zst')))).toBe(
      sha(readFileSync(path.join(warm.out, 'demo.tar.zst'))),
    )
    for (const d of hidden.keys()) expect(asked, d).toContain(d)
  })

  it('packing while the cache fills: a blob that cannot be fetched fails the write and leaves no output', async () => {
    const cache = path.join(root, 'cache-fail')
    const out = path.join(root, 'out-fail')
    const {store, lock, profiles} = await fixtureLock(cache)
    const definitionTgz = buildDefinitionTgz({
      name: 'demo',
      cloudType: 'edge-native',
      profiles,
      variables: {},
      mtime: 0,
    })
    const app = lock.images['registry.example.com/team/app:1.0']
    const failing = app.blobs[app.blobs.length - 1].digest
    unlinkSync(store.blobPath(failing))
    const blobReady = async (digest: string) => {
      if (digest === failing) throw new Error(`fetch of ${digest} failed`)
    }
    const error = await writeBundle({
      name: 'demo',
      outputDir: out,
      lock,
      store,
      profiles,
      definitionTgz,
      compressionLevel: 3,
      airpackVersion: '0.1.0',
      blobReady,
    }).catch((e) => e)
    expect(String(error.message)).toContain(failing)
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([])
  })
})

describe('a full disk', () => {
  let mnt: string
  beforeAll(() => {
    // A 4 KiB tmpfs (one page): smaller than any bundle. The tests run as root, as CI does.
    mnt = mkdtempSync(path.join(os.tmpdir(), 'airpack-full-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4k', 'tmpfs', mnt])
  })
  afterAll(() => {
    execFileSync('umount', [mnt])
    rmSync(mnt, {recursive: true, force: true})
  })

  for (const [partSize, signed] of [
    [undefined, false],
    [1024, false],
    [undefined, true],
    [1024, true],
  ] as const) {
    const label = `${partSize ? 'split' : 'whole'}${signed ? ', signed' : ''}`
    it(`gives a clean error and leaves nothing behind (${label})`, async () => {
      const out = path.join(mnt, `out-${partSize ?? 'whole'}${signed ? '-signed' : ''}`)
      const signingKey = signed ? await loadSigningKey(keys.priv) : undefined
      const error = await build({out, partSize, signingKey}).catch((e) => e)
      expect(error).toMatchObject({code: 'ERR_AIRPACK_DISK_FULL', exitCode: 2})
      expect(error.message).toContain(out)
      expect(readdirSync(out)).toEqual([])
    })
  }
})

describe('bundle verify on tampered bundles', () => {
  let good: string
  let goodTar: Buffer
  beforeAll(async () => {
    // Format 1: these tests recompress an edited tar into one zstd stream, which is what format 1 is.
    const {out} = await build({formatVersion: 1})
    good = path.join(out, 'demo.tar.zst')
    goodTar = tarOf(good)
  })

  it('a flipped byte in the compressed file', async () => {
    const bad = path.join(root, 'flipped.tar.zst')
    const bytes = readFileSync(good)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    writeFileSync(bad, bytes)
    const e = await verifyError(bad)
    expect(e.exitCode).toBe(5)
    expect(e.message).toMatch(/corrupt|does not match|sha256/)
  })

  it('a flipped byte inside a blob names the blob', async () => {
    const names = execFileSync('tar', ['-tv'], {input: goodTar}).toString()
    expect(names).toContain('blobs/sha256/')
    // Find the last blob's body: its header is the 512-byte block whose name starts with blobs/.
    const tar = Buffer.from(goodTar)
    let offset = 0
    let lastBody = -1
    let lastName = ''
    while (offset < tar.length - 1024) {
      const name = tar
        .subarray(offset, offset + 100)
        .toString()
        .replace(/\0.*$/s, '')
      const size = Number.parseInt(tar.subarray(offset + 124, offset + 135).toString(), 8)
      if (name.startsWith('blobs/sha256/')) {
        lastBody = offset + 512
        lastName = name
      }
      offset += 512 + Math.ceil(size / 512) * 512
    }
    tar[lastBody] ^= 0x01
    const bad = path.join(root, 'blob-flipped.tar.zst')
    zstdOf(tar, bad)
    const e = await verifyError(bad)
    expect(e.problems.join('\n')).toContain(lastName)
    expect(e.message).toContain(lastName)
  })

  it('an extra entry', async () => {
    const bad = path.join(root, 'extra.tar.zst')
    zstdOf(withExtraEntry(goodTar, 'airpack/smuggled.sh', Buffer.from('#!/bin/sh\n')), bad)
    const e = await verifyError(bad)
    expect(e.message).toContain('airpack/smuggled.sh')
    expect(e.message).toMatch(/not listed/)
  })

  it('a ../ path', async () => {
    const bad = path.join(root, 'escape.tar.zst')
    zstdOf(withExtraEntry(goodTar, '../../etc/cron.d/evil', Buffer.from('x')), bad)
    const e = await verifyError(bad)
    expect(e.message).toContain('../../etc/cron.d/evil')
    expect(e.message).toMatch(/escapes/)
  })

  it('a missing part, and a corrupt part, are named before anything else', async () => {
    const {out} = await build({partSize: 1024})
    const parts = JSON.parse(readFileSync(path.join(out, 'demo.parts.json'), 'utf8'))
    const second = parts.parts[1].name
    const saved = readFileSync(path.join(out, second))
    unlinkSync(path.join(out, second))
    let e = await verifyError(path.join(out, 'demo.parts.json'))
    expect(e.message).toContain(`part ${second} is missing`)
    const corrupt = Buffer.from(saved)
    corrupt[10] ^= 0xff
    writeFileSync(path.join(out, second), corrupt)
    e = await verifyError(path.join(out, 'demo.tar.zst.000'))
    expect(e.message).toContain(`part ${second} is corrupt`)
    expect(e.problems).toHaveLength(1)
  })

  it('an entry listed in bundle.json but missing, and a truncated stream', async () => {
    const bad = path.join(root, 'truncated.tar.zst')
    const bytes = readFileSync(good)
    writeFileSync(bad, bytes.subarray(0, bytes.length - 40))
    const e = await verifyError(bad)
    expect(e.exitCode).toBe(5)
    expect(e.message).toMatch(/cut short|truncated|corrupt/)
  })
})

describe('format 2 verify: large entries hashed from their raw frames on worker threads', () => {
  let good: string
  let bytes: Buffer
  let big: {path: string; compressedOffset: number; headerSize: number; decompressedSize: number}
  beforeAll(async () => {
    // A shared layer of ~9 MiB (raw frames), larger than the 4 MiB a verify keeps in memory: hashed by a worker.
    const {out, pending} = await build({formatVersion: 2, fixture: {sharedLayerNoise: 9 * 1024 * 1024}})
    good = path.join(out, 'demo.tar.zst')
    bytes = readFileSync(good)
    const layer = pending.manifest.entries.reduce((a, b) => (b.size > a.size ? b : a))
    expect(layer.size).toBeGreaterThan(8 * 1024 * 1024)
    const reader = await SeekableReader.open(good)
    const frame = reader.table.frames.reduce((a, b) => (b.decompressedSize > a.decompressedSize ? b : a))
    await reader.close()
    big = {
      path: layer.path,
      compressedOffset: frame.compressedOffset,
      headerSize: parseFrameHeader(bytes.subarray(frame.compressedOffset)).headerSize,
      decompressedSize: frame.decompressedSize,
    }
  })

  /** File offset of raw block `k` of the large frame (its 3-byte header). */
  const blockAt = (k: number) => big.compressedOffset + big.headerSize + k * (BLOCK_HEADER_SIZE + MAX_BLOCK_SIZE)

  it('verifies, with the identity of bundle.json, whole and from parts cut inside the large frame', async () => {
    const report = await readBundle(good, {mode: 'verify'})
    expect(report.formatVersion).toBe(2)
    const bundleJson = execFileSync('bash', ['-c', `zstd -dc "${good}" | tar -xOf - airpack/bundle.json`])
    expect(report.identity).toBe(`sha256:${sha(bundleJson)}`)
    const {out} = await build({formatVersion: 2, fixture: {sharedLayerNoise: 9 * 1024 * 1024}, partSize: 3_000_001})
    const parts = readdirSync(out).filter((n) => /^demo\.tar\.zst\.\d{3}$/.test(n))
    expect(parts.length).toBeGreaterThan(3)
    expect((await readBundle(path.join(out, 'demo.parts.json'), {mode: 'verify'})).identity).toBe(report.identity)
  })

  it('a flipped byte deep inside the large entry names the entry (exit 5)', async () => {
    const bad = path.join(root, 'f2-content.tar.zst')
    const copy = Buffer.from(bytes)
    copy[blockAt(40) + BLOCK_HEADER_SIZE + 1000] ^= 0x01
    writeFileSync(bad, copy)
    const e = await verifyError(bad)
    expect(e.exitCode).toBe(5)
    expect(e.message).toContain(big.path)
    expect(e.message).toMatch(/corrupt/)
  })

  it('a tar header altered to setuid or another owner (checksum fixed; no digest covers a header) names the entry (exit 5)', async () => {
    // The large frame's first raw block starts with the entry's 512-byte tar header.
    const header = big.compressedOffset + big.headerSize + BLOCK_HEADER_SIZE
    const edits: [string, (h: Buffer) => void, RegExp][] = [
      ['setuid', (h) => h.write('0004755\0', 100, 'ascii'), /mode 4755 and owner 0:0/],
      ['owner', (h) => h.write('0001750\0', 108, 'ascii'), /owner 1000:0/],
      ['user name', (h) => h.write('nobody', 265, 'ascii'), /owner 0:0 \("nobody":""\)/],
    ]
    for (const [what, edit, said] of edits) {
      const copy = Buffer.from(bytes)
      const h = copy.subarray(header, header + 512)
      expect(h.toString('ascii', 0, big.path.length), what).toBe(big.path)
      edit(h)
      h.write('        ', 148, 'ascii')
      const sum = h.reduce((a, b) => a + b, 0)
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii')
      const bad = path.join(root, `f2-header-${what.replace(' ', '-')}.tar.zst`)
      writeFileSync(bad, copy)
      // Stock tar reads the altered header without complaint.
      const listing = execFileSync('bash', ['-o', 'pipefail', '-c', `zstd -dc "${bad}" | tar -tv`]).toString()
      expect(listing, what).toContain(big.path)
      const e = await verifyError(bad)
      expect(e.exitCode, what).toBe(5)
      expect(e.message, what).toContain(big.path)
      expect(e.message, what).toMatch(said)
    }
  })

  it('a block header altered inside the large frame (stock zstd would decode other bytes) names the entry (exit 5)', async () => {
    const bad = path.join(root, 'f2-block.tar.zst')
    const copy = Buffer.from(bytes)
    copy[blockAt(30)] |= 0x02 // Block_Type raw → RLE: the size is unchanged, the decoded bytes are not
    writeFileSync(bad, copy)
    expect(() => execFileSync('bash', ['-c', `zstd -dc "${bad}" | cmp -s - <(zstd -dc "${good}")`])).toThrow()
    const e = await verifyError(bad)
    expect(e.exitCode).toBe(5)
    expect(e.message).toContain(big.path)
    expect(e.message).toMatch(/block header/)
  })
})
