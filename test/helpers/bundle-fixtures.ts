// Bundle inputs made directly, without a registry: blobs put into a BlobStore and the Lock that names them,
// shaped exactly as the resolver writes it. Images are real (gzip'd tar layers, configs with diff_ids) so that
// skopeo and containerd can read the bundles built from them.

import {createCipheriv, createHash} from 'node:crypto'
import {gunzipSync} from 'node:zlib'

import {BlobStore} from '../../src/cache/store.js'
import type {Lock, LockedChart, LockedImage} from '../../src/lock/types.js'
import type {Descriptor, Platform} from '../../src/oci/descriptor.js'
import {blobOf, layerOf, MT, type Blob} from './seed.js'

export interface FixtureImage {
  locked: LockedImage
  /** Digest of the platform manifest kept for the target (what skopeo copies). */
  platformDigest: string
}

function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 3))
}

function configFor(arch: string, layers: Blob[], variant?: string): Blob {
  return blobOf(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      ...(variant ? {variant} : {}),
      rootfs: {
        type: 'layers',
        diff_ids: layers.map((l) => 'sha256:' + createHash('sha256').update(gunzipSync(l.bytes)).digest('hex')),
      },
      config: {Cmd: ['/bin/true']},
    }),
  )
}

/** Deterministic incompressible bytes (AES-CTR keystream). */
function noise(size: number): Buffer {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, 1), Buffer.alloc(16)).update(Buffer.alloc(size))
}

const desc = (mediaType: string, b: Blob): Descriptor => ({mediaType, digest: b.digest, size: b.size})

/**
 * A multi-platform image held in `store`, locked for `arch`: the index and only that platform's manifest,
 * config and layers are stored; the other platforms (and an attestation) are recorded as omitted.
 */
export async function fixtureImage(
  store: BlobStore,
  reference: string,
  options: {arch: 'amd64' | 'arm64'; format?: 'oci' | 'docker'; shared?: Blob; seed?: string; single?: boolean},
): Promise<FixtureImage> {
  const format = options.format ?? 'oci'
  const manifestType = format === 'oci' ? MT.ociManifest : MT.dockerManifest
  const configType = format === 'oci' ? MT.ociConfig : MT.dockerConfig
  const layerType = format === 'oci' ? MT.ociLayer : MT.dockerLayer
  const platforms: {architecture: string; variant?: string}[] = [
    {architecture: 'amd64'},
    {architecture: 'arm64', variant: 'v8'},
  ]
  const built: Record<string, {manifest: Blob; config: Blob; layers: Blob[]; platform: Platform}> = {}
  for (const p of platforms) {
    const layers = [
      ...(options.shared ? [options.shared] : []),
      layerOf({[`bin/${options.seed ?? reference}`]: `${reference} ${p.architecture}`}),
    ]
    const config = configFor(p.architecture, layers, p.variant)
    const manifest = blobOf(
      jsonBytes({
        schemaVersion: 2,
        mediaType: manifestType,
        config: desc(configType, config),
        layers: layers.map((l) => desc(layerType, l)),
      }),
    )
    built[p.architecture] = {
      manifest,
      config,
      layers,
      platform: {os: 'linux', architecture: p.architecture, ...(p.variant ? {variant: p.variant} : {})},
    }
  }
  const target = built[options.arch]
  for (const b of [target.manifest, target.config, ...target.layers]) await store.putBytes(b.bytes, b.digest)
  const blobs: Descriptor[] = [
    desc(manifestType, target.manifest),
    desc(configType, target.config),
    ...target.layers.map((l) => desc(layerType, l)),
  ]
  const platformManifest: Descriptor = {...desc(manifestType, target.manifest), platform: target.platform}
  if (options.single) {
    return {
      locked: {
        reference,
        digest: target.manifest.digest,
        mediaType: manifestType,
        size: target.manifest.size,
        platformManifest,
        blobs,
        omittedPlatforms: [],
      },
      platformDigest: target.manifest.digest,
    }
  }
  const entries: unknown[] = []
  const omitted: Platform[] = []
  for (const b of Object.values(built)) {
    entries.push({...desc(manifestType, b.manifest), platform: b.platform})
    if (b !== target) omitted.push(b.platform)
  }
  if (format === 'oci') {
    entries.push({
      mediaType: MT.ociManifest,
      digest: 'sha256:' + createHash('sha256').update(`attestation of ${reference}`).digest('hex'),
      size: 500,
      platform: {architecture: 'unknown', os: 'unknown'},
      annotations: {'vnd.docker.reference.type': 'attestation-manifest'},
    })
    omitted.push({os: 'unknown', architecture: 'unknown'})
  }
  const indexType = format === 'oci' ? MT.ociIndex : MT.dockerList
  const index = blobOf(jsonBytes({schemaVersion: 2, mediaType: indexType, manifests: entries}))
  await store.putBytes(index.bytes, index.digest)
  return {
    locked: {
      reference,
      digest: index.digest,
      mediaType: indexType,
      size: index.size,
      platformManifest,
      blobs: [desc(indexType, index), ...blobs],
      omittedPlatforms: omitted,
    },
    platformDigest: target.manifest.digest,
  }
}

