// Large, realistic, reproducible registry content for the benchmark (and for any test that needs more than the
// tiny layers of seed.ts): multi-arch OCI images whose layers are real gzip'd tars of seeded pseudo-random bytes,
// with a base layer shared by every image of a platform (as in real stacks) and per-image layers.
//
// Nothing is ever held whole in memory: a layer is generated (AES-128-CTR keystream from the seed — fast and
// incompressible, like real compressed layers), tar-framed, gzip'd at level 0 (stored blocks: valid gzip, no CPU
// spent compressing noise), hashed (tar → diff_id, gz → digest) and uploaded in one streaming PATCH.

import {createCipheriv, createHash} from 'node:crypto'
import http from 'node:http'
import {Readable, Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGzip} from 'node:zlib'

import {addonProfile} from './profiles.js'
import type {TestRegistry} from './registry.js'
import {blobOf, MT, pushBlob, pushManifest, ustarHeader} from './seed.js'

export interface BenchContentOptions {
  /** Total layer bytes per platform (approximately: tar and gzip framing add a little). */
  bytesPerPlatform: number
  /** Architectures, e.g. ['amd64', 'arm64']. */
  platforms: string[]
  /** Number of images (repositories). Default 4. */
  images?: number
  /** Own layers per image, besides the shared base. Default 2. */
  layersPerImage?: number
  /** Share of bytesPerPlatform in the base layer every image of a platform shares. Default 0.3. */
  baseFraction?: number
  /** Seed of the bytes: the same seed gives the same digests. Default 'airpack-bench'. */
  seed?: string
  /** Repository prefix. Default 'bench'. */
  prefix?: string
  tag?: string
  /** Basic-auth credentials for a registry behind htpasswd. */
  auth?: {username: string; password: string}
  log?: (line: string) => void
}

export interface BenchImage {
  /** `127.0.0.1:PORT/bench/app-0:v1` */
  reference: string
  repository: string
  indexDigest: string
  /** Per architecture: manifest digest and the layer + config bytes it references. */
  platforms: Record<string, {manifestDigest: string; layerDigests: string[]; bytes: number}>
}

export interface BenchContent {
  images: BenchImage[]
  /** Distinct blob bytes per platform (shared base layer counted once). */
  bytesPerPlatform: Record<string, number>
}

export interface GeneratedLayer {
  digest: string
  diffId: string
  size: number
}

/** Parses `512M`, `1G`, `1.5GiB`, `2000000` into bytes (binary multiples). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text)
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)} (use e.g. 512M, 1G, 4G)`)
  const scale = {'': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40}[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ]
  return Math.round(Number(m[1]) * scale)
}

/** `size` seeded pseudo-random bytes as a stream of 1 MiB chunks. */
export function randomBytesStream(seed: string, size: number): Readable {
  const key = createHash('sha256').update(`key\0${seed}`).digest().subarray(0, 16)
  const iv = createHash('sha256').update(`iv\0${seed}`).digest().subarray(0, 16)
  const cipher = createCipheriv('aes-128-ctr', key, iv)
  const zeros = Buffer.alloc(1 << 20)
  let left = size
  return new Readable({
    highWaterMark: 1 << 20,
    read() {
      if (left <= 0) {
        this.push(null)
        return
      }
      const n = Math.min(left, zeros.length)
      left -= n
      this.push(cipher.update(n === zeros.length ? zeros : zeros.subarray(0, n)))
    },
  })
}

