import {createHash, generateKeyPairSync, randomBytes} from 'node:crypto'
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {finished} from 'node:stream/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {FileSeal, fingerprint, type SigningKey} from '../../src/bundle/sign.js'
import {BundleFiles, closed, MAX_PARTS, type BundleFilesTarget} from '../../src/bundle/split.js'

// BundleFiles: the compressed bytes written into the bundle file or its parts, hashed and signed on the way.
// (Large buffers are compared with equals(): toEqual walks them byte by byte.)

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
let dir: string
const data = randomBytes(3 * 1024 * 1024 + 17)

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-files-'))
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

let counter = 0
const freshDir = () => mkdtempSync(path.join(dir, `${counter++}-`))

/** Writes `bytes` in chunks of the given sizes (cycled), several queued before waiting, as the frame writer does. */
async function writeAll(files: BundleFiles, bytes: Buffer, sizes: number[]): Promise<void> {
  let i = 0
  for (let at = 0; at < bytes.length; i++) {
    const chunk = bytes.subarray(at, at + sizes[i % sizes.length])
    at += chunk.length
    if (!files.write(chunk) && files.writableLength > 4 * 1024 * 1024) await new Promise((r) => files.once('drain', r))
  }
  files.end()
  await finished(files)
}

function splitTarget(out: string, partSize: number): BundleFilesTarget {
  return {dir: out, bundleFile: 'demo.tar.zst', partSize}
}

describe('bundle files', () => {
  it('cuts parts at any size from chunks of any size: their bytes, each sha256 and the whole sha256, under temporary names', async () => {
    for (const [partSize, sizes] of [
      [1024 * 1024 - 5, [1 << 20, 3, 65536 + 7]],
      [100_000, [1 << 20]],
      [7, [1, 2, 3]],
    ] as [number, number[]][]) {
      const out = freshDir()
      const small = partSize === 7 ? data.subarray(0, 100) : data
      const files = new BundleFiles(splitTarget(out, partSize), new FileSeal())
      await writeAll(files, small, sizes)
      const result = await files.result()
      const expected = Math.ceil(small.length / partSize)
      expect(result.parts!.map((p) => p.name)).toEqual(
        Array.from({length: expected}, (_, i) => `demo.tar.zst.${String(i).padStart(3, '0')}`),
      )
      expect(result.size).toBe(small.length)
      expect(result.sha256).toBe(sha(small))
      expect(result.signature).toBeUndefined()
      // Nothing under a final name until the caller commits.
      expect(readdirSync(out).every((n) => n.startsWith('.') && n.endsWith('.partial'))).toBe(true)
      for (const [i, p] of result.parts!.entries()) {
        const bytes = readFileSync(p.output.tmpPath)
        expect(bytes.equals(small.subarray(i * partSize, (i + 1) * partSize))).toBe(true)
        expect(p.size).toBe(bytes.length)
        expect(p.sha256).toBe(sha(bytes))
        await p.output.commit()
      }
      expect(readdirSync(out).sort()).toEqual(result.parts!.map((p) => p.name))
      expect(files.outputs).toEqual(result.parts!.map((p) => p.output))
    }
  })

  it('a file that ends on a part boundary has no empty last part', async () => {
    const out = freshDir()
    const files = new BundleFiles(splitTarget(out, 1024 * 1024), new FileSeal())
    await writeAll(files, data.subarray(0, 3 * 1024 * 1024), [300_000])
    const result = await files.result()
    expect(result.parts!.map((p) => p.size)).toEqual([1024 * 1024, 1024 * 1024, 1024 * 1024])
  })

  it('one file: unsealed, nothing is hashed; sealed with a key, its sha256 and the detached signature', async () => {
    const plain = path.join(freshDir(), 'plain')
    const files = new BundleFiles({file: plain})
    await writeAll(files, data, [1 << 20])
    expect(await files.result()).toEqual({size: data.length})
    expect(readFileSync(plain).equals(data)).toBe(true)

    const {privateKey} = generateKeyPairSync('ed25519')
    const key: SigningKey = {key: privateKey, algorithm: 'ed25519', publicKeyFingerprint: fingerprint(privateKey)}
    const signed = path.join(freshDir(), 'signed')
    const sealed = new BundleFiles({file: signed}, new FileSeal(key))
    await writeAll(sealed, data, [65536, 1 << 20])
    const result = await sealed.result()
    expect(result.sha256).toBe(sha(data))
    expect(result.signature).toBeInstanceOf(Buffer)
    expect(result.parts).toBeUndefined()
    expect(readFileSync(signed).equals(data)).toBe(true)
  })

  it(`more than ${MAX_PARTS} parts: TOO_MANY_PARTS (exit 2), and once closed every part file can be removed`, async () => {
    const out = freshDir()
    const files = new BundleFiles(splitTarget(out, 1024), new FileSeal())
    const failure = new Promise<unknown>((resolve) => files.once('error', resolve))
    files.write(data.subarray(0, (MAX_PARTS + 1) * 1024))
    const error = await failure
    expect(error).toMatchObject({code: 'ERR_AIRPACK_TOO_MANY_PARTS', exitCode: 2})
    await closed(files)
    expect(files.outputs).toHaveLength(MAX_PARTS)
    for (const o of files.outputs) await o.abort()
    expect(readdirSync(out)).toEqual([])
  })

  it('a failed write (ENOSPC on /dev/full) is the stream error, never dropped bytes', async () => {
    const files = new BundleFiles({file: '/dev/full'}, new FileSeal())
    const failure = new Promise<unknown>((resolve) => files.once('error', resolve))
    files.write(data.subarray(0, 1 << 20))
    files.end()
    expect(await failure).toMatchObject({code: 'ENOSPC'})
    await closed(files)
  })
})
