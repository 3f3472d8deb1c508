// Disk full during a build (issue 6): the output directory, then the cache, on a small tmpfs (mounted by the test:
// CI and the dev machines run as root) that the bundle does not fit in. The build must fail with a clean error
// (not a crash: no exit 1, no stack trace), say that the disk is full and where, and leave no partial file —
// neither under a final name nor as a temporary — and nothing unverified in the cache.

import {execFileSync} from 'node:child_process'
import {mkdirSync, statSync} from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {
  finalOutputs,
  listFiles,
  startFaultFixture,
  unverifiedCacheBlobs,
  type FaultFixture,
} from '../helpers/fault-fixture.js'

// Whole builds through the CLI, some at zstd level 19, on a 2-core machine shared with other suites.
vi.setConfig({testTimeout: 240_000, hookTimeout: 240_000})

let fx: FaultFixture
const mounts: string[] = []

function smallFilesystem(dir: string, size: string): string {
  mkdirSync(dir, {recursive: true})
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])
  mounts.push(dir)
  return dir
}

beforeAll(async () => {
  // 12 MiB of amd64 layers: more than the 8 MiB filesystems below hold.
  fx = await startFaultFixture({bytesPerPlatform: 12 * 1024 * 1024, seed: 'airpack-disk-tests'})
}, 120_000)

afterAll(async () => {
  for (const m of mounts.reverse()) execFileSync('umount', ['-l', m])
  await fx?.stop()
})

const STACK = /^\s+at .+:\d+:\d+\)?$/m
const SAYS_FULL = /no space|disk (is )?full|ENOSPC|out of space|not enough space/i

describe('disk full', () => {
  it('the 8 MiB test filesystem really is small and writable', async () => {
    const dir = smallFilesystem(path.join(fx.dir, 'probe'), '8m')
    expect(() =>
      execFileSync('dd', ['if=/dev/zero', `of=${path.join(dir, 'fill')}`, 'bs=1M', 'count=9'], {stdio: 'pipe'}),
    ).toThrow()
  })

  it('output directory full: clean error naming the problem, no partial file', async () => {
    const output = smallFilesystem(path.join(fx.dir, 'small-out'), '8m')
    const cache = await fx.fresh('cache')
    // Past the free-space preflight (tested below), so the disk really fills while the bundle is written.
    const result = await fx.build({cache, output, env: {AIRPACK_SKIP_SPACE_CHECK: '1'}})
    const context = `exit ${result.exitCode}\n${result.stderr}`
    if (process.env.AIRPACK_FAULT_DEBUG) console.log(context)
    expect(result.exitCode, context).not.toBe(0)
    expect(result.exitCode, context).not.toBe(1)
    expect(result.stderr, context).toMatch(SAYS_FULL)
    expect(result.stderr, context).not.toMatch(STACK)
    expect(await finalOutputs(output)).toEqual([])
    expect(await listFiles(output), 'temporary files left on the full disk').toEqual([])
  })

  it('cache full: clean error, nothing unverified in the cache, no output', async () => {
    const cache = smallFilesystem(path.join(fx.dir, 'small-cache'), '8m')
    const output = await fx.fresh('out')
    const result = await fx.build({cache, output, json: true, env: {AIRPACK_SKIP_SPACE_CHECK: '1'}})
    const context = `exit ${result.exitCode}\n${result.stdout}\n${result.stderr}`
    expect(result.exitCode, context).not.toBe(0)
    expect(result.exitCode, context).not.toBe(1)
    const doc = result.json()
    expect(doc.status, context).toBe('error')
    expect(JSON.stringify(doc), context).toMatch(SAYS_FULL)
    expect(await unverifiedCacheBlobs(cache)).toEqual([])
    expect(await finalOutputs(output)).toEqual([])
  })

  it('preflight: a build that cannot fit stops before downloading anything, naming the filesystem and the sizes', async () => {
    const cache = smallFilesystem(path.join(fx.dir, 'preflight-cache'), '8m')
    const output = await fx.fresh('out')
    const result = await fx.build({cache, output, json: true})
    const context = `exit ${result.exitCode}\n${result.stdout}\n${result.stderr}`
    expect(result.exitCode, context).toBe(2)
    const doc = result.json()
    expect(doc.code, context).toBe('ERR_AIRPACK_DISK_SPACE')
    expect(doc.message, context).toContain(cache)
    expect(doc.message, context).toMatch(/MiB free, the build needs about \d+(\.\d)? MiB/)
    // Resolving stored the manifests (a few KiB); no layer was downloaded.
    const cached = await listFiles(path.join(cache, 'blobs'))
    const bytes = cached.reduce((sum, f) => sum + statSync(path.join(cache, 'blobs', f)).size, 0)
    expect(bytes, 'only manifests in the cache').toBeLessThan(64 * 1024)
    expect(await finalOutputs(output)).toEqual([])
  })
})
