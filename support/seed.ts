// Seeds a test registry over the distribution API (no skopeo, no docker): synthetic but valid images, built
// from tiny gzip'd tar layers, as OCI indexes or Docker manifest lists, with shared layers and attestation
// entries like BuildKit pushes. Layers are real tar.gz so that skopeo and containerd can unpack them.

import {createHash, generateKeyPairSync, sign, type KeyObject} from 'node:crypto'
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

// Supply-chain artefacts as cosign and OCI 1.1 referrers push them (PRODUCT.md §13). cosign itself is not packaged
// in Debian, so the simple-signing payload is signed here the way `cosign sign --key` does it: ECDSA (P-256) over
// the payload's SHA-256, ASN.1 DER, base64 in the layer annotation `dev.cosignproject.cosign/signature`.

export const SUPPLY_MT = {
  simpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  dsse: 'application/vnd.dsse.envelope.v1+json',
  spdx: 'text/spdx+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  sigstoreBundle: 'application/vnd.dev.sigstore.bundle.v0.3+json',
} as const

/** `sha256:<hex>` → cosign's tag for it: `sha256-<hex>` plus `.sig`, `.att` or `.sbom` (none: the referrers tag). */
export function cosignTag(digest: string, suffix?: 'sig' | 'att' | 'sbom'): string {
  return `${digest.replace(':', '-')}${suffix ? `.${suffix}` : ''}`
}

/** cosign's simple-signing payload for `repository` (host/path, no tag) at `digest`. */
export function simpleSigningPayload(repository: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: {'docker-reference': repository},
        image: {'docker-manifest-digest': digest},
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  )
}

/** A P-256 key pair as `cosign generate-key-pair` makes (unencrypted PEM here). */
export function cosignKeyPair(): {privateKey: KeyObject; publicKeyPem: string} {
  const {privateKey, publicKey} = generateKeyPairSync('ec', {namedCurve: 'prime256v1'})
  return {privateKey, publicKeyPem: publicKey.export({type: 'spki', format: 'pem'}).toString()}
}

/** An artefact manifest with one config and the given layers, pushed by digest then under `tag` (when given). */
async function pushArtifact(
  reg: TestRegistry,
  repo: string,
  layers: {blob: Blob; mediaType: string; annotations?: Record<string, string>}[],
  options: {tag?: string; config?: {blob: Blob; mediaType: string}; artifactType?: string; subject?: unknown} = {},
): Promise<Blob> {
  const config = options.config ?? {
    blob: blobOf(
      JSON.stringify({
        architecture: '',
        os: '',
        rootfs: {type: 'layers', diff_ids: layers.map((l) => l.blob.digest)},
        config: {},
      }),
    ),
    mediaType: MT.ociConfig,
  }
  await pushBlob(reg, repo, config.blob)
  for (const l of layers) await pushBlob(reg, repo, l.blob)
  const bytes = jsonBytes({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    ...(options.artifactType ? {artifactType: options.artifactType} : {}),
    config: {mediaType: config.mediaType, digest: config.blob.digest, size: config.blob.size},
    layers: layers.map((l) => ({
      mediaType: l.mediaType,
      digest: l.blob.digest,
      size: l.blob.size,
      ...(l.annotations ? {annotations: l.annotations} : {}),
    })),
    ...(options.subject ? {subject: options.subject} : {}),
  })
  const manifest = await pushManifest(reg, repo, blobOf(bytes).digest, MT.ociManifest, bytes)
  if (options.tag) await pushManifest(reg, repo, options.tag, MT.ociManifest, bytes)
  return manifest
}

export interface PushedSignature {
  tag: string
  manifest: Blob
  payload: Blob
  /** base64, as in the layer annotation. */
  signature: string
}

/** `cosign sign --key`: a `.sig` tag whose layer is the simple-signing payload for `digest`, signed with `key`. */
export async function pushCosignSignature(
  reg: TestRegistry,
  repo: string,
  digest: string,
  key: KeyObject,
  options: {payloadDigest?: string} = {},
): Promise<PushedSignature> {
  const payload = blobOf(simpleSigningPayload(`${reg.host}/${repo}`, options.payloadDigest ?? digest))
  const signature = sign('sha256', payload.bytes, key).toString('base64')
  const tag = cosignTag(digest, 'sig')
  const manifest = await pushArtifact(
    reg,
    repo,
    [
      {
        blob: payload,
        mediaType: SUPPLY_MT.simpleSigning,
        annotations: {'dev.cosignproject.cosign/signature': signature},
      },
    ],
    {tag},
  )
  return {tag, manifest, payload, signature}
}

/** `cosign attest`: a `.att` tag whose layer is a DSSE envelope around an in-toto statement about `digest`. */
export async function pushCosignAttestation(reg: TestRegistry, repo: string, digest: string): Promise<Blob> {
  const statement = JSON.stringify({
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType: 'https://slsa.dev/provenance/v0.2',
    subject: [{name: `${reg.host}/${repo}`, digest: {sha256: digest.slice('sha256:'.length)}}],
    predicate: {builder: {id: 'airpack-test'}},
  })
  const envelope = blobOf(
    JSON.stringify({
      payloadType: 'application/vnd.in-toto+json',
      payload: Buffer.from(statement).toString('base64'),
      signatures: [{keyid: '', sig: 'dGVzdA=='}],
    }),
  )
  return pushArtifact(
    reg,
    repo,
    [{blob: envelope, mediaType: SUPPLY_MT.dsse, annotations: {predicateType: 'https://slsa.dev/provenance/v0.2'}}],
    {tag: cosignTag(digest, 'att')},
  )
}

/** `cosign attach sbom`: a `.sbom` tag whose layer is an SPDX document. */
export async function pushCosignSbom(reg: TestRegistry, repo: string, digest: string): Promise<Blob> {
  const sbom = blobOf(JSON.stringify({spdxVersion: 'SPDX-2.3', name: `${repo}@${digest}`, packages: []}))
  return pushArtifact(reg, repo, [{blob: sbom, mediaType: SUPPLY_MT.spdx}], {tag: cosignTag(digest, 'sbom')})
}

/**
 * An OCI 1.1 referrer of `subject` (a Sigstore bundle, as cosign 3 stores signatures), and the referrers fallback
 * tag `sha256-<hex>` that names it (distribution 2.8 has no referrers API). `subjectDigest` overrides the subject
 * the referrer names (to seed a broken one).
 */
export async function pushReferrer(
  reg: TestRegistry,
  repo: string,
  subject: {digest: string; size: number; mediaType: string},
  options: {subjectDigest?: string} = {},
): Promise<Blob> {
  const empty = blobOf('{}')
  const bundle = blobOf(JSON.stringify({mediaType: SUPPLY_MT.sigstoreBundle, verificationMaterial: {}}))
  const referrer = await pushArtifact(reg, repo, [{blob: bundle, mediaType: SUPPLY_MT.sigstoreBundle}], {
    config: {blob: empty, mediaType: SUPPLY_MT.ociEmpty},
    artifactType: SUPPLY_MT.sigstoreBundle,
    subject: {mediaType: subject.mediaType, digest: options.subjectDigest ?? subject.digest, size: subject.size},
  })
  const index = jsonBytes({
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: [
      {
        mediaType: MT.ociManifest,
        digest: referrer.digest,
        size: referrer.size,
        artifactType: SUPPLY_MT.sigstoreBundle,
      },
    ],
  })
  await pushManifest(reg, repo, cosignTag(subject.digest), MT.ociIndex, index)
  return referrer
}
