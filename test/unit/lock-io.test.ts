import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {UsageError} from '../../src/errors.js'
import {diffLocks, readLock, serializeLock, writeLock} from '../../src/lock/io.js'
import type {Lock} from '../../src/lock/types.js'

const D = (c: string) => `sha256:${c.repeat(64)}`

function sampleLock(): Lock {
  const desc = (c: string, mediaType = 'application/vnd.oci.image.manifest.v1+json') => ({
    mediaType,
    digest: D(c),
    size: 10,
  })
  return {
    lockVersion: 1,
    platform: {os: 'linux', architecture: 'amd64'},
    images: {
      'docker.io/library/nginx:1.27': {
        reference: 'docker.io/library/nginx:1.27',
        digest: D('a'),
        mediaType: 'application/vnd.oci.image.index.v1+json',
        size: 10,
        platformManifest: {...desc('b'), platform: {os: 'linux', architecture: 'amd64'}},
        blobs: [desc('a'), desc('b'), desc('c')],
        omittedPlatforms: [{os: 'linux', architecture: 'arm64', variant: 'v8'}],
      },
    },
    charts: {},
    files: {},
    profiles: [{name: 'p', version: '1', sha256: 'f'.repeat(64)}],
  }
}

describe('lock file', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-lock-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('round-trips as canonical JSON with sorted keys', async () => {
    const file = path.join(dir, 'a.lock.json')
    const lock = sampleLock()
    await writeLock(file, lock)
    const text = await readFile(file, 'utf8')
    expect(text).toBe(serializeLock(lock))
    expect(text.indexOf('"charts"')).toBeLessThan(text.indexOf('"images"'))
    expect(text.indexOf('"blobs"')).toBeLessThan(text.indexOf('"digest"'))
    expect(text.endsWith('}\n')).toBe(true)
    expect(await readLock(file)).toEqual(lock)
  })

  it('reads a lock written before issue 9 (a serving `source` per artifact, a `file` per profile) and drops both', async () => {
    const file = path.join(dir, 'old.lock.json')
    const old = sampleLock() as unknown as {
      images: Record<string, Record<string, unknown>>
      profiles: Record<string, unknown>[]
    }
    old.images['docker.io/library/nginx:1.27'].source = 'mirror.corp.example:5000'
    old.profiles[0].file = '/home/alice/checkout/profiles/p.json'
    await writeFile(file, JSON.stringify(old))
    const lock = await readLock(file)
    expect(lock).toEqual(sampleLock())
    expect(serializeLock(lock)).not.toMatch(/mirror\.corp|\/home\/alice/)
  })

  it('refuses a missing, non-JSON or malformed lock with a usage error naming the field', async () => {
    await expect(readLock(path.join(dir, 'nope.json'))).rejects.toThrow(/cannot read lock file .*ENOENT/)
    const bad = path.join(dir, 'bad.json')
    await writeFile(bad, '{')
    await expect(readLock(bad)).rejects.toBeInstanceOf(UsageError)
    const lock = sampleLock() as unknown as {images: Record<string, {digest: string}>}
    lock.images['docker.io/library/nginx:1.27'].digest = 'sha256:xyz'
    await writeFile(bad, JSON.stringify(lock))
    const error = await readLock(bad).catch((e) => e)
    expect(error.exitCode).toBe(2)
    expect(error.details.problems).toEqual([
      'images.docker.io/library/nginx:1.27.digest: must be sha256:<64 hex digits>',
    ])
  })

  it('diffs two locks artifact by artifact', () => {
    const a = sampleLock()
    const b = sampleLock()
    b.images['docker.io/library/nginx:1.27'] = {...b.images['docker.io/library/nginx:1.27'], digest: D('d')}
    b.files['https://x/y'] = {url: 'https://x/y', sha256: D('e'), size: 1}
    expect(diffLocks(a, b)).toEqual([
      {kind: 'image', key: 'docker.io/library/nginx:1.27', before: D('a'), after: D('d')},
      {kind: 'file', key: 'https://x/y', before: undefined, after: D('e')},
    ])
    expect(diffLocks(a, a)).toEqual([])
  })
})
