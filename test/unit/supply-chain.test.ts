import {generateKeyPairSync, sign} from 'node:crypto'
import {describe, expect, it} from 'vitest'

import {BLOBS_DIR, type BundleArtifact, type BundleManifest} from '../../src/bundle/format.js'
import {LockSchema} from '../../src/lock/schema.js'
import {lockedImageBlobs, withoutCarriedSupplyChain, type Lock, type LockedImage} from '../../src/lock/types.js'
import {carriedFor, supplyChainEntries} from '../../src/supply/bundle.js'
import {
  parseSupplyChainReference,
  parseSupplyChainTag,
  simpleSigningDigest,
  supplyChainTag,
  verifySimpleSigning,
} from '../../src/supply/cosign.js'
import {referrersOf} from '../../src/supply/referrers.js'
import {checkCosignSignatures} from '../../src/supply/verify.js'
import {sha256Digest} from '../../src/util/digest.js'

const D = (c: string) => `sha256:${c.repeat(64)}`
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const desc = (c: string, mediaType = MANIFEST) => ({mediaType, digest: D(c), size: 10})

function payloadFor(digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: {'docker-reference': 'ghcr.io/x/app'},
        image: {'docker-manifest-digest': digest},
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  )
}

function image(supplyChain?: LockedImage['supplyChain']): LockedImage {
  return {
    reference: 'ghcr.io/x/app:1.0',
    digest: D('a'),
    mediaType: 'application/vnd.oci.image.index.v1+json',
    size: 10,
    platformManifest: {...desc('b'), platform: {os: 'linux', architecture: 'amd64'}},
    blobs: [desc('a'), desc('b'), desc('c')],
    omittedPlatforms: [],
    ...(supplyChain ? {supplyChain} : {}),
  }
}

const signatureOf = (listed?: boolean): NonNullable<LockedImage['supplyChain']>[number] => ({
  kind: 'signature',
  subject: D('a'),
  tag: `sha256-${'a'.repeat(64)}.sig`,
  manifest: desc('d'),
  blobs: [desc('d'), desc('e', 'application/vnd.oci.image.config.v1+json'), desc('c')],
  ...(listed ? {listed} : {}),
})

describe('cosign tags', () => {
  it('names and parses the .sig/.att/.sbom tags and the referrers fallback tag', () => {
    expect(supplyChainTag(D('a'), 'sig')).toBe(`sha256-${'a'.repeat(64)}.sig`)
    expect(supplyChainTag(D('a'))).toBe(`sha256-${'a'.repeat(64)}`)
    expect(parseSupplyChainTag(`sha256-${'a'.repeat(64)}.att`)).toEqual({subject: D('a'), kind: 'attestation'})
    expect(parseSupplyChainTag(`sha256-${'a'.repeat(64)}.sbom`)).toEqual({subject: D('a'), kind: 'sbom'})
    expect(parseSupplyChainTag(`sha256-${'a'.repeat(64)}`)).toEqual({subject: D('a'), kind: 'referrer'})
    expect(parseSupplyChainTag(`sha256-${'a'.repeat(63)}.sig`)).toBeUndefined()
    expect(parseSupplyChainTag(`sha256-${'a'.repeat(64)}.sig.bak`)).toBeUndefined()
    expect(parseSupplyChainTag('1.27')).toBeUndefined()
  })

  it('recognises a supply-chain reference, and nothing else', () => {
    expect(parseSupplyChainReference(`ghcr.io/x/app:sha256-${'b'.repeat(64)}.sig`)).toMatchObject({
      registry: 'ghcr.io',
      repository: 'x/app',
      subject: D('b'),
      kind: 'signature',
    })
    expect(parseSupplyChainReference('docker.io/library/nginx:1.27')).toBeUndefined()
    expect(parseSupplyChainReference(`ghcr.io/x/app@${D('b')}`)).toBeUndefined()
    expect(parseSupplyChainReference('not a reference')).toBeUndefined()
  })
})

describe('simple-signing signatures', () => {
  const {privateKey, publicKey} = generateKeyPairSync('ec', {namedCurve: 'prime256v1'})
  const other = generateKeyPairSync('ec', {namedCurve: 'prime256v1'}).publicKey
  const payload = payloadFor(D('a'))
  const signature = sign('sha256', payload, privateKey).toString('base64')

  it('verifies with the signing key only, and over the exact payload', () => {
    expect(verifySimpleSigning(payload, signature, publicKey)).toBe(true)
    expect(verifySimpleSigning(payload, signature, other)).toBe(false)
    expect(verifySimpleSigning(Buffer.concat([payload, Buffer.from(' ')]), signature, publicKey)).toBe(false)
    expect(verifySimpleSigning(payload, 'not base64!', publicKey)).toBe(false)
  })

  it("reads the payload's docker-manifest-digest", () => {
    expect(simpleSigningDigest(payload)).toBe(D('a'))
    expect(simpleSigningDigest(Buffer.from('{"critical":{}}'))).toBeUndefined()
    expect(simpleSigningDigest(Buffer.from('not json'))).toBeUndefined()
  })
})

