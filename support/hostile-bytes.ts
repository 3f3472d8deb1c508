// Raw, hostile bundle bytes for the bad-input corpus (test/fixtures/bad/corpus.ts) and the hostile-input benchmark
// (bench/hostile.ts): a tar writer that writes exactly what it is told (lying headers included), zstd framing, and
// a plausible bundle.json, so a reader gets past the start of a bundle and meets the hostile part.

import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

export interface RawTarEntry {
  name: string
  /** Tar type flag: '0' file, '1' hardlink, '2' symlink, '3' char device, '4' block device, '5' dir, '6' fifo, 'x' PAX. */
  type?: string
  body?: Buffer | string
  linkName?: string
  /** Declared size when it must differ from the body (lies in the header). */
  declaredSize?: number
  /** Corrupt the header checksum. */
  badChecksum?: boolean
  mode?: number
}

/** A raw ustar writer that writes exactly what it is told, hostile entries included. */
export function rawTar(entries: RawTarEntry[], options: {end?: boolean} = {}): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body)
    const h = Buffer.alloc(512)
    h.write(e.name.slice(0, 100), 0, 100, 'utf8')
    h.write((e.mode ?? 0o644).toString(8).padStart(7, '0') + '\0', 100)
    h.write('0000000\0', 108)
    h.write('0000000\0', 116)
    h.write((e.declaredSize ?? body.length).toString(8).padStart(11, '0') + '\0', 124)
    h.write('00000000000\0', 136)
    h.write('        ', 148)
    h.write(e.type ?? '0', 156)
    if (e.linkName) h.write(e.linkName.slice(0, 100), 157, 100, 'utf8')
    h.write('ustar\0', 257)
    h.write('00', 263)
    let sum = 0
    for (const byte of h) sum += byte
    h.write((e.badChecksum ? sum + 7 : sum).toString(8).padStart(6, '0') + '\0 ', 148)
    parts.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  if (options.end !== false) parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

export function zstd(data: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c', '-3'], {input: data, maxBuffer: 1 << 30})
}

/** Concatenated zstd frames decompress to the concatenated data: a huge stream from one small frame, repeated,
 *  without ever holding the huge data in memory. */
export function zstdFrames(parts: (Buffer | {chunk: Buffer; times: number})[]): Buffer {
  const frames: Buffer[] = []
  for (const p of parts) {
    if (Buffer.isBuffer(p)) frames.push(zstd(p))
    else {
      const frame = zstd(p.chunk)
      for (let i = 0; i < p.times; i++) frames.push(frame)
    }
  }
  return Buffer.concat(frames)
}

/** A plausible bundle.json for `entries` (so a reader gets past it and meets the hostile part). */
export function bundleJson(entries: {path: string; body: Buffer | string}[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      formatVersion: 1,
      name: 'corpus',
      platform: {os: 'linux', architecture: 'amd64'},
      airpack: {version: '0.1.0'},
      compression: {algorithm: 'zstd', version: '1.5.4', level: 3},
      profiles: [],
      artifacts: [],
      entries: entries.map((e) => ({path: e.path, size: Buffer.byteLength(e.body), sha256: sha256(e.body)})),
      totals: {artifacts: 0, images: 0, charts: 0, blobs: 0, blobBytes: 0},
    }),
  )
}
