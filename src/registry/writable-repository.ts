import type {Readable} from 'node:stream'

import {readBounded} from '../limits.js'
import type {Descriptor} from '../oci/descriptor.js'
import {isGraphType, MANIFEST_ACCEPT} from '../oci/media-types.js'
import type {TaggingStore, WritableStore} from '../store/types.js'
import {sha256Digest} from '../util/digest.js'
import {pullScope} from './auth.js'
import type {Endpoint, RegistryClient} from './client.js'
import {RegistryError} from './errors.js'
import {discard, type HttpResponse} from './http.js'
import {readRemote} from './bounded-body.js'

// The write side of one repository of a registry (distribution-spec "push"), as a WritableStore & TaggingStore
// for copyGraph: blobs are HEAD-checked, mounted from another repository of the same registry that already holds
// them (`POST ?mount=&from=` → 201, no bytes move), otherwise uploaded with a POST and one PUT carrying the whole
// body (measured on distribution 2.8: `POST ?digest=` with a body answers 202 and drops the body; chunked PATCH
// ignores Content-Range). Manifests are PUT by digest, then tagged. Writes go to the registry itself, never to a
// mirror of it. The registry checks each blob's digest on its final PUT, and the body streams from a store that
// checks it too: a wrong blob is refused (or its upload aborted), never kept.

/** Bytes per second an upload may fall to before it is abandoned and retried: its timeout is scaled by size. */
const MIN_UPLOAD_RATE = 1024 * 1024
const UPLOAD_TIMEOUT_BASE_MS = 60_000

/** What the registry answered, in the distribution error format when it used it. */
export interface RegistryAnswer {
  status: number
  /** `MANIFEST_BLOB_UNKNOWN`, `NAME_UNKNOWN`, … (the first error's code). */
  code?: string
  message: string
}

/** A write the registry refused, with its answer (exit 4 once it reaches a command). */
export class RegistryRefusal extends RegistryError {
  constructor(
    readonly answer: RegistryAnswer,
    message: string,
    host: string,
    /** Harbor (and registries like it) answer a push into a project that does not exist this way. */
    readonly projectMissing = false,
  ) {
    super('http', message, host, answer.status)
    this.name = 'RegistryRefusal'
  }
}

/** Counters of one push over every repository of a registry. */
export interface PushCounters {
  blobsUploaded: number
  bytesUploaded: number
  blobsMounted: number
  /** Nodes the copy found in the registry (held, or mounted); counted by the copy's `skipped` events. */
  present: number
  manifestsPushed: number
  tagsSet: number
}

/**
 * Where, among the repositories of one registry this push writes to, each blob is known to be (to mount it rather
 * than upload it again), and the uploads in progress (a repository that needs a blob another one is uploading
 * waits for it, then mounts it).
 */
export class BlobPlacement {
  private readonly holders = new Map<string, string>()
  private readonly uploading = new Map<string, Promise<void>>()
  readonly counters: PushCounters = {
    blobsUploaded: 0,
    bytesUploaded: 0,
    blobsMounted: 0,
    present: 0,
    manifestsPushed: 0,
    tagsSet: 0,
  }

  held(digest: string, repository: string): void {
    if (!this.holders.has(digest)) this.holders.set(digest, repository)
  }

  /** A repository holding `digest` other than `repository`, after any upload of it in progress has ended. */
  async holder(digest: string, repository: string): Promise<string | undefined> {
    await this.uploading.get(digest)?.catch(() => {})
    const holder = this.holders.get(digest)
    return holder !== repository ? holder : undefined
  }

  async upload(digest: string, repository: string, run: () => Promise<void>): Promise<void> {
    const p = run()
    this.uploading.set(digest, p)
    try {
      await p
      this.holders.set(digest, repository)
    } finally {
      if (this.uploading.get(digest) === p) this.uploading.delete(digest)
    }
  }
}

