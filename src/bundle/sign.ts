import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  createVerify,
  privateEncrypt,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto'
import {readFile} from 'node:fs/promises'

import {UsageError} from '../errors.js'
import {TarHashes, type EntryHash} from './hash.js'

// Signing with node:crypto only (PRODUCT.md §7). Two signatures:
//
// - inner, `airpack/bundle.json.sig`: over the bytes of bundle.json, which lists the size and sha256 of every
//   other entry, so it covers the whole content (Zarf's pattern).
// - detached, `NAME.tar.zst.sig`: over the whole compressed file, raw signature bytes.
//   RSA (PKCS#1 v1.5) and ECDSA P-256 (DER) sign SHA-256 of the data, exactly what
//     openssl dgst -sha256 -verify pub.pem -signature NAME.tar.zst.sig NAME.tar.zst
//   checks. Ed25519 has no pre-hashed mode in Node or `openssl dgst`, and signing multi-GB raw bytes would
//   need them all in memory, so for the detached signature an Ed25519 key signs the 32-byte SHA-256 digest of
//   the file (streamed). Check it with:
//     openssl dgst -sha256 -binary NAME.tar.zst > NAME.tar.zst.sha256
//     openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in NAME.tar.zst.sha256 -sigfile NAME.tar.zst.sig
//   The inner signature (small file) is plain Ed25519 over bundle.json's bytes.

export type SignatureAlgorithm = 'rsa-sha256' | 'ecdsa-p256-sha256' | 'ed25519'

export interface SigningKey {
  key: KeyObject
  algorithm: SignatureAlgorithm
  /** `sha256:<hex>` of the public key's SPKI DER: names the key without revealing anything secret. */
  publicKeyFingerprint: string
}

function algorithmOf(key: KeyObject, file: string): SignatureAlgorithm {
  const type = key.asymmetricKeyType
  if (type === 'rsa') return 'rsa-sha256'
  if (type === 'ed25519') return 'ed25519'
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve
    if (curve === 'prime256v1' || curve === 'P-256') return 'ecdsa-p256-sha256'
    throw new UsageError('KEY_UNSUPPORTED', `${file}: ECDSA curve ${curve ?? 'unknown'} is not supported`, {
      hint: 'Use an RSA, ECDSA P-256 (prime256v1) or Ed25519 key in PEM form.',
      details: {file},
    })
  }
  throw new UsageError('KEY_UNSUPPORTED', `${file}: key type ${type ?? 'unknown'} is not supported`, {
    hint: 'Use an RSA, ECDSA P-256 (prime256v1) or Ed25519 key in PEM form.',
    details: {file},
  })
}

export function fingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  return `sha256:${createHash('sha256')
    .update(pub.export({type: 'spki', format: 'der'}))
    .digest('hex')}`
}

