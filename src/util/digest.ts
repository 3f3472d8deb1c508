import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'

export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/

export function isDigest(value: string): boolean {
  return DIGEST_RE.test(value)
}

/** The hex part of a `sha256:<hex>` digest, after checking its shape (so it is safe inside a path). */
export function digestHex(digest: string): string {
  if (!isDigest(digest)) throw new TypeError(`not a sha256 digest: ${JSON.stringify(digest)}`)
  return digest.slice('sha256:'.length)
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

export function sha256Digest(data: string | Uint8Array): string {
  return `sha256:${sha256Hex(data)}`
}

export async function sha256File(path: string): Promise<{hex: string; size: number}> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of createReadStream(path, {highWaterMark: 1 << 20})) {
    hash.update(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  return {hex: hash.digest('hex'), size}
}
