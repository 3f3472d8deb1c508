import {crc32} from 'node:zlib'

import {canonicalJson} from '../util/canonical-json.js'
import {encodeDirectoryHeader, encodeFileHeader, padding} from './tar.js'

// The cluster definition Local UI imports (palette-edge-formats.md §4): a gzipped tar whose entries all sit
// under `spc/`. Its inner layout is undocumented by Spectro Cloud; airpack writes
//   spc/metadata.json            {name, cloudType, profiles: [{name, version, file}]}
//   spc/profiles/NN-<slug>.json  each input profile's export document, in input order
//   spc/variables.json           the --var values
// Deterministic on any machine: fixed header fields, and gzip written here with stored (uncompressed) deflate
// blocks, because zlib builds differ in their compressed output (Node bundles Chromium's zlib, whose SIMD paths
// depend on the CPU). The file is small, so compression buys nothing.

export interface DefinitionProfile {
  name: string
  version: string
  document: unknown
}

export interface DefinitionInput {
  name: string
  cloudType: string
  profiles: DefinitionProfile[]
  variables: Record<string, string>
  /** Seconds since the epoch for every entry: 0, or SOURCE_DATE_EPOCH. */
  mtime: number
}

export function slug(text: string): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60)
  return s || 'profile'
}

/** `01-edge-k3s.json`, numbered in input order so that the layer order of the cluster is kept. */
export function profileFileName(index: number, name: string): string {
  return `${String(index + 1).padStart(2, '0')}-${slug(name)}.json`
}

export function definitionFiles(input: DefinitionInput): {path: string; data: Buffer}[] {
  const profiles = input.profiles.map((p, i) => ({...p, file: `profiles/${profileFileName(i, p.name)}`}))
  const files = [
    {
      path: 'spc/metadata.json',
      data: Buffer.from(
        canonicalJson({
          name: input.name,
          cloudType: input.cloudType,
          profiles: profiles.map((p) => ({name: p.name, version: p.version, file: p.file})),
        }),
      ),
    },
    ...profiles.map((p) => ({path: `spc/${p.file}`, data: Buffer.from(canonicalJson(p.document))})),
    {path: 'spc/variables.json', data: Buffer.from(canonicalJson(input.variables))},
  ]
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

/** The bytes of NAME-definition.tgz. */
export function buildDefinitionTgz(input: DefinitionInput): Buffer {
  const opts = {mtime: input.mtime}
  const parts: Buffer[] = [encodeDirectoryHeader('spc/', opts), encodeDirectoryHeader('spc/profiles/', opts)]
  for (const file of definitionFiles(input)) {
    parts.push(encodeFileHeader(file.path, file.data.length, opts), file.data, padding(file.data.length))
  }
  parts.push(Buffer.alloc(1024))
  return gzipStored(Buffer.concat(parts))
}

/** RFC 1952 gzip of `data` using only stored deflate blocks: identical bytes from any zlib, on any machine. */
export function gzipStored(data: Buffer): Buffer {
  // ID1 ID2 CM=8 FLG=0 MTIME=0 XFL=0 OS=255 (unknown: names no machine)
  const out: Buffer[] = [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])]
  const MAX = 65535
  let offset = 0
  do {
    const len = Math.min(MAX, data.length - offset)
    const final = offset + len >= data.length ? 1 : 0
    const head = Buffer.alloc(5)
    head[0] = final
    head.writeUInt16LE(len, 1)
    head.writeUInt16LE(~len & 0xffff, 3)
    out.push(head, data.subarray(offset, offset + len))
    offset += len
  } while (offset < data.length)
  const trailer = Buffer.alloc(8)
  trailer.writeUInt32LE(crc32(data) >>> 0, 0)
  trailer.writeUInt32LE(data.length % 2 ** 32, 4)
  out.push(trailer)
  return Buffer.concat(out)
}
