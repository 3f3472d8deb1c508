import {chmod, mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {UsageError} from '../../src/errors.js'
import {CredentialStore} from '../../src/registry/credentials.js'
import {emptyRegistriesConfig} from '../../src/registry/registries-config.js'

// Where credentials come from and in which order; the helper is a real executable speaking the protocol.
describe('credential sources', () => {
  let dir: string
  const env = () => ({...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`})
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-creds-'))
    await mkdir(path.join(dir, 'bin'))
    await mkdir(path.join(dir, 'docker'))
    await writeFile(
      path.join(dir, 'bin', 'docker-credential-unit'),
      '#!/bin/sh\nread s\nif [ "$s" = "https://index.docker.io/v1/" ]; then echo \'{"Username":"hubuser","Secret":"hubsecret"}\'; else echo "credentials not found in native keychain"; exit 1; fi\n',
    )
    await chmod(path.join(dir, 'bin', 'docker-credential-unit'), 0o755)
    await writeFile(
      path.join(dir, 'docker', 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': {auth: Buffer.from('ignored:because-helper').toString('base64')},
          'ghcr.io': {auth: Buffer.from('gh:tok').toString('base64')},
          'quay.io': {identitytoken: 'refresh-quay'},
        },
        credHelpers: {'registry-1.docker.io': 'unit'},
      }),
    )
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('reads Docker config: credHelpers before auths, Docker Hub aliases, identity tokens', async () => {
    const store = new CredentialStore({dockerConfigDir: path.join(dir, 'docker'), env: env()})
    expect(await store.forHost('registry-1.docker.io')).toEqual({
      username: 'hubuser',
      password: 'hubsecret',
      origin: 'docker-credential-unit',
    })
    expect(await store.forHost('ghcr.io')).toEqual({username: 'gh', password: 'tok', origin: 'docker config auths'})
    expect(await store.forHost('quay.io')).toEqual({identityToken: 'refresh-quay', origin: 'docker config auths'})
    expect(await store.forHost('example.com')).toBeUndefined()
  })

  it('puts --cred-file first; a GCR _json_key object password is sent as its JSON', async () => {
    const credFile = path.join(dir, 'creds.json')
    const key = {
      type: 'service_account',
      project_id: 'p',
      private_key: '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n',
    }
    await writeFile(
      credFile,
      JSON.stringify({
        image: [
          {endpoint: 'gcr.io', username: '_json_key', password: key},
          {endpoint: 'https://ghcr.io', username: 'pal', password: 'pw'},
        ],
        helm: [{endpoint: 'charts.local', username: 'h', password: 'hp'}],
      }),
    )
    const registries = emptyRegistriesConfig()
    registries.auth.set('ghcr.io', {username: 'k3s', password: 'k3s-pw'})
    registries.auth.set('k3s.local', {username: 'k3s', password: 'k3s-pw'})
    const store = new CredentialStore({credFile, registries, dockerConfigDir: path.join(dir, 'docker'), env: env()})
    const gcr = await store.forHost('gcr.io')
    expect(gcr?.username).toBe('_json_key')
    expect(JSON.parse(gcr!.password!)).toEqual(key)
    expect((await store.forHost('ghcr.io'))?.origin).toBe('cred-file')
    expect((await store.forHost('k3s.local'))?.origin).toBe('registries.yaml configs')
    expect((await store.forHost('charts.local', 'helm'))?.username).toBe('h')
  })

  it("falls back to podman's auth.json only when --docker-config is not given", async () => {
    const authFile = path.join(dir, 'auth.json')
    await writeFile(
      authFile,
      JSON.stringify({auths: {'registry.example.com': {auth: Buffer.from('pod:man').toString('base64')}}}),
    )
    const env = {HOME: path.join(dir, 'empty-home'), REGISTRY_AUTH_FILE: authFile}
    expect(await new CredentialStore({env}).forHost('registry.example.com')).toEqual({
      username: 'pod',
      password: 'man',
      origin: 'containers auth.json',
    })
    expect(
      await new CredentialStore({env, dockerConfigDir: path.join(dir, 'docker')}).forHost('registry.example.com'),
    ).toBeUndefined()
    await writeFile(authFile, '{')
    await expect(new CredentialStore({env}).forHost('registry.example.com')).rejects.toBeInstanceOf(UsageError)
  })

  it('rejects a malformed --cred-file with every problem listed', async () => {
    const credFile = path.join(dir, 'bad.json')
    await writeFile(
      credFile,
      JSON.stringify({image: [{endpoint: 'a'}, {endpoint: 'b', username: 'u', password: 7}], helm: {}}),
    )
    const error = await new CredentialStore({credFile, dockerConfigDir: path.join(dir, 'docker')})
      .forHost('a')
      .catch((e) => e)
    expect(error).toBeInstanceOf(UsageError)
    expect(error.details.problems).toEqual([
      'image[0]: needs "endpoint" and "username" strings',
      'image[1] (b): "password" must be a string, or the service-account object for _json_key',
      'helm: must be a list',
    ])
  })
})
