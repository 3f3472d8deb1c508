import {readFile, rm, writeFile} from 'node:fs/promises'
import {createHash} from 'node:crypto'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BundleStore} from '../../src/bundle/store.js'
import {siteBundle, type SiteBundle} from '../helpers/site-bundle.js'

// The bundle as a read-only, resolving store (src/store/types.ts): references and digests resolve from
// index.json, content is read in place through the seek table and checked against its digest.

let fx: SiteBundle

beforeAll(async () => {
  fx = await siteBundle()
})
afterAll(async () => {
  if (fx) await rm(fx.root, {recursive: true, force: true})
})

async function drain(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

describe('BundleStore', () => {
  it('resolves full references and digests, and reads verified content', async () => {
    const store = await BundleStore.open(fx.bundle)
    try {
      expect(store.identity).toBe(fx.identity.replace(/^sha256:/, ''))
      for (const img of fx.images) {
        const d = await store.resolve(img.locked.reference)
        expect(d.digest).toBe(img.locked.digest)
        expect(d.mediaType).toBe(img.locked.mediaType)
        expect((await store.resolve(img.locked.digest)).digest).toBe(img.locked.digest)
        for (const blob of img.locked.blobs) {
          expect(await store.exists(blob)).toBe(true)
          const bytes = await drain(await store.fetch(blob))
          expect('sha256:' + createHash('sha256').update(bytes).digest('hex')).toBe(blob.digest)
        }
      }
      await expect(store.resolve('registry.example.com/team/app:9.9')).rejects.toThrow(/is not in bundle site.tar.zst/)
      expect(await store.exists({mediaType: 'x', digest: 'sha256:' + '0'.repeat(64), size: 1})).toBe(false)
    } finally {
      await store.close()
    }
  })

  it('a byte changed inside a stored layer fails that blob with a digest mismatch (exit 5)', async () => {
    const copy = await siteBundle({name: 'tampered'})
    try {
      const img = copy.images[0]
      const layer = img.locked.blobs.at(-1)!
      const file = await readFile(copy.bundle)
      // Layers are stored in raw zstd blocks: their bytes sit in the file as they are.
      const layerBytes = await (async () => {
        const store = await BundleStore.open(copy.bundle)
        try {
          return await drain(await store.fetch(layer))
        } finally {
          await store.close()
        }
      })()
      const at = file.indexOf(layerBytes.subarray(20, 60))
      expect(at).toBeGreaterThan(0)
      file[at + 5] ^= 0xff
      await writeFile(copy.bundle, file)
      const store = await BundleStore.open(copy.bundle)
      try {
        await expect(drain(await store.fetch(layer))).rejects.toMatchObject({
          code: 'ERR_AIRPACK_DIGEST_MISMATCH',
          exitCode: 5,
        })
      } finally {
        await store.close()
      }
    } finally {
      await rm(copy.root, {recursive: true, force: true})
    }
  })
})
