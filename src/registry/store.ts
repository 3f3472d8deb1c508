import {Readable} from 'node:stream'

import type {Descriptor} from '../oci/descriptor.js'
import {isGraphType, MANIFEST_ACCEPT} from '../oci/media-types.js'
import type {RangeReadableStore, RangedBody, ResolvingStore} from '../store/types.js'
import {verifiedStream} from '../store/verify.js'
import type {RegistryClient} from './client.js'
import {RegistryError} from './errors.js'
import {discard} from './http.js'

// One repository of one registry as a store (go-containerregistry's `remote` for one repository): blobs and
// manifests by descriptor, each from the endpoints in order (mirrors, then upstream) with the client's retries;
// manifests are read under /manifests/ (digest-checked), blobs under /blobs/ and resumable from an offset.

export interface RepositoryOptions {
  /** Credentials are looked up for images or for Helm charts (Palette keeps them apart). */
  kind?: 'image' | 'helm'
  /** Told the host of each endpoint that served bytes (the fetch report's `source`). */
  onServed?: (host: string) => void
}

export class RegistryRepository implements RangeReadableStore, ResolvingStore {
  readonly name: string
  private readonly kind: 'image' | 'helm'

  constructor(
    private readonly client: RegistryClient,
    readonly registry: string,
    readonly repository: string,
    private readonly options: RepositoryOptions = {},
  ) {
    this.name = `registry ${registry}/${repository}`
    this.kind = options.kind ?? 'image'
  }

  async fetch(d: Descriptor): Promise<Readable> {
    const {body} = await this.fetchFrom(d, 0)
    return verifiedStream(body, d, this.name)
  }

  /** The bytes of `d` from `offset` on (a Range request; `start` 0 when the server ignored it). Manifests are
   *  read whole and digest-checked; a blob's bytes are checked by whoever stores them. */
  async fetchFrom(d: Descriptor, offset: number): Promise<RangedBody> {
    const {value, endpoint} = await this.client.withEndpoints(this.registry, this.repository, async (ep) => {
      if (!isGraphType(d.mediaType)) return this.client.blobSource(ep, d.digest, this.kind)(offset)
      const m = await this.client.getManifest(ep, d.digest, this.kind)
      return {body: Readable.from([m.bytes.subarray(offset)]), start: offset}
    })
    this.options.onServed?.(endpoint.host)
    return value
  }

  /** HEAD at each endpoint in turn: held if any has it, absent if those that answered do not. */
  async exists(d: Descriptor): Promise<boolean> {
    const path = `${isGraphType(d.mediaType) ? 'manifests' : 'blobs'}/${d.digest}`
    let failure: unknown
    let answered = false
    for (const ep of this.client.endpoints(this.registry, this.repository)) {
      try {
        const res = await this.client.request(ep, path, {
          method: 'HEAD',
          headers: isGraphType(d.mediaType) ? {accept: MANIFEST_ACCEPT} : {},
          kind: this.kind,
        })
        await discard(res)
        if (res.status === 200) return true
        if (res.status !== 404)
          throw new RegistryError('http', `${ep.host}/${ep.repository}: HEAD ${path} answered ${res.status}`, ep.host)
        answered = true
      } catch (error) {
        failure = error
      }
    }
    if (answered || failure === undefined) return false
    throw failure
  }

  /** The descriptor a tag (or digest) points at: the manifest's own media type, digest and size. */
  async resolve(reference: string): Promise<Descriptor> {
    const {value} = await this.client.withEndpoints(this.registry, this.repository, (ep) =>
      this.client.getManifest(ep, reference, this.kind),
    )
    return {mediaType: value.mediaType, digest: value.digest, size: value.size}
  }
}
