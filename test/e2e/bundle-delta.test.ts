import {execFileSync} from 'node:child_process'
import {generateKeyPairSync, randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runCli} from '../helpers/cli.js'
import {startContainerd, type TestContainerd} from '../helpers/containerd.js'
import {startHelmRepo, type HelmRepo} from '../helpers/helm-repo.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage, type SeededImage} from '../helpers/seed.js'
import {addonProfile} from '../../support/profiles.js'

// Day-2 deltas (issue 13, PRODUCT.md §11) end to end, in both bundle formats: real builds N, N+1 (one image bumped
// under the same tag, one added, one removed) and N+2 against a real registry, the delta written by
// `--delta-from`, checked alone, against its base and against a real containerd's content store, imported over N
// into that containerd (`ctr images check`), and rebuilt into the whole bundle with `bundle patch` (cmp against
// the whole build).

let reg: TestRegistry
let root: string
let keyFile: string
let pubFile: string

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'airpack-e2e-delta-'))
  reg = await startRegistry()
  // RSA (PKCS#1 v1.5) signatures are deterministic: a rebuilt signed delta is byte-identical.
  const pair = generateKeyPairSync('rsa', {modulusLength: 2048})
  keyFile = path.join(root, 'key.pem')
  pubFile = path.join(root, 'pub.pem')
  writeFileSync(keyFile, pair.privateKey.export({type: 'pkcs8', format: 'pem'}))
  writeFileSync(pubFile, pair.publicKey.export({type: 'spki', format: 'pem'}))
}, 60_000)

afterAll(async () => {
  await reg?.stop()
  rmSync(root, {recursive: true, force: true})
})

const layer = (name: string, kib: number) => layerOf({[`data/${name}`]: randomBytes(kib * 1024)})

