// Cluster definition .tgz: the layout airpack writes, and hostile archives built byte by byte (a tar library
// would refuse to write `../` paths, absolute paths or devices, which is exactly what must be tested).

import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {gzipSync} from 'node:zlib'

import {describe, expect, it} from 'vitest'

import {AirpackError, InvalidInputError, UsageError} from '../../src/errors.js'
import {collectContent, loadProfiles, unsafeEntryPath, validateProfiles} from '../../src/profile/index.js'

const tmp = mkdtempSync(path.join(tmpdir(), 'airpack-def-test-'))
const EX = path.resolve('examples/profiles')

interface RawEntry {
  path: string
  /** ustar type flag: '0' file, '1' hard link, '2' symlink, '3' char device, '5' directory. */
  type?: string
  body?: string | Buffer
  linkpath?: string
  /** Size to declare in the header (defaults to the body's). */
  declaredSize?: number
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0'
}

function header(e: RawEntry, size: number): Buffer {
  const h = Buffer.alloc(512)
  h.write(e.path, 0, 100, 'utf8')
  h.write(octal(e.type === '5' ? 0o755 : 0o644, 8), 100)
  h.write(octal(0, 8), 108)
  h.write(octal(0, 8), 116)
  h.write(octal(size, 12), 124)
  h.write(octal(0, 12), 136)
  h.write('        ', 148)
  h.write(e.type ?? '0', 156)
  if (e.linkpath) h.write(e.linkpath, 157, 100, 'utf8')
  h.write('ustar\0', 257)
  h.write('00', 263)
  let sum = 0
  for (const b of h) sum += b
  h.write(octal(sum, 7) + ' ', 148)
  return h
}

function rawTgz(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '')
    parts.push(header(e, e.declaredSize ?? body.length))
    parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  parts.push(Buffer.alloc(1024))
  return gzipSync(Buffer.concat(parts))
}

function writeTgz(name: string, entries: RawEntry[]): string {
  const file = path.join(tmp, name)
  writeFileSync(file, rawTgz(entries))
  return file
}

const profileJson = readFileSync(path.join(EX, 'addon-monitoring.json'), 'utf8')

async function failure(file: string): Promise<AirpackError> {
  try {
    await loadProfiles([file])
  } catch (err) {
    if (err instanceof AirpackError) return err
    throw err
  }
  throw new Error('expected loadProfiles to fail')
}

