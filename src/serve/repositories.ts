import type {BundleStore} from '../bundle/store.js'
import type {Descriptor} from '../oci/descriptor.js'
import {isGraphType} from '../oci/media-types.js'
import {splitSiteReference} from '../registry/reference.js'
import {defaultSuccessors} from '../store/copy.js'

// The distribution API's view of a bundle: repositories named `HOST/PATH` of each artifact's original reference,
// their tags, and the content reachable from those tags (an image's index, the platform manifest stored, its
// config and layers). A digest answers only under a repository whose content names it, as in a registry; a child
// the bundle does not carry (another platform of a sparse index) is known, but absent.

export interface Repository {
  name: string
  /** The source registry host the repository's references name (`registry.local:5000`). */
  host: string
  /** tag → the descriptor it points at. */
  tags: Map<string, Descriptor>
  /** Every digest the repository's content names, with the descriptor that named it first. */
  content: Map<string, Descriptor>
}

export class BundleRepositories {
  private constructor(readonly byName: ReadonlyMap<string, Repository>) {}

  /** Reads every manifest the bundle's references reach (small documents; layers are never read). */
  static async of(store: BundleStore): Promise<BundleRepositories> {
    const byName = new Map<string, Repository>()
    for (const {reference, descriptor} of store.references) {
      const split = splitSiteReference(reference)
      if (!split) continue
      let repo = byName.get(split.repository)
      if (!repo) {
        repo = {name: split.repository, host: split.host, tags: new Map(), content: new Map()}
        byName.set(split.repository, repo)
      }
      if (split.tag) repo.tags.set(split.tag, descriptor)
      await walk(store, descriptor, repo.content)
    }
    return new BundleRepositories(byName)
  }

  get(name: string): Repository | undefined {
    return this.byName.get(name)
  }

  names(): string[] {
    return [...this.byName.keys()].sort()
  }

  /** The source hosts of the bundle's repositories (`docker.io`, `ghcr.io`), for mirror configurations. */
  hosts(): string[] {
    return [...new Set([...this.byName.values()].map((r) => r.host))].sort()
  }
}

/** Records `d` and, for a document the bundle holds, what it names (the copy's own notion of successors). */
async function walk(store: BundleStore, d: Descriptor, seen: Map<string, Descriptor>): Promise<void> {
  if (seen.has(d.digest)) return
  seen.set(d.digest, d)
  if (!isGraphType(d.mediaType) || !(await store.exists(d))) return
  let children: Descriptor[]
  try {
    children = defaultSuccessors(d, await store.fetchBytes(d))
  } catch (error) {
    if (error instanceof SyntaxError) return
    throw error
  }
  for (const child of children) if (typeof child?.digest === 'string') await walk(store, child, seen)
}