async function readKeyFile(file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file)
  } catch (error) {
    throw new UsageError(
      'KEY_UNREADABLE',
      `${flag} ${file}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      {
        hint: 'Pass the path of a PEM file.',
        details: {file},
      },
    )
  }
}

export async function loadSigningKey(file: string): Promise<SigningKey> {
  const pem = await readKeyFile(file, '--sign-key')
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch {
    // Never echo the key material or the crypto library's message (it may quote it).
    throw new UsageError('KEY_INVALID', `--sign-key ${file}: not a PEM private key (or it is encrypted)`, {
      hint: 'Pass an unencrypted PEM private key, e.g. made with `openssl genpkey -algorithm RSA -out key.pem`.',
      details: {file},
    })
  }
  return {key, algorithm: algorithmOf(key, file), publicKeyFingerprint: fingerprint(key)}
}

export interface VerifyingKey {
  key: KeyObject
  algorithm: SignatureAlgorithm
  publicKeyFingerprint: string
}

/** A PEM public key named by `flag` (--public-key, or --cosign-key for cosign.pub). */
export async function loadPublicKey(file: string, flag = '--public-key'): Promise<VerifyingKey> {
  const pem = await readKeyFile(file, flag)
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch {
    throw new UsageError('KEY_INVALID', `${flag} ${file}: not a PEM public key`, {
      hint: 'Pass the PEM public key matching the signing key, e.g. `openssl pkey -in key.pem -pubout -out pub.pem`.',
      details: {file},
    })
  }
  return {key, algorithm: algorithmOf(key, file), publicKeyFingerprint: fingerprint(key)}
}

/** Signature over a small document held in memory (bundle.json). */
export function signDocument(signer: SigningKey, data: Buffer): Buffer {
  return signer.algorithm === 'ed25519' ? sign(null, data, signer.key) : sign('sha256', data, signer.key)
}

export function verifyDocument(key: VerifyingKey, data: Buffer, signature: Buffer): boolean {
  try {
    return key.algorithm === 'ed25519'
      ? verify(null, data, key.key, signature)
      : verify('sha256', data, key.key, signature)
  } catch {
    return false
  }
}

/** DER DigestInfo of a SHA-256 digest up to the digest itself (RFC 8017 §9.2, note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex')

/**
 * The detached signature of a file from the SHA-256 digest of its bytes, for the keys whose signature is a function
 * of that digest alone: RSA PKCS#1 v1.5 (the DigestInfo padded and raised to the private exponent: byte for byte
 * what signing the file's bytes with SHA-256 gives) and Ed25519 (which signs the digest, see above). Undefined for
 * ECDSA: Node signs ECDSA only over data it hashes itself (see FileSeal).
 */
export function signFileDigest(signer: SigningKey, sha256: Buffer): Buffer | undefined {
  if (signer.algorithm === 'ed25519') return sign(null, sha256, signer.key)
  if (signer.algorithm === 'rsa-sha256')
    return privateEncrypt(
      {key: signer.key, padding: constants.RSA_PKCS1_PADDING},
      Buffer.concat([SHA256_DIGEST_INFO, sha256]),
    )
  return undefined
}

/**
 * The sha256 of a whole compressed file (and of each of its parts) and its detached signature, computed from the
 * file's bytes in order as they are written: each chunk is copied once to a hashing worker (TarHashes), so that
 * sealing a signed or split bundle costs the writing thread no hashing and no reading back. The file is hashed
 * once: RSA and Ed25519 sign its digest (signFileDigest); an ECDSA key signs in the worker as it hashes.
 */
export class FileSeal {
  private readonly hashes: TarHashes

  constructor(private readonly signer?: SigningKey) {
    this.hashes = new TarHashes(signer?.algorithm === 'ecdsa-p256-sha256' ? {signWith: signer.key} : {})
  }

  /** The file's next bytes; returns a promise when the caller should wait for the worker (bounded memory). */
  write(chunk: Buffer): Promise<void> | undefined {
    return this.hashes.chunk(chunk)
  }

  /** The hash of a range of the file (a part): fed with pieces of the chunks as they are written. */
  part(): EntryHash {
    return this.hashes.entry()
  }

  /** Once every byte was written: the file's sha256 (hex) and, with a key, its detached signature. */
  async seal(): Promise<{sha256: string; signature?: Buffer}> {
    const {hex, signature} = await this.hashes.signedDigest()
    if (!this.signer) return {sha256: hex}
    return {sha256: hex, signature: signature ?? signFileDigest(this.signer, Buffer.from(hex, 'hex'))}
  }

  /** Stop early (on failure). */
  destroy(): void {
    this.hashes.destroy()
  }
}

export interface StreamVerifier {
  update(chunk: Buffer): void
  verify(signature: Buffer): boolean
}

export function streamVerifier(key: VerifyingKey): StreamVerifier {
  if (key.algorithm === 'ed25519') {
    const hash = createHash('sha256')
    return {
      update: (chunk) => void hash.update(chunk),
      verify(signature) {
        try {
          return verify(null, hash.digest(), key.key, signature)
        } catch {
          return false
        }
      },
    }
  }
  const v = createVerify('sha256')
  return {
    update: (chunk) => void v.update(chunk),
    verify(signature) {
      try {
        return v.verify(key.key, signature)
      } catch {
        return false
      }
    },
  }
}
