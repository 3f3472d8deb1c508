// Transport stays out of the bundle and the lock (PRODUCT.md §4–5, issue 9): the same profile built straight from
// the registry and through a pull-through cache (a second Debian docker-registry in proxy mode, `proxy.remoteurl`)
// gives `cmp`-identical .tar.zst files and byte-identical locks; only NAME.report.json names the endpoint that
// served the bytes. And a lock written in one checkout is byte-identical to one written from a copy of the
// profiles elsewhere (no absolute path, no host of the machine).

import {execFile} from 'node:child_process'
import {cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {benchProfile} from '../helpers/bench-content.js'
import {runCli} from '../helpers/cli.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage} from '../helpers/seed.js'

vi.setConfig({testTimeout: 120_000, hookTimeout: 120_000})

const run = promisify(execFile)

let upstream: TestRegistry
let mirror: TestRegistry
let dir: string
let profile: string
let references: string[]

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-mirror-'))
  upstream = await startRegistry()
  mirror = await startRegistry({proxy: {remoteurl: upstream.url}})
  const shared = layerOf({'etc/base': 'shared base layer'})
  await pushImage(upstream, 'team/app', '1', [
    {architecture: 'amd64', layers: [shared, layerOf({'app/amd64': 'amd64 app'})]},
    {architecture: 'arm64', layers: [shared, layerOf({'app/arm64': 'arm64 app'})]},
  ])
  await pushImage(upstream, 'team/tool', '2', [
    {architecture: 'amd64', layers: [shared, layerOf({'tool/bin': 'tool'})]},
  ])
  references = [`${upstream.host}/team/app:1`, `${upstream.host}/team/tool:2`]
  profile = path.join(dir, 'profile.json')
  await writeFile(profile, JSON.stringify(benchProfile(references, 'mirror-test'), null, 2))
})

afterAll(async () => {
  await mirror?.stop()
  await upstream?.stop()
  await rm(dir, {recursive: true, force: true})
})

async function build(name: string, extra: string[]): Promise<{output: string; stderr: string}> {
  const output = path.join(dir, name)
  const result = await runCli(
    [
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'same',
      '--cache-dir',
      path.join(dir, `${name}-cache`),
      '--output',
      output,
      ...extra,
    ],
    {env: {SOURCE_DATE_EPOCH: '1700000000'}},
  )
  expect(result.exitCode, result.stderr).toBe(0)
  return {output, stderr: result.stderr}
}

describe('transport out of the bundle and the lock', () => {
  it('direct and through a pull-through cache: cmp-identical .tar.zst and locks; the report names the endpoint used', async () => {
    const registries = path.join(dir, 'registries.yaml')
    await writeFile(
      registries,
      ['mirrors:', `  "${upstream.host}":`, `    endpoint: ["${mirror.url}"]`].join('\n') + '\n',
    )
    const direct = await build('direct', [])
    const viaMirror = await build('mirror', ['--registries', registries])

    await run('cmp', [path.join(direct.output, 'same.tar.zst'), path.join(viaMirror.output, 'same.tar.zst')])
    await run('cmp', [path.join(direct.output, 'same.lock.json'), path.join(viaMirror.output, 'same.lock.json')])

    const report = async (output: string) => JSON.parse(await readFile(path.join(output, 'same.report.json'), 'utf8'))
    const sources = (r: {artifacts: {kind: string; source: string}[]}) => [
      ...new Set(r.artifacts.filter((a) => a.kind === 'image').map((a) => a.source)),
    ]
    expect(sources(await report(direct.output))).toEqual([upstream.host])
    expect(sources(await report(viaMirror.output))).toEqual([mirror.host])
    // The pull-through cache really served (and stored) the content.
    const stored = await readdir(path.join(mirror.dir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256'), {
      recursive: true,
    })
    expect(stored.some((f) => f.endsWith('data'))).toBe(true)

    const lock = await readFile(path.join(viaMirror.output, 'same.lock.json'), 'utf8')
    expect(lock).not.toContain(mirror.host)
    expect(lock).not.toContain(dir)
    const {stdout: listing} = await run('bash', [
      '-c',
      `zstd -dc ${JSON.stringify(path.join(viaMirror.output, 'same.tar.zst'))} | tar -xOf - airpack/bundle.json`,
    ])
    expect(listing).not.toContain(mirror.host)
    expect(
      JSON.parse(listing)
        .artifacts.filter((a: {kind: string}) => a.kind === 'image')
        .map((a: {source: string}) => a.source),
    ).toEqual([upstream.host, upstream.host])
  })

  it('a lock written in one checkout is byte-identical to one written from a copy of the profiles elsewhere', async () => {
    const checkoutA = path.join(dir, 'checkout-a', 'profiles')
    const checkoutB = path.join(dir, 'elsewhere', 'deeper', 'copy')
    await mkdir(checkoutA, {recursive: true})
    await mkdir(checkoutB, {recursive: true})
    await cp(profile, path.join(checkoutA, 'edge.json'))
    await cp(profile, path.join(checkoutB, 'edge.json'))
    const lockA = path.join(dir, 'a.lock.json')
    const lockB = path.join(dir, 'b.lock.json')
    for (const [cwd, lock] of [
      [checkoutA, lockA],
      [checkoutB, lockB],
    ] as const) {
      const result = await runCli(
        ['profile', 'resolve', path.join(cwd, 'edge.json'), '--arch', 'amd64', '--lock-file', lock],
        {cwd},
      )
      expect(result.exitCode, result.stderr).toBe(0)
    }
    await run('cmp', [lockA, lockB])
    const text = await readFile(lockA, 'utf8')
    expect(text).not.toContain(dir)
    expect(text).not.toContain(os.homedir())
  })
})
