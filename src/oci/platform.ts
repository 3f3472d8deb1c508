import type {Descriptor, Platform} from './descriptor.js'

// Platforms: parsing and formatting `os/architecture[/variant]`, the one normal form airpack records (no empty
// variant, no os.version/os.features), and matching the way containerd's default matcher does it for a single
// target: os and architecture must be equal; for arm64 a missing variant and `v8` are the same thing; for other
// architectures the variant must match when the target names one. BuildKit attestation entries (`unknown/unknown`)
// are never a platform.

export function parsePlatform(value: string): Platform {
  const [os, architecture, variant] = value.split('/')
  if (!os || !architecture) throw new TypeError(`platform ${JSON.stringify(value)} is not os/architecture[/variant]`)
  return {os, architecture, ...(variant ? {variant} : {})}
}

/** `os/architecture[/variant]`; `unknown` when there is no platform at all. */
export function formatPlatform(p: Platform | undefined): string {
  if (!p) return 'unknown'
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`
}

/** The recorded form of a platform: os, architecture and a non-empty variant, nothing else. */
export function normalizePlatform(p: Partial<Platform> | undefined): Platform {
  return {
    os: p?.os ?? 'unknown',
    architecture: p?.architecture ?? 'unknown',
    ...(p?.variant ? {variant: p.variant} : {}),
  }
}

/** A sort and set key: equal for platforms that are written the same. */
export function platformKey(p: Platform): string {
  return `${p.os}/${p.architecture}/${p.variant ?? ''}`
}

/** Literal equality, absent fields equal to empty ones (no arm64 v8 folding: that is matching, not equality). */
export function samePlatform(a: Partial<Platform> | undefined, b: Partial<Platform> | undefined): boolean {
  return (
    (a?.os ?? '') === (b?.os ?? '') &&
    (a?.architecture ?? '') === (b?.architecture ?? '') &&
    (a?.variant ?? '') === (b?.variant ?? '')
  )
}

export function isAttestation(d: Descriptor): boolean {
  return (
    (d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown') ||
    d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest'
  )
}

function normalVariant(p: Platform): string | undefined {
  if (p.architecture === 'arm64')
    return p.variant === undefined || p.variant === '' || p.variant === 'v8' ? 'v8' : p.variant
  return p.variant || undefined
}

export function platformMatches(candidate: Platform, target: Platform): boolean {
  if (candidate.os !== target.os || candidate.architecture !== target.architecture) return false
  const want = normalVariant(target)
  if (want === undefined) return true
  const have = normalVariant(candidate)
  // An armhf target without variant accepts any; one with a variant accepts a candidate that has none.
  return have === undefined || have === want
}

/**
 * Choose the index entry for `target`. Entries with an exact variant win over ones without a variant; among equals
 * the first in the index wins (as containerd does). Returns the chosen descriptor and the platforms left out
 * (attestations excluded: they are not platforms, and are not listed).
 */
export function selectPlatform(
  manifests: Descriptor[],
  target: Platform,
): {chosen?: Descriptor; omitted: Platform[]; available: Platform[]} {
  const real = manifests.filter((m) => !isAttestation(m))
  const candidates = real.filter((m) => m.platform && platformMatches(m.platform, target))
  const exact = candidates.find((m) => normalVariant(m.platform!) === normalVariant(target))
  const chosen = exact ?? candidates[0]
  const available = real.filter((m) => m.platform).map((m) => normalizePlatform(m.platform))
  const omitted = real.filter((m) => m !== chosen && m.platform).map((m) => normalizePlatform(m.platform))
  return {chosen, omitted, available}
}
