// Seeds a test registry over the distribution API (no skopeo, no docker): synthetic but valid images, built
// from tiny gzip'd tar layers, as OCI indexes or Docker manifest lists, with shared layers and attestation
// entries like BuildKit pushes. Layers are real tar.gz so that skopeo and containerd can unpack them.

import {createHash} from 'node:crypto'
import {gunzipSync, gzipSync} from 'node:zlib'

import type {TestRegistry} from './registry.js'

export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  inTotoLayer: 'application/vnd.in-toto+json',
} as const

export interface Blob {
  digest: string
  size: number
  bytes: Buffer
}

export function blobOf(bytes: Buffer | string): Blob {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)
  return {digest: 'sha256:' + createHash('sha256').update(b).digest('hex'), size: b.length, bytes: b}
}

/** One ustar header block for a regular file (mode 0644, uid/gid 0, mtime 0), checksum filled in. */
export function ustarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512)
  header.write(name, 0, 100, 'utf8')
  header.write('0000644\0', 100)
  header.write('0000000\0', 108)
  header.write('0000000\0', 116)
  header.write(size.toString(8).padStart(11, '0') + '\0', 124)
  header.write('00000000000\0', 136)
  header.write('        ', 148)
  header.write('0', 156)
  header.write('ustar\0', 257)
  header.write('00', 263)
  let sum = 0
  for (const byte of header) sum += byte
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
  return header
}

