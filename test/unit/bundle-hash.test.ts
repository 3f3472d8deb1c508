import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {hashFile, streamHash, TarHashes} from '../../src/bundle/hash.js'

// The worker-thread hasher must give exactly node:crypto's digest, whatever the chunking.
describe('stream hashing', () => {
  const data = Buffer.alloc(20 * 1024 * 1024 + 123)
  for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) % 256
  const expected = createHash('sha256').update(data).digest('hex')

  it.each(['worker', 'node'] as const)(
    'hashes a large stream in chunks of any size like node:crypto (%s)',
    async (kind) => {
      for (const chunk of [65536, 1 << 20, 3 * (1 << 20) + 7]) {
        const h = streamHash(data.length, kind)
        for (let i = 0; i < data.length; i += chunk) {
          const w = h.write(data.subarray(i, i + chunk))
          if (w) await w
        }
        expect(await h.digest()).toBe(expected)
      }
    },
  )

  it('a worker hasher queues at most a bounded amount ahead: write() asks to wait past it', async () => {
    const h = streamHash(data.length, 'worker')
    let waited = 0
    for (let i = 0; i < data.length; i += 1 << 20) {
      const w = h.write(data.subarray(i, i + (1 << 20)))
      if (w) {
        waited++
        await w
      }
    }
    expect(waited).toBeGreaterThan(0)
    expect(await h.digest()).toBe(expected)
  })

  it('a destroyed worker hasher stops without a digest', async () => {
    const h = streamHash(data.length, 'worker')
    h.write(data.subarray(0, 1 << 20))
    h.destroy()
  })

  it('hashes small streams in process, and an empty stream', async () => {
    const h = streamHash(10)
    h.write(Buffer.from('abc'))
    expect(await h.digest()).toBe(createHash('sha256').update('abc').digest('hex'))
    expect(await streamHash().digest()).toBe(createHash('sha256').digest('hex'))
  })

  it('hashes files, large and small', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-hash-'))
    try {
      writeFileSync(path.join(dir, 'big'), data)
      writeFileSync(path.join(dir, 'small'), 'abc')
      expect(await hashFile(path.join(dir, 'big'), data.length)).toBe(expected)
      expect(await hashFile(path.join(dir, 'small'), 3)).toBe(createHash('sha256').update('abc').digest('hex'))
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('TarHashes: the whole stream and each entry (pieces of the chunks, or other buffers) like node:crypto', async () => {
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
    const hashes = new TarHashes()
    const a = hashes.entry()
    const b = hashes.entry()
    const chunk = 3 * (1 << 20) + 11
    // Entry a: bytes [100, 5 MiB) as subarrays of the chunks; entry b: the rest, as copies.
    const aEnd = 5 * (1 << 20)
    for (let i = 0; i < data.length; i += chunk) {
      const c = data.subarray(i, i + chunk)
      const w = hashes.chunk(c)
      const from = Math.max(i, 100)
      const to = Math.min(i + c.length, aEnd)
      if (to > from) a.write(c.subarray(from - i, to - i))
      const bFrom = Math.max(i, aEnd)
      if (i + c.length > bFrom) b.write(Buffer.from(c.subarray(bFrom - i)))
      if (w) await w
    }
    const [ha, hb] = await Promise.all([a.digest(), b.digest()])
    expect(ha).toBe(sha(data.subarray(100, aEnd)))
    expect(hb).toBe(sha(data.subarray(aEnd)))
    expect(await hashes.digest()).toBe(expected)
  })

  it('TarHashes: destroy() rejects the digests still pending (no reader waits forever)', async () => {
    const hashes = new TarHashes()
    const e = hashes.entry()
    hashes.chunk(data.subarray(0, 1 << 20))
    e.write(data.subarray(0, 10))
    const pending = e.digest()
    hashes.destroy()
    await expect(pending).rejects.toThrow(/stopped/)
  })
})
