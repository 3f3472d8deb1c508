import {verify, type KeyObject} from 'node:crypto'

import {parseReference} from '../registry/reference.js'
import {digestHex, isDigest} from '../util/digest.js'

// cosign's conventions for an image's supply-chain artefacts (PRODUCT.md §13), as pure functions: the tags it
// pushes beside an image (`sha256-<hex>.sig`, `.att`, `.sbom` in the image's repository), the fallback tag of the
// OCI referrers API (`sha256-<hex>`, an index of the referrers, for registries without the API), and the check of
// a key-based signature (a simple-signing payload naming the image digest, signed with ECDSA over its SHA-256).

export const SUPPLY_CHAIN_KINDS = ['signature', 'attestation', 'sbom', 'referrer'] as const
export type SupplyChainKind = (typeof SUPPLY_CHAIN_KINDS)[number]

/** The cosign tag suffixes and what each holds. */
export const COSIGN_SUFFIXES = {sig: 'signature', att: 'attestation', sbom: 'sbom'} as const
export type CosignSuffix = keyof typeof COSIGN_SUFFIXES

/** The annotation on a `.sig` layer that holds the base64 signature of the layer's payload. */
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature'

const TAG_RE = /^sha256-([a-f0-9]{64})(?:\.(sig|att|sbom))?$/

export function isSupplyChainKind(kind: string): kind is SupplyChainKind {
  return (SUPPLY_CHAIN_KINDS as readonly string[]).includes(kind)
}

/** `sha256:<hex>` + `sig` → `sha256-<hex>.sig`; without a suffix, the referrers fallback tag `sha256-<hex>`. */
export function supplyChainTag(subject: string, suffix?: CosignSuffix): string {
  return `sha256-${digestHex(subject)}${suffix ? `.${suffix}` : ''}`
}

/** What a cosign or referrers fallback tag names: the subject digest and the kind of artefact, or undefined. */
export function parseSupplyChainTag(tag: string): {subject: string; kind: SupplyChainKind} | undefined {
  const m = TAG_RE.exec(tag)
  if (!m) return undefined
  return {subject: `sha256:${m[1]}`, kind: m[2] ? COSIGN_SUFFIXES[m[2] as CosignSuffix] : 'referrer'}
}

export interface SupplyChainReference {
  /** The reference as written (normalised). */
  reference: string
  registry: string
  repository: string
  tag: string
  subject: string
  kind: SupplyChainKind
}

/**
 * A reference whose tag is a cosign or referrers fallback tag (`ghcr.io/x/app:sha256-<hex>.sig`): a supply-chain
 * artefact of the image `ghcr.io/x/app@sha256:<hex>`, not an image (its layers are JSON, and containerd refuses
 * to unpack it). Undefined for every other reference, and for references that do not parse.
 */
export function parseSupplyChainReference(reference: string): SupplyChainReference | undefined {
  let ref
  try {
    ref = parseReference(reference)
  } catch {
    return undefined
  }
  if (!ref.tag || ref.digest) return undefined
  const parsed = parseSupplyChainTag(ref.tag)
  if (!parsed) return undefined
  return {reference, registry: ref.registry, repository: ref.repository, tag: ref.tag, ...parsed}
}

/** `HOST/PATH` of a reference, or undefined when it does not parse (bundle.json is input: it may be hostile). */
export function repositoryOf(reference: string): string | undefined {
  try {
    const ref = parseReference(reference)
    return `${ref.registry}/${ref.repository}`
  } catch {
    return undefined
  }
}

/** The reference of an artefact found under a tag of an image's repository: `registry/repository:tag`. */
export function taggedReference(imageReference: string, tag: string): string {
  const ref = parseReference(imageReference)
  return `${ref.registry}/${ref.repository}:${tag}`
}

/** The reference of an artefact known by digest in an image's repository: `registry/repository@digest`. */
export function digestReference(imageReference: string, digest: string): string {
  const ref = parseReference(imageReference)
  return `${ref.registry}/${ref.repository}@${digest}`
}

/** The image digest a simple-signing payload vouches for (`critical.image.docker-manifest-digest`), if any. */
export function simpleSigningDigest(payload: Buffer): string | undefined {
  try {
    const doc = JSON.parse(payload.toString('utf8')) as {critical?: {image?: Record<string, unknown>}}
    const digest = doc?.critical?.image?.['docker-manifest-digest']
    return typeof digest === 'string' && isDigest(digest) ? digest : undefined
  } catch {
    return undefined
  }
}

/** cosign's key-based signature: base64 of an ASN.1 ECDSA (or RSA) signature over the payload's SHA-256 (Ed25519: over the payload). */
export function verifySimpleSigning(payload: Buffer, signatureBase64: string, key: KeyObject): boolean {
  if (!/^[A-Za-z0-9+/]+=*$/.test(signatureBase64)) return false
  try {
    const signature = Buffer.from(signatureBase64, 'base64')
    return verify(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', payload, key, signature)
  } catch {
    return false
  }
}