/** A Helm chart stored as an OCI artifact (config + chart layer), as `helm push` makes it. */
export async function fixtureChart(
  store: BlobStore,
  repository: string,
  name: string,
  version: string,
): Promise<LockedChart> {
  const chartTgz = layerOf({[`${name}/Chart.yaml`]: `apiVersion: v2\nname: ${name}\nversion: ${version}\n`})
  const config = blobOf(JSON.stringify({apiVersion: 'v2', name, version}))
  const manifest = blobOf(
    jsonBytes({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: {mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: config.digest, size: config.size},
      layers: [
        {
          mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
          digest: chartTgz.digest,
          size: chartTgz.size,
        },
      ],
    }),
  )
  for (const b of [manifest, config, chartTgz]) await store.putBytes(b.bytes, b.digest)
  return {
    repository,
    name,
    version,
    digest: chartTgz.digest,
    size: chartTgz.size,
    manifest: desc(MT.ociManifest, manifest),
    blobs: [
      {mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: config.digest, size: config.size},
      {mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', digest: chartTgz.digest, size: chartTgz.size},
    ],
    reference: `${repository.replace(/^oci:\/\//, '')}/${name}:${version}`,
  }
}

export const FIXTURE_PROFILE_DOC = {
  metadata: {name: 'edge-addons', labels: {}},
  spec: {version: '1.0.0', template: {type: 'add-on', cloudType: 'edge-native', packs: []}},
}

/** A small bundle input: two OCI images sharing a layer, a Docker manifest list, a single manifest, a chart. */
export async function fixtureLock(
  storeRoot: string,
  options: {
    arch?: 'amd64' | 'arm64'
    withChart?: boolean
    registry?: string
    /** Bytes of incompressible content in the layer two images share (a layer of several MiB, raw-framed). */
    sharedLayerNoise?: number
  } = {},
): Promise<{
  store: BlobStore
  lock: Lock
  images: FixtureImage[]
  profiles: {name: string; version: string; sha256: string; document: unknown}[]
}> {
  const arch = options.arch ?? 'amd64'
  const reg = options.registry ?? 'registry.example.com'
  const store = new BlobStore(storeRoot)
  await store.init()
  const shared = layerOf({
    'etc/shared': 'a layer two images share',
    ...(options.sharedLayerNoise ? {'etc/noise': noise(options.sharedLayerNoise)} : {}),
  })
  const images = [
    await fixtureImage(store, `${reg}/team/app:1.0`, {arch, shared}),
    await fixtureImage(store, `${reg}/team/sidecar:2.1`, {arch, shared}),
    await fixtureImage(store, `${reg}/legacy/tool:0.9`, {arch, format: 'docker'}),
    await fixtureImage(store, `${reg}/solo/one:latest`, {arch, single: true}),
  ]
  const lock: Lock = {
    lockVersion: 1,
    platform: {os: 'linux', architecture: arch},
    images: Object.fromEntries(images.map((i) => [i.locked.reference, i.locked])),
    charts: {},
    files: {},
    profiles: [{name: 'edge-addons', version: '1.0.0', sha256: 'a'.repeat(64)}],
  }
  if (options.withChart ?? true) {
    const chart = await fixtureChart(store, `oci://${reg}/charts`, 'hello', '0.1.0')
    lock.charts[`${chart.repository}#${chart.name}@${chart.version}`] = chart
  }
  return {
    store,
    lock,
    images,
    profiles: [{name: 'edge-addons', version: '1.0.0', sha256: 'a'.repeat(64), document: FIXTURE_PROFILE_DOC}],
  }
}
