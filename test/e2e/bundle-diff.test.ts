import {execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runCli} from '../helpers/cli.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage, type SeededImage} from '../helpers/seed.js'
import {addonProfile} from '../../support/profiles.js'

// Day-2 foundation (issue 13): two real builds N and N+1 against a real registry whose content changed between
// them (one image bumped under the same tag, one added, one removed, one re-tagged), then `bundle diff` on the
// bundles in each form and on their NAME.inventory.json files. The expected blob figures come from `tar -tv` of
// the real bundles, not from airpack.

let reg: TestRegistry
let root: string
const images: Record<string, SeededImage> = {}
let v1: {out: string; identity: string}
let v2: {out: string; identity: string}
let again: {out: string; identity: string}

const registryArgs = () => ['--insecure-registry', reg.host]

function profileFile(name: string, refs: string[]): string {
  const file = path.join(root, `${name}.json`)
  writeFileSync(
    file,
    JSON.stringify(addonProfile({name: 'web-addon', labels: {}, pack: 'web', namespace: 'web', images: refs}), null, 2),
  )
  return file
}

async function build(
  name: string,
  profile: string,
  options: {dir?: string; extra?: string[]} = {},
): Promise<{out: string; identity: string}> {
  const out = path.join(root, options.dir ?? name)
  const extra = options.extra ?? []
  const cache = extra.includes('--cache-dir') ? [] : ['--cache-dir', path.join(root, 'cache')]
  const res = await runCli([
    'bundle',
    'build',
    profile,
    '--arch',
    'amd64',
    '--name',
    name,
    '--output',
    out,
    ...cache,
    ...registryArgs(),
    ...extra,
    '--json',
  ])
  expect(res.exitCode, res.stderr).toBe(0)
  return {out, identity: res.json().identity}
}

/** digest → size of every blob in a bundle, as GNU tar lists it. */
function tarBlobs(bundle: string): Map<string, number> {
  const listing = execFileSync('bash', ['-c', `zstd -dc "${bundle}" | tar -tv`], {maxBuffer: 64 << 20}).toString()
  const blobs = new Map<string, number>()
  for (const line of listing.split('\n')) {
    const m = /\s(\d+)\s+\S+\s+\S+\s+blobs\/sha256\/([a-f0-9]{64})$/.exec(line)
    if (m) blobs.set(`sha256:${m[2]}`, Number(m[1]))
  }
  return blobs
}

const layer = (name: string, kib: number) => layerOf({[`data/${name}`]: randomBytes(kib * 1024)})

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'airpack-e2e-diff-'))
  reg = await startRegistry()
  const base = layer('base', 96)
  const platforms = (top: ReturnType<typeof layerOf>) => [
    {architecture: 'amd64', layers: [base, top]},
    {architecture: 'arm64', layers: [base, layer('arm', 8)]},
  ]
  images.app1 = await pushImage(reg, 'team/app', '1.0', platforms(layer('app-1', 64)))
  const toolLayer = layer('tool', 32)
  images.tool = await pushImage(reg, 'team/tool', '2', [{architecture: 'amd64', layers: [toolLayer]}])
  images.old = await pushImage(reg, 'team/old', '1', [{architecture: 'amd64', layers: [layer('old', 48)]}])
  const v1Profile = profileFile('v1', [images.app1.reference, images.tool.reference, images.old.reference])
  v1 = await build('site-v1', v1Profile)
  again = await build('site-v1', v1Profile, {
    dir: 'site-v1-again',
    extra: ['--cache-dir', path.join(root, 'cache-again'), '--concurrency', '1'],
  })

  // The update: app 1.0 rebuilt under the same tag (new top layer, same base), a new image, old removed, and
  // tool moved to another tag with the same digest.
  images.app2 = await pushImage(reg, 'team/app', '1.0', platforms(layer('app-2', 40)))
  images.fresh = await pushImage(reg, 'team/fresh', '1', [{architecture: 'amd64', layers: [base, layer('fresh', 24)]}])
  images.toolStable = await pushImage(reg, 'team/tool', '2-stable', [{architecture: 'amd64', layers: [toolLayer]}])
  v2 = await build(
    'site-v2',
    profileFile('v2', [images.app2.reference, images.toolStable.reference, images.fresh.reference]),
    {extra: ['--split', '64K']},
  )
}, 240_000)

afterAll(async () => {
  await reg?.stop()
  rmSync(root, {recursive: true, force: true})
})