describe('cluster definition .tgz', () => {
  it('reads the example definition in metadata order, with its stored variables', async () => {
    const file = path.join(EX, 'cluster-definition.tgz')
    const profiles = await loadProfiles([file])
    expect(profiles.map((p) => [p.name, p.entry, p.file])).toEqual([
      ['k3s-calico-edge', 'spc/profiles/01-k3s-calico-edge.json', file],
      ['monitoring', 'spc/profiles/02-monitoring.json', file],
    ])
    expect(profiles[1]!.definitionVars).toEqual({grafana_version: '11.3.1'})
    expect(validateProfiles(profiles, {arch: 'amd64', mode: 'appliance'})).toMatchObject({
      valid: true,
      errors: 0,
      warnings: 0,
    })
  })

  it('hashes each profile entry, and orders by spc/metadata.json over entry names', async () => {
    const file = writeTgz('ordered.tgz', [
      {path: 'spc/', type: '5'},
      {
        path: 'spc/metadata.json',
        body: JSON.stringify({
          name: 'x',
          cloudType: 'edge-native',
          profiles: [{file: 'profiles/b.json'}, {file: 'profiles/a.json'}],
        }),
      },
      {
        path: 'spc/profiles/a.json',
        body: profileJson
          .replace('"monitoring"', '"first-by-name"')
          .replace(/"name": "prometheus"/, '"name": "prom-a"')
          .replace(/"name": "grafana"/, '"name": "graf-a"'),
      },
      {path: 'spc/profiles/b.json', body: profileJson},
      {path: 'spc/notes.yaml', body: 'just: notes\n'},
    ])
    const profiles = await loadProfiles([file])
    expect(profiles.map((p) => p.name)).toEqual(['monitoring', 'first-by-name'])
    expect(profiles[0]!.sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(profiles[0]!.sha256).not.toBe(profiles[1]!.sha256)
  })

  it('stored variables apply, and --var overrides them', async () => {
    const file = writeTgz('vars.tgz', [
      {path: 'spc/profiles/01-monitoring.json', body: profileJson},
      {path: 'spc/variables.json', body: JSON.stringify({grafana_version: '12.0.0'})},
    ])
    const profiles = await loadProfiles([file])
    expect(collectContent(profiles, {arch: 'amd64'}).images.at(-1)!.reference).toBe('docker.io/grafana/grafana:12.0.0')
    expect(collectContent(profiles, {arch: 'amd64', vars: {grafana_version: '12.1.0'}}).images.at(-1)!.reference).toBe(
      'docker.io/grafana/grafana:12.1.0',
    )
  })

  it('findings name the archive and the entry', async () => {
    const file = writeTgz('finding.tgz', [
      {path: 'spc/profiles/01.json', body: profileJson.replace('"cloudType": "all"', '"cloudType": "aws"')},
    ])
    const report = validateProfiles(await loadProfiles([file]), {arch: 'amd64', mode: 'appliance'})
    expect(report.findings[0]).toMatchObject({code: 'AP-CLOUD-TYPE', file: `${file}#spc/profiles/01.json`})
  })

  const hostile: [string, RawEntry[], RegExp][] = [
    ['a ../ entry', [{path: 'spc/../../etc/cron.d/x.json', body: profileJson}], /escapes the archive/],
    ['an absolute path', [{path: '/etc/passwd', body: 'root:x:0:0'}], /absolute path/],
    [
      'a symlink',
      [{path: 'spc/profiles/link.json', type: '2', linkpath: '/etc/shadow'}],
      /SymbolicLink, not a regular file/,
    ],
    ['a hard link', [{path: 'spc/profiles/hard.json', type: '1', linkpath: 'spc/x'}], /Link, not a regular file/],
    ['a character device', [{path: 'spc/dev', type: '3'}], /CharacterDevice, not a regular file/],
    ['an entry outside spc/', [{path: 'profiles/a.json', body: profileJson}], /outside spc\//],
    [
      'an entry larger than the limit',
      [{path: 'spc/big.json', body: 'x', declaredSize: 17 * 1024 * 1024}],
      /over the \d+-byte limit per entry/,
    ],
    [
      'too many entries',
      Array.from({length: 1001}, (_, i) => ({path: `spc/d${i}/`, type: '5'})),
      /more than 1000 entries/,
    ],
  ]
  it.each(hostile)('refuses %s (exit 2, no partial result)', async (_name, entries, message) => {
    const file = writeTgz(`hostile-${_name.replace(/\W+/g, '-')}.tgz`, entries)
    const err = await failure(file)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.exitCode).toBe(2)
    expect(err.code).toBe('ERR_AIRPACK_DEFINITION_UNSAFE')
    expect(err.message).toMatch(message)
    expect(err.message).toContain(file)
  })

  it('stops inflating a gzip bomb at the limit', async () => {
    const file = path.join(tmp, 'bomb.tgz')
    writeFileSync(file, gzipSync(Buffer.alloc(81 * 1024 * 1024), {level: 9}))
    const err = await failure(file)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/inflates to more than 83886080 bytes/)
  })

  it('refuses a gzip inside the gzip (it would inflate without a bound)', async () => {
    const file = path.join(tmp, 'nested.tgz')
    writeFileSync(file, gzipSync(rawTgz([{path: 'spc/profiles/01.json', body: profileJson}])))
    const err = await failure(file)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/not a ustar\/pax archive/)
  })

  it('refuses a .tgz that is not gzip at all', async () => {
    const file = path.join(tmp, 'plain.tgz')
    writeFileSync(file, '{"metadata": {}}')
    const err = await failure(file)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/not a readable gzipped tar/)
  })

  it('refuses gzip data that is not a tar', async () => {
    const file = path.join(tmp, 'not-tar.tgz')
    writeFileSync(file, gzipSync(Buffer.from('hello, this is not a tar archive at all '.repeat(40))))
    const err = await failure(file)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/not a readable gzipped tar/)
  })

  it('refuses a truncated archive', async () => {
    const full = rawTgz([{path: 'spc/profiles/01.json', body: profileJson}])
    const file = path.join(tmp, 'truncated.tgz')
    writeFileSync(file, full.subarray(0, Math.floor(full.length / 2)))
    const err = await failure(file)
    expect(err).toBeInstanceOf(UsageError)
  })

  it('a definition without any profile is invalid input (exit 3)', async () => {
    const file = writeTgz('empty-def.tgz', [
      {path: 'spc/', type: '5'},
      {path: 'spc/metadata.json', body: '{"name":"x","profiles":[]}'},
    ])
    const err = await failure(file)
    expect(err).toBeInstanceOf(InvalidInputError)
    expect(err.message).toContain('holds no cluster profile')
  })

  it('a malformed profile entry names archive, entry and line', async () => {
    const file = writeTgz('malformed-entry.tgz', [
      {path: 'spc/profiles/01.json', body: '{\n  "metadata": {\n    "name": "x",,\n}'},
    ])
    const err = await failure(file)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/malformed-entry\.tgz#spc\/profiles\/01\.json:3:\d+: malformed JSON/)
  })
})

describe('unsafeEntryPath', () => {
  it.each([
    ['spc/profiles/01.json', undefined],
    ['./spc/metadata.json', undefined],
    ['spc/', undefined],
    ['spc/../x', 'escapes'],
    ['../spc/x', 'escapes'],
    ['/spc/x', 'absolute'],
    ['C:/spc/x', 'absolute'],
    ['spc\\..\\x', 'escapes'],
    ['other/x', 'outside'],
    ['spc/a\u0000b', 'control'],
  ])('%s', (p, expected) => {
    const reason = unsafeEntryPath(p)
    if (expected === undefined) expect(reason).toBeUndefined()
    else expect(reason).toContain(expected)
  })
})
