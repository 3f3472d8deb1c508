import {chmod, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ResolveError} from '../../src/errors.js'
import {resolveArtifacts, writeLock} from '../../src/resolve/index.js'
import {execFileSync} from 'node:child_process'
import https from 'node:https'

import {makeTlsMaterial, startRegistry, type TestRegistry} from '../helpers/registry.js'
import {layerOf, pushImage, type SeededImage} from '../helpers/seed.js'
import {startTokenIssuer, type TokenIssuer} from '../helpers/token-issuer.js'
import {amd64} from '../helpers/constants.js'

// Every way of authenticating to a registry, against real registries: htpasswd Basic over TLS and the Bearer
// token flow with a JWT issuer; credentials from Docker config (auths, identitytoken, credHelpers, credsStore),
// Palette's --cred-file and K3s registries.yaml; and the failures (wrong password, none, untrusted TLS).
// No password or token may appear in any result or error.

const PASSWORD = 'pw-Sup3r-s3cret-9876'
const img = (reference: string) => ({reference, kind: 'image' as const, profile: 'p', pack: 'k', file: 'f.yaml'})

describe('registry authentication', () => {
  let tlsReg: TestRegistry
  let tokenReg: TestRegistry
  let issuer: TokenIssuer
  let dir: string
  let basicImage: SeededImage
  let tokenImage: SeededImage
  let tokenImage2: SeededImage
  const env = () => ({...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`})

  const dockerConfig = async (name: string, config: unknown) => {
    const d = path.join(dir, name)
    await mkdir(d, {recursive: true})
    await writeFile(path.join(d, 'config.json'), JSON.stringify(config))
    return d
  }
  const b64 = (s: string) => Buffer.from(s).toString('base64')

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-auth-'))
    tlsReg = await startRegistry({tls: true, htpasswd: {alice: PASSWORD}})
    basicImage = await pushImage(
      tlsReg,
      'secure/app',
      '1',
      [{architecture: 'amd64', layers: [layerOf({a: 'basic'})]}],
      {
        auth: {username: 'alice', password: PASSWORD},
      },
    )
    issuer = await startTokenIssuer({users: {bob: PASSWORD}, refreshTokens: {'refresh-XYZ-123456': 'bob'}})
    tokenReg = await startRegistry({
      token: {realm: issuer.realm, service: issuer.service, issuer: issuer.issuer, rootCertPem: issuer.rootCertPem},
    })
    const seed = (repo: string): TestRegistry => ({
      ...tokenReg,
      fetch: (p, init = {}) => {
        const headers = new Headers(init.headers)
        headers.set('authorization', `Bearer ${issuer.mint('seeder', `repository:${repo}:pull,push`)}`)
        return tokenReg.fetch(p, {...init, headers})
      },
    })
    tokenImage = await pushImage(seed('tok/app'), 'tok/app', '1', [
      {architecture: 'amd64', layers: [layerOf({a: 'token'})]},
    ])
    tokenImage2 = await pushImage(seed('tok/app'), 'tok/app', '2', [
      {architecture: 'amd64', layers: [layerOf({a: 'token2'})]},
    ])
    await mkdir(path.join(dir, 'bin'))
    // A credential helper speaking the docker-credential protocol: server URL on stdin, JSON on stdout.
    await writeFile(
      path.join(dir, 'bin', 'docker-credential-airpacktest'),
      `#!/bin/sh\nread server\ncase "$server" in\n  ${tlsReg.host}) printf '{"ServerURL":"%s","Username":"alice","Secret":"${PASSWORD}"}' "$server";;\n  ${tokenReg.host}) printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-XYZ-123456"}' "$server";;\n  *) echo "credentials not found in native keychain"; exit 1;;\nesac\n`,
    )
    await chmod(path.join(dir, 'bin', 'docker-credential-airpacktest'), 0o755)
  })
  afterAll(async () => {
    await tlsReg?.stop()
    await tokenReg?.stop()
    await issuer?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  const expectNoSecrets = async (value: unknown) => {
    const text = typeof value === 'string' ? value : JSON.stringify(value, Object.getOwnPropertyNames(value ?? {}))
    expect(text).not.toContain(PASSWORD)
    expect(text).not.toContain(b64(`alice:${PASSWORD}`))
    expect(text).not.toContain('refresh-XYZ-123456')
    for (const t of issuer.issued) expect(text).not.toContain(t)
  }

  it('Basic over TLS with --ca-cert and Docker config auths; the lock holds no secret', async () => {
    const dockerConfigDir = await dockerConfig('auths', {auths: {[tlsReg.host]: {auth: b64(`alice:${PASSWORD}`)}}})
    const {lock, plan} = await resolveArtifacts(
      {images: [img(basicImage.reference)], charts: []},
      {platform: amd64, dockerConfigDir, caCertFile: tlsReg.caFile},
    )
    expect(lock.images[basicImage.reference].digest).toBe(basicImage.digest)
    const lockFile = path.join(dir, 'basic.lock.json')
    await writeLock(lockFile, lock)
    await expectNoSecrets(await readFile(lockFile, 'utf8'))
    await expectNoSecrets(plan)
  })

  it('Basic with the K3s registries.yaml configs (auth and tls.ca_file)', async () => {
    const file = path.join(dir, 'registries.yaml')
    await writeFile(
      file,
      `configs:\n  "${tlsReg.host}":\n    auth:\n      username: alice\n      password: ${PASSWORD}\n    tls:\n      ca_file: ${tlsReg.caFile}\n`,
    )
    const {lock} = await resolveArtifacts(
      {images: [img(basicImage.reference)], charts: []},
      {platform: amd64, registriesFile: file, dockerConfigDir: path.join(dir, 'none')},
    )
    expect(lock.images[basicImage.reference].digest).toBe(basicImage.digest)
  })

  it("Palette's --cred-file, with unverified TLS for that host only (--insecure-registry)", async () => {
    const credFile = path.join(dir, 'creds.json')
    await writeFile(
      credFile,
      JSON.stringify({image: [{endpoint: tlsReg.host, username: 'alice', password: PASSWORD}], helm: []}),
    )
    const {lock} = await resolveArtifacts(
      {images: [img(basicImage.reference)], charts: []},
      {platform: amd64, credFile, insecureRegistries: [tlsReg.host], dockerConfigDir: path.join(dir, 'none')},
    )
    expect(lock.images[basicImage.reference].digest).toBe(basicImage.digest)
  })

  it('a credential helper (credHelpers) and a credsStore', async () => {
    const helpers = await dockerConfig('helpers', {credHelpers: {[tlsReg.host]: 'airpacktest'}})
    const r1 = await resolveArtifacts(
      {images: [img(basicImage.reference)], charts: []},
      {platform: amd64, dockerConfigDir: helpers, caCertFile: tlsReg.caFile, env: env()},
    )
    expect(r1.lock.images[basicImage.reference].digest).toBe(basicImage.digest)
    const store = await dockerConfig('store', {credsStore: 'airpacktest', auths: {[tlsReg.host]: {}}})
    const r2 = await resolveArtifacts(
      {images: [img(basicImage.reference)], charts: []},
      {platform: amd64, dockerConfigDir: store, caCertFile: tlsReg.caFile, env: env()},
    )
    expect(r2.lock.images[basicImage.reference].digest).toBe(basicImage.digest)
  })

  it('Bearer tokens from the challenge, fetched once per scope with Basic credentials', async () => {
    issuer.requests.length = 0
    const dockerConfigDir = await dockerConfig('token-auths', {
      auths: {[tokenReg.host]: {auth: b64(`bob:${PASSWORD}`)}},
    })
    const {lock} = await resolveArtifacts(
      {images: [img(tokenImage.reference), img(tokenImage2.reference)], charts: []},
      {platform: amd64, dockerConfigDir},
    )
    expect(lock.images[tokenImage.reference].digest).toBe(tokenImage.digest)
    expect(lock.images[tokenImage2.reference].digest).toBe(tokenImage2.digest)
    expect(issuer.requests).toEqual([{user: 'bob', scope: 'repository:tok/app:pull', method: 'GET'}])
    await expectNoSecrets(lock)
  })

  it('an identity token (refresh-token grant) from a helper answering <token>', async () => {
    issuer.requests.length = 0
    const helpers = await dockerConfig('token-helper', {credHelpers: {[tokenReg.host]: 'airpacktest'}})
    const {lock} = await resolveArtifacts(
      {images: [img(tokenImage.reference)], charts: []},
      {platform: amd64, dockerConfigDir: helpers, env: env()},
    )
    expect(lock.images[tokenImage.reference].digest).toBe(tokenImage.digest)
    expect(issuer.requests).toEqual([{user: 'refresh', scope: 'repository:tok/app:pull', method: 'POST'}])
    const direct = await dockerConfig('identitytoken', {
      auths: {[tokenReg.host]: {identitytoken: 'refresh-XYZ-123456'}},
    })
    const r2 = await resolveArtifacts(
      {images: [img(tokenImage.reference)], charts: []},
      {platform: amd64, dockerConfigDir: direct},
    )
    expect(r2.lock.images[tokenImage.reference].digest).toBe(tokenImage.digest)
  })

  it('mutual TLS: the client certificate and key of registries.yaml configs.<host>.tls', async () => {
    // An https front that demands a client certificate signed by its CA, forwarding to a plain registry.
    const plain = await startRegistry()
    const mtlsDir = path.join(dir, 'mtls')
    await mkdir(mtlsDir)
    const tls = makeTlsMaterial(mtlsDir)
    const run = (args: string[]) => execFileSync('openssl', args, {cwd: mtlsDir, stdio: 'pipe'})
    run([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'client.key',
      '-out',
      'client.csr',
      '-subj',
      '/CN=airpack client',
    ])
    run([
      'x509',
      '-req',
      '-in',
      'client.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'client.pem',
      '-days',
      '2',
    ])
    const server = https.createServer(
      {
        key: await readFile(tls.keyFile),
        cert: await readFile(tls.certFile),
        ca: tls.caPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        void (async () => {
          const up = await plain.fetch(req.url ?? '/', {
            method: req.method,
            headers: req.headers.accept ? {accept: String(req.headers.accept)} : {},
          })
          const body = Buffer.from(await up.arrayBuffer())
          const headers: Record<string, string> = {}
          up.headers.forEach((v, k) => {
            if (!['content-length', 'transfer-encoding', 'connection'].includes(k)) headers[k] = v
          })
          res.writeHead(up.status, {...headers, 'content-length': String(body.length)})
          res.end(req.method === 'HEAD' ? undefined : body)
        })()
      },
    )
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const host = `127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`
    try {
      const seeded = await pushImage(plain, 'mtls/app', '1', [{architecture: 'amd64', layers: [layerOf({a: 'mtls'})]}])
      const ref = `${host}/mtls/app:1`
      const file = path.join(dir, 'mtls.yaml')
      const tlsBlock = `    tls:\n      ca_file: ${tls.caFile}\n`
      await writeFile(
        file,
        `configs:\n  "${host}":\n${tlsBlock}      cert_file: ${path.join(mtlsDir, 'client.pem')}\n      key_file: ${path.join(mtlsDir, 'client.key')}\n`,
      )
      const {lock} = await resolveArtifacts(
        {images: [img(ref)], charts: []},
        {platform: amd64, registriesFile: file, dockerConfigDir: path.join(dir, 'none')},
      )
      expect(lock.images[ref].digest).toBe(seeded.digest)
      await writeFile(file, `configs:\n  "${host}":\n${tlsBlock}`)
      const refused = await resolveArtifacts(
        {images: [img(ref)], charts: []},
        {platform: amd64, registriesFile: file, dockerConfigDir: path.join(dir, 'none'), attempts: 1},
      ).catch((e) => e)
      expect(refused).toBeInstanceOf(ResolveError)
      expect(refused.details.problems[0]).toContain(host)
      expect(refused.details.problems[0]).toContain('set cert_file and key_file')
    } finally {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
      await plain.stop()
    }
  })

  it('fails clearly, naming artifact and registry and never the secret: wrong password, no credentials, untrusted TLS', async () => {
    const wrong = await dockerConfig('wrong', {
      auths: {
        [tlsReg.host]: {auth: b64('alice:wrong-' + PASSWORD)},
        [tokenReg.host]: {auth: b64('bob:wrong-' + PASSWORD)},
      },
    })
    const e1 = await resolveArtifacts(
      {images: [img(basicImage.reference), img(tokenImage.reference)], charts: []},
      {platform: amd64, dockerConfigDir: wrong, caCertFile: tlsReg.caFile},
    ).catch((e) => e)
    expect(e1).toBeInstanceOf(ResolveError)
    expect(e1.details.problems).toHaveLength(2)
    expect(e1.details.problems[0]).toContain(
      `${tlsReg.host} rejected the credentials (from docker config auths) for secure/app`,
    )
    expect(e1.details.problems[1]).toContain(`rejected the credentials for ${tokenReg.host} (from docker config auths)`)
    expect(e1.hint).toMatch(/docker login/)
    await expectNoSecrets(e1)
    await expectNoSecrets(e1.details)

    const e2 = await resolveArtifacts(
      {images: [img(basicImage.reference), img(tokenImage.reference)], charts: []},
      {platform: amd64, dockerConfigDir: path.join(dir, 'none'), caCertFile: tlsReg.caFile},
    ).catch((e) => e)
    expect(e2.details.problems[0]).toContain('requires authentication for secure/app and no credentials were found')
    expect(e2.details.problems[1]).toContain(`refused anonymous access to ${tokenReg.host}`)

    const e3 = await resolveArtifacts(
      {images: [img(basicImage.reference)], charts: []},
      {platform: amd64, dockerConfigDir: path.join(dir, 'none')},
    ).catch((e) => e)
    expect(e3).toBeInstanceOf(ResolveError)
    expect(e3.details.problems[0]).toMatch(/TLS to 127\.0\.0\.1:\d+ failed/)
    expect(e3.hint).toMatch(/--ca-cert/)
  })
})
