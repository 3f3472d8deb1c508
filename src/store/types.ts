import type {Readable} from 'node:stream'
import type {Descriptor} from '../oci/descriptor.js'

// The one content model every place airpack reads from or writes to speaks (oras-go's content.Storage and
// Resolver, go-containerregistry's remote/layout split): content is named by descriptor, never by path or URL.
// A registry store is one repository of one registry (blobs live per repository there); the cache and a bundle
// hold blobs whatever the repository. Implementations: the registry (src/registry/), the cache (src/cache/), a
// bundle being read (src/bundle/, random access through the format-2 seek table), a bundle being written.
// `copyGraph` (src/store/copy.ts) moves a graph of content between any two of them.

/** Where content can be read from. */
export interface ReadableStore {
  /** Names the store in messages and reports ("registry docker.io/library/nginx", "bundle site.tar.zst"); never
   *  holds a credential. */
  readonly name: string
  /** The bytes of `d`. The stream errors (IntegrityError) if they do not match `d.digest` and `d.size`; a store
   *  that cannot have `d` rejects with an error naming it. */
  fetch(d: Descriptor): Promise<Readable>
  /** Whether the store holds `d` (by digest), without reading it. */
  exists(d: Descriptor): Promise<boolean>
}

/** Where references (tags, or digests) can be turned into descriptors. */
export interface ResolvingStore {
  /** The descriptor a reference (a tag or a digest, in this store's own naming) points at. */
  resolve(reference: string): Promise<Descriptor>
}

/** Where content can be written to. */
export interface WritableStore {
  readonly name: string
  exists(d: Descriptor): Promise<boolean>
  /** Stores `content` as `d`, verifying digest and size before it becomes visible: nothing unverified is kept. */
  push(d: Descriptor, content: Readable): Promise<void>
}

/** Where a reference can be pointed at a descriptor already pushed (a registry's PUT manifest by tag). */
export interface TaggingStore {
  tag(d: Descriptor, reference: string): Promise<void>
}

export type Store = ReadableStore & WritableStore

/** A body and where it really starts (0 when a server ignored the offset asked for). */
export interface RangedBody {
  body: Readable | AsyncIterable<Uint8Array>
  start: number
}

/** A readable store that can open a blob at an offset (an HTTP Range request): lets a destination resume. */
export interface RangeReadableStore extends ReadableStore {
  fetchFrom(d: Descriptor, offset: number): Promise<RangedBody>
}

/** A writable store that keeps what an interrupted copy received and pulls the rest itself from an offset (the
 *  cache: its partial files survive a crash). `open` may answer from 0 instead; the store then starts over. */
export interface ResumingWritableStore extends WritableStore {
  pushFrom(d: Descriptor, open: (offset: number) => Promise<RangedBody>): Promise<void>
}