/** A gzip'd single-file tar of seeded bytes, as a stream; `onDone` gets diff_id (sha256 of the tar). */
function layerStream(seed: string, payloadSize: number): {stream: Readable; tarDigest: () => string} {
  const tarHash = createHash('sha256')
  let tarDigest = ''
  let headerSent = false
  const frame = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (!headerSent) {
        headerSent = true
        const header = ustarHeader(`data/${seed.replace(/[^a-zA-Z0-9._-]/g, '_')}.bin`, payloadSize)
        tarHash.update(header)
        this.push(header)
      }
      tarHash.update(chunk)
      cb(null, chunk)
    },
    flush(cb) {
      const tail = Buffer.concat([Buffer.alloc((512 - (payloadSize % 512)) % 512), Buffer.alloc(1024)])
      tarHash.update(tail)
      tarDigest = 'sha256:' + tarHash.digest('hex')
      cb(null, tail)
    },
  })
  const gz = createGzip({level: 0, chunkSize: 1 << 20})
  const source = randomBytesStream(seed, payloadSize)
  source.pipe(frame).pipe(gz)
  source.on('error', (e) => gz.destroy(e))
  frame.on('error', (e) => gz.destroy(e))
  return {stream: gz, tarDigest: () => tarDigest}
}

type Auth = {username: string; password: string} | undefined

function request(
  url: URL,
  method: string,
  headers: Record<string, string | number>,
  body?: Readable,
  auth?: Auth,
): Promise<{status: number; headers: http.IncomingHttpHeaders; text: string}> {
  return new Promise((resolve, reject) => {
    const all = auth
      ? {...headers, authorization: 'Basic ' + Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}
      : headers
    const req = http.request(url, {method, headers: all}, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, text}))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body) pipeline(body, req).catch(reject)
    else req.end()
  })
}

/** Generate one layer and upload it to `repo` with a single streaming PATCH. Memory stays at a few MiB. */
export async function pushGeneratedLayer(
  registryUrl: string,
  repo: string,
  seed: string,
  payloadSize: number,
  auth?: Auth,
): Promise<GeneratedLayer> {
  const start = await request(
    new URL(`/v2/${repo}/blobs/uploads/`, registryUrl),
    'POST',
    {'content-length': 0},
    undefined,
    auth,
  )
  if (start.status !== 202) throw new Error(`upload start for ${repo}: ${start.status} ${start.text}`)
  const {stream, tarDigest} = layerStream(seed, payloadSize)
  const gzHash = createHash('sha256')
  let size = 0
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      gzHash.update(chunk)
      size += chunk.length
      cb(null, chunk)
    },
  })
  const patch = await request(
    new URL(start.headers.location!, registryUrl),
    'PATCH',
    {'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked'},
    stream.pipe(meter),
    auth,
  )
  if (patch.status !== 202) throw new Error(`upload PATCH for ${repo}: ${patch.status} ${patch.text}`)
  const digest = 'sha256:' + gzHash.digest('hex')
  const done = new URL(patch.headers.location!, registryUrl)
  done.searchParams.set('digest', digest)
  const put = await request(done, 'PUT', {'content-length': 0}, undefined, auth)
  if (put.status !== 201) throw new Error(`upload PUT for ${repo}: ${put.status} ${put.text}`)
  return {digest, diffId: tarDigest(), size}
}

/** Make `digest` (already in `fromRepo`) available in `repo` without re-uploading it. */
async function mountBlob(
  registryUrl: string,
  repo: string,
  digest: string,
  fromRepo: string,
  auth?: Auth,
): Promise<void> {
  const url = new URL(`/v2/${repo}/blobs/uploads/`, registryUrl)
  url.searchParams.set('mount', digest)
  url.searchParams.set('from', fromRepo)
  const res = await request(url, 'POST', {'content-length': 0}, undefined, auth)
  if (res.status !== 201) throw new Error(`cross-repository mount of ${digest} into ${repo}: ${res.status} ${res.text}`)
}

