import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {buildDefinitionTgz} from '../../src/bundle/definition.js'
import {writeBundle} from '../../src/bundle/writer.js'
import {fixtureLock, type FixtureImage} from '../helpers/bundle-fixtures.js'
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
    let dir: string
    let child: ChildProcess | undefined
    let socket: string

    beforeAll(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-ctd-'))
      socket = path.join(dir, 'containerd.sock')
      mkdirSync(path.join(dir, 'root'))
      const config = [
        'version = 2',
        `root = ${JSON.stringify(path.join(dir, 'root'))}`,
        `state = ${JSON.stringify(path.join(dir, 'state'))}`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
        '[grpc]',
        `  address = ${JSON.stringify(socket)}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(socket + '.ttrpc')}`,
      ].join('\n')
      writeFileSync(path.join(dir, 'config.toml'), config + '\n')
      child = spawn('containerd', ['--config', path.join(dir, 'config.toml')], {stdio: 'ignore'})
      const deadline = Date.now() + 20_000
      for (;;) {
        if (existsSync(socket)) {
          try {
            execFileSync('ctr', ['--address', socket, 'version'], {stdio: 'pipe'})
            break
          } catch {}
        }
        if (Date.now() > deadline) throw new Error('containerd did not start within 20 s')
        await new Promise((r) => setTimeout(r, 100))
      }
    })

    afterAll(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child!.once('exit', r))
        child.kill('SIGTERM')
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
        if (child.exitCode === null) child.kill('SIGKILL')
      }
      // Unpacked snapshots may hold overlay mounts briefly; ignore what cannot be removed.
      try {
        execFileSync('bash', ['-c', `grep -o "${dir}[^ ]*" /proc/mounts | xargs -r umount -l`], {stdio: 'ignore'})
      } catch {}
      rmSync(dir, {recursive: true, force: true})
    })

    it('imports the bundle from a pipe and lists every image under its original name and index digest', () => {
      const out = execFileSync('bash', [
        '-c',
        `zstd -dc "${bundle}" | ctr --address "${socket}" -n k8s.io images import --platform linux/amd64 -`,
      ]).toString()
      expect(out).toContain('unpacking')
      const listed = execFileSync('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'ls']).toString()
      const rows = new Map(
        listed
          .trim()
          .split('\n')
          .slice(1)
          .map((line) => line.split(/\s+/))
          .map((cols) => [cols[0], cols[2]]),
      )
      for (const img of images) expect(rows.get(img.locked.reference), img.locked.reference).toBe(img.locked.digest)
      expect(rows.has('airpack.local/spc/site:latest')).toBe(true)
      expect(charts.length).toBeGreaterThan(0)
      for (const chart of charts) expect(rows.has(chart), chart).toBe(false)
    })
  })
})
