import {Readable} from 'node:stream'

import type {Descriptor} from '../oci/descriptor.js'
import {isGraphType, MANIFEST_ACCEPT} from '../oci/media-types.js'
import type {RangeReadableStore, RangedBody, ResolvingStore} from '../store/types.js'
import {verifiedStream} from '../store/verify.js'
import type {RegistryClient} from './client.js'
import {RegistryError} from './errors.js'
import {discard} from './http.js'
import {redactUrl} from '../util/redact.js'

// One repository of one registry as a store (go-containerregistry's `remote` for one repository): blobs and
// manifests by descriptor, each from the endpoints in order (mirrors, then upstream) with the client's retries;
// manifests are read under /manifests/ (digest-checked), blobs under /blobs/ and resumable from an offset.

export interface RepositoryOptions {
  /** Credentials are looked up for images or for Helm charts (Palette keeps them apart). */
  kind?: 'image' | 'helm'
  /** Told the host of the endpoint that answered each read (the fetch report's `source`). */
  onServed?: (host: string, d: Descriptor) => void
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
    const {value, endpoint} = await this.client.withEndpoints(
      this.registry,
      this.repository,
      async (ep) => {
        if (!isGraphType(d.mediaType)) return this.client.blobSource(ep, d.digest, this.kind)(offset)
        const m = await this.client.getManifest(ep, d.digest, this.kind)
        return {body: Readable.from([m.bytes.subarray(offset)]), start: offset}
      },
      {quiet: true},
    )
    this.options.onServed?.(endpoint.host, d)
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

/** One blob at a plain URL (a classic Helm chart archive, pinned by the lock) as a store, resumable by Range. */
export class UrlBlob implements RangeReadableStore {
  readonly name: string

  constructor(
    private readonly client: RegistryClient,
    private readonly url: URL,
    private readonly digest: string,
    private readonly onServed?: (host: string, d: Descriptor) => void,
  ) {
    this.name = `url ${redactUrl(url.href)}`
  }

  async exists(d: Descriptor): Promise<boolean> {
    return d.digest === this.digest
  }

  async fetch(d: Descriptor): Promise<Readable> {
    return verifiedStream((await this.fetchFrom(d, 0)).body, d, this.name)
  }

  async fetchFrom(d: Descriptor, offset: number): Promise<RangedBody> {
    if (d.digest !== this.digest)
      throw new RegistryError('not-found', `${this.name} holds ${this.digest}, not ${d.digest}`, this.url.host)
    const body = await this.client.urlSource(this.url)(offset)
    this.onServed?.(this.url.host, d)
    return body
  }
}
