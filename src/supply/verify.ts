import {BLOBS_DIR, type BundleArtifact, type BundleManifest} from '../bundle/format.js'
import type {VerifyingKey} from '../bundle/sign.js'
import type {ManifestDocument} from '../oci/descriptor.js'
import {MediaType} from '../oci/media-types.js'
import {digestHex, isDigest} from '../util/digest.js'
import {carriedFor} from './bundle.js'
import {COSIGN_SIGNATURE_ANNOTATION, simpleSigningDigest, supplyChainTag, verifySimpleSigning} from './cosign.js'

// `bundle verify --cosign-key PUB.pem` (PRODUCT.md §13): offline, every image the bundle carries must have a cosign
// key-based signature that verifies with the key and whose payload names the image's index or platform digest,
// exactly what `cosign verify --key` checks against a registry. The signatures and payloads are read from the blobs
// the verify pass already checked against their digests.

export interface CosignResult {
  publicKeyFingerprint: string
  /** Each image and the signature that vouches for it. */
  images: {reference: string; subject: string; signature: string}[]
}

/** `kept`: the small JSON blobs of the bundle by entry path, each already checked against its digest. */
export function checkCosignSignatures(
  manifest: BundleManifest,
  kept: ReadonlyMap<string, Buffer>,
  key: VerifyingKey,
  problem: (message: string) => void,
): CosignResult {
  const document = (digest: string) => (isDigest(digest) ? kept.get(`${BLOBS_DIR}${digestHex(digest)}`) : undefined)
  const images: CosignResult['images'] = []
  const artifacts = manifest.artifacts ?? []
  for (const image of artifacts.filter((a) => a.kind === 'image')) {
    const signatures = carriedFor(image, artifacts).filter((a) => a.kind === 'signature')
    if (signatures.length === 0) {
      problem(
        `image ${image.reference} is not signed: the bundle carries no cosign signature (${supplyChainTag(image.digest, 'sig')}) for it; build with --supply-chain carry from a registry that holds its signature`,
      )
      continue
    }
    const outcome = signatures.map((s) => checkSignature(s, document, key))
    const valid = outcome.findIndex((o) => o === 'valid')
    if (valid >= 0) {
      images.push({
        reference: image.reference,
        subject: signatures[valid].subject!,
        signature: signatures[valid].reference,
      })
      continue
    }
    const named = outcome.findIndex((o) => o !== 'bad-signature')
    problem(
      named >= 0
        ? `image ${image.reference}: its cosign signature ${signatures[named].reference} ${outcome[named]}`
        : `image ${image.reference}: no cosign signature of it verifies with the given key ${key.publicKeyFingerprint} (signed with another key, or the signature was altered)`,
    )
  }
  return {publicKeyFingerprint: key.publicKeyFingerprint, images}
}

/** 'valid', 'bad-signature', or why the signature cannot vouch for its subject. */
function checkSignature(
  signature: BundleArtifact,
  document: (digest: string) => Buffer | undefined,
  key: VerifyingKey,
): string {
  const doc = parse(document(signature.digest))
  if (!doc) return 'is not a readable manifest in the bundle'
  let reason = 'holds no simple-signing payload'
  for (const layer of Array.isArray(doc.layers) ? doc.layers : []) {
    if (layer?.mediaType !== MediaType.cosignSimpleSigning) continue
    const payload = typeof layer.digest === 'string' ? document(layer.digest) : undefined
    const sig = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION]
    if (!payload || typeof sig !== 'string') {
      reason = `has a payload ${layer.digest} without its signature or content`
      continue
    }
    if (!verifySimpleSigning(payload, sig, key.key)) {
      reason = 'bad-signature'
      continue
    }
    const digest = simpleSigningDigest(payload)
    if (digest === signature.subject) return 'valid'
    reason = `is signed, but its payload names ${digest ?? 'no image digest'}, not the image's ${signature.subject}`
  }
  return reason
}

function parse(bytes: Buffer | undefined): ManifestDocument | undefined {
  if (!bytes) return undefined
  try {
    return JSON.parse(bytes.toString('utf8')) as ManifestDocument
  } catch {
    return undefined
  }
}