/** The first error of a distribution error body (`{"errors":[{"code","message","detail"}]}`), or the text. */
export async function readAnswer(res: HttpResponse, host: string): Promise<RegistryAnswer> {
  const text = (await readRemote(res.body, 'manifest', `the answer of ${host}`, host).catch(() => Buffer.alloc(0)))
    .toString('utf8')
    .trim()
  try {
    const first = (JSON.parse(text) as {errors?: {code?: string; message?: string; detail?: unknown}[]}).errors?.[0]
    if (first?.code) {
      const detail = first.detail === undefined ? '' : ` ${JSON.stringify(first.detail)}`
      return {status: res.status, code: first.code, message: `${first.message ?? ''}${detail}`.trim()}
    }
  } catch {
    // not JSON: the text itself (a proxy's page, a plain message) says what happened
  }
  return {status: res.status, message: text.slice(0, 300) || res.statusText}
}

/**
 * Harbor answers a push into a project that does not exist with 404 NAME_UNKNOWN ("project foo not found"), not with
 * an authentication error: say so rather than let it look like a credentials problem.
 */
export function isProjectMissing(answer: RegistryAnswer): boolean {
  return answer.status === 404 && (answer.code === 'NAME_UNKNOWN' || /project .*not found/i.test(answer.message))
}

function describeAnswer(a: RegistryAnswer): string {
  return `${a.status}${a.code ? ` ${a.code}` : ''}${a.message ? `: ${a.message}` : ''}`
}

export class WritableRegistryRepository implements WritableStore, TaggingStore {
  readonly name: string
  private readonly scope: string

  constructor(
    private readonly client: RegistryClient,
    readonly registry: string,
    readonly repository: string,
    private readonly placement: BlobPlacement,
  ) {
    this.name = `registry ${registry}/${repository}`
    this.scope = `repository:${repository}:pull,push`
  }

  /** The registry itself: a push never goes to a mirror configured for it. */
  private get endpoint(): Endpoint {
    return this.client.endpoints(this.registry, this.repository).find((e) => !e.mirror)!
  }

  private where(): string {
    return `${this.registry}/${this.repository}`
  }

  /**
   * Held here: a HEAD answers 200, or (blobs) another repository of this push holds it and the registry mounted it
   * here. Either way no byte has to move.
   */
  async exists(d: Descriptor): Promise<boolean> {
    const graph = isGraphType(d.mediaType)
    const res = await this.client.request(this.endpoint, `${graph ? 'manifests' : 'blobs'}/${d.digest}`, {
      method: 'HEAD',
      headers: graph ? {accept: MANIFEST_ACCEPT} : {},
      scope: this.scope,
    })
    await discard(res)
    if (res.status === 200) {
      if (!graph) this.placement.held(d.digest, this.repository)
      return true
    }
    if (res.status !== 404) throw this.refusal(`HEAD ${d.digest}`, {status: res.status, message: res.statusText})
    if (graph) return false
    const from = await this.placement.holder(d.digest, this.repository)
    return from !== undefined && (await this.mount(d, from))
  }

  /** `POST ?mount=&from=`: 201 when the registry linked the blob here; 202 (it opened an upload) when it could not. */
  private async mount(d: Descriptor, from: string): Promise<boolean> {
    const query = new URLSearchParams({mount: d.digest, from})
    const res = await this.client.request(this.endpoint, `blobs/uploads/?${query}`, {
      method: 'POST',
      scope: `${this.scope} ${pullScope(from)}`,
    })
    if (res.status === 201) {
      await discard(res)
      this.placement.held(d.digest, this.repository)
      this.placement.counters.blobsMounted++
      return true
    }
    if (res.status === 202) {
      await discard(res)
      await this.cancelUpload(res)
      return false
    }
    throw this.refusal(`mount ${d.digest} from ${from}`, await readAnswer(res, this.endpoint.host))
  }

  private async cancelUpload(res: HttpResponse): Promise<void> {
    const location = res.headers.get('location')
    if (!location) return
    const url = new URL(location, res.url)
    await this.client
      .requestUrl(this.endpoint, url, {method: 'DELETE', scope: this.scope})
      .then(discard)
      .catch(() => {})
  }