/** A minimal ustar archive (regular files only), deterministic. */
export function tarOf(files: Record<string, Buffer | string>): Buffer {
  const parts: Buffer[] = []
  for (const [name, content] of Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const body = Buffer.isBuffer(content) ? content : Buffer.from(content)
    parts.push(ustarHeader(name, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

/** A gzip'd tar layer holding the given files. `gzipSync` output is deterministic for equal input. */
export function layerOf(files: Record<string, Buffer | string>): Blob {
  return blobOf(gzipSync(tarOf(files), {level: 1}))
}

export async function pushBlob(
  reg: TestRegistry,
  repo: string,
  blob: Blob,
  auth?: {username: string; password: string},
): Promise<void> {
  const head = await reg.fetch(`/v2/${repo}/blobs/${blob.digest}`, {method: 'HEAD', auth})
  if (head.status === 200) return
  const start = await reg.fetch(`/v2/${repo}/blobs/uploads/`, {method: 'POST', auth})
  if (start.status !== 202) throw new Error(`blob upload start ${start.status}: ${await start.text()}`)
  await start.arrayBuffer()
  const location = new URL(start.headers.get('location')!, reg.url)
  location.searchParams.set('digest', blob.digest)
  const put = await reg.fetch(location.pathname + location.search, {
    method: 'PUT',
    body: blob.bytes,
    headers: {'content-type': 'application/octet-stream'},
    auth,
  })
  if (put.status !== 201) throw new Error(`blob upload ${put.status}: ${await put.text()}`)
  await put.arrayBuffer()
}

export async function pushManifest(
  reg: TestRegistry,
  repo: string,
  reference: string,
  mediaType: string,
  bytes: Buffer,
  auth?: {username: string; password: string},
): Promise<Blob> {
  const res = await reg.fetch(`/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    body: bytes,
    headers: {'content-type': mediaType},
    auth,
  })
  if (res.status !== 201) throw new Error(`manifest put ${repo}:${reference} ${res.status}: ${await res.text()}`)
  await res.arrayBuffer()
  return blobOf(bytes)
}

export interface PlatformSpec {
  os?: string
  architecture: string
  variant?: string
  /** Layers of this platform's image; share Blob objects between platforms/images to test deduplication. */
  layers: Blob[]
}

export interface SeededImage {
  /** `127.0.0.1:PORT/repo:tag` */
  reference: string
  /** Digest of the index / manifest list (or of the single manifest when `single` was used). */
  digest: string
  mediaType: string
  bytes: Buffer
  manifests: Record<string, {digest: string; size: number; config: Blob; layers: Blob[]; bytes: Buffer}>
}

function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 3))
}

/**
 * Push a multi-platform image. `format: 'oci'` → OCI index of OCI manifests; `'docker'` → Docker manifest list
 * of schema-2 manifests. `attestations` adds BuildKit-style `unknown/unknown` entries. `single` pushes only the
 * first platform's manifest under the tag, with no index.
 */
export async function pushImage(
  reg: TestRegistry,
  repo: string,
  tag: string,
  platforms: PlatformSpec[],
  options: {
    format?: 'oci' | 'docker'
    attestations?: boolean
    single?: boolean
    auth?: {username: string; password: string}
  } = {},
): Promise<SeededImage> {
  const format = options.format ?? 'oci'
  const manifestType = format === 'oci' ? MT.ociManifest : MT.dockerManifest
  const configType = format === 'oci' ? MT.ociConfig : MT.dockerConfig
  const layerType = format === 'oci' ? MT.ociLayer : MT.dockerLayer
  const auth = options.auth
  const manifests: SeededImage['manifests'] = {}
  const entries: unknown[] = []
  for (const p of platforms) {
    const os = p.os ?? 'linux'
    const config = blobOf(
      JSON.stringify({
        architecture: p.architecture,
        os,
        ...(p.variant ? {variant: p.variant} : {}),
        rootfs: {
          type: 'layers',
          diff_ids: p.layers.map((l) => 'sha256:' + createHash('sha256').update(gunzipSync(l.bytes)).digest('hex')),
        },
        config: {Cmd: ['/bin/true']},
      }),
    )
    for (const layer of p.layers) await pushBlob(reg, repo, layer, auth)
    await pushBlob(reg, repo, config, auth)
    const manifestBytes = jsonBytes({
      schemaVersion: 2,
      mediaType: manifestType,
      config: {mediaType: configType, digest: config.digest, size: config.size},
      layers: p.layers.map((l) => ({mediaType: layerType, digest: l.digest, size: l.size})),
    })
    const m = blobOf(manifestBytes)
    const key = `${os}/${p.architecture}${p.variant ? '/' + p.variant : ''}`
    manifests[key] = {digest: m.digest, size: m.size, config, layers: p.layers, bytes: manifestBytes}
    if (options.single) {
      await pushManifest(reg, repo, tag, manifestType, manifestBytes, auth)
      return {
        reference: `${reg.host}/${repo}:${tag}`,
        digest: m.digest,
        mediaType: manifestType,
        bytes: manifestBytes,
        manifests,
      }
    }
    await pushManifest(reg, repo, m.digest, manifestType, manifestBytes, auth)
    entries.push({
      mediaType: manifestType,
      digest: m.digest,
      size: m.size,
      platform: {architecture: p.architecture, os, ...(p.variant ? {variant: p.variant} : {})},
    })
    if (options.attestations && format === 'oci') {
      const statement = blobOf(
        JSON.stringify({_type: 'https://in-toto.io/Statement/v0.1', subject: [{digest: m.digest}]}),
      )
      const emptyConfig = blobOf('{}')
      await pushBlob(reg, repo, statement, auth)
      await pushBlob(reg, repo, emptyConfig, auth)
      const att = jsonBytes({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: emptyConfig.digest,
          size: emptyConfig.size,
        },
        layers: [
          {
            mediaType: MT.inTotoLayer,
            digest: statement.digest,
            size: statement.size,
            annotations: {'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2'},
          },
        ],
      })
      const a = await pushManifest(reg, repo, blobOf(att).digest, MT.ociManifest, att, auth)
      entries.push({
        mediaType: MT.ociManifest,
        digest: a.digest,
        size: a.size,
        platform: {architecture: 'unknown', os: 'unknown'},
        annotations: {'vnd.docker.reference.digest': m.digest, 'vnd.docker.reference.type': 'attestation-manifest'},
      })
    }
  }
  const indexType = format === 'oci' ? MT.ociIndex : MT.dockerList
  const indexBytes = jsonBytes({schemaVersion: 2, mediaType: indexType, manifests: entries})
  const index = await pushManifest(reg, repo, tag, indexType, indexBytes, auth)
  return {
    reference: `${reg.host}/${repo}:${tag}`,
    digest: index.digest,
    mediaType: indexType,
    bytes: indexBytes,
    manifests,
  }
}
