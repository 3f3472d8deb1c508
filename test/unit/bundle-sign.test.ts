import {execFileSync} from 'node:child_process'
import {createHash, createSign, generateKeyPairSync, sign} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {
  FileSeal,
  loadPublicKey,
  loadSigningKey,
  signDocument,
  streamVerifier,
  verifyDocument,
  type SigningKey,
} from '../../src/bundle/sign.js'

// Signatures made with node:crypto that stock openssl accepts (PRODUCT.md §7).

let dir: string
const keys: Record<string, {priv: string; pub: string}> = {}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-sign-'))
  const pairs = {
    rsa: generateKeyPairSync('rsa', {modulusLength: 2048}),
    ec: generateKeyPairSync('ec', {namedCurve: 'prime256v1'}),
    ed25519: generateKeyPairSync('ed25519'),
    secp384: generateKeyPairSync('ec', {namedCurve: 'secp384r1'}),
  }
  for (const [name, pair] of Object.entries(pairs)) {
    const priv = path.join(dir, `${name}.pem`)
    const pub = path.join(dir, `${name}.pub`)
    writeFileSync(priv, pair.privateKey.export({type: 'pkcs8', format: 'pem'}))
    writeFileSync(pub, pair.publicKey.export({type: 'spki', format: 'pem'}))
    keys[name] = {priv, pub}
  }
  // A large-ish file fed in chunks, as the bundle writer does.
  writeFileSync(path.join(dir, 'data.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a))
})

afterAll(() => rmSync(dir, {recursive: true, force: true}))

/** The file's bytes through a FileSeal in chunks, as the bundle writer feeds it: its sha256 and signature. */
async function sealBytes(key: SigningKey | undefined, data: Buffer): Promise<{sha256: string; signature?: Buffer}> {
  const seal = new FileSeal(key)
  for (let i = 0; i < data.length; i += 65536) await seal.write(data.subarray(i, i + 65536))
  return seal.seal()
}

async function signFile(keyFile: string, file: string): Promise<Buffer> {
  return (await sealBytes(await loadSigningKey(keyFile), readFileSync(file))).signature!
}

describe('signing', () => {
  for (const name of ['rsa', 'ec'] as const) {
    it(`${name}: the detached signature passes openssl dgst -sha256 -verify`, async () => {
      const data = path.join(dir, 'data.bin')
      const sig = path.join(dir, `${name}.sig`)
      writeFileSync(sig, await signFile(keys[name].priv, data))
      const out = execFileSync('openssl', [
        'dgst',
        '-sha256',
        '-verify',
        keys[name].pub,
        '-signature',
        sig,
        data,
      ]).toString()
      expect(out).toContain('Verified OK')
    })
  }

  it('ed25519: the detached signature over the SHA-256 digest passes openssl pkeyutl -rawin', async () => {
    const data = path.join(dir, 'data.bin')
    const sig = path.join(dir, 'ed.sig')
    writeFileSync(sig, await signFile(keys.ed25519.priv, data))
    const digest = path.join(dir, 'data.sha256')
    writeFileSync(digest, execFileSync('openssl', ['dgst', '-sha256', '-binary', data]))
    const out = execFileSync('openssl', [
      'pkeyutl',
      '-verify',
      '-pubin',
      '-inkey',
      keys.ed25519.pub,
      '-rawin',
      '-in',
      digest,
      '-sigfile',
      sig,
    ]).toString()
    expect(out).toContain('Signature Verified Successfully')
  })

  for (const name of ['rsa', 'ec', 'ed25519'] as const) {
    it(`${name}: document and stream signatures verify with the public key and fail on tampering or another key`, async () => {
      const signer = await loadSigningKey(keys[name].priv)
      const pub = await loadPublicKey(keys[name].pub)
      expect(pub.publicKeyFingerprint).toBe(signer.publicKeyFingerprint)
      const doc = Buffer.from('{"formatVersion":1}\n')
      const sig = signDocument(signer, doc)
      expect(verifyDocument(pub, doc, sig)).toBe(true)
      expect(verifyDocument(pub, Buffer.from('{"formatVersion":2}\n'), sig)).toBe(false)
      const other = await loadPublicKey(keys[name === 'rsa' ? 'ec' : 'rsa'].pub)
      expect(verifyDocument(other, doc, sig)).toBe(false)

      const seal = new FileSeal(signer)
      await seal.write(Buffer.from('part one, '))
      await seal.write(Buffer.from('part two'))
      const detached = (await seal.seal()).signature!
      const v = streamVerifier(pub)
      v.update(Buffer.from('part one, part two'))
      expect(v.verify(detached)).toBe(true)
      const bad = streamVerifier(pub)
      bad.update(Buffer.from('part one, part tw0'))
      expect(bad.verify(detached)).toBe(false)
    })
  }

  it('FileSeal: the sha256 of the bytes fed, and RSA and Ed25519 signatures byte for byte those of signing the bytes themselves', async () => {
    const data = readFileSync(path.join(dir, 'data.bin'))
    const sha256 = createHash('sha256').update(data).digest()
    expect(await sealBytes(undefined, data)).toEqual({sha256: sha256.toString('hex')})
    const rsa = await loadSigningKey(keys.rsa.priv)
    const rsaSealed = await sealBytes(rsa, data)
    expect(rsaSealed.sha256).toBe(sha256.toString('hex'))
    expect(rsaSealed.signature).toEqual(createSign('sha256').update(data).sign(rsa.key))
    const ed = await loadSigningKey(keys.ed25519.priv)
    expect((await sealBytes(ed, data)).signature).toEqual(sign(null, sha256, ed.key))
    // ECDSA signatures are randomised: the one made in the hashing worker verifies over the bytes.
    const ec = await loadSigningKey(keys.ec.priv)
    const ecSealed = await sealBytes(ec, data)
    expect(ecSealed.sha256).toBe(sha256.toString('hex'))
    const v = streamVerifier(await loadPublicKey(keys.ec.pub))
    v.update(data)
    expect(v.verify(ecSealed.signature!)).toBe(true)
  })

  it('refuses unsupported curves, public keys as signing keys, and missing files, without echoing key material', async () => {
    await expect(loadSigningKey(keys.secp384.priv)).rejects.toMatchObject({
      code: 'ERR_AIRPACK_KEY_UNSUPPORTED',
      exitCode: 2,
    })
    await expect(loadSigningKey(keys.rsa.pub)).rejects.toMatchObject({code: 'ERR_AIRPACK_KEY_INVALID', exitCode: 2})
    await expect(loadSigningKey(path.join(dir, 'nope.pem'))).rejects.toMatchObject({code: 'ERR_AIRPACK_KEY_UNREADABLE'})
    const error = await loadSigningKey(keys.rsa.pub).catch((e: Error) => e)
    expect(String((error as Error).message)).not.toContain('BEGIN')
  })
})
