// Image references, normalised the way Docker and containerd do it, so that the name annotated in a bundle is
// the one `ctr images import` and Kubernetes will look up: `nginx` → `docker.io/library/nginx:latest`.

export const DOCKER_HUB = 'docker.io'
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io'])

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const TAG = /^[\w][\w.-]{0,127}$/
const DIGEST = /^sha256:[a-f0-9]{64}$/
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/

export interface ImageReference {
  /** Registry host as users write it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`). */
  readonly registry: string
  /** Repository path inside the registry (`library/nginx`). */
  readonly repository: string
  readonly tag?: string
  readonly digest?: string
}

export class InvalidReferenceError extends Error {
  constructor(
    readonly input: string,
    readonly reason: string,
  ) {
    super(`invalid image reference ${JSON.stringify(input)}: ${reason}`)
    this.name = 'InvalidReferenceError'
  }
}

/** Strip Palette's `container://` scheme (used for the agent image in the OS pack). */
export function stripContainerScheme(input: string): string {
  return input.startsWith('container://') ? input.slice('container://'.length) : input
}

export function parseReference(raw: string): ImageReference {
  const input = stripContainerScheme(raw.trim())
  if (input === '') throw new InvalidReferenceError(raw, 'it is empty')
  if (/\s/.test(input)) throw new InvalidReferenceError(raw, 'it contains white space')
  if (input.includes('://')) throw new InvalidReferenceError(raw, 'a URL scheme is not part of an image reference')
  if (input.includes('{{')) throw new InvalidReferenceError(raw, 'it contains an unresolved template macro')

  let rest = input
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at !== -1) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST.test(digest))
      throw new InvalidReferenceError(raw, `digest ${JSON.stringify(digest)} is not sha256:<64 hex digits>`)
  }

  let registry = DOCKER_HUB
  const slash = rest.indexOf('/')
  if (slash !== -1) {
    const first = rest.slice(0, slash)
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      registry = first
      rest = rest.slice(slash + 1)
      if (!DOMAIN.test(registry))
        throw new InvalidReferenceError(raw, `registry host ${JSON.stringify(registry)} is not a valid host[:port]`)
    }
  }

  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon !== -1) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag))
      throw new InvalidReferenceError(
        raw,
        `tag ${JSON.stringify(tag)} is not valid (letters, digits, '_', '.', '-'; at most 128)`,
      )
  }

  if (rest === '') throw new InvalidReferenceError(raw, 'the repository name is missing')
  for (const component of rest.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw new InvalidReferenceError(
        raw,
        component.toLowerCase() !== component
          ? `repository ${JSON.stringify(rest)} must be lowercase`
          : `repository component ${JSON.stringify(component)} is not valid`,
      )
    }
  }
  if (DOCKER_HUB_ALIASES.has(registry.toLowerCase())) {
    registry = DOCKER_HUB
    if (!rest.includes('/')) rest = `library/${rest}`
  }
  if (tag === undefined && digest === undefined) tag = 'latest'
  return {registry, repository: rest, ...(tag === undefined ? {} : {tag}), ...(digest === undefined ? {} : {digest})}
}

/** The full, normalised reference: `docker.io/library/nginx:1.27`, `ghcr.io/a/b@sha256:…`, or both tag and digest. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`
}

export function normalizeReference(raw: string): string {
  return formatReference(parseReference(raw))
}

/** The host the registry API is served on (Docker Hub's API host differs from its name). */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? 'registry-1.docker.io' : registry
}

/**
 * The source host as the first component of a repository path. A port's `:` is not allowed in a repository name
 * (the distribution spec's path-component grammar: a registry answers 404 and clients refuse the name), so it
 * becomes `_`: `registry.local:5000/team/app` is served and pushed as `registry.local_5000/team/app`.
 */
export function hostPathComponent(host: string): string {
  return host
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '_')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '')
}

/** `HOST/PATH` on a site (`bundle serve`, `bundle push`: the host made a path component), the tag, and the host as
 *  the reference names it (`docker.io/library/nginx:1.27`, `host:5000/x@sha256:…`); undefined for a reference that
 *  does not parse. */
export function splitSiteReference(reference: string): {host: string; repository: string; tag?: string} | undefined {
  try {
    const ref = parseReference(reference)
    return {host: ref.registry, repository: `${hostPathComponent(ref.registry)}/${ref.repository}`, tag: ref.tag}
  } catch (error) {
    if (error instanceof InvalidReferenceError) return undefined
    throw error
  }
}

/** The repository a reference's content has on a site. */
export function siteRepositoryOf(reference: string): string | undefined {
  return splitSiteReference(reference)?.repository
}
