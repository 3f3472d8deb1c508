import {execFileSync} from 'node:child_process'
import {generateKeyPairSync} from 'node:crypto'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {hostPathComponent} from '../../src/registry/reference.js'
import {runCli} from '../helpers/cli.js'
import {startContainerd, type TestContainerd} from '../helpers/containerd.js'
import {startRegistry, type TestRegistry} from '../helpers/registry.js'
import {serveBundle, type ServedBundle} from '../helpers/serve.js'
import {
  cosignKeyPair,
  cosignTag,
  layerOf,
  pushCosignAttestation,
  pushCosignSbom,
  pushCosignSignature,
  pushImage,
  pushReferrer,
  type Blob,
  type PushedSignature,
  type SeededImage,
} from '../helpers/seed.js'
import {addonProfile} from '../../support/profiles.js'

// --supply-chain carry|skip, bundle verify --cosign-key and inspect (PRODUCT.md §13) through the built CLI, against a
// real registry (distribution 2.8: no referrers API, so referrers are found through the fallback tag) seeded the way
// cosign and OCI 1.1 clients push: a signed image (simple-signing payload, P-256 key), an attestation, an SBOM and a
// referrer. The bundles are imported by a real containerd.

let reg: TestRegistry
let root: string
let app: SeededImage
let tool: SeededImage
let signature: PushedSignature
let cosignPub: string
let otherPub: string
let appPlatform: string
let referrer: Blob

const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json'

function write(name: string, data: string | Buffer): string {
  const file = path.join(root, name)
  mkdirSync(path.dirname(file), {recursive: true})
  writeFileSync(file, data)
  return file
}

const profileOf = (name: string, images: string[]) =>
  write(`${name}.json`, JSON.stringify(addonProfile({name, pack: 'web', namespace: 'web', images}), null, 2))

const registryArgs = () => ['--insecure-registry', reg.host]

async function build(name: string, profile: string, extra: string[] = []) {
  const out = path.join(root, `out-${name}`)
  const res = await runCli([
    'bundle',
    'build',
    profile,
    '--arch',
    'amd64',
    '--name',
    name,
    '--output',
    out,
    '--cache-dir',
    path.join(root, 'cache'),
    ...registryArgs(),
    ...extra,
    '--json',
  ])
  return {res, out, bundle: path.join(out, `${name}.tar.zst`)}
}

/** The bundle's tar, extracted: bundle.json, index.json and blobs as stock tools see them. */
function extract(bundle: string): {dir: string; bundleJson: any; index: any; blob: (digest: string) => Buffer} {
  const dir = mkdtempSync(path.join(root, 'x-'))
  execFileSync('bash', ['-c', `zstd -dc "${bundle}" | tar -x -C "${dir}"`])
  return {
    dir,
    bundleJson: JSON.parse(readFileSync(path.join(dir, 'airpack/bundle.json'), 'utf8')),
    index: JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')),
    blob: (digest) => readFileSync(path.join(dir, 'blobs/sha256', digest.slice('sha256:'.length))),
  }
}

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'airpack-e2e-supply-'))
  reg = await startRegistry()
  app = await pushImage(reg, 'team/app', '1.0', [
    {architecture: 'amd64', layers: [layerOf({'bin/app': 'amd64 build'})]},
    {architecture: 'arm64', layers: [layerOf({'bin/app': 'arm64 build'})]},
  ])
  appPlatform = app.manifests['linux/amd64'].digest
  tool = await pushImage(reg, 'team/tool', '2', [{architecture: 'amd64', layers: [layerOf({'bin/tool': 'x'})]}])
  const key = cosignKeyPair()
  cosignPub = write('cosign.pub', key.publicKeyPem)
  otherPub = write(
    'other.pub',
    generateKeyPairSync('ec', {namedCurve: 'prime256v1'}).publicKey.export({type: 'spki', format: 'pem'}).toString(),
  )
  signature = await pushCosignSignature(reg, 'team/app', app.digest, key.privateKey)
  await pushCosignSbom(reg, 'team/app', app.digest)
  await pushCosignAttestation(reg, 'team/app', appPlatform)
  referrer = await pushReferrer(reg, 'team/app', {digest: app.digest, size: app.bytes.length, mediaType: app.mediaType})
}, 120_000)

