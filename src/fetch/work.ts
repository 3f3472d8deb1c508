import type {BlobStore, IngestResult} from '../cache/store.js'
import {ResolveError} from '../errors.js'
import {lockedImageBlobs, type Lock} from '../lock/types.js'
import type {Descriptor} from '../oci/descriptor.js'
import {MediaType} from '../oci/media-types.js'
import type {RegistryClient} from '../registry/client.js'
import {parseReference} from '../registry/reference.js'
import {chartManifest, chartSourceKind, lockedOciLocation, readChartMetadata} from '../resolve/charts.js'
import {ingestCounted, ingestFromEndpoints} from './ingest.js'

// What a lock asks the fetch to bring in, per artifact: its blobs and where each comes from. Classic Helm charts
// have a generated OCI manifest and config: those are rebuilt from the archive once it is in the cache.

export interface Work {
  kind: 'image' | 'chart'
  reference: string
  /** Hosts that served a downloaded blob of this artifact (for the report; never for the lock or the bundle). */
  servedBy: Set<string>
  blobs: Descriptor[]
  /** Downloads one blob (not yet in the cache). */
  fetchBlob: (d: Descriptor) => Promise<IngestResult>
  /** Blobs that are generated, not downloaded (classic chart manifest and config). */
  generated?: Set<string>
  regenerate?: () => Promise<void>
}

export function workOf(lock: Lock, client: RegistryClient, store: BlobStore): Work[] {
  const work: Work[] = []
  for (const image of Object.values(lock.images)) {
    const ref = parseReference(image.reference)
    const servedBy = new Set<string>()
    work.push({
      kind: 'image',
      reference: image.reference,
      servedBy,
      // Its supply-chain artefacts live in the same repository: fetched with it.
      blobs: lockedImageBlobs(image),
      fetchBlob: (d) => ingestFromEndpoints(client, store, ref.registry, ref.repository, d, 'image', servedBy),
    })
  }
  for (const chart of Object.values(lock.charts)) {
    const kind = chartSourceKind(chart.repository)
    if (kind === 'oci') {
      const {registry, repository} = lockedOciLocation(chart)
      const servedBy = new Set<string>()
      work.push({
        kind: 'chart',
        reference: chart.reference,
        servedBy,
        blobs: chart.blobs,
        fetchBlob: (d) => ingestFromEndpoints(client, store, registry, repository, d, 'helm', servedBy),
      })
      continue
    }
    if (!chart.url)
      throw new ResolveError(
        'LOCK_INCOMPLETE',
        `lock entry for chart ${chart.name} ${chart.version} has no archive url`,
        {hint: 'Regenerate the lock with `airpack profile resolve --lock-file`.'},
      )
    const url = new URL(chart.url)
    const generated = new Set(chart.blobs.filter((b) => b.digest !== chart.digest).map((b) => b.digest))
    const servedBy = new Set<string>()
    const w: Work = {
      kind: 'chart',
      reference: chart.reference,
      servedBy,
      blobs: chart.blobs,
      generated,
      fetchBlob: (d) => ingestCounted(client, store, d, client.urlSource(url), url.host, servedBy),
    }
    w.regenerate = async () => {
      if ((await Promise.all([...generated].map((g) => store.has(g)))).every(Boolean)) return
      const meta = await readChartMetadata(store.blobPath(chart.digest))
      const {config, manifest} = chartManifest(meta, {digest: chart.digest, size: chart.size})
      const want = (mt: string) => chart.blobs.find((b) => b.mediaType === mt)?.digest
      await store.putBytes(config, want(MediaType.helmConfig))
      await store.putBytes(manifest, chart.manifest.digest)
    }
    work.push(w)
  }
  return work
}
