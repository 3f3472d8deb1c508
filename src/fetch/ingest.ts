import {Readable} from 'node:stream'

import {TruncatedBlobError, type BlobSource, type BlobStore, type IngestResult} from '../cache/store.js'
import {IntegrityError} from '../errors.js'
import type {Descriptor} from '../oci/descriptor.js'
import {isGraphType} from '../oci/media-types.js'
import type {RegistryClient} from '../registry/client.js'
import {RegistryError, describeError} from '../registry/errors.js'
import {isTransient} from '../registry/http.js'

// One blob from a registry into the cache: endpoints in order (the one it was resolved from first), retries with
// backoff on transient failures and truncated bodies, each retry resuming from the cache's partial file.

/** One blob from the endpoints in order (mirrors first, as configured), each with retries and resume. */
export async function ingestFromEndpoints(
  client: RegistryClient,
  store: BlobStore,
  registry: string,
  repository: string,
  d: Descriptor,
  kind: 'image' | 'helm',
  served: Set<string>,
): Promise<IngestResult> {
  const endpoints = client.endpoints(registry, repository)
  const errors: string[] = []
  let lastError: unknown
  for (const ep of endpoints) {
    try {
      if (isGraphType(d.mediaType)) {
        // Manifests are served under /manifests/<digest>, not /blobs/ (getManifest checks the digest); going
        // through ingest still gives them the cross-process lock, so two builds fetch each one once.
        const source: BlobSource = async (offset) => {
          const m = await client.getManifest(ep, d.digest, kind)
          return {body: Readable.from([m.bytes.subarray(offset)]), start: offset}
        }
        return await ingestCounted(client, store, d, source, ep.host, served)
      }
      return await ingestCounted(client, store, d, client.blobSource(ep, d.digest, kind), ep.host, served)
    } catch (error) {
      if (error instanceof IntegrityError) throw error
      lastError = error
      errors.push(`${ep.mirror ? 'mirror' : 'upstream'} ${ep.host}: ${describeError(error)}`)
    }
  }
  if (errors.length === 1) throw lastError
  throw new RegistryError(
    lastError instanceof RegistryError ? lastError.failure : 'unreachable',
    errors.join('; '),
    endpoints.at(-1)!.host,
  )
}

/** ingest with retries, reporting as `transferred` every byte received in this run, cut attempts included. */
export async function ingestCounted(
  client: RegistryClient,
  store: BlobStore,
  d: Descriptor,
  source: BlobSource,
  host: string,
  served: Set<string>,
): Promise<IngestResult> {
  let received = 0
  const counting: BlobSource = async (offset) => {
    const {body, start} = await source(offset)
    // The generator below reads the body only when the cache starts consuming it, after a few awaits: an error
    // the response stream emits meanwhile (a cut connection) must not be an unhandled 'error' event. It is not
    // lost: iterating an errored stream throws it (and a short body fails the size check in any case).
    if (body instanceof Readable) body.on('error', () => {})
    async function* count() {
      for await (const chunk of body) {
        received += (chunk as Uint8Array).length
        yield chunk as Uint8Array
      }
    }
    return {body: count(), start}
  }
  const r = await ingestWithRetry(client, () => store.ingest(d.digest, d.size, counting), host)
  if (!r.hit) served.add(host)
  return r.hit ? r : {...r, transferred: received}
}

/** Retries transient failures and truncated bodies; each retry resumes from what the cache's partial file holds. */
async function ingestWithRetry(
  client: RegistryClient,
  fn: () => Promise<IngestResult>,
  host = '',
): Promise<IngestResult> {
  let attempts = 0
  const retryable = (error: unknown) => error instanceof TruncatedBlobError || isTransient(error)
  try {
    return await client.retry((attempt) => {
      attempts = attempt + 1
      return fn()
    }, retryable)
  } catch (error) {
    if (error instanceof TruncatedBlobError) {
      throw new RegistryError(
        'unreachable',
        `${error.message}, after ${attempts} attempts${host ? ` from ${host}` : ''}`,
        host,
      )
    }
    throw error
  }
}