  async push(d: Descriptor, content: Readable): Promise<void> {
    if (isGraphType(d.mediaType)) {
      const bytes = await readBounded(content, 'manifest', `${d.digest} for ${this.name}`)
      if (sha256Digest(bytes) !== d.digest || bytes.length !== d.size)
        throw new RegistryError(
          'integrity',
          `${d.digest}: the document to push does not match its digest`,
          this.registry,
        )
      await this.putManifest(d.digest, d.mediaType, bytes)
      this.placement.counters.manifestsPushed++
      return
    }
    await this.placement.upload(d.digest, this.repository, () => this.upload(d, content))
  }

  /** POST, then one PUT with the whole body, within a time scaled by its size. */
  private async upload(d: Descriptor, content: Readable): Promise<void> {
    const started = await this.client.request(this.endpoint, 'blobs/uploads/', {method: 'POST', scope: this.scope})
    if (started.status !== 202)
      throw this.refusal(`upload of ${d.digest}`, await readAnswer(started, this.endpoint.host))
    await discard(started)
    const location = started.headers.get('location')
    if (!location)
      throw new RegistryError('protocol', `${this.where()}: the upload of ${d.digest} got no Location`, this.registry)
    const url = new URL(location, started.url)
    url.searchParams.set('digest', d.digest)
    const timeoutMs = UPLOAD_TIMEOUT_BASE_MS + Math.ceil((d.size / MIN_UPLOAD_RATE) * 1000)
    const timer = setTimeout(
      () =>
        content.destroy(
          new RegistryError(
            'unreachable',
            `${this.where()}: the upload of ${d.digest} (${d.size} bytes) took over ${Math.round(timeoutMs / 1000)} s`,
            this.endpoint.host,
          ),
        ),
      timeoutMs,
    )
    let res: HttpResponse
    try {
      res = await this.client.requestUrl(this.endpoint, url, {
        method: 'PUT',
        headers: {'content-type': 'application/octet-stream', 'content-length': String(d.size)},
        body: content,
        scope: this.scope,
      })
    } finally {
      clearTimeout(timer)
    }
    if (res.status !== 201) throw this.refusal(`upload of ${d.digest}`, await readAnswer(res, this.endpoint.host))
    await discard(res)
    this.placement.counters.blobsUploaded++
    this.placement.counters.bytesUploaded += d.size
  }

  private async putManifest(reference: string, mediaType: string, bytes: Buffer): Promise<void> {
    const res = await this.client.request(this.endpoint, `manifests/${reference}`, {
      method: 'PUT',
      headers: {'content-type': mediaType},
      body: bytes,
      scope: this.scope,
    })
    if (res.status !== 201) throw this.refusal(`PUT manifest ${reference}`, await readAnswer(res, this.endpoint.host))
    await discard(res)
  }

  /**
   * Points `tag` at `d` (already pushed by digest): nothing when it already does; otherwise the manifest's bytes,
   * read back by digest (verified), are PUT under the tag.
   */
  async tag(d: Descriptor, tag: string): Promise<void> {
    if ((await this.tagged(tag)) === d.digest) return
    const manifest = await this.client.getManifest(this.endpoint, d.digest)
    await this.putManifest(tag, d.mediaType, manifest.bytes)
    this.placement.counters.tagsSet++
  }

  /** The digest `tag` points at in the registry now, or undefined when there is no such tag. */
  async tagged(tag: string): Promise<string | undefined> {
    const head = await this.client.request(this.endpoint, `manifests/${tag}`, {
      method: 'HEAD',
      headers: {accept: MANIFEST_ACCEPT},
      scope: this.scope,
    })
    await discard(head)
    return head.status === 200 ? (head.headers.get('docker-content-digest') ?? undefined) : undefined
  }

  private refusal(what: string, answer: RegistryAnswer): RegistryRefusal {
    const projectMissing = isProjectMissing(answer)
    const message = projectMissing
      ? `${this.endpoint.host} has no project (or repository namespace) for ${this.repository}: ${what} answered ${describeAnswer(answer)}`
      : `${this.where()}: ${what}: the registry answered ${describeAnswer(answer)}`
    return new RegistryRefusal(answer, message, this.endpoint.host, projectMissing)
  }
}
