import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {parse} from 'yaml'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {runCli} from '../helpers/cli.js'
import {startContainerd, type TestContainerd} from '../helpers/containerd.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {siteBundle, type SiteBundle} from '../helpers/site-bundle.js'

// `bundle push` (PRODUCT.md §12) into a real Debian docker-registry (distribution 2.8.2) started here: the sparse
// index refused as 2.8 refuses it, the platform manifests pushed instead, shared blobs mounted, a second push
// uploading nothing, and containerd pulling by the original name through the mirror configuration push wrote.

vi.setConfig({testTimeout: 120_000, hookTimeout: 120_000})

const run = promisify(execFile)
const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')

let fx: SiteBundle
let reg: TestRegistry
let out: string

beforeAll(async () => {
  fx = await siteBundle()
  reg = await startRegistry()
  out = await mkdtemp(path.join(os.tmpdir(), 'airpack-push-'))
})

afterAll(async () => {
  await reg?.stop()
  if (fx) await rm(fx.root, {recursive: true, force: true})
  if (out) await rm(out, {recursive: true, force: true})
})

const push = (args: string[]) => runCli(['bundle', 'push', fx.bundle, ...args, '--json'])
const image = (suffix: string) => fx.images.find((i) => i.locked.reference.endsWith(suffix))!

