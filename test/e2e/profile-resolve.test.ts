import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runCli} from '../helpers/cli.js'
import {startHelmRepo, type HelmRepo} from '../helpers/helm-repo.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage, type SeededImage} from '../helpers/seed.js'
import {addonProfile} from '../../support/profiles.js'

// `airpack profile resolve` as a user runs it: a profile naming images on a real registry (one behind htpasswd
// over TLS) and a chart in a classic repository; the plan on stdout, the lock file, exit 4 with every
// unresolvable artifact listed, and no credential anywhere in what it prints or writes.

const PASSWORD = 'e2e-Pa55word-never-shown'

function appsProfile(images: string[], chart?: {repo: string; name: string; version: string}): string {
  const registry = {metadata: {uid: 'x', name: 'Public Repo', kind: 'pack', isPrivate: false}}
  return JSON.stringify(
    addonProfile({
      name: 'apps',
      description: 'test add-on',
      namespace: '"apps"',
      images,
      chart,
      registry,
      variables: [],
    }),
  )
}

describe('airpack profile resolve', () => {
  let reg: TestRegistry
  let secure: TestRegistry
  let helm: HelmRepo
  let dir: string
  let a: SeededImage
  let b: SeededImage
  let s: SeededImage

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-e2e-resolve-'))
    reg = await startRegistry()
    secure = await startRegistry({tls: true, htpasswd: {dave: PASSWORD}})
    const shared = layerOf({'etc/shared': 'base'})
    a = await pushImage(
      reg,
      'apps/a',
      '1.0',
      [
        {architecture: 'amd64', layers: [shared, layerOf({'bin/a': 'amd64'})]},
        {architecture: 'arm64', layers: [shared, layerOf({'bin/a': 'arm64'})]},
      ],
      {attestations: true},
    )
    b = await pushImage(
      reg,
      'apps/b',
      '2.0',
      [{architecture: 'amd64', layers: [shared, layerOf({'bin/b': 'amd64'})]}],
      {format: 'docker'},
    )
    s = await pushImage(
      secure,
      'private/c',
      '3.0',
      [{architecture: 'amd64', layers: [layerOf({'bin/c': 'secret app'})]}],
      {auth: {username: 'dave', password: PASSWORD}},
    )
    // The chart deploys image a, which the profile lists (a chart naming an unlisted image is AP-CONTENT-UNLISTED).
    const [repository, tag] = [
      a.reference.slice(0, a.reference.lastIndexOf(':')),
      a.reference.slice(a.reference.lastIndexOf(':') + 1),
    ]
    helm = await startHelmRepo({
      charts: [{name: 'web', version: '2.1.0', values: `image:\n  repository: ${repository}\n  tag: "${tag}"\n`}],
    })
    await writeFile(path.join(dir, 'docker-config.json'), '')
  }, 120_000)
  afterAll(async () => {
    await reg?.stop()
    await secure?.stop()
    await helm?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('prints the plan, writes a canonical lock, and never shows the password', async () => {
    const profile = path.join(dir, 'apps.json')
    await writeFile(
      profile,
      appsProfile([a.reference, b.reference, s.reference], {repo: helm.url, name: 'web', version: '2.1.0'}),
    )
    const credFile = path.join(dir, 'creds.json')
    await writeFile(
      credFile,
      JSON.stringify({image: [{endpoint: secure.host, username: 'dave', password: PASSWORD}], helm: []}),
    )
    const lockFile = path.join(dir, 'apps.lock.json')
    const cache = path.join(dir, 'cache')
    const args = [
      'profile',
      'resolve',
      profile,
      '--arch',
      'amd64',
      '--lock-file',
      lockFile,
      '--cred-file',
      credFile,
      '--ca-cert',
      secure.caFile!,
      '--cache-dir',
      cache,
    ]
    const human = await runCli(args, {env: {DOCKER_CONFIG: path.join(dir, 'no-docker')}})
    expect(human.stderr).toBe('')
    expect(human.exitCode).toBe(0)
    expect(human.stdout).toContain(`Resolved 4 artifacts for linux/amd64:`)
    expect(human.stdout).toContain(a.reference)
    expect(human.stdout).toContain(a.manifests['linux/amd64'].digest)
    expect(human.stdout).toMatch(/Total after deduplication: \d+ blobs/)
    expect(human.stdout).toContain(`Lock written to ${lockFile}`)

    const json = await runCli([...args, '--json'], {env: {DOCKER_CONFIG: path.join(dir, 'no-docker')}})
    expect(json.exitCode).toBe(0)
    const plan = json.json()
    expect(plan.status).toBe('ok')
    expect(plan.artifacts).toHaveLength(4)
    const byRef = Object.fromEntries(plan.artifacts.map((x: {reference: string}) => [x.reference, x]))
    expect(byRef[a.reference].digest).toBe(a.digest)
    expect(byRef[a.reference].platformManifest).toBe(a.manifests['linux/amd64'].digest)
    expect(byRef[b.reference].digest).toBe(b.digest)
    expect(byRef[s.reference].source).toBe(secure.host)
    const chart = plan.artifacts.find((x: {kind: string}) => x.kind === 'chart')
    expect(chart.reference).toBe(`${helm.url.slice(7)}/web:2.1.0`)
    expect(plan.totalBytes).toBeLessThan(plan.artifacts.reduce((t: number, x: {size: number}) => t + x.size, 0))
    expect(plan.cachedBytes).toBeGreaterThan(0)

    const text = await readFile(lockFile, 'utf8')
    const lock = JSON.parse(text)
    expect(lock.lockVersion).toBe(1)
    expect(lock.platform).toEqual({os: 'linux', architecture: 'amd64'})
    expect(lock.images[a.reference].omittedPlatforms).toEqual([{os: 'linux', architecture: 'arm64'}])
    // Profiles by content only: no path, so the lock is the same bytes in every checkout (PRODUCT.md §5).
    expect(lock.profiles).toEqual([
      {name: 'apps', version: '1.0.0', sha256: expect.stringMatching(/^(sha256:)?[a-f0-9]{64}$/)},
    ])
    expect(text).not.toContain(path.dirname(profile))
    // Canonical: keys sorted at every level.
    const sortedKeys = (v: unknown): boolean =>
      Array.isArray(v)
        ? v.every(sortedKeys)
        : v && typeof v === 'object'
          ? Object.keys(v).join() === Object.keys(v).sort().join() && Object.values(v).every(sortedKeys)
          : true
    expect(sortedKeys(lock)).toBe(true)
    for (const out of [human.stdout, human.stderr, json.stdout, json.stderr, text]) {
      expect(out).not.toContain(PASSWORD)
      expect(out).not.toContain(Buffer.from(`dave:${PASSWORD}`).toString('base64'))
    }
  })

  it("warns (AP-CONTENT-UNLISTED) for an image the chart's values.yaml names but no content tag lists, still exit 0", async () => {
    const extra = await startHelmRepo({
      charts: [{name: 'side', version: '0.1.0', values: 'sidecar:\n  image: ghcr.io/acme/sidecar:2.0\n'}],
    })
    try {
      const profile = path.join(dir, 'side.json')
      await writeFile(profile, appsProfile([a.reference], {repo: extra.url, name: 'side', version: '0.1.0'}))
      const r = await runCli([
        'profile',
        'resolve',
        profile,
        '--arch',
        'amd64',
        '--cache-dir',
        path.join(dir, 'side-cache'),
      ])
      expect(r.exitCode).toBe(0)
      expect(r.stderr).toMatch(
        /warning AP-CONTENT-UNLISTED .*side\.json:\d+ pack apps .*chart side 0\.1\.0 names image ghcr\.io\/acme\/sidecar:2\.0 \(side\/values\.yaml line 2, sidecar\.image\)/,
      )
      expect(r.stdout).toContain('Resolved 2 artifacts')
    } finally {
      await extra.stop()
    }
  })

  it('lists every unresolvable artifact at once and exits 4, without credentials in the error', async () => {
    const profile = path.join(dir, 'broken.json')
    await writeFile(
      profile,
      appsProfile([`${reg.host}/apps/a:9.9`, `${reg.host}/apps/missing:1`, s.reference, b.reference], {
        repo: helm.url,
        name: 'web',
        version: '3.0.0',
      }),
    )
    const credFile = path.join(dir, 'wrong-creds.json')
    await writeFile(
      credFile,
      JSON.stringify({image: [{endpoint: secure.host, username: 'dave', password: `x${PASSWORD}`}]}),
    )
    const lockFile = path.join(dir, 'broken.lock.json')
    const args = [
      'profile',
      'resolve',
      profile,
      '--arch',
      'arm64',
      '--lock-file',
      lockFile,
      '--cred-file',
      credFile,
      '--ca-cert',
      secure.caFile!,
      '--cache-dir',
      path.join(dir, 'cache'),
    ]
    const human = await runCli(args)
    expect(human.exitCode).toBe(4)
    expect(human.stdout).toBe('')
    expect(human.stderr).toContain('Error: 5 of 5 artifacts could not be resolved')
    expect(human.stderr).toContain(`${reg.host}/apps/a:9.9`)
    expect(human.stderr).toContain(`${reg.host}/apps/missing:1`)
    expect(human.stderr).toContain(`rejected the credentials (from cred-file)`)
    expect(human.stderr).toContain('has no manifest for linux/arm64')
    expect(human.stderr).toContain('chart web has no version 3.0.0')
    expect(human.stderr).not.toMatch(/\n\s+at /)
    expect(human.stderr).not.toContain(PASSWORD)
    const json = await runCli([...args, '--json'])
    expect(json.exitCode).toBe(4)
    const envelope = json.json()
    expect(envelope.code).toBe('ERR_AIRPACK_UNRESOLVED')
    expect(envelope.details.problems).toHaveLength(5)
    expect(json.stdout).not.toContain(PASSWORD)
    await expect(readFile(lockFile)).rejects.toThrow()
  })

  it('an unusable cache directory is one usage error (exit 2), not one failure per artifact', async () => {
    const profile = path.join(dir, 'cache-profile.json')
    await writeFile(profile, appsProfile([a.reference, b.reference]))
    const notADir = path.join(dir, 'plain-file')
    await writeFile(notADir, 'x')
    const r = await runCli(['profile', 'resolve', profile, '--arch', 'amd64', '--cache-dir', notADir, '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json().code).toBe('ERR_AIRPACK_CACHE_UNWRITABLE')
    expect(r.json().message).toContain(notADir)
  })

  it('refuses invalid profiles with exit 3 before contacting any registry', async () => {
    const profile = path.join(dir, 'bad-tag.json')
    await writeFile(profile, appsProfile(['docker.io/library/Nginx:{{.spectro.var.nope}}']))
    const r = await runCli(['profile', 'resolve', profile, '--arch', 'amd64'])
    expect(r.exitCode).toBe(3)
    expect(r.stderr).toContain('nothing was resolved')
  })
})
