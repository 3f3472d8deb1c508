import {randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobStore} from '../../src/cache/store.js'
import type {Lock} from '../../src/lock/types.js'
import {resolveArtifacts, writeLock, type FetchReport} from '../../src/resolve/index.js'
import {sha256File} from '../../src/util/digest.js'
import {PROJECT_ROOT} from '../helpers/cli.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage} from '../helpers/seed.js'

// Two separate processes fetching the same lock into one cache at the same time: every blob is downloaded once
// (the per-blob lock makes the other process wait, then use the published blob) and every published blob
// verifies. A partial file left by a dead process is resumed, its stale lock taken over.

describe('one cache shared by concurrent processes', () => {
  let reg: TestRegistry
  let dir: string
  let lock: Lock
  let lockFile: string
  let script: string

  beforeAll(async () => {
    reg = await startRegistry()
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-cache-'))
    const layers = Array.from({length: 6}, (_, i) => layerOf({[`data/${i}.bin`]: randomBytes(400_000)}))
    const a = await pushImage(reg, 'team/a', '1', [{architecture: 'amd64', layers: layers.slice(0, 4)}])
    const b = await pushImage(reg, 'team/b', '1', [{architecture: 'amd64', layers: layers.slice(2)}])
    ;({lock} = await resolveArtifacts(
      {images: [a, b].map((i) => ({reference: i.reference, kind: 'image' as const})), charts: []},
      {platform: {os: 'linux', architecture: 'amd64'}},
    ))
    lockFile = path.join(dir, 'app.lock.json')
    await writeLock(lockFile, lock)
    script = path.join(dir, 'fetch-worker.mjs')
    await writeFile(
      script,
      [
        `import {BlobStore} from ${JSON.stringify(path.join(PROJECT_ROOT, 'src/cache/store.ts'))}`,
        `import {fetchLock, readLock} from ${JSON.stringify(path.join(PROJECT_ROOT, 'src/resolve/index.ts'))}`,
        'const [lockFile, cacheDir] = process.argv.slice(2)',
        'const report = await fetchLock(await readLock(lockFile), new BlobStore(cacheDir), {concurrency: 3})',
        'process.stdout.write(JSON.stringify(report))',
      ].join('\n'),
    )
  })
  afterAll(async () => {
    await reg?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  const worker = (cacheDir: string) =>
    execa('node', ['--import', 'tsx', script, lockFile, cacheDir], {cwd: PROJECT_ROOT})

  it('downloads each blob once across two processes and publishes only verified blobs', async () => {
    const cacheDir = path.join(dir, 'shared')
    const [r1, r2] = await Promise.all([worker(cacheDir), worker(cacheDir)])
    const reports = [r1, r2].map((r) => JSON.parse(r.stdout) as FetchReport)
    const unique = new Map<string, number>()
    for (const i of Object.values(lock.images)) for (const b of i.blobs) unique.set(b.digest, b.size)
    const total = [...unique.values()].reduce((x, y) => x + y, 0)
    expect(reports[0].downloadedBytes + reports[1].downloadedBytes).toBe(total)
    const store = new BlobStore(cacheDir)
    for (const digest of unique.keys()) {
      const {hex} = await sha256File(store.blobPath(digest))
      expect(`sha256:${hex}`).toBe(digest)
    }
    expect(await readdir(path.join(cacheDir, 'partial'))).toEqual([])
  })

  it('resumes the partial file of a process that died, taking over its stale lock', async () => {
    const cacheDir = path.join(dir, 'resume')
    const image = Object.values(lock.images)[0]
    const layer = image.blobs.find((b) => b.size > 100_000)!
    const res = await reg.fetch(`/v2/team/a/blobs/${layer.digest}`)
    const bytes = Buffer.from(await res.arrayBuffer())
    await mkdir(path.join(cacheDir, 'partial'), {recursive: true})
    const hex = layer.digest.slice(7)
    await writeFile(path.join(cacheDir, 'partial', hex), bytes.subarray(0, 150_000))
    const dead = await execa('node', ['-e', 'process.stdout.write(String(process.pid))'])
    await writeFile(path.join(cacheDir, 'partial', `${hex}.lock`), dead.stdout)
    const r = await worker(cacheDir)
    const report = JSON.parse(r.stdout) as FetchReport
    const total = new Map(Object.values(lock.images).flatMap((i) => i.blobs.map((b) => [b.digest, b.size] as const)))
    const sum = [...total.values()].reduce((x, y) => x + y, 0)
    expect(report.downloadedBytes).toBe(sum - 150_000)
    expect(await new BlobStore(cacheDir).has(layer.digest)).toBe(true)
    expect(await readdir(path.join(cacheDir, 'partial'))).toEqual([])
  })
})
