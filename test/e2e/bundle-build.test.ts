import {execFileSync, spawn} from 'node:child_process'
import {generateKeyPairSync, randomBytes} from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {gzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {parseSeekTable, parseSeekTableFooter, SEEK_TABLE_FOOTER_SIZE, seekTableSize} from '../../src/zstd/seek-table.js'
import {PROJECT_ROOT, runCli} from '../helpers/cli.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {blobOf, layerOf, pushImage, type SeededImage} from '../helpers/seed.js'
import {addonProfile} from '../../support/profiles.js'

// `airpack bundle build | verify | inspect` through the built CLI against a real registry on loopback.

let reg: TestRegistry
let root: string
let app: SeededImage
let tool: SeededImage
let profile: string

function webProfile(name: string, images: string[]): object {
  return addonProfile({name, labels: {}, pack: 'web', namespace: 'web', images})
}

function write(name: string, data: string | Buffer): string {
  const file = path.join(root, name)
  mkdirSync(path.dirname(file), {recursive: true})
  writeFileSync(file, data)
  return file
}

const registryArgs = () => ['--insecure-registry', reg.host]

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'airpack-e2e-bundle-'))
  reg = await startRegistry()
  const shared = layerOf({'etc/shared': 'shared by both platforms'})
  app = await pushImage(
    reg,
    'team/app',
    '1.0',
    [
      {architecture: 'amd64', layers: [shared, layerOf({'bin/app': 'amd64 build'})]},
      {architecture: 'arm64', variant: 'v8', layers: [shared, layerOf({'bin/app': 'arm64 build'})]},
    ],
    {attestations: true},
  )
  tool = await pushImage(
    reg,
    'legacy/tool',
    '2',
    [
      {architecture: 'amd64', layers: [layerOf({'bin/tool': 'x'})]},
      {architecture: 'arm64', layers: [layerOf({'bin/tool': 'y'})]},
    ],
    {
      format: 'docker',
    },
  )
  profile = write('addon.json', JSON.stringify(webProfile('web-addon', [app.reference, tool.reference]), null, 2))
}, 120_000)

afterAll(async () => {
  await reg?.stop()
  rmSync(root, {recursive: true, force: true})
})