afterAll(async () => {
  await reg?.stop()
  rmSync(root, {recursive: true, force: true})
})

describe('--supply-chain carry', () => {
  let lockFile: string
  let bundle: string
  let x: ReturnType<typeof extract>

  it('profile resolve pins the signature, SBOM, attestation and referrer with their subjects', async () => {
    lockFile = path.join(root, 'app.lock.json')
    const res = await runCli([
      'profile',
      'resolve',
      profileOf('app', [app.reference]),
      '--arch',
      'amd64',
      '--lock-file',
      lockFile,
      '--cache-dir',
      path.join(root, 'cache'),
      ...registryArgs(),
      '--json',
    ])
    expect(res.exitCode, res.stderr).toBe(0)
    const lock = JSON.parse(readFileSync(lockFile, 'utf8'))
    const carried = lock.images[app.reference].supplyChain
    expect(carried.map((s: any) => [s.kind, s.subject, s.tag ?? null])).toEqual(
      [
        ['signature', app.digest, cosignTag(app.digest, 'sig')],
        ['sbom', app.digest, cosignTag(app.digest, 'sbom')],
        ['referrer', app.digest, cosignTag(app.digest)],
        ['attestation', appPlatform, cosignTag(appPlatform, 'att')],
      ].sort((a, b) => (`${a[1]}\0${a[0]}` < `${b[1]}\0${b[0]}` ? -1 : 1)),
    )
    expect(carried.find((s: any) => s.kind === 'signature').manifest.digest).toBe(signature.manifest.digest)
    expect(carried.find((s: any) => s.kind === 'referrer').manifest.artifactType).toBe(
      'application/vnd.dev.sigstore.bundle.v0.3+json',
    )
    const planned = res.json().artifacts.find((a: any) => a.reference === app.reference)
    expect(planned.supplyChain).toHaveLength(4)
  })

  it('bundle build --locked carries them as platform-less artifacts annotated with their subject, never ref.name', async () => {
    const built = await build('signed', profileOf('app', [app.reference]), ['--locked', '--lock-file', lockFile])
    expect(built.res.exitCode, built.res.stderr).toBe(0)
    bundle = built.bundle
    x = extract(bundle)
    const supply = x.bundleJson.artifacts.filter((a: any) => a.kind !== 'image' && a.kind !== 'definition')
    expect(supply.map((a: any) => [a.kind, a.subject, a.image]).sort()).toEqual(
      [
        ['attestation', appPlatform, app.reference],
        ['referrer', app.digest, app.reference],
        ['sbom', app.digest, app.reference],
        ['signature', app.digest, app.reference],
      ].sort(),
    )
    const sigArtifact = supply.find((a: any) => a.kind === 'signature')
    expect(sigArtifact.reference).toBe(`${reg.host}/team/app:${signature.tag}`)
    expect(sigArtifact.digest).toBe(signature.manifest.digest)
    const entries = x.index.manifests.filter((d: any) => d.annotations['io.airpack.supply-chain.kind'])
    expect(entries).toHaveLength(4)
    for (const d of entries) {
      expect(d.platform).toBeUndefined()
      expect(d.annotations['org.opencontainers.image.ref.name']).toBeUndefined()
      expect([app.digest, appPlatform]).toContain(d.annotations['io.airpack.subject'])
    }
    expect(entries.find((d: any) => d.digest === signature.manifest.digest).annotations).toMatchObject({
      'io.airpack.subject': app.digest,
      'io.airpack.supply-chain.kind': 'signature',
      'io.airpack.supply-chain.tag': signature.tag,
    })
    const verify = await runCli(['bundle', 'verify', bundle])
    expect(verify.exitCode, verify.stderr).toBe(0)
  })

  it('carries the signed payload byte for byte: openssl verifies it and it names the carried index digest', () => {
    const manifest = JSON.parse(x.blob(signature.manifest.digest).toString('utf8'))
    const layer = manifest.layers[0]
    expect(layer.mediaType).toBe('application/vnd.dev.cosign.simplesigning.v1+json')
    const payloadFile = path.join(x.dir, 'blobs/sha256', layer.digest.slice('sha256:'.length))
    const sigFile = write('payload.sig', Buffer.from(layer.annotations['dev.cosignproject.cosign/signature'], 'base64'))
    const out = execFileSync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      cosignPub,
      '-signature',
      sigFile,
      payloadFile,
    ]).toString()
    expect(out).toContain('Verified OK')
    const payload = JSON.parse(readFileSync(payloadFile, 'utf8'))
    const carriedIndex = x.bundleJson.artifacts.find((a: any) => a.reference === app.reference)
    expect(payload.critical.image['docker-manifest-digest']).toBe(carriedIndex.digest)
    expect(carriedIndex.digest).toBe(app.digest)
  })

  it('verify --cosign-key passes with the signing key and fails (exit 5, naming the image) with another', async () => {
    const ok = await runCli(['bundle', 'verify', bundle, '--cosign-key', cosignPub, '--json'])
    expect(ok.exitCode, ok.stderr).toBe(0)
    expect(ok.json().cosign.images).toEqual([
      {reference: app.reference, subject: app.digest, signature: `${reg.host}/team/app:${signature.tag}`},
    ])
    const bad = await runCli(['bundle', 'verify', bundle, '--cosign-key', otherPub])
    expect(bad.exitCode).toBe(5)
    expect(bad.stderr).toContain(`image ${app.reference}: no cosign signature of it verifies with the given key`)
  })

  it('inspect shows what is carried per image, in text and --json', async () => {
    const text = await runCli(['bundle', 'inspect', bundle])
    expect(text.exitCode, text.stderr).toBe(0)
    expect(text.stdout).toContain(`    signature    ${reg.host}/team/app:${signature.tag}`)
    expect(text.stdout).toMatch(/ {4}attestation {2}\S+:sha256-[a-f0-9]{64}\.att .*\(of platform manifest sha256:/)
    const json = (await runCli(['bundle', 'inspect', bundle, '--json'])).json()
    const image = json.artifacts.find((a: any) => a.reference === app.reference)
    expect(image.supplyChain.map((s: any) => s.kind).sort()).toEqual(['attestation', 'referrer', 'sbom', 'signature'])
  })

  it('ctr import exits 0 and creates no image for the supply-chain artifacts', async () => {
    let containerd: TestContainerd | undefined
    try {
      containerd = await startContainerd()
      execFileSync('bash', [
        '-c',
        `zstd -dc "${bundle}" | ctr --address "${containerd.socket}" -n k8s.io images import --platform linux/amd64 -`,
      ])
      const images = containerd.images()
      expect(images.get(app.reference)).toBe(app.digest)
      // containerd 1.6 makes images only of ref.name entries; the artefacts are content no image references (its
      // garbage collector drops them): a site gets them back through `bundle push` or `serve`, not through ctr.
      expect([...images.keys()].sort()).toEqual([app.reference, 'airpack.local/spc/signed:latest'].sort())
    } finally {
      await containerd?.stop()
    }
  }, 120_000)
})

