import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {buildDefinitionTgz} from '../../src/bundle/definition.js'
import {writeBundle} from '../../src/bundle/writer.js'
import {fixtureLock, type FixtureImage} from '../helpers/bundle-fixtures.js'
import {startContainerd, type TestContainerd} from '../helpers/containerd.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'

// The real consumers of a bundle (PRODUCT.md §4): skopeo reads it as an OCI archive after `zstd -d`, and a
// containerd started here imports it with `zstd -dc … | ctr images import --platform linux/amd64 -`.
// This machine is amd64, so the bundles are built for amd64. Every consumer reads both bundle formats: format 2
// (seekable frames, raw frames for compressed layers, a seek table) must stay one plain zstd file.

describe.each([1, 2] as const)('bundle format %i', (formatVersion) => {
  let root: string
  let bundle: string
  let tarFile: string
  let images: FixtureImage[]
  let charts: string[]

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), `airpack-consumers-f${formatVersion}-`))
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
    })
    await pending.commit()
    bundle = path.join(root, 'out', 'site.tar.zst')
    tarFile = path.join(root, 'site.tar')
    execFileSync('zstd', ['-d', '-q', '-f', bundle, '-o', tarFile])
    // Which format was written: format 2 ends with the seekable magic, format 1 does not.
    const tail = readFileSync(bundle).subarray(-4).readUInt32LE(0)
    if (formatVersion === 2) expect(tail).toBe(0x8f92eab1)
    else expect(tail).not.toBe(0x8f92eab1)
  })

  afterAll(() => rmSync(root, {recursive: true, force: true}))

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
        `zstd -dc "${bundle}" | ctr --address "${containerd.socket}" -n k8s.io images import --platform linux/amd64 -`,
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