describe('bundle push to distribution 2.8', () => {
  it('--index sparse: exit 4 naming the registry’s MANIFEST_BLOB_UNKNOWN, with the way out', async () => {
    const result = await push(['--to', `${reg.host}/sparse`, '--index', 'sparse'])
    expect(result.exitCode, result.stderr).toBe(4)
    const error = result.json()
    expect(error.code).toBe('ERR_AIRPACK_INDEX_REFUSED')
    expect(error.message).toContain('400 MANIFEST_BLOB_UNKNOWN')
    expect(error.hint).toContain('--index platform')
  })

  it('--index platform: every artifact under HOST/PATH, each changed digest reported, shared blobs mounted', async () => {
    const registriesOut = path.join(out, 'registries.yaml')
    const hostsDir = path.join(out, 'certs.d')
    const result = await push([
      '--to',
      `${reg.host}/edge`,
      '--index',
      'platform',
      '--concurrency',
      '1',
      '--registries-out',
      registriesOut,
      '--hosts-dir',
      hostsDir,
    ])
    expect(result.exitCode, result.stderr).toBe(0)
    const report = result.json()
    const app = image('team/app:1.0')
    expect(report.artifacts.find((a: {reference: string}) => a.reference === app.locked.reference)).toMatchObject({
      pushedAs: `${reg.host}/edge/registry.example.com/team/app:1.0`,
      digest: app.locked.digest,
      pushedDigest: app.platformDigest,
      changed: true,
    })
    // Every image with an index changed digest; the single-manifest image kept its own.
    const changed = report.changedDigests.map((c: {reference: string}) => c.reference).sort()
    expect(changed).toEqual(
      fx.images
        .filter((i) => i.locked.digest !== i.platformDigest)
        .map((i) => i.locked.reference)
        .sort(),
    )
    expect(report.blobs.uploaded).toBeGreaterThan(0)
    // app and sidecar share a layer: uploaded once, mounted into the other repository.
    expect(report.blobs.mounted).toBeGreaterThanOrEqual(1)
    expect(report.bytesUploaded).toBeGreaterThan(0)

    const {stdout} = await run(
      'skopeo',
      ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/edge/registry.example.com/team/app:1.0`],
      {encoding: 'buffer'},
    )
    expect(sha256(stdout)).toBe(app.platformDigest)
    const chart = fx.charts[0]
    const tags = (await (await reg.fetch(`/v2/edge/${chart.slice(0, chart.lastIndexOf(':'))}/tags/list`)).json()) as {
      tags: string[]
    }
    expect(tags.tags).toEqual([chart.slice(chart.lastIndexOf(':') + 1)])

    const mirrors = parse(await readFile(registriesOut, 'utf8'))
    expect(mirrors.mirrors['registry.example.com']).toEqual({
      endpoint: [reg.url],
      rewrite: {'^(.*)$': 'edge/registry.example.com/$1'},
    })
    expect(await readFile(path.join(hostsDir, 'registry.example.com', 'hosts.toml'), 'utf8')).toContain(
      `[host."${reg.url}/v2/edge/registry.example.com"]`,
    )
  })

  it('a second push of the same bundle uploads 0 bytes', async () => {
    const result = await push(['--to', `${reg.host}/edge`, '--index', 'platform'])
    expect(result.exitCode, result.stderr).toBe(0)
    const report = result.json()
    expect(report.bytesUploaded).toBe(0)
    expect(report.blobs.uploaded).toBe(0)
    expect(report.manifestsPushed).toBe(0)
    expect(report.tagsSet).toBe(0)
    expect(report.present).toBeGreaterThan(0)
  })

  it('authenticates and verifies TLS as resolve does: --docker-config credentials, --ca-cert; no secret in the output', async () => {
    const secure = await startRegistry({tls: true, htpasswd: {site: 's3cret-pw'}})
    try {
      const dockerConfig = path.join(out, 'docker')
      await mkdir(dockerConfig, {recursive: true})
      const auth = Buffer.from('site:s3cret-pw').toString('base64')
      await writeFile(path.join(dockerConfig, 'config.json'), JSON.stringify({auths: {[secure.host]: {auth}}}))
      const registriesOut = path.join(out, 'secure.yaml')
      const denied = await push(['--to', `${secure.host}/edge`, '--index', 'platform', '--ca-cert', secure.caFile!])
      expect(denied.exitCode).toBe(4)
      const result = await push([
        '--to',
        `${secure.host}/edge`,
        '--index',
        'platform',
        '--ca-cert',
        secure.caFile!,
        '--docker-config',
        dockerConfig,
        '--registries-out',
        registriesOut,
      ])
      expect(result.exitCode, result.stderr).toBe(0)
      expect(result.stdout + result.stderr).not.toContain('s3cret-pw')
      expect(result.json().blobs.uploaded).toBeGreaterThan(0)
      const mirrors = parse(await readFile(registriesOut, 'utf8'))
      expect(mirrors.mirrors['registry.example.com'].endpoint).toEqual([`https://${secure.host}`])
      expect(mirrors.configs[secure.host].tls.ca_file).toBe(secure.caFile)
    } finally {
      await secure.stop()
    }
  })

  it('pushes a split bundle from its parts in place; refuses a format 1 bundle (exit 2)', async () => {
    const split = await siteBundle({partSize: 4096})
    const old = await siteBundle({formatVersion: 1})
    try {
      const result = await runCli([
        'bundle',
        'push',
        split.bundle,
        '--to',
        `${reg.host}/split`,
        '--index',
        'platform',
        '--json',
      ])
      expect(result.exitCode, result.stderr).toBe(0)
      expect(result.json().artifacts).toHaveLength(split.images.length + split.charts.length + 1)
      const app = split.images.find((i) => i.locked.reference.endsWith('team/app:1.0'))!
      const {stdout} = await run(
        'skopeo',
        ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/split/registry.example.com/team/app:1.0`],
        {encoding: 'buffer'},
      )
      expect(sha256(stdout)).toBe(app.platformDigest)
      const refused = await runCli(['bundle', 'push', old.bundle, '--to', `${reg.host}/old`])
      expect(refused.exitCode).toBe(2)
      expect(refused.stderr).toContain('format 1 bundle')
    } finally {
      await rm(split.root, {recursive: true, force: true})
      await rm(old.root, {recursive: true, force: true})
    }
  })

  describe('containerd on the site', () => {
    let containerd: TestContainerd
    beforeAll(async () => {
      containerd = await startContainerd()
    })
    afterAll(async () => {
      await containerd?.stop()
    })

    it('pulls an image by its original name through the hosts.toml push wrote', () => {
      const app = image('team/app:1.0')
      containerd.ctr([
        'images',
        'pull',
        '--hosts-dir',
        path.join(out, 'certs.d'),
        '--platform',
        'linux/amd64',
        app.locked.reference,
      ])
      expect(containerd.images().get(app.locked.reference)).toBe(app.platformDigest)
    })
  })
})