/** Seed `registry` with the benchmark's images; deterministic for equal options. */
export async function seedBenchContent(registry: TestRegistry, options: BenchContentOptions): Promise<BenchContent> {
  const imagesCount = options.images ?? 4
  const layersPerImage = options.layersPerImage ?? 2
  const baseFraction = options.baseFraction ?? 0.3
  const seed = options.seed ?? 'airpack-bench'
  const prefix = options.prefix ?? 'bench'
  const tag = options.tag ?? 'v1'
  const log = options.log ?? (() => {})
  const auth = options.auth
  const baseSize = Math.floor(options.bytesPerPlatform * baseFraction)
  const ownSize = Math.floor((options.bytesPerPlatform - baseSize) / (imagesCount * layersPerImage))

  const images: BenchImage[] = Array.from({length: imagesCount}, (_, i) => ({
    reference: `${registry.host}/${prefix}/app-${i}:${tag}`,
    repository: `${prefix}/app-${i}`,
    indexDigest: '',
    platforms: {},
  }))
  const bytesPerPlatform: Record<string, number> = {}
  const entries: unknown[][] = images.map(() => [])

  for (const arch of options.platforms) {
    const started = Date.now()
    const base = await pushGeneratedLayer(registry.url, images[0]!.repository, `${seed}/${arch}/base`, baseSize, auth)
    let distinct = base.size
    for (const [i, image] of images.entries()) {
      if (i > 0) await mountBlob(registry.url, image.repository, base.digest, images[0]!.repository, auth)
      const own: GeneratedLayer[] = []
      for (let l = 0; l < layersPerImage; l++)
        own.push(
          await pushGeneratedLayer(
            registry.url,
            image.repository,
            `${seed}/${arch}/app-${i}/layer-${l}`,
            ownSize,
            auth,
          ),
        )
      const layers = [base, ...own]
      distinct += own.reduce((n, l) => n + l.size, 0)
      const {manifest: m, config} = await pushPlatformManifest(registry, image.repository, arch, layers, {auth})
      image.platforms[arch] = {
        manifestDigest: m.digest,
        layerDigests: layers.map((l) => l.digest),
        bytes: layers.reduce((n, l) => n + l.size, 0) + config.size,
      }
      entries[i]!.push({
        mediaType: MT.ociManifest,
        digest: m.digest,
        size: m.size,
        platform: {architecture: arch, os: 'linux'},
      })
    }
    bytesPerPlatform[arch] = distinct
    log(
      `seeded linux/${arch}: ${(distinct / 2 ** 20).toFixed(0)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    )
  }
  for (const [i, image] of images.entries()) {
    const index = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: MT.ociIndex, manifests: entries[i]}))
    image.indexDigest = (await pushManifest(registry, image.repository, tag, MT.ociIndex, index, auth)).digest
  }
  return {images, bytesPerPlatform}
}

/**
 * The config and OCI manifest of one platform over already-pushed `layers`, pushed under `reference` (by default its
 * own digest, for an index to list; a tag makes it a single-platform image).
 */
export async function pushPlatformManifest(
  registry: TestRegistry,
  repository: string,
  arch: string,
  layers: GeneratedLayer[],
  options: {reference?: string; auth?: Auth} = {},
): Promise<{manifest: {digest: string; size: number}; config: {digest: string; size: number}}> {
  const config = blobOf(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      rootfs: {type: 'layers', diff_ids: layers.map((l) => l.diffId)},
      config: {Cmd: ['/bin/true']},
    }),
  )
  await pushBlob(registry, repository, config, options.auth)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: {mediaType: MT.ociConfig, digest: config.digest, size: config.size},
      layers: layers.map((l) => ({mediaType: MT.ociLayer, digest: l.digest, size: l.size})),
    }),
  )
  const pushed = await pushManifest(
    registry,
    repository,
    options.reference ?? blobOf(manifest).digest,
    MT.ociManifest,
    manifest,
    options.auth,
  )
  return {manifest: pushed, config}
}

/** An add-on profile in Palette's export shape whose one pack lists `references` as content images. */
export function benchProfile(references: string[], name = 'bench'): Record<string, unknown> {
  return addonProfile({
    name,
    description: 'airpack benchmark content',
    labels: {},
    pack: 'bench-images',
    images: references,
  })
}