describe('bundle diff', () => {
  it('writes NAME.inventory.json beside every bundle: name, identity and bundle.json, listed in the report, byte-identical on rebuild', async () => {
    const inventory = JSON.parse(readFileSync(path.join(v1.out, 'site-v1.inventory.json'), 'utf8'))
    expect(inventory).toMatchObject({
      kind: 'airpack-inventory',
      inventoryVersion: 1,
      name: 'site-v1',
      identity: v1.identity,
      bundleFile: 'site-v1.tar.zst',
    })
    expect(inventory.bundleJson.name).toBe('site-v1')
    const bundleJson = execFileSync('bash', [
      '-c',
      `zstd -dc "${path.join(v1.out, 'site-v1.tar.zst')}" | tar -xO airpack/bundle.json`,
    ])
    expect(JSON.parse(bundleJson.toString())).toEqual(inventory.bundleJson)
    expect(inventory.bundleJsonSha256).toBe(
      `sha256:${execFileSync('sha256sum', {input: bundleJson}).toString().slice(0, 64)}`,
    )
    expect(Object.keys(inventory).sort()).toEqual([
      'bundleFile',
      'bundleJson',
      'bundleJsonSha256',
      'identity',
      'inventoryVersion',
      'kind',
      'name',
    ])
    const report = JSON.parse(readFileSync(path.join(v1.out, 'site-v1.report.json'), 'utf8'))
    expect(report.files).toContain('site-v1.inventory.json')

    // Rebuilt (before the registry moved on) with another cache and --concurrency: the same bytes.
    expect(again.identity).toBe(v1.identity)
    expect(readFileSync(path.join(again.out, 'site-v1.inventory.json'))).toEqual(
      readFileSync(path.join(v1.out, 'site-v1.inventory.json')),
    )
  })

  it('names added, removed, changed and retagged artifacts by digest, and the blobs a delta carries, on every form of input', async () => {
    const old = tarBlobs(path.join(v1.out, 'site-v1.tar.zst'))
    const joined = path.join(root, 'site-v2-joined.tar.zst')
    execFileSync('bash', ['-c', `cat "${v2.out}"/site-v2.tar.zst.[0-9][0-9][0-9] > "${joined}"`])
    const next = tarBlobs(joined)
    const carried = [...next].filter(([d]) => !old.has(d))
    expect(carried.length).toBeGreaterThan(0)
    const expectedBlobs = {
      carried: {count: carried.length, bytes: carried.reduce((s, [, n]) => s + n, 0)},
      whole: {count: next.size, bytes: [...next.values()].reduce((s, n) => s + n, 0)},
    }

    const inputs: [string, string][] = [
      [path.join(v1.out, 'site-v1.tar.zst'), path.join(v2.out, 'site-v2.parts.json')],
      [path.join(v1.out, 'site-v1.inventory.json'), path.join(v2.out, 'site-v2.tar.zst.000')],
      [path.join(v1.out, 'site-v1.inventory.json'), path.join(v2.out, 'site-v2.inventory.json')],
    ]
    const answers = []
    for (const [a, b] of inputs) {
      const res = await runCli(['bundle', 'diff', a, b, '--json'])
      expect(res.exitCode, res.stdout + res.stderr).toBe(0)
      const diff = res.json()
      expect(diff.status).toBe('ok')
      const imagesOnly = (rows: any[]) => rows.filter((r) => r.kind === 'image')
      expect(imagesOnly(diff.artifacts.added)).toEqual([
        {kind: 'image', reference: images.fresh.reference, digest: images.fresh.digest},
      ])
      expect(imagesOnly(diff.artifacts.removed)).toEqual([
        {kind: 'image', reference: images.old.reference, digest: images.old.digest},
      ])
      expect(imagesOnly(diff.artifacts.changed)).toEqual([
        {kind: 'image', reference: images.app1.reference, oldDigest: images.app1.digest, newDigest: images.app2.digest},
      ])
      expect(diff.artifacts.retagged).toEqual([
        {
          kind: 'image',
          oldReference: images.tool.reference,
          newReference: images.toolStable.reference,
          digest: images.tool.digest,
        },
      ])
      expect(diff.blobs.carried).toEqual(expectedBlobs.carried)
      expect(diff.blobs.whole).toEqual(expectedBlobs.whole)
      expect(diff.identical).toBe(false)
      answers.push({
        artifacts: diff.artifacts,
        blobs: diff.blobs,
        metadataBytes: diff.metadataBytes,
        names: [diff.old.name, diff.new.name],
      })
      if (a.endsWith('.inventory.json')) expect(diff.old.identity).toBe(v1.identity)
    }
    expect(answers[1]).toEqual(answers[0])
    expect(answers[2]).toEqual(answers[0])
    // The shared base layer is not carried although both images that use it are new or changed.
    expect(diffBase(old, next)).toBe(true)

    const human = await runCli(['bundle', 'diff', inputs[0][0], inputs[0][1]])
    expect(human.exitCode).toBe(0)
    expect(human.stdout).toMatch(/^Artifacts: 2 added, 2 removed, 1 changed, 1 retagged, 0 unchanged$/m)
    expect(human.stdout).toContain(`${images.app1.digest} → ${images.app2.digest}`)
    expect(human.stdout).toMatch(new RegExp(`delta carries\\s+${carried.length} of ${next.size} blobs`))
  })

  it('a bundle against itself, or against its own inventory: nothing changed, 0 bytes', async () => {
    for (const other of ['site-v2.inventory.json', 'site-v2.parts.json']) {
      const res = await runCli([
        'bundle',
        'diff',
        path.join(v2.out, 'site-v2.tar.zst.000'),
        path.join(v2.out, other),
        '--json',
      ])
      expect(res.exitCode, res.stdout).toBe(0)
      const diff = res.json()
      expect(diff.identical).toBe(true)
      expect(diff.artifacts).toMatchObject({added: [], removed: [], changed: [], retagged: []})
      expect(diff.artifacts.unchanged).toBeGreaterThan(3)
      expect(diff.blobs.carried).toEqual({count: 0, bytes: 0})
    }
    const human = await runCli([
      'bundle',
      'diff',
      path.join(v1.out, 'site-v1.tar.zst'),
      path.join(v1.out, 'site-v1.tar.zst'),
    ])
    expect(human.stdout).toContain('No difference')
  })

  it('exit 2 for unreadable input, exit 5 for a tampered bundle.json or inventory', async () => {
    const missing = await runCli([
      'bundle',
      'diff',
      path.join(root, 'nope.tar.zst'),
      path.join(v1.out, 'site-v1.tar.zst'),
      '--json',
    ])
    expect(missing.exitCode).toBe(2)
    expect(missing.json().message).toContain('nope.tar.zst')

    const inventory = readFileSync(path.join(v1.out, 'site-v1.inventory.json'), 'utf8')
    const edited = path.join(root, 'edited.inventory.json')
    writeFileSync(edited, inventory.replace(images.old.digest, images.fresh.digest))
    const badInventory = await runCli(['bundle', 'diff', edited, path.join(v2.out, 'site-v2.inventory.json')])
    expect(badInventory.exitCode).toBe(5)
    expect(badInventory.stderr).toMatch(
      /edited\.inventory\.json: its bundleJson hashes to sha256:[a-f0-9]{64}, but bundleJsonSha256 says/,
    )

    // A bundle whose bundle.json was rewritten (an artifact pointing at a blob it does not list), repacked as airpack does.
    const work = path.join(root, 'tamper')
    execFileSync('bash', [
      '-c',
      `mkdir -p "${work}" && cd "${work}" && zstd -dc "${path.join(v1.out, 'site-v1.tar.zst')}" | tar -x`,
    ])
    const bj = JSON.parse(readFileSync(path.join(work, 'airpack/bundle.json'), 'utf8'))
    bj.artifacts[0].digest = `sha256:${'0'.repeat(64)}`
    writeFileSync(path.join(work, 'airpack/bundle.json'), JSON.stringify(bj))
    const tampered = path.join(root, 'tampered.tar.zst')
    execFileSync('bash', [
      '-c',
      `cd "${work}" && tar --format=posix -c airpack/bundle.json | zstd -q -c > "${tampered}"`,
    ])
    const bad = await runCli(['bundle', 'diff', tampered, path.join(v1.out, 'site-v1.tar.zst'), '--json'])
    expect(bad.exitCode).toBe(5)
    expect(bad.json().message).toMatch(
      /tampered\.tar\.zst: airpack\/bundle\.json names artifact .* which it does not list as a blob/,
    )

    const notBundle = path.join(root, 'not-a-bundle.tar.zst')
    writeFileSync(notBundle, 'hello')
    const garbage = await runCli(['bundle', 'diff', notBundle, path.join(v1.out, 'site-v1.tar.zst')])
    expect(garbage.exitCode).toBe(5)
    expect(garbage.stderr).toContain('not-a-bundle.tar.zst')
  })
})

/** Some blob of N+1 that N already held is used by a changed or new image: the shared base layer. */
function diffBase(old: Map<string, number>, next: Map<string, number>): boolean {
  return [...next.keys()].some((d) => old.has(d) && next.get(d)! >= 96 * 1024)
}
