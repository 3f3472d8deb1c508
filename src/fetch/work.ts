import type {BlobStore} from '../cache/store.js'
import {ResolveError} from '../errors.js'
import {lockedImageBlobs, type Lock} from '../lock/types.js'
import {plainDescriptor, type Descriptor} from '../oci/descriptor.js'
import {MediaType} from '../oci/media-types.js'
import type {RegistryClient} from '../registry/client.js'
import {parseReference} from '../registry/reference.js'
import {RegistryRepository, UrlBlob} from '../registry/store.js'
import {chartManifest, chartSourceKind, lockedOciLocation, readChartMetadata} from '../resolve/charts.js'
import type {RangeReadableStore} from '../store/types.js'

// What a lock asks the fetch to bring in, per artifact: its blobs, the root of its graph and the store it is
// copied from (a registry repository, or the URL of a classic chart archive). Classic Helm charts have a
// generated OCI manifest and config: those are rebuilt from the archive once it is in the cache.

/** Told which endpoint host answered a read of `d` (for the report's `source`). */
export type ServedBy = (host: string, d: Descriptor) => void

export interface Work {
  kind: 'image' | 'chart'
  reference: string
  /** Hosts that served a downloaded blob of this artifact (for the report; never for the lock or the bundle). */
  servedBy: Set<string>
  blobs: Descriptor[]
  /** The top of the artifact's graph (index, manifest, or a classic chart's archive). */
  root: Descriptor
  source: RangeReadableStore
  /** Blobs that are generated, not downloaded (classic chart manifest and config). */
  generated?: Set<string>
  regenerate?: () => Promise<void>
}

export function workOf(lock: Lock, client: RegistryClient, store: BlobStore, served: ServedBy): Work[] {
  const work: Work[] = []
  for (const image of Object.values(lock.images)) {
    const ref = parseReference(image.reference)
    work.push({
      kind: 'image',
      reference: image.reference,
      servedBy: new Set(),
      // Its supply-chain artefacts live in the same repository: fetched with it (roots of their own: nothing in
      // the image's graph names them).
      blobs: lockedImageBlobs(image),
      root: plainDescriptor(image),
      source: new RegistryRepository(client, ref.registry, ref.repository, {kind: 'image', onServed: served}),
    })
  }
  for (const chart of Object.values(lock.charts)) {
    if (chartSourceKind(chart.repository) === 'oci') {
      const {registry, repository} = lockedOciLocation(chart)
      work.push({
        kind: 'chart',
        reference: chart.reference,
        servedBy: new Set(),
        blobs: chart.blobs,
        root: plainDescriptor(chart.manifest),
        source: new RegistryRepository(client, registry, repository, {kind: 'helm', onServed: served}),
      })
      continue
    }
    work.push(classicChartWork(chart, client, store, served))
  }
  return work
}

/** A classic chart: the archive from its URL, the manifest and config generated from it. */
function classicChartWork(chart: Lock['charts'][string], client: RegistryClient, store: BlobStore, served: ServedBy) {
  if (!chart.url)
    throw new ResolveError(
      'LOCK_INCOMPLETE',
      `lock entry for chart ${chart.name} ${chart.version} has no archive url`,
      {
        hint: 'Regenerate the lock with `airpack profile resolve --lock-file`.',
      },
    )
  const generated = new Set(chart.blobs.filter((b) => b.digest !== chart.digest).map((b) => b.digest))
  const archive = chart.blobs.find((b) => b.digest === chart.digest) ?? {
    mediaType: MediaType.helmChart,
    digest: chart.digest,
    size: chart.size,
  }
  const regenerate = async () => {
    if ((await Promise.all([...generated].map((g) => store.has(g)))).every(Boolean)) return
    const meta = await readChartMetadata(store.blobPath(chart.digest))
    const {config, manifest} = chartManifest(meta, {digest: chart.digest, size: chart.size})
    const want = (mt: string) => chart.blobs.find((b) => b.mediaType === mt)?.digest
    await store.putBytes(config, want(MediaType.helmConfig))
    await store.putBytes(manifest, chart.manifest.digest)
  }
  return {
    kind: 'chart',
    reference: chart.reference,
    servedBy: new Set<string>(),
    blobs: chart.blobs,
    generated,
    regenerate,
    root: plainDescriptor(archive),
    source: new UrlBlob(client, new URL(chart.url), chart.digest, served),
  } satisfies Work
}