describe('the lock', () => {
  const lockOf = (i: LockedImage): Lock => ({
    lockVersion: 1,
    platform: {os: 'linux', architecture: 'amd64'},
    images: {[i.reference]: i},
    charts: {},
    files: {},
    profiles: [],
  })

  it('reads locks with and without supply-chain artefacts', () => {
    expect(LockSchema.parse(lockOf(image()))).toEqual(lockOf(image()))
    const signed = lockOf(image([signatureOf(true)]))
    expect(LockSchema.parse(signed)).toEqual(signed)
    expect(LockSchema.safeParse(lockOf(image([{...signatureOf(), kind: 'nope' as never}]))).success).toBe(false)
  })

  it('fetches the artefacts with the image, each blob once', () => {
    expect(lockedImageBlobs(image()).map((b) => b.digest)).toEqual([D('a'), D('b'), D('c')])
    expect(lockedImageBlobs(image([signatureOf()])).map((b) => b.digest)).toEqual([
      D('a'),
      D('b'),
      D('c'),
      D('d'),
      D('e'),
    ])
  })

  it('--supply-chain skip keeps only the artefacts listed by hand', () => {
    const carried = signatureOf()
    const listed = {...signatureOf(true), tag: `sha256-${'a'.repeat(64)}.att`, kind: 'attestation' as const}
    expect(withoutCarriedSupplyChain(lockOf(image([carried]))).images['ghcr.io/x/app:1.0'].supplyChain).toBeUndefined()
    expect(withoutCarriedSupplyChain(lockOf(image([carried, listed]))).images['ghcr.io/x/app:1.0'].supplyChain).toEqual(
      [listed],
    )
  })
})

describe('in the bundle', () => {
  it('names each artefact under airpack annotations with its subject, never ref.name, and without a platform', () => {
    const [entry] = supplyChainEntries(image([signatureOf()]))
    expect(entry.artifact).toMatchObject({
      kind: 'signature',
      reference: `ghcr.io/x/app:sha256-${'a'.repeat(64)}.sig`,
      subject: D('a'),
      image: 'ghcr.io/x/app:1.0',
      contentSize: 30,
    })
    expect(entry.indexEntry.platform).toBeUndefined()
    expect(entry.indexEntry.annotations).toEqual({
      'io.airpack.ref.name': `ghcr.io/x/app:sha256-${'a'.repeat(64)}.sig`,
      'io.airpack.subject': D('a'),
      'io.airpack.supply-chain.kind': 'signature',
      'io.airpack.supply-chain.tag': `sha256-${'a'.repeat(64)}.sig`,
    })
  })

  it('a referrer is known by its digest', () => {
    const referrer = {...signatureOf(), kind: 'referrer' as const, tag: `sha256-${'a'.repeat(64)}`}
    expect(supplyChainEntries(image([referrer]))[0].artifact.reference).toBe(`ghcr.io/x/app@${D('d')}`)
  })
})