describe('bundle serve puts them back where policy engines look', () => {
  let served: ServedBundle | undefined

  afterAll(async () => {
    await served?.stop()
  })

  it('answers the cosign tags and the referrers API from a format 2 bundle', async () => {
    const built = await build('served', profileOf('app', [app.reference]), ['--format', '2'])
    expect(built.res.exitCode, built.res.stderr).toBe(0)
    // Format 2's verify reads the signatures through the seek table: the same check, the same answer.
    const verified = await runCli(['bundle', 'verify', built.bundle, '--cosign-key', cosignPub])
    expect(verified.exitCode, verified.stderr).toBe(0)
    expect((await runCli(['bundle', 'verify', built.bundle, '--cosign-key', otherPub])).exitCode).toBe(5)
    served = await serveBundle(built.bundle)
    // The source host's port becomes `_PORT` in a repository name (a ':' is not allowed there).
    const repo = `${served.url}/v2/${hostPathComponent(reg.host)}/team/app`
    const sig = await fetch(`${repo}/manifests/${signature.tag}`, {
      headers: {accept: 'application/vnd.oci.image.manifest.v1+json'},
    })
    expect(sig.status).toBe(200)
    expect(sig.headers.get('docker-content-digest')).toBe(signature.manifest.digest)
    expect(Buffer.from(await sig.arrayBuffer()).equals(signature.manifest.bytes)).toBe(true)
    const payload = await fetch(`${repo}/blobs/${signature.payload.digest}`)
    expect(payload.status).toBe(200)
    expect(Buffer.from(await payload.arrayBuffer()).equals(signature.payload.bytes)).toBe(true)
    const tags = (await (await fetch(`${repo}/tags/list`)).json()) as {tags: string[]}
    expect(tags.tags).toEqual(
      expect.arrayContaining(['1.0', signature.tag, cosignTag(app.digest, 'sbom'), cosignTag(appPlatform, 'att')]),
    )

    const referrers = await fetch(`${repo}/referrers/${app.digest}`)
    expect(referrers.status).toBe(200)
    expect(referrers.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json')
    const index = (await referrers.json()) as {manifests: {digest: string; artifactType: string}[]}
    expect(index.manifests).toEqual([expect.objectContaining({digest: referrer.digest, artifactType: SIGSTORE_BUNDLE})])
    const filtered = await fetch(`${repo}/referrers/${app.digest}?artifactType=application/spdx%2Bjson`)
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType')
    expect(((await filtered.json()) as {manifests: unknown[]}).manifests).toEqual([])
    const none = (await (await fetch(`${repo}/referrers/${appPlatform}`)).json()) as {manifests: unknown[]}
    expect(none.manifests).toEqual([])
  })
})

describe('bundle push puts them back into a site registry', () => {
  let site: TestRegistry | undefined

  afterAll(async () => {
    await site?.stop()
  })

  it('the cosign tags answer 200, and the referrers get the fallback tag distribution 2.8 needs', async () => {
    // Pushed names keep the source host, and a repository name cannot hold the test registry's port: the image is
    // named under a host without one (.invalid never resolves), reached through a registries.yaml mirror.
    const mirrors = write('mirrors.yaml', `mirrors:\n  supply.invalid:\n    endpoint: ["${reg.url}"]\n`)
    const built = await build('pushed', profileOf('mirrored', ['supply.invalid/team/app:1.0']), [
      '--format',
      '2',
      '--registries',
      mirrors,
    ])
    expect(built.res.exitCode, built.res.stderr).toBe(0)
    site = await startRegistry()
    const push = () =>
      runCli([
        'bundle',
        'push',
        built.bundle,
        '--to',
        `${site!.host}/edge`,
        '--index',
        'platform',
        '--insecure-registry',
        site!.host,
        '--json',
      ])
    const pushed = await push()
    expect(pushed.exitCode, pushed.stderr + pushed.stdout).toBe(0)
    const repo = '/v2/edge/supply.invalid/team/app'
    const accept = {accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'}
    const sig = await site.fetch(`${repo}/manifests/${signature.tag}`, {headers: accept})
    expect(sig.status).toBe(200)
    expect(sig.headers.get('docker-content-digest')).toBe(signature.manifest.digest)
    await sig.arrayBuffer()
    for (const tag of [cosignTag(app.digest, 'sbom'), cosignTag(appPlatform, 'att')]) {
      const res = await site.fetch(`${repo}/manifests/${tag}`, {method: 'HEAD', headers: accept})
      expect(res.status, tag).toBe(200)
    }
    const payload = await site.fetch(`${repo}/blobs/${signature.payload.digest}`)
    expect(Buffer.from(await payload.arrayBuffer()).equals(signature.payload.bytes)).toBe(true)

    // distribution 2.8 has no referrers API: the fallback tag lists the referrer, which is there by digest.
    expect(pushed.json().referrersFallback).toEqual([
      `${site.host}/edge/supply.invalid/team/app:${cosignTag(app.digest)}`,
    ])
    const fallback = await site.fetch(`${repo}/manifests/${cosignTag(app.digest)}`, {headers: accept})
    expect(fallback.status).toBe(200)
    const index = (await fallback.json()) as {manifests: {digest: string; artifactType: string}[]}
    expect(index.manifests).toEqual([expect.objectContaining({digest: referrer.digest, artifactType: SIGSTORE_BUNDLE})])
    const byDigest = await site.fetch(`${repo}/manifests/${referrer.digest}`, {method: 'HEAD', headers: accept})
    expect(byDigest.status).toBe(200)

    // A second push finds the fallback index complete: nothing to write.
    const again = await push()
    expect(again.exitCode, again.stderr).toBe(0)
    expect(again.json().referrersFallback).toEqual([])
  })
})

describe('--supply-chain skip and hand-listed artefacts', () => {
  it('skip carries nothing', async () => {
    const built = await build('unsigned', profileOf('app', [app.reference]), ['--supply-chain', 'skip'])
    expect(built.res.exitCode, built.res.stderr).toBe(0)
    const x = extract(built.bundle)
    expect(x.bundleJson.artifacts.map((a: any) => a.kind).sort()).toEqual(['definition', 'image'])
    const lock = JSON.parse(readFileSync(path.join(built.out, 'unsigned.lock.json'), 'utf8'))
    expect(lock.images[app.reference].supplyChain).toBeUndefined()
    const verify = await runCli(['bundle', 'verify', built.bundle, '--cosign-key', cosignPub])
    expect(verify.exitCode).toBe(5)
    expect(verify.stderr).toContain(`image ${app.reference} is not signed`)
  })

  it('a .sig listed by hand is carried as the signature of the image it names, not as an image', async () => {
    const sigRef = `${reg.host}/team/app:${signature.tag}`
    const profile = profileOf('listed', [app.reference, sigRef, tool.reference])
    const built = await build('listed', profile, ['--supply-chain', 'skip'])
    expect(built.res.exitCode, built.res.stderr).toBe(0)
    const x = extract(built.bundle)
    const kinds = x.bundleJson.artifacts.map((a: any) => [a.kind, a.reference])
    expect(kinds).toContainEqual(['signature', sigRef])
    expect(
      kinds
        .filter((k: any) => k[0] === 'image')
        .map((k: any) => k[1])
        .sort(),
    ).toEqual([app.reference, tool.reference].sort())
    const lock = JSON.parse(readFileSync(path.join(built.out, 'listed.lock.json'), 'utf8'))
    expect(lock.images[sigRef]).toBeUndefined()
    expect(lock.images[app.reference].supplyChain).toMatchObject([{kind: 'signature', listed: true}])
    // The unsigned image is named.
    const verify = await runCli(['bundle', 'verify', built.bundle, '--cosign-key', cosignPub])
    expect(verify.exitCode).toBe(5)
    expect(verify.stderr).toContain(`image ${tool.reference} is not signed`)
    expect(verify.stderr).not.toContain(`image ${app.reference}`)
    // --locked with the same profile accepts the lock that pins it.
    const again = await build('listed', profile, [
      '--supply-chain',
      'skip',
      '--locked',
      '--lock-file',
      path.join(built.out, 'listed.lock.json'),
    ])
    expect(again.res.exitCode, again.res.stderr).toBe(0)
    expect(again.res.json().identity).toBe(built.res.json().identity)
  })

  it('a listed .sig whose image the profiles do not list is refused, naming it', async () => {
    const sigRef = `${reg.host}/team/app:${signature.tag}`
    const res = await runCli([
      'profile',
      'resolve',
      profileOf('orphan', [tool.reference, sigRef]),
      '--arch',
      'amd64',
      ...registryArgs(),
    ])
    expect(res.exitCode).toBe(4)
    expect(res.stderr).toContain(sigRef)
    expect(res.stderr).toContain('the profiles do not list')
  })
})

describe('broken supply-chain artefacts', () => {
  it('a referrer whose subject is not the image is an error naming it (exit 4)', async () => {
    const broken = await pushImage(reg, 'team/broken', '1', [{architecture: 'amd64', layers: [layerOf({a: 'b'})]}])
    const referrer = await pushReferrer(
      reg,
      'team/broken',
      {digest: broken.digest, size: broken.bytes.length, mediaType: broken.mediaType},
      {subjectDigest: tool.digest},
    )
    const res = await runCli([
      'profile',
      'resolve',
      profileOf('broken', [broken.reference]),
      '--arch',
      'amd64',
      ...registryArgs(),
    ])
    expect(res.exitCode).toBe(4)
    expect(res.stderr).toContain(`referrer ${reg.host}/team/broken@${referrer.digest}`)
    expect(res.stderr).toContain(`its subject is ${tool.digest}`)
    const skipped = await runCli([
      'profile',
      'resolve',
      profileOf('broken', [broken.reference]),
      '--arch',
      'amd64',
      '--supply-chain',
      'skip',
      ...registryArgs(),
    ])
    expect(skipped.exitCode, skipped.stderr).toBe(0)
  })
})