describe('bundle build', () => {
  it('writes every output, and verify and inspect agree on the identity', async () => {
    const out = path.join(root, 'out-a')
    const res = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'site',
      '--output',
      out,
      '--cache-dir',
      path.join(root, 'cache-a'),
      '--concurrency',
      '1',
      ...registryArgs(),
      '--json',
    ])
    expect(res.exitCode, res.stderr).toBe(0)
    const report = res.json()
    expect(report.identity).toMatch(/^sha256:[a-f0-9]{64}$/)
    expect(readdirSync(out).sort()).toEqual([
      'site-definition.tgz',
      'site.inventory.json',
      'site.lock.json',
      'site.report.json',
      'site.tar.zst',
    ])
    const onDisk = JSON.parse(readFileSync(path.join(out, 'site.report.json'), 'utf8'))
    expect(onDisk.identity).toBe(report.identity)
    expect(onDisk.artifacts.map((a: any) => a.reference).sort()).toEqual([tool.reference, app.reference].sort())
    for (const a of onDisk.artifacts) {
      expect(a.source).toBe(reg.host)
      expect(typeof a.seconds).toBe('number')
      expect(typeof a.cacheHit).toBe('boolean')
    }
    expect(onDisk.totals.writeThroughputMBps).toBeGreaterThan(0)

    const verify = await runCli(['bundle', 'verify', path.join(out, 'site.tar.zst'), '--json'])
    expect(verify.exitCode, verify.stderr + verify.stdout).toBe(0)
    expect(verify.json()).toMatchObject({status: 'ok', identity: report.identity, name: 'site'})

    const inspect = await runCli(['bundle', 'inspect', path.join(out, 'site.tar.zst'), '--json'])
    expect(inspect.exitCode).toBe(0)
    const info = inspect.json()
    expect(info).toMatchObject({
      name: 'site',
      platform: {os: 'linux', architecture: 'amd64'},
      identity: report.identity,
    })
    const appInfo = info.artifacts.find((a: any) => a.reference === app.reference)
    expect(appInfo).toMatchObject({kind: 'image', digest: app.digest})
    expect(info.profiles).toEqual([expect.objectContaining({name: 'web-addon', version: '1.0.0'})])

    const human = await runCli(['bundle', 'inspect', path.join(out, 'site.tar.zst')])
    expect(human.stdout).toContain(report.identity)
    expect(human.stdout).toContain(app.reference)
  })

  it('gives byte-identical bundles from a cold and another cache and another --concurrency; a warm rebuild downloads nothing', async () => {
    const build = (name: string, cache: string, concurrency: string) =>
      runCli([
        'bundle',
        'build',
        profile,
        '--arch',
        'amd64',
        '--name',
        'repro',
        '--output',
        path.join(root, name),
        '--cache-dir',
        path.join(root, cache),
        '--concurrency',
        concurrency,
        ...registryArgs(),
        '--json',
      ])
    const a = await build('repro-a', 'cache-r1', '1')
    const b = await build('repro-b', 'cache-r2', '8')
    expect(a.exitCode, a.stderr).toBe(0)
    expect(b.exitCode, b.stderr).toBe(0)
    expect(readFileSync(path.join(root, 'repro-b', 'repro.tar.zst'))).toEqual(
      readFileSync(path.join(root, 'repro-a', 'repro.tar.zst')),
    )
    expect(readFileSync(path.join(root, 'repro-b', 'repro-definition.tgz'))).toEqual(
      readFileSync(path.join(root, 'repro-a', 'repro-definition.tgz')),
    )
    expect(b.json().identity).toBe(a.json().identity)
    const warm = await build('repro-c', 'cache-r1', '4')
    expect(warm.exitCode).toBe(0)
    expect(warm.json().totals.downloadedBytes).toBe(0)
    expect(warm.json().artifacts.every((x: any) => x.cacheHit)).toBe(true)
    expect(warm.json().identity).toBe(a.json().identity)
  })

  it('signs and splits: verify checks parts and both signatures, openssl accepts the joined file', async () => {
    const pair = generateKeyPairSync('ec', {namedCurve: 'prime256v1'})
    const key = write('keys/ec.pem', pair.privateKey.export({type: 'pkcs8', format: 'pem'}) as string)
    const pub = write('keys/ec.pub', pair.publicKey.export({type: 'spki', format: 'pem'}) as string)
    const out = path.join(root, 'out-signed')
    const res = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'signed',
      '--output',
      out,
      '--cache-dir',
      path.join(root, 'cache-a'),
      '--sign-key',
      key,
      '--split',
      '2K',
      ...registryArgs(),
    ])
    expect(res.exitCode, res.stderr).toBe(0)
    const parts = readdirSync(out)
      .filter((n) => /^signed\.tar\.zst\.\d{3}$/.test(n))
      .sort()
    expect(parts.length).toBeGreaterThan(1)
    expect(existsSync(path.join(out, 'signed.parts.json'))).toBe(true)
    const joined = path.join(root, 'signed-joined.tar.zst')
    execFileSync('bash', ['-c', `cat "${out}"/signed.tar.zst.[0-9][0-9][0-9] > "${joined}"`])
    expect(
      execFileSync('openssl', [
        'dgst',
        '-sha256',
        '-verify',
        pub,
        '-signature',
        path.join(out, 'signed.tar.zst.sig'),
        joined,
      ]).toString(),
    ).toContain('Verified OK')

    const verify = await runCli([
      'bundle',
      'verify',
      path.join(out, 'signed.tar.zst.000'),
      '--public-key',
      pub,
      '--json',
    ])
    expect(verify.exitCode, verify.stdout).toBe(0)
    expect(verify.json().signature).toMatchObject({signed: true, inner: 'valid', detached: 'valid'})

    const other = generateKeyPairSync('ec', {namedCurve: 'prime256v1'})
    const wrong = write('keys/other.pub', other.publicKey.export({type: 'spki', format: 'pem'}) as string)
    const bad = await runCli(['bundle', 'verify', path.join(out, 'signed.parts.json'), '--public-key', wrong])
    expect(bad.exitCode).toBe(5)
    expect(bad.stderr).toMatch(/signature of airpack\/bundle\.json does not verify/)
    expect(bad.stderr).not.toMatch(/BEGIN/)
  })

  it('--format 2: a seekable bundle that stock zstd, tar and openssl read; verify and inspect read the split parts in place', async () => {
    const pair = generateKeyPairSync('rsa', {modulusLength: 2048})
    const key = write('keys/rsa.pem', pair.privateKey.export({type: 'pkcs8', format: 'pem'}) as string)
    const pub = write('keys/rsa.pub', pair.publicKey.export({type: 'spki', format: 'pem'}) as string)
    const out = path.join(root, 'out-f2-signed')
    const res = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'seek',
      '--output',
      out,
      '--cache-dir',
      path.join(root, 'cache-a'),
      '--format',
      '2',
      '--sign-key',
      key,
      '--split',
      '2K',
      ...registryArgs(),
      '--json',
    ])
    expect(res.exitCode, res.stderr).toBe(0)
    const report = res.json()
    expect(report.bundle).toMatchObject({
      formatVersion: 2,
      compression: {algorithm: 'zstd', package: '@bokuweb/zstd-wasm', version: '0.0.27', level: 3},
    })
    const parts = readdirSync(out)
      .filter((n) => /^seek\.tar\.zst\.\d{3}$/.test(n))
      .sort()
    expect(parts.length).toBeGreaterThan(1)
    const joined = path.join(root, 'seek-joined.tar.zst')
    execFileSync('bash', ['-c', `cat "${out}"/seek.tar.zst.[0-9][0-9][0-9] > "${joined}"`])
    expect(
      execFileSync('openssl', [
        'dgst',
        '-sha256',
        '-verify',
        pub,
        '-signature',
        path.join(out, 'seek.tar.zst.sig'),
        joined,
      ]).toString(),
    ).toContain('Verified OK')
    // One plain zstd file ending with the seekable magic; its identity is the sha256 of airpack/bundle.json.
    execFileSync('zstd', ['-t', '-q', joined])
    expect(readFileSync(joined).subarray(-4).readUInt32LE(0)).toBe(0x8f92eab1)
    const bundleJson = execFileSync('bash', ['-c', `zstd -dc "${joined}" | tar -xOf - airpack/bundle.json`])
    expect(JSON.parse(bundleJson.toString()).formatVersion).toBe(2)
    expect(report.identity).toBe('sha256:' + execFileSync('sha256sum', {input: bundleJson}).toString().split(' ')[0])

    const verify = await runCli(['bundle', 'verify', path.join(out, 'seek.tar.zst.000'), '--public-key', pub, '--json'])
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
    expect(verify.json()).toMatchObject({status: 'ok', identity: report.identity, formatVersion: 2})
    expect(verify.json().signature).toMatchObject({signed: true, inner: 'valid', detached: 'valid'})

    const inspect = await runCli(['bundle', 'inspect', path.join(out, 'seek.parts.json'), '--json'])
    expect(inspect.exitCode, inspect.stderr).toBe(0)
    expect(inspect.json()).toMatchObject({
      name: 'seek',
      formatVersion: 2,
      identity: report.identity,
      totals: {parts: parts.length, tarBytes: report.bundle.tarBytes},
    })
    expect(inspect.json().artifacts.find((a: any) => a.reference === app.reference)).toMatchObject({
      kind: 'image',
      digest: app.digest,
    })
  })

  it('--format 2 is byte-identical across caches and --concurrency; verify and inspect refuse a tampered seek table or frame (exit 5), verify a tampered layer; format 1 still verifies and inspects', async () => {
    const build = (name: string, cache: string, concurrency: string) =>
      runCli([
        'bundle',
        'build',
        profile,
        '--arch',
        'amd64',
        '--name',
        'seek2',
        '--output',
        path.join(root, name),
        '--cache-dir',
        path.join(root, cache),
        '--concurrency',
        concurrency,
        '--format',
        '2',
        ...registryArgs(),
        '--json',
      ])
    const a = await build('seek2-a', 'cache-s1', '1')
    const b = await build('seek2-b', 'cache-s2', '8')
    expect(a.exitCode, a.stderr).toBe(0)
    expect(b.exitCode, b.stderr).toBe(0)
    const file = path.join(root, 'seek2-a', 'seek2.tar.zst')
    const bytes = readFileSync(file)
    expect(readFileSync(path.join(root, 'seek2-b', 'seek2.tar.zst'))).toEqual(bytes)
    expect(b.json().identity).toBe(a.json().identity)
    const warm = await build('seek2-c', 'cache-s1', '4')
    expect(warm.exitCode, warm.stderr).toBe(0)
    expect(readFileSync(path.join(root, 'seek2-c', 'seek2.tar.zst'))).toEqual(bytes)
    // The same inputs in format 1 give another file with the same tar inside.
    const f1 = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'seek2',
      '--output',
      path.join(root, 'seek2-f1'),
      '--cache-dir',
      path.join(root, 'cache-s1'),
      '--format',
      '1',
      ...registryArgs(),
      '--json',
    ])
    expect(f1.exitCode, f1.stderr).toBe(0)
    // Format 1 ran the zstd program: the report says which one.
    expect(f1.json().bundle.zstdVersion).toMatch(/^\d+\.\d+\.\d+$/)
    expect(
      JSON.parse(execFileSync('bash', ['-c', `zstd -dc "${file}" | tar -xOf - airpack/bundle.json`]).toString())
        .entries,
    ).toEqual(
      JSON.parse(
        execFileSync('bash', [
          '-c',
          `zstd -dc "${path.join(root, 'seek2-f1', 'seek2.tar.zst')}" | tar -xOf - airpack/bundle.json`,
        ]).toString(),
      ).entries,
    )

    // The inventory beside it names the same identity, which for format 2 is bundle.json's sha256.
    const inventory = JSON.parse(readFileSync(path.join(root, 'seek2-a', 'seek2.inventory.json'), 'utf8'))
    expect(inventory.identity).toBe(a.json().identity)
    expect(inventory.bundleJsonSha256).toBe(a.json().identity)
    expect(inventory.bundleJson.formatVersion).toBe(2)

    const ok = await runCli(['bundle', 'verify', file, '--json'])
    expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0)
    const shown = await runCli(['bundle', 'inspect', file, '--json'])
    expect(shown.exitCode, shown.stderr).toBe(0)
    expect(shown.json()).toMatchObject({formatVersion: 2, identity: a.json().identity})

    // Format 1 bundles still verify and inspect; their identity is the sha256 of the tar.
    const f1File = path.join(root, 'seek2-f1', 'seek2.tar.zst')
    const f1Tar =
      'sha256:' +
      execFileSync('bash', ['-c', `zstd -dc "${f1File}" | sha256sum`])
        .toString()
        .split(' ')[0]
    const [f1Verify, f1Inspect] = await Promise.all([
      runCli(['bundle', 'verify', f1File, '--json']),
      runCli(['bundle', 'inspect', f1File, '--json']),
    ])
    expect(f1Verify.exitCode, f1Verify.stdout + f1Verify.stderr).toBe(0)
    expect(f1Inspect.exitCode, f1Inspect.stderr).toBe(0)
    for (const report of [f1Verify.json(), f1Inspect.json(), f1.json()]) expect(report).toMatchObject({identity: f1Tar})
    expect(f1Inspect.json()).toMatchObject({formatVersion: 1, name: 'seek2'})
    expect(f1Inspect.json().artifacts).toEqual(shown.json().artifacts)

    // Every tampered copy is refused by verify and by inspect alike (PRODUCT.md §2: exit 5 for a tampered or
    // incomplete bundle). Inspect decodes only bundle.json's frames, but it must not report a table it never checked.
    /** `edit` changes the copy in place, or returns the bytes to write instead (a truncated copy). */
    const tampered = async (name: string, edit: (b: Buffer) => unknown) => {
      const copy = Buffer.from(bytes)
      const edited = edit(copy)
      const target = write(`tampered/${name}/seek2.tar.zst`, Buffer.isBuffer(edited) ? edited : copy)
      const [verify, inspect] = await Promise.all([
        runCli(['bundle', 'verify', target]),
        runCli(['bundle', 'inspect', target]),
      ])
      for (const [command, result] of [
        ['verify', verify],
        ['inspect', inspect],
      ] as const) {
        expect(result.exitCode, `${name}: bundle ${command}\n${result.stdout}${result.stderr}`).toBe(5)
        expect(result.stderr, `${name}: bundle ${command}`).toMatch(/seek2\.tar\.zst/)
        expect(result.stderr, `${name}: bundle ${command}`).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
      }
      return verify
    }
    const footer = parseSeekTableFooter(bytes.subarray(bytes.length - SEEK_TABLE_FOOTER_SIZE))
    if ('problem' in footer) throw new Error(footer.problem)
    const tableSize = seekTableSize(footer.frameCount, footer.checksums)
    const tableBytes = bytes.subarray(bytes.length - tableSize)
    const frames = parseSeekTable(tableBytes, bytes.length).frames
    /** File offset of frame i's entry in the seek table (Compressed_Size, then Decompressed_Size). */
    const entryAt = (i: number) => bytes.length - tableSize + 8 + i * 8
    const add = (c: Buffer, at: number, delta: number) => c.writeUInt32LE(c.readUInt32LE(at) + delta, at)
    // The last frame's Compressed_Size in the seek table (footer: 4 frames count, 1 descriptor, 4 magic).
    const table = await tampered('table', (c) =>
      c.writeUInt32LE(c.readUInt32LE(c.length - 9 - 8) + 1, c.length - 9 - 8),
    )
    expect(table.stderr).toMatch(/compressed sizes|seek table/i)
    // Sizes that still add up, moved between two frames far from bundle.json's: the frames' headers disagree.
    const late = frames.length - 3
    expect(frames[late].compressedOffset).toBeGreaterThan(frames[0].compressedSize)
    const shifted = await tampered('shifted', (c) => {
      add(c, entryAt(late), 1)
      add(c, entryAt(late + 1), -1)
    })
    expect(shifted.stderr).toMatch(new RegExp(`frame ${late + 1} .*seek table does not match`))
    // A late frame's Decompressed_Size: the tar would be read with a 5-byte hole.
    const grown = await tampered('grown', (c) => add(c, entryAt(late) + 4, 5))
    expect(grown.stderr).toMatch(new RegExp(`frame ${late} .*its header records \\d+ bytes of content, the seek table`))
    // Number_Of_Frames, and the skippable frame's magic.
    await tampered('count', (c) => add(c, c.length - 9, 1))
    await tampered('skippable', (c) => (c[c.length - tableSize] ^= 0xff))
    // The first frame's magic number.
    const frame = await tampered('frame', (c) => (c[0] ^= 0xff))
    expect(frame.stderr).toMatch(/frame 0/)
    // A byte in the middle of the largest frame (a layer's): its entry no longer matches bundle.json. (The middle of
    // the file, used before, can fall inside bundle.json or its signature, whose bytes only a key or the published
    // identity can judge, so a verify without them rightly passes: the test then failed by chance.)
    const largest = frames.reduce((a, b) => (b.compressedSize > a.compressedSize ? b : a))
    const middleCopy = Buffer.from(bytes)
    middleCopy[largest.compressedOffset + (largest.compressedSize >> 1)] ^= 0x01
    const middleFile = write('tampered/middle/seek2.tar.zst', middleCopy)
    const middle = await runCli(['bundle', 'verify', middleFile])
    expect(middle.exitCode, middle.stderr).toBe(5)
    expect(middle.stderr).toMatch(/blobs\/sha256\//)
    // Inspect decodes only bundle.json's frames (random access by the seek table): a layer's byte is not its to see.
    const middleInspect = await runCli(['bundle', 'inspect', middleFile, '--json'])
    expect(middleInspect.exitCode, middleInspect.stderr).toBe(0)
    expect(middleInspect.json().identity).toBe(a.json().identity)
    // Cut inside the seek table (a copy that stopped short), or without it: no seek table, and bundle.json says
    // format 2.
    for (const [name, cut] of [
      ['truncated', 6],
      ['truncated-1', 1],
      ['untabled', tableSize],
    ] as const) {
      const truncated = await tampered(name, (c) => c.subarray(0, c.length - cut))
      expect(truncated.stderr).toMatch(/seek table|cut short|truncated/i)
    }
  }, 180_000)

  it('--locked builds the lock and refuses when a tag moved', async () => {
    const out = path.join(root, 'out-locked')
    const lockFile = path.join(root, 'pinned.lock.json')
    const first = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'pinned',
      '--output',
      out,
      '--lock-file',
      lockFile,
      '--cache-dir',
      path.join(root, 'cache-a'),
      ...registryArgs(),
    ])
    expect(first.exitCode, first.stderr).toBe(0)
    expect(readFileSync(lockFile, 'utf8')).toBe(readFileSync(path.join(out, 'pinned.lock.json'), 'utf8'))
    const locked = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'pinned2',
      '--output',
      out,
      '--lock-file',
      lockFile,
      '--locked',
      '--cache-dir',
      path.join(root, 'cache-a'),
      ...registryArgs(),
    ])
    expect(locked.exitCode, locked.stderr).toBe(0)

    // Move the tag of the Docker image: a new build under the same name.
    const moved = await pushImage(
      reg,
      'legacy/tool',
      '2',
      [{architecture: 'amd64', layers: [layerOf({'bin/tool': 'moved'})]}],
      {format: 'docker'},
    )
    expect(moved.digest).not.toBe(tool.digest)
    const refused = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'pinned3',
      '--output',
      out,
      '--lock-file',
      lockFile,
      '--locked',
      '--cache-dir',
      path.join(root, 'cache-a'),
      ...registryArgs(),
    ])
    expect(refused.exitCode).toBe(4)
    expect(refused.stderr).toContain(tool.reference)
    expect(refused.stderr).toContain('moved')
    expect(readdirSync(out).filter((n) => n.startsWith('pinned3'))).toEqual([])
    // Put the old tag back for the other tests.
    await pushImage(
      reg,
      'legacy/tool',
      '2',
      [
        {architecture: 'amd64', layers: [layerOf({'bin/tool': 'x'})]},
        {architecture: 'arm64', layers: [layerOf({'bin/tool': 'y'})]},
      ],
      {format: 'docker'},
    )
  })

  it('renders user-data per site with --sites and records the hashes in the report', async () => {
    const out = path.join(root, 'out-sites')
    const sites = write(
      'sites.yaml',
      'sites:\n  - name: store-0042\n    stylus:\n      site:\n        hostName: edge-store-0042\n',
    )
    const res = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'withsites',
      '--output',
      out,
      '--sites',
      sites,
      '--cache-dir',
      path.join(root, 'cache-a'),
      ...registryArgs(),
      '--json',
    ])
    expect(res.exitCode, res.stderr).toBe(0)
    const file = path.join(out, 'user-data', 'store-0042', 'user-data')
    expect(readFileSync(file, 'utf8')).toMatch(/^#cloud-config/)
    expect(res.json().userData).toEqual([
      expect.objectContaining({site: 'store-0042', file: path.join('user-data', 'store-0042', 'user-data')}),
    ])
  })

  it('exits 3 on an invalid profile and 4 on an image that does not exist, writing nothing', async () => {
    const bad = write(
      'bad.json',
      JSON.stringify({
        metadata: {name: 'bad'},
        spec: {
          version: '1.0.0',
          template: {
            type: 'add-on',
            cloudType: 'all',
            packs: [
              {
                name: 'x',
                type: 'spectro',
                layer: 'addon',
                version: '1.0.0',
                tag: '1.0.0',
                values: 'pack:\n  content: just a string\n',
              },
            ],
          },
        },
      }),
    )
    const out = path.join(root, 'out-bad')
    const invalid = await runCli([
      'bundle',
      'build',
      bad,
      '--arch',
      'amd64',
      '--name',
      'bad',
      '--output',
      out,
      ...registryArgs(),
    ])
    expect(invalid.exitCode, invalid.stderr).toBe(3)
    expect(invalid.stderr).toContain('AP-CONTENT-MALFORMED')
    const missing = write('missing.json', JSON.stringify(webProfile('missing', [`${reg.host}/nope/none:1`])))
    const unresolved = await runCli([
      'bundle',
      'build',
      missing,
      '--arch',
      'amd64',
      '--name',
      'missing',
      '--output',
      out,
      '--cache-dir',
      path.join(root, 'cache-a'),
      ...registryArgs(),
      '--json',
    ])
    expect(unresolved.exitCode, unresolved.stdout).toBe(4)
    expect(unresolved.json()).toMatchObject({status: 'error', exitCode: 4})
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([])
  })

  // A PATH holding node and nothing else: no zstd program.
  function pathWithoutZstd(): string {
    const bin = path.join(root, 'bin-without-zstd')
    if (!existsSync(bin)) {
      mkdirSync(bin, {recursive: true})
      symlinkSync(process.execPath, path.join(bin, 'node'))
    }
    return bin
  }

  it('says how to install zstd when a format 1 build needs it and it is missing', async () => {
    const res = await runCli(
      [
        'bundle',
        'build',
        profile,
        '--arch',
        'amd64',
        '--name',
        'nozstd',
        '--output',
        path.join(root, 'out-nozstd'),
        '--format',
        '1',
        ...registryArgs(),
      ],
      {env: {PATH: pathWithoutZstd()}},
    )
    expect(res.exitCode).toBe(2)
    expect(res.stderr).toContain('apt-get install zstd')
    expect(existsSync(path.join(root, 'out-nozstd'))).toBe(false)
  })

  it('builds format 2 without the zstd program, which it does not run: the report names the WebAssembly package only', async () => {
    const out = path.join(root, 'out-nozstd-f2')
    const args = (name: string, output: string) => [
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      name,
      '--output',
      output,
      '--cache-dir',
      path.join(root, 'cache-nozstd'),
      ...registryArgs(),
      '--json',
    ]
    const res = await runCli(args('nozstd2', out), {env: {PATH: pathWithoutZstd()}})
    expect(res.exitCode, res.stderr).toBe(0)
    const report = res.json()
    expect(report.bundle.formatVersion).toBe(2)
    expect(report.bundle.compression).toEqual({
      algorithm: 'zstd',
      package: '@bokuweb/zstd-wasm',
      version: '0.0.27',
      level: 3,
    })
    expect(report.bundle).not.toHaveProperty('zstdVersion')
    // The same bytes as a build with zstd on PATH, and the zstd program reads the file.
    const withZstd = await runCli(args('nozstd2', path.join(root, 'out-nozstd-f2-path')))
    expect(withZstd.exitCode, withZstd.stderr).toBe(0)
    const file = path.join(out, 'nozstd2.tar.zst')
    expect(readFileSync(file)).toEqual(readFileSync(path.join(root, 'out-nozstd-f2-path', 'nozstd2.tar.zst')))
    execFileSync('zstd', ['-t', '-q', file])
    const verify = await runCli(['bundle', 'verify', file, '--json'])
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0)
    expect(verify.json()).toMatchObject({status: 'ok', identity: report.identity})
  })

  it('an interrupted build (SIGTERM) leaves no file that looks finished', async () => {
    // A large incompressible layer at a slow level keeps zstd busy long enough to interrupt it mid-write.
    const big = blobOf(gzipSync(randomBytes(48 * 1024 * 1024), {level: 1}))
    const image = await pushImage(reg, 'big/blob', '1', [{architecture: 'amd64', layers: [big]}], {single: true})
    const p = write('big.json', JSON.stringify(webProfile('big', [image.reference])))
    const out = path.join(root, 'out-interrupted')
    const child = spawn(
      'node',
      [
        path.join(PROJECT_ROOT, 'bin', 'run.js'),
        'bundle',
        'build',
        p,
        '--arch',
        'amd64',
        '--name',
        'big',
        '--output',
        out,
        '--compression-level',
        '19',
        '--cache-dir',
        path.join(root, 'cache-big'),
        ...registryArgs(),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let stderr = ''
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`never reached the write step: ${stderr}`)), 90_000)
      child.stderr.on('data', (d) => {
        stderr += d.toString()
        if (stderr.includes('Writing big.tar.zst')) {
          clearTimeout(timer)
          setTimeout(resolve, 300)
        }
      })
    })
    child.kill('SIGTERM')
    const code = await exited
    expect(code).not.toBe(0)
    expect(stderr).toMatch(/interrupted/)
    const left = existsSync(out) ? readdirSync(out) : []
    expect(left.filter((n) => !n.startsWith('.'))).toEqual([])
    expect(left).toEqual([])
  }, 120_000)
})