describe('verify --cosign-key', () => {
  const {privateKey, publicKey} = generateKeyPairSync('ec', {namedCurve: 'prime256v1'})
  const key = {key: publicKey, algorithm: 'ecdsa-p256-sha256' as const, publicKeyFingerprint: 'sha256:k'}

  /** A bundle.json and its kept blobs: one image, and a signature whose payload names `signedDigest`. */
  function bundleOf(signedDigest: string | undefined) {
    const kept = new Map<string, Buffer>()
    const put = (bytes: Buffer) => {
      const digest = sha256Digest(bytes)
      kept.set(`${BLOBS_DIR}${digest.slice(7)}`, bytes)
      return {digest, size: bytes.length}
    }
    const imageArtifact: BundleArtifact = {
      kind: 'image',
      reference: 'ghcr.io/x/app:1.0',
      ...desc('a', 'application/vnd.oci.image.index.v1+json'),
      platformManifest: desc('b'),
      source: 'ghcr.io',
      omittedPlatforms: [],
      contentSize: 0,
    }
    const artifacts = [imageArtifact]
    if (signedDigest) {
      const payload = payloadFor(signedDigest)
      const layer = {
        mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
        ...put(payload),
        annotations: {'dev.cosignproject.cosign/signature': sign('sha256', payload, privateKey).toString('base64')},
      }
      const manifest = put(Buffer.from(JSON.stringify({schemaVersion: 2, config: desc('e'), layers: [layer]})))
      artifacts.push({
        kind: 'signature',
        reference: `ghcr.io/x/app:sha256-${'a'.repeat(64)}.sig`,
        mediaType: MANIFEST,
        ...manifest,
        source: 'ghcr.io',
        omittedPlatforms: [],
        contentSize: 0,
        subject: D('a'),
        image: 'ghcr.io/x/app:1.0',
      })
    }
    return {manifest: {artifacts} as BundleManifest, kept}
  }

  const run = (b: ReturnType<typeof bundleOf>, k = key) => {
    const problems: string[] = []
    const result = checkCosignSignatures(b.manifest, b.kept, k, (p) => problems.push(p))
    return {problems, result}
  }

  it('accepts an image signed over its digest with the key', () => {
    const {problems, result} = run(bundleOf(D('a')))
    expect(problems).toEqual([])
    expect(result.images).toEqual([
      {reference: 'ghcr.io/x/app:1.0', subject: D('a'), signature: `ghcr.io/x/app:sha256-${'a'.repeat(64)}.sig`},
    ])
  })

  it('names the unsigned image, the one signed with another key, and a payload that names another digest', () => {
    expect(run(bundleOf(undefined)).problems).toEqual([
      expect.stringContaining('image ghcr.io/x/app:1.0 is not signed'),
    ])
    const other = generateKeyPairSync('ec', {namedCurve: 'prime256v1'}).publicKey
    expect(run(bundleOf(D('a')), {...key, key: other}).problems).toEqual([
      expect.stringContaining('no cosign signature of it verifies with the given key'),
    ])
    expect(run(bundleOf(D('f'))).problems).toEqual([
      expect.stringContaining(`its payload names ${D('f')}, not the image's ${D('a')}`),
    ])
  })

  it("only counts signatures of the image's own repository", () => {
    const b = bundleOf(D('a'))
    const moved = b.manifest.artifacts.map((a) =>
      a.kind === 'signature' ? {...a, reference: `ghcr.io/y/other:sha256-${'a'.repeat(64)}.sig`} : a,
    )
    expect(carriedFor(moved[0], moved)).toEqual([])
    // bundle.json is input: a reference that does not parse matches nothing, it does not throw.
    const hostile = b.manifest.artifacts.map((a) => ({...a, reference: 'NOT A REFERENCE'}))
    expect(carriedFor(hostile[0], hostile)).toEqual([])
    expect(carriedFor(b.manifest.artifacts[0], hostile)).toEqual([])
  })
})

describe('the referrers API answer of bundle serve', () => {
  const artifact = (over: Partial<BundleArtifact>): BundleArtifact => ({
    kind: 'referrer',
    reference: `ghcr.io/x/app@${D('d')}`,
    ...desc('d'),
    source: 'ghcr.io',
    omittedPlatforms: [],
    contentSize: 0,
    subject: D('a'),
    artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    ...over,
  })
  const manifest = {
    artifacts: [
      artifact({}),
      artifact({reference: `ghcr.io/x/app@${D('e')}`, ...desc('e'), artifactType: 'text/spdx+json'}),
      artifact({reference: `ghcr.io/y/other@${D('f')}`, ...desc('f')}),
      artifact({kind: 'signature', reference: `ghcr.io/x/app:sha256-${'a'.repeat(64)}.sig`, ...desc('c')}),
    ],
  } as BundleManifest

  it("lists the subject's referrers of that repository only, sorted, filtered by artifactType when asked", () => {
    const all = referrersOf(manifest, 'ghcr.io/x/app', D('a'))
    expect(all.filtered).toBe(false)
    expect(all.index.manifests.map((m) => [m.digest, m.artifactType])).toEqual([
      [D('d'), 'application/vnd.dev.sigstore.bundle.v0.3+json'],
      [D('e'), 'text/spdx+json'],
    ])
    const sboms = referrersOf(manifest, 'ghcr.io/x/app', D('a'), 'text/spdx+json')
    expect(sboms.filtered).toBe(true)
    expect(sboms.index.manifests.map((m) => m.digest)).toEqual([D('e')])
    expect(referrersOf(manifest, 'ghcr.io/x/app', D('b')).index.manifests).toEqual([])
  })
})
