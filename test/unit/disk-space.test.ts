import {statfsSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {UsageError} from '../../src/errors.js'
import {ensureFreeSpace} from '../../src/util/disk.js'

const tmp = os.tmpdir()
const free = () => {
  const fs = statfsSync(tmp)
  return fs.bavail * fs.bsize
}

describe('free-space preflight', () => {
  it('passes when the filesystem has room', async () => {
    await expect(ensureFreeSpace([{dir: tmp, bytes: 1024 * 1024, what: 'blobs'}])).resolves.toBeUndefined()
  })

  it('refuses, naming the directory and both figures, when it has not', async () => {
    const err = await ensureFreeSpace([
      {dir: path.join(tmp, 'not', 'yet', 'made'), bytes: free() * 2, what: 'the bundle'},
    ]).catch((e) => e)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.exitCode).toBe(2)
    expect(err.code).toBe('ERR_AIRPACK_DISK_SPACE')
    expect(err.message).toContain('the bundle in ' + path.join(tmp, 'not', 'yet', 'made'))
    expect(err.message).toMatch(/free, the build needs about/)
  })

  it('adds up needs that land on one filesystem', async () => {
    const half = Math.floor(free() * 0.6)
    await expect(ensureFreeSpace([{dir: tmp, bytes: half, what: 'blobs'}])).resolves.toBeUndefined()
    const err = await ensureFreeSpace([
      {dir: tmp, bytes: half, what: 'blobs to download'},
      {dir: tmp, bytes: half, what: 'the bundle'},
    ]).catch((e) => e)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toContain('blobs to download')
    expect(err.message).toContain('the bundle')
  })

  it('ignores zero needs (a warm cache, nothing to download)', async () => {
    await expect(ensureFreeSpace([{dir: tmp, bytes: 0, what: 'blobs'}])).resolves.toBeUndefined()
  })
})