describe.each([1, 2] as const)('bundle format %i', (format) => {
  let dir: string
  const images: Record<string, SeededImage> = {}
  let helm: HelmRepo
  const out = (name: string) => path.join(dir, name)
  const file = (name: string, f: string) => path.join(dir, name, f)

  function profileFile(name: string, refs: string[]): string {
    const p = path.join(dir, `${name}.json`)
    // With a chart (unchanged from N to N+2): containerd drops a chart's unnamed content after each import, so a
    // delta must carry its blobs again although N holds them.
    const chart = {repo: helm.url, name: 'web', version: '1.0.0'}
    writeFileSync(
      p,
      JSON.stringify(addonProfile({name: 'web-addon', labels: {}, pack: 'web', namespace: 'web', images: refs, chart})),
    )
    return p
  }

  async function build(name: string, profile: string, extra: string[] = [], outDir = out(name)) {
    const cache = extra.includes('--cache-dir') ? [] : ['--cache-dir', path.join(dir, 'cache')]
    const res = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      name,
      '--output',
      outDir,
      '--format',
      String(format),
      '--sign-key',
      keyFile,
      '--insecure-registry',
      reg.host,
      ...cache,
      ...extra,
      '--json',
    ])
    expect(res.exitCode, res.stderr).toBe(0)
    return res.json()
  }

  const patch = (base: string, delta: string, output: string) =>
    runCli(['bundle', 'patch', base, delta, '--output', output, '--json'])

  let v1: any
  let v2: any
  let profiles: Record<string, string>

  beforeAll(async () => {
    dir = path.join(root, `f${format}`)
    mkdirSync(dir)
    const repo = (r: string) => `f${format}/${r}`
    const base = layer('base', 96)
    images.app1 = await pushImage(reg, repo('app'), '1.0', [
      {architecture: 'amd64', layers: [base, layer('app-1', 64)]},
      {architecture: 'arm64', layers: [base, layer('arm', 8)]},
    ])
    images.tool = await pushImage(reg, repo('tool'), '2', [{architecture: 'amd64', layers: [layer('tool', 32)]}])
    const toolRepo = images.tool.reference.slice(0, images.tool.reference.lastIndexOf(':'))
    helm = await startHelmRepo({
      charts: [{name: 'web', version: '1.0.0', values: `image:\n  repository: ${toolRepo}\n  tag: "2"\n`}],
    })
    images.old = await pushImage(reg, repo('old'), '1', [{architecture: 'amd64', layers: [layer('old', 48)]}])
    profiles = {v1: profileFile('v1', [images.app1.reference, images.tool.reference, images.old.reference])}
    v1 = await build('site-v1', profiles.v1)
    // The update: app 1.0 rebuilt under the same tag (new top layer, same base), fresh added, old removed.
    images.app2 = await pushImage(reg, repo('app'), '1.0', [
      {architecture: 'amd64', layers: [base, layer('app-2', 40)]},
      {architecture: 'arm64', layers: [base, layer('arm', 8)]},
    ])
    images.fresh = await pushImage(reg, repo('fresh'), '1', [
      {architecture: 'amd64', layers: [base, layer('fresh', 24)]},
    ])
    profiles.v2 = profileFile('v2', [images.app2.reference, images.tool.reference, images.fresh.reference])
    v2 = await build('site-v2', profiles.v2, ['--delta-from', file('site-v1', 'site-v1.inventory.json')])
  }, 240_000)
  afterAll(async () => {
    await helm?.stop()
  })

  it('writes the whole N+1 and NAME.delta.tar.zst: delta.json first, N+1 metadata byte for byte, only the blobs N lacks', async () => {
    expect(v2.files).toEqual(
      expect.arrayContaining([
        'site-v2.tar.zst',
        'site-v2.tar.zst.sig',
        'site-v2.delta.tar.zst',
        'site-v2.delta.tar.zst.sig',
        'site-v2.inventory.json',
      ]),
    )
    const list = (f: string) =>
      execFileSync('bash', ['-c', `zstd -dc "${f}" | tar -t`])
        .toString()
        .trim()
        .split('\n')
    const whole = list(file('site-v2', 'site-v2.tar.zst'))
    const delta = list(file('site-v2', 'site-v2.delta.tar.zst'))
    const old = new Set(list(file('site-v1', 'site-v1.tar.zst')))
    expect(delta.slice(0, 2)).toEqual(['airpack/delta.json', 'airpack/delta.json.sig'])
    // The chart's blobs (N holds them, but containerd would not have kept them): carried again.
    const lock = JSON.parse(readFileSync(file('site-v2', 'site-v2.lock.json'), 'utf8'))
    const chartBlobs = Object.values(
      lock.charts as Record<string, {manifest: {digest: string}; blobs: {digest: string}[]}>,
    )
      .flatMap((c) => [c.manifest, ...c.blobs])
      .map((d) => `blobs/sha256/${d.digest.slice(7)}`)
    expect(chartBlobs.length).toBeGreaterThan(0)
    const lent = (e: string) => e.startsWith('blobs/') && old.has(e) && !chartBlobs.includes(e)
    // Everything after delta.json: the whole bundle's entries less the blobs N lends, in the same order.
    expect(delta.slice(2)).toEqual(whole.filter((e) => !lent(e)))
    for (const c of chartBlobs) expect(old.has(c) && delta.includes(c), c).toBe(true)
    for (const meta of ['airpack/bundle.json', 'airpack/bundle.json.sig', 'index.json', 'oci-layout']) {
      const get = (f: string) => execFileSync('bash', ['-c', `zstd -dc "${f}" | tar -xO ${meta}`])
      expect(get(file('site-v2', 'site-v2.delta.tar.zst')).equals(get(file('site-v2', 'site-v2.tar.zst'))), meta).toBe(
        true,
      )
    }
    const deltaJson = JSON.parse(
      execFileSync('bash', [
        '-c',
        `zstd -dc "${file('site-v2', 'site-v2.delta.tar.zst')}" | tar -xO airpack/delta.json`,
      ]).toString(),
    )
    expect(deltaJson).toMatchObject({
      kind: 'delta',
      deltaVersion: 1,
      target: {name: 'site-v2', identity: v2.identity, formatVersion: format},
      bases: [{name: 'site-v1', identity: v1.identity}],
    })
    const borrowed = deltaJson.borrowed.map((b: {digest: string}) => `blobs/sha256/${b.digest.slice(7)}`)
    expect(borrowed).toEqual(whole.filter(lent))
    expect(deltaJson.removed.map((r: {reference: string}) => r.reference).sort()).toEqual(
      ['airpack.local/spc/site-v1:latest', images.old.reference].sort(),
    )
    expect(v2.delta).toMatchObject({mode: 'thin', carried: deltaJson.carried, borrowed: {blobs: borrowed.length}})
  })

  it('verify checks the delta alone with its signatures; inspect shows it as a delta, never as a bundle', async () => {
    const deltaFile = file('site-v2', 'site-v2.delta.tar.zst')
    const ok = await runCli(['bundle', 'verify', deltaFile, '--public-key', pubFile, '--json'])
    expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0)
    expect(ok.json()).toMatchObject({
      status: 'ok',
      kind: 'delta',
      name: 'site-v2',
      target: {identity: v2.identity},
      signature: {delta: 'valid', bundleJson: 'valid', detached: 'valid'},
    })
    const shown = await runCli(['bundle', 'inspect', deltaFile])
    expect(shown.exitCode, shown.stderr).toBe(0)
    expect(shown.stdout).toMatch(/^Kind:\s+delta$/m)
    expect(shown.stdout).toContain('NOT a complete bundle')
    expect(shown.stdout).toMatch(new RegExp(`^Base:\\s+site-v1, identity ${v1.identity}$`, 'm'))
    const json = (await runCli(['bundle', 'inspect', deltaFile, '--json'])).json()
    expect(json.kind).toBe('delta')
    expect(json.carried.blobs).toBe(v2.delta.carried.blobs)
    expect(json.borrowed).toEqual(v2.delta.borrowed)
    const cosign = await runCli(['bundle', 'verify', deltaFile, '--cosign-key', pubFile])
    expect(cosign.exitCode).toBe(2)
    expect(cosign.stderr).toContain('--cosign-key checks a whole bundle')
    // bundle diff refuses a delta where a bundle is expected, saying what it is.
    const diff = await runCli(['bundle', 'diff', file('site-v1', 'site-v1.tar.zst'), deltaFile])
    expect(diff.exitCode).not.toBe(0)
    expect(diff.stderr).toContain('day-2 delta')
  })

  it('verify --base proves base + delta rebuild N+1; a wrong base is refused naming both identities', async () => {
    const deltaFile = file('site-v2', 'site-v2.delta.tar.zst')
    for (const base of [file('site-v1', 'site-v1.tar.zst'), file('site-v1', 'site-v1.inventory.json')]) {
      const res = await runCli(['bundle', 'verify', deltaFile, '--base', base, '--json'])
      expect(res.exitCode, res.stdout + res.stderr).toBe(0)
      expect(res.json().base).toMatchObject({name: 'site-v1', identity: v1.identity})
      if (base.endsWith('.tar.zst')) expect(res.json().base).toMatchObject({rebuilt: true, targetIdentity: v2.identity})
    }
    const wrong = await runCli(['bundle', 'verify', deltaFile, '--base', file('site-v2', 'site-v2.tar.zst'), '--json'])
    expect(wrong.exitCode).toBe(5)
    expect(wrong.json().message).toContain(`identity ${v2.identity}`)
    expect(wrong.json().message).toContain(`site-v1 (identity ${v1.identity})`)
  })

  it('patch rebuilds N+1 byte-identical to the whole build (cmp), signed with the same key; refuses a wrong base', async () => {
    const patched = path.join(dir, 'patched-v2')
    const res = await patch(file('site-v1', 'site-v1.tar.zst'), file('site-v2', 'site-v2.delta.tar.zst'), patched)
    expect(res.exitCode, res.stdout + res.stderr).toBe(0)
    expect(res.json()).toMatchObject({identity: v2.identity, sameFileAsBuild: true})
    execFileSync('cmp', [path.join(patched, 'site-v2.tar.zst'), file('site-v2', 'site-v2.tar.zst')])
    execFileSync('cmp', [path.join(patched, 'site-v2.inventory.json'), file('site-v2', 'site-v2.inventory.json')])
    const verified = await runCli([
      'bundle',
      'verify',
      path.join(patched, 'site-v2.tar.zst'),
      '--public-key',
      pubFile,
      '--json',
    ])
    expect(verified.exitCode, verified.stdout).toBe(0)
    expect(verified.json().signature).toMatchObject({inner: 'valid', detached: 'valid'})
    execFileSync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      pubFile,
      '-signature',
      path.join(patched, 'site-v2.tar.zst.sig'),
      path.join(patched, 'site-v2.tar.zst'),
    ])

    const refused = path.join(dir, 'refused')
    const wrong = await patch(file('site-v2', 'site-v2.tar.zst'), file('site-v2', 'site-v2.delta.tar.zst'), refused)
    expect(wrong.exitCode).toBe(5)
    expect(wrong.json().message).toMatch(
      /is bundle site-v2 \(identity sha256:[a-f0-9]{64}\), but .* applies to site-v1/,
    )
    expect(existsSync(refused) ? readdirSync(refused) : []).toEqual([])
  })

  // Repacked with GNU tar, which only a format 1 delta survives (format 2 would lose its seek table, refused first).
  if (format === 1)
    it('a delta missing a carried blob, carrying a borrowed one, or with an edited delta.json is refused (exit 5)', async () => {
      const work = path.join(dir, 'tamper')
      mkdirSync(work)
      const deltaFile = file('site-v2', 'site-v2.delta.tar.zst')
      execFileSync('bash', [
        '-c',
        `cd "${work}" && zstd -dc "${deltaFile}" | tar -x && zstd -dc "${deltaFile}" | tar -t > list`,
      ])
      const list = readFileSync(path.join(work, 'list'), 'utf8').trim().split('\n')
      const deltaJson = JSON.parse(readFileSync(path.join(work, 'airpack/delta.json'), 'utf8'))
      const repack = async (entries: string[], name: string) => {
        writeFileSync(path.join(work, 'list'), entries.join('\n') + '\n')
        const out = path.join(dir, `${name}.delta.tar.zst`)
        execFileSync('bash', [
          '-c',
          `cd "${work}" && tar --format=posix --no-recursion -c -T list | zstd -q -c > "${out}"`,
        ])
        return runCli(['bundle', 'verify', out, '--public-key', pubFile, '--json'])
      }
      const carried = list.filter((e) => e.startsWith('blobs/'))
      const missing = await repack(
        list.filter((e) => e !== carried[0]),
        'missing',
      )
      expect(missing.exitCode).toBe(5)
      expect(missing.json().details.problems).toContain(
        `entry ${carried[0]} is listed in airpack/bundle.json but missing from the bundle`,
      )

      const borrowed = `blobs/sha256/${deltaJson.borrowed[0].digest.slice(7)}`
      execFileSync('bash', [
        '-c',
        `cd "${work}" && zstd -dc "${file('site-v1', 'site-v1.tar.zst')}" | tar -x ${borrowed}`,
      ])
      const both = await repack([...list, borrowed], 'both')
      expect(both.exitCode).toBe(5)
      expect(both.json().details.problems).toContain(
        `entry ${borrowed} is carried, but also listed as borrowed from the base`,
      )

      writeFileSync(path.join(work, 'airpack/delta.json'), JSON.stringify({...deltaJson, removed: []}))
      const edited = await repack(list, 'edited')
      expect(edited.exitCode).toBe(5)
      expect(edited.json().message).toMatch(/the signature of airpack\/delta.json does not verify/)
    })

  it('a delta rebuilt with another cache, --concurrency and the base as a bundle file is byte-identical', async () => {
    const again = await build(
      'site-v2',
      profiles.v2,
      [
        '--delta-from',
        file('site-v1', 'site-v1.tar.zst'),
        '--cache-dir',
        path.join(dir, 'cache-again'),
        '--concurrency',
        '1',
      ],
      out('site-v2-again'),
    )
    expect(again.delta.identity).toBe(v2.delta.identity)
    execFileSync('cmp', [file('site-v2', 'site-v2.delta.tar.zst'), file('site-v2-again', 'site-v2.delta.tar.zst')])
    execFileSync('cmp', [
      file('site-v2', 'site-v2.delta.tar.zst.sig'),
      file('site-v2-again', 'site-v2.delta.tar.zst.sig'),
    ])
  })

  it('--delta-mode artifacts: an ordinary bundle of only the changed and added artifacts', async () => {
    const res = await build(
      'site-v2',
      profiles.v2,
      ['--delta-from', file('site-v1', 'site-v1.inventory.json'), '--delta-mode', 'artifacts'],
      out('site-v2-artifacts'),
    )
    const bundle = file('site-v2-artifacts', 'site-v2.delta.tar.zst')
    const verified = await runCli(['bundle', 'verify', bundle, '--public-key', pubFile, '--json'])
    expect(verified.exitCode, verified.stdout).toBe(0)
    const refs = verified
      .json()
      .artifacts.map((a: {reference: string}) => a.reference)
      .sort()
    expect(refs).toEqual([images.app2.reference, images.fresh.reference, 'airpack.local/spc/site-v2:latest'].sort())
    expect(res.delta.mode).toBe('artifacts')
  })

  describe('containerd', () => {
    let ctd: TestContainerd
    const importCmd = (f: string) => `zstd -dc "${f}" | $CTR images import --platform linux/amd64 -`
    const names = () =>
      ctd
        .ctr(['images', 'ls', '-q'])
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .sort()

    beforeAll(async () => {
      ctd = await startContainerd()
    }, 60_000)
    afterAll(async () => {
      await ctd?.stop()
    })

    it('empty store: the preflight lists the borrowed blobs and refuses (exit 4); nothing is imported', async () => {
      const listing = path.join(dir, 'empty-content.txt')
      writeFileSync(listing, ctd.ctr(['content', 'ls', '-q']))
      const res = await runCli([
        'bundle',
        'verify',
        file('site-v2', 'site-v2.delta.tar.zst'),
        '--site-content',
        listing,
        '--json',
      ])
      expect(res.exitCode).toBe(4)
      expect(res.json().code).toBe('ERR_AIRPACK_SITE_LACKS_CONTENT')
      expect(res.json().details.missing.length).toBe(v2.delta.borrowed.blobs)
      expect(names()).toEqual([])
    })

    it('N imported, then the delta: every image of N+1 complete; the removed names go; then N+2 the same way', async () => {
      ctd.sh(importCmd(file('site-v1', 'site-v1.tar.zst')))
      // The preflight on the site's real content listing (the full table this time): nothing missing.
      const listing = path.join(dir, 'site-content.txt')
      writeFileSync(listing, ctd.ctr(['content', 'ls']))
      const pre = await runCli([
        'bundle',
        'verify',
        file('site-v2', 'site-v2.delta.tar.zst'),
        '--site-content',
        listing,
        '--json',
      ])
      expect(pre.exitCode, pre.stdout + pre.stderr).toBe(0)
      expect(pre.json().siteContent).toMatchObject({missing: []})

      ctd.sh(importCmd(file('site-v2', 'site-v2.delta.tar.zst')))
      for (const r of pre.json().removed) ctd.ctr(['images', 'rm', r.reference])
      const expectComplete = (refs: string[]) => {
        const check = ctd.ctr(['images', 'check'])
        for (const ref of refs) {
          const row = check.split('\n').find((l) => l.startsWith(`${ref} `))
          expect(row, `${ref} in\n${check}`).toMatch(/\scomplete \(\d+\/\d+\)/)
        }
      }
      const v2Refs = [
        images.app2.reference,
        images.tool.reference,
        images.fresh.reference,
        'airpack.local/spc/site-v2:latest',
      ]
      expect(names()).toEqual([...v2Refs].sort())
      expectComplete(v2Refs)
      const listed = ctd.ctr(['images', 'ls'])
      expect(listed).toContain(images.app2.digest)

      // N+2: tool bumped, built against N+1's inventory, imported over N+1.
      images.tool3 = await pushImage(reg, `f${format}/tool`, '2', [
        {architecture: 'amd64', layers: [layer('tool-3', 20)]},
      ])
      const v3 = await build(
        'site-v3',
        profileFile('v3', [images.app2.reference, images.tool3.reference, images.fresh.reference]),
        ['--delta-from', file('site-v2', 'site-v2.inventory.json')],
      )
      writeFileSync(listing, ctd.ctr(['content', 'ls', '-q']))
      const pre3 = await runCli([
        'bundle',
        'verify',
        file('site-v3', 'site-v3.delta.tar.zst'),
        '--site-content',
        listing,
        '--public-key',
        pubFile,
      ])
      expect(pre3.exitCode, pre3.stdout + pre3.stderr).toBe(0)
      ctd.sh(importCmd(file('site-v3', 'site-v3.delta.tar.zst')))
      ctd.ctr(['images', 'rm', 'airpack.local/spc/site-v2:latest'])
      expectComplete([
        images.app2.reference,
        images.tool3.reference,
        images.fresh.reference,
        'airpack.local/spc/site-v3:latest',
      ])
      expect(ctd.ctr(['images', 'ls'])).toContain(images.tool3.digest)

      // The chain through patch: patched N+1 + delta N+2 = the whole N+2, byte for byte.
      const patched = path.join(dir, 'patched-v3')
      const res = await patch(file('site-v2', 'site-v2.tar.zst'), file('site-v3', 'site-v3.delta.tar.zst'), patched)
      expect(res.exitCode, res.stderr).toBe(0)
      execFileSync('cmp', [path.join(patched, 'site-v3.tar.zst'), file('site-v3', 'site-v3.tar.zst')])
      expect(v3.identity).toBe(JSON.parse(readFileSync(path.join(patched, 'site-v3.inventory.json'), 'utf8')).identity)
    })
  })
})
