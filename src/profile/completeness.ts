// Completeness before shipping (issue 10, case 4): images that a pack's values or a chart's values.yaml name but
// no content tag lists (Palette's own 4.10 release fixed a pack whose image list lacked two), image names that say
// another architecture than the build's, and `content:` written at the wrong level. Pure functions over parsed
// values: validate runs them on pack values (no network); resolve and build run them on the charts' values.yaml,
// read from the cache where the resolver already put the chart archive.

import {parseReference, type ImageReference} from '../registry/reference.js'
import type {Arch} from './types.js'

export interface NamedImage {
  /** `[registry/]repository[:tag]` as the values name it (the tag may be absent: Helm's default is appVersion). */
  text: string
  ref: ImageReference
  /** Where in the values: `charts.spegel.image.repository`. */
  path: (string | number)[]
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function scalar(v: unknown): string | undefined {
  if (typeof v === 'string') return v.trim()
  if (typeof v === 'number') return String(v)
  return undefined
}

/** A string that reads as an image reference: a repository path with a tag, a digest, or a registry host. Words,
 *  paths, URLs and templates are not. */
function asReference(text: string): ImageReference | undefined {
  if (text === '' || text.includes('{{') || text.includes('://') || text.startsWith('/') || /\s/.test(text))
    return undefined
  const named = /^[^/:@]+\.[^/:@]+\//.test(text) || text.includes(':') || text.includes('@')
  if (!named) return undefined
  try {
    return withoutDefaultTag(text, parseReference(text))
  } catch {
    return undefined
  }
}

/** A reference written without a tag keeps none (parseReference would say `latest`): in values it means "the
 *  chart's appVersion", which only the chart knows. */
function withoutDefaultTag(text: string, ref: ImageReference): ImageReference {
  const explicitTag = /:[^/]*$/.test(text.replace(/@.*$/, ''))
  return explicitTag
    ? ref
    : {registry: ref.registry, repository: ref.repository, ...(ref.digest ? {digest: ref.digest} : {})}
}

const MAX_DEPTH = 64

/**
 * Images a values document names, the ways charts and packs write them:
 *  - `image: registry/repo:tag` (a string under a key named `image` or ending in `Image`);
 *  - `image: {registry?, repository, tag?, digest?}` (Helm's convention; an empty tag means the chart's appVersion);
 *  - `images: {name: registry/repo:tag}` or `images: [registry/repo:tag]` (pack manifests' parameters).
 * Paths under `skip` (the content tags themselves) are left out. Bounded by depth; never follows anything but data.
 */
export function imagesInValues(
  data: unknown,
  skip: (path: (string | number)[]) => boolean = () => false,
): NamedImage[] {
  const found: NamedImage[] = []
  const visit = (node: unknown, path: (string | number)[]) => {
    if (path.length > MAX_DEPTH || skip(path)) return
    if (Array.isArray(node)) {
      node.forEach((item, i) => visit(item, [...path, i]))
      return
    }
    if (!isObject(node)) return
    for (const [key, value] of Object.entries(node)) {
      const here = [...path, key]
      if (skip(here)) continue
      const imageKey = key === 'image' || /[a-z]Image$/.test(key)
      if (imageKey && typeof value === 'string') {
        const ref = asReference(value.trim())
        if (ref) found.push({text: value.trim(), ref, path: here})
        continue
      }
      if (imageKey && isObject(value) && typeof value.repository === 'string') {
        const repository = value.repository.trim()
        const registry = scalar(value.registry)
        const tag = scalar(value.tag)
        const digest = scalar(value.digest)
        const text = `${registry ? `${registry}/` : ''}${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`
        try {
          if (
            repository !== '' &&
            !repository.includes('{{') &&
            !(registry ?? '').includes('{{') &&
            !(tag ?? '').includes('{{')
          ) {
            found.push({text, ref: withoutDefaultTag(text, parseReference(text)), path: [...here, 'repository']})
          }
        } catch {
          // Not a reference (a template or a partial value): nothing to compare.
        }
        continue
      }
      if (key === 'images' && (isObject(value) || Array.isArray(value))) {
        const entries: [string | number, unknown][] = Array.isArray(value)
          ? value.map((v, i) => [i, v])
          : Object.entries(value)
        let all = true
        for (const [k, v] of entries) {
          const ref = typeof v === 'string' ? asReference(v.trim()) : undefined
          if (ref) found.push({text: (v as string).trim(), ref, path: [...here, k]})
          else all = false
        }
        if (all) continue
      }
      visit(value, here)
    }
  }
  visit(data, [])
  return found
}

/** Whether a named image is among the carried ones: same repository, and the same digest when both pin one, else
 *  the same tag when the values give one (a tagless name takes the chart's appVersion, which the values do not say;
 *  a digest beside a listed tag cannot be compared without the registry). */
export function isCarried(named: ImageReference, carried: ImageReference[]): boolean {
  return carried.some((c) => {
    if (c.registry !== named.registry || c.repository !== named.repository) return false
    if (named.digest && c.digest) return named.digest === c.digest
    return named.tag === undefined || c.tag === named.tag
  })
}

const ARCH_WORDS: Record<string, Arch> = {
  amd64: 'amd64',
  x86_64: 'amd64',
  'x86-64': 'amd64',
  arm64: 'arm64',
  aarch64: 'arm64',
}

/** The architecture an image name says it is for (`…/kube-proxy-amd64:v1`, `…:v1.2-arm64`), if it says one. */
export function archInName(ref: ImageReference): Arch | undefined {
  const text = `${ref.repository}:${ref.tag ?? ''}`.toLowerCase()
  const m = /(?:^|[-_./:])(amd64|x86_64|x86-64|arm64|aarch64)(?=$|[-_./:])/.exec(text)
  return m ? ARCH_WORDS[m[1]!] : undefined
}

/** Where `content:` (images/charts) was written instead of `pack.content`, as a dotted path, if anywhere. */
export function misplacedContent(data: Record<string, unknown>): string[] {
  const found: string[] = []
  const looksLikeContent = (v: unknown) => isObject(v) && (Array.isArray(v.images) || Array.isArray(v.charts))
  const visit = (node: unknown, path: string[]) => {
    if (path.length > 4 || !isObject(node)) return
    for (const [key, value] of Object.entries(node)) {
      const here = [...path, key]
      const dotted = here.join('.')
      if (dotted === 'pack.content') continue
      if (key === 'content' && looksLikeContent(value)) found.push(dotted)
      else if (dotted === 'pack.images' || dotted === 'pack.charts') {
        if (Array.isArray(value)) found.push(dotted)
      } else visit(value, here)
    }
  }
  visit(data, [])
  return found
}
