import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {TarParser, TarWriter} from '../../src/bundle/tar.js'
import {
  LIMITS,
  OverBudgetError,
  checkDeclaredSize,
  formatBytes,
  limitBytes,
  readBounded,
  readFileBounded,
} from '../../src/limits.js'
import {PassThrough} from 'node:stream'

// The budgets of src/limits.ts (issue 17): overridable by environment, counted while reading, stopping one byte past.

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-limits-'))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

describe('limits', () => {
  it('every limit has a distinct variable, a reason and a positive default', () => {
    const envs = Object.values(LIMITS).map((l) => l.env)
    expect(new Set(envs).size).toBe(envs.length)
    for (const l of Object.values(LIMITS)) {
      expect(l.bytes).toBeGreaterThan(0)
      expect(l.why.length).toBeGreaterThan(10)
      expect(l.env).toMatch(/^AIRPACK_MAX_[A-Z_]+$/)
    }
    expect(LIMITS.manifest.bytes).toBe(4 * 1024 * 1024)
    expect(LIMITS.chartArchive.bytes).toBe(100 * 1024 * 1024)
    expect(LIMITS.chartFile.bytes).toBe(5 * 1024 * 1024)
  })

  it('reads overrides from the environment; ignores nonsense', () => {
    expect(limitBytes('manifest', {})).toBe(4 * 1024 * 1024)
    expect(limitBytes('manifest', {AIRPACK_MAX_MANIFEST_BYTES: '1000'})).toBe(1000)
    expect(limitBytes('manifest', {AIRPACK_MAX_MANIFEST_BYTES: '64KiB'})).toBe(64 * 1024)
    expect(limitBytes('manifest', {AIRPACK_MAX_MANIFEST_BYTES: '8M'})).toBe(8 * 1024 * 1024)
    expect(limitBytes('manifest', {AIRPACK_MAX_MANIFEST_BYTES: 'lots'})).toBe(4 * 1024 * 1024)
    expect(limitBytes('manifest', {AIRPACK_MAX_MANIFEST_BYTES: '0'})).toBe(4 * 1024 * 1024)
    expect(formatBytes(4 * 1024 * 1024)).toBe('4 MiB')
    expect(formatBytes(1536)).toBe('1536 bytes')
  })

  it('refuses a declared size before reading, naming the subject, the limit and its variable', () => {
    expect(() => checkDeclaredSize('chartFile', 5 * 1024 * 1024, 'x')).not.toThrow()
    let error: unknown
    try {
      checkDeclaredSize('chartFile', 600 * 1024 * 1024, 'entry "evil/Chart.yaml"')
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(OverBudgetError)
    expect((error as Error).message).toBe(
      'entry "evil/Chart.yaml" is 600 MiB, more than the 5 MiB allowed for a file inside a chart archive (AIRPACK_MAX_CHART_FILE_BYTES); refusing to read it',
    )
    expect((error as OverBudgetError).hint).toMatch(/AIRPACK_MAX_CHART_FILE_BYTES/)
  })

  it('stops reading a stream one chunk past the budget, and cancels the source', async () => {
    process.env.AIRPACK_MAX_TOKEN_RESPONSE_BYTES = '10KiB'
    try {
      let pulled = 0
      let closed = false
      async function* endless() {
        try {
          for (;;) {
            pulled++
            yield new Uint8Array(1024)
          }
        } finally {
          closed = true
        }
      }
      await expect(readBounded(endless(), 'tokenResponse', 'the answer')).rejects.toThrow(
        /the answer is more than the 10 KiB allowed/,
      )
      expect(pulled).toBe(11)
      expect(closed).toBe(true)
      const exact = await readBounded(
        (async function* () {
          for (let i = 0; i < 10; i++) yield new Uint8Array(1024)
        })(),
        'tokenResponse',
        'the answer',
      )
      expect(exact.length).toBe(10 * 1024)
    } finally {
      delete process.env.AIRPACK_MAX_TOKEN_RESPONSE_BYTES
    }
  })

  it('reads a file only if it is regular and within budget', async () => {
    const small = path.join(dir, 'small')
    await writeFile(small, 'abc')
    expect((await readFileBounded(small, 'signature')).toString()).toBe('abc')
    const big = path.join(dir, 'big')
    await writeFile(big, Buffer.alloc(65 * 1024))
    await expect(readFileBounded(big, 'signature', 'the signature')).rejects.toThrow(
      /the signature is 65 KiB, more than the 64 KiB allowed for a signature file/,
    )
    await expect(readFileBounded('/dev/zero', 'signature')).rejects.toThrow(/not a regular file/)
    await expect(readFileBounded(dir, 'signature')).rejects.toThrow(/not a regular file/)
  })
})

describe('tar end of archive', () => {
  async function archive(): Promise<Buffer> {
    const out = new PassThrough()
    const chunks: Buffer[] = []
    out.on('data', (c: Buffer) => chunks.push(c))
    const w = new TarWriter(out, {mtime: 0})
    await w.addBuffer('a.txt', Buffer.from('hello'))
    await w.finish()
    out.end()
    return Buffer.concat(chunks)
  }
  const parse = (bytes: Buffer) => {
    const p = new TarParser(() => undefined)
    p.push(bytes)
    p.end()
  }

  it('accepts zero padding up to a whole 10240-byte record, as GNU tar writes it', async () => {
    const tar = await archive()
    expect(tar.length).toBe(2048)
    parse(tar)
    parse(Buffer.concat([tar, Buffer.alloc(10240 - tar.length)]))
  })

  it('refuses zeros beyond the record and anything non-zero after the end marker', async () => {
    const tar = await archive()
    expect(() => parse(Buffer.concat([tar, Buffer.alloc(10240 - tar.length + 512)]))).toThrow(/bytes no digest covers/)
    expect(() => parse(Buffer.concat([tar, Buffer.alloc(512, 1)]))).toThrow(/data follows the end-of-archive marker/)
  })
})
