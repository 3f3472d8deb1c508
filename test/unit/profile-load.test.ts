// loadProfiles on real files: both export shapes, JSON and YAML, line numbers, and every kind of bad input.

import {createHash} from 'node:crypto'
import {mkdtempSync, readFileSync, truncateSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {AirpackError, InvalidInputError, UsageError} from '../../src/errors.js'
import {collectContent, loadProfiles, validateProfiles} from '../../src/profile/index.js'

const FIX = path.resolve('test/fixtures/profiles')
const EX = path.resolve('examples/profiles')
const tmp = mkdtempSync(path.join(tmpdir(), 'airpack-load-'))

async function failure(files: string[]): Promise<AirpackError> {
  try {
    await loadProfiles(files)
  } catch (err) {
    if (err instanceof AirpackError) return err
    throw err
  }
  throw new Error('expected loadProfiles to fail')
}

describe('loadProfiles: well-formed input', () => {
  it('reads an export-shape JSON profile', async () => {
    const file = path.join(EX, 'k3s-calico-infra.json')
    const [p] = await loadProfiles([file])
    expect(p).toMatchObject({file, name: 'k3s-calico-edge', version: '1.0.0', type: 'infra', cloudType: 'edge-native'})
    expect(p!.sha256).toBe(createHash('sha256').update(readFileSync(file)).digest('hex'))
    expect(p!.packs.map((x) => [x.name, x.layer, x.version])).toEqual([
      ['edge-native-byoi', 'os', '1.0.0'],
      ['edge-k3s', 'k8s', '1.32.1'],
      ['cni-calico', 'cni', '3.29.1'],
    ])
    expect(p!.packs[0]!.registry).toEqual({uid: '5eecc89d0b150045ae661cef', name: 'Public Repo', kind: 'pack'})
    expect((p!.document.spec as any).template.packs[0].registry.metadata.uid).toBe('5eecc89d0b150045ae661cef')
  })

  it('reads a YAML export and maps values lines to file lines exactly', async () => {
    const file = path.join(FIX, 'agent-arm64-mismatch.yaml')
    const profiles = await loadProfiles([file])
    const report = validateProfiles(profiles, {arch: 'arm64', mode: 'agent'})
    const arch = report.findings.find((f) => f.code === 'AP-AGENT-ARCH')!
    expect(arch).toMatchObject({pack: 'edge-native-byoi', line: 5})
    const fileLines = readFileSync(file, 'utf8').split('\n')
    expect(fileLines[arch.fileLine! - 1]).toContain('stylusPackage: container://')
    const mode = report.findings.find((f) => f.code === 'AP-K8S-MODE')!
    expect(fileLines[mode.fileLine! - 1]).toContain('- name: edge-rke2')
    expect(report.valid).toBe(false)
  })

  it('converts the create-API shape (uid, registryUid, tag only) to the export shape', async () => {
    const [p] = await loadProfiles([path.join(FIX, 'create-api.json')])
    expect(p!.packs[0]).toMatchObject({
      name: 'nginx-ingress',
      version: '4.11.3',
      tag: '4.11.3',
      registry: {uid: '5eecc89d0b150045ae661cef'},
    })
    const docPack = (p!.document.spec as any).template.packs[0]
    expect(docPack.uid).toBeUndefined()
    expect(docPack.registryUid).toBeUndefined()
    expect(docPack).toMatchObject({version: '4.11.3', registry: {metadata: {uid: '5eecc89d0b150045ae661cef'}}})
    expect(p!.variables[0]).toMatchObject({name: 'replicas', defaultValue: '2'})
  })

  it('collects the examples: provider, agent, CNI and add-on images in a stable order, charts deduplicated', async () => {
    const profiles = await loadProfiles([
      path.join(EX, 'k3s-calico-infra.json'),
      path.join(EX, 'addon-monitoring.json'),
    ])
    const {images, charts} = collectContent(profiles, {arch: 'amd64'})
    expect(images.map((i) => [i.kind, i.reference])).toEqual([
      ['os-provider', 'ttl.sh/ubuntu:k3s-1.32.1-v4.7.9-demo'],
      ['agent', 'us-docker.pkg.dev/palette-images/edge/stylus-linux-amd64:v4.7.9'],
      ['image', 'quay.io/tigera/operator:v1.36.2'],
      ['image', 'docker.io/calico/node:v3.29.1'],
      ['image', 'quay.io/prometheus/prometheus:v2.55.1'],
      ['image', 'quay.io/prometheus/node-exporter:v1.8.2'],
      ['image', 'docker.io/grafana/grafana:11.3.1'],
    ])
    expect(images[1]!.original).toBe('container://us-docker.pkg.dev/palette-images/edge/stylus-linux-amd64:v4.7.9')
    expect(charts.map((c) => `${c.repository}#${c.name}@${c.version}`)).toEqual([
      'https://prometheus-community.github.io/helm-charts#prometheus@25.30.1',
      'https://grafana.github.io/helm-charts#grafana@8.6.4',
    ])
    expect(collectContent(profiles, {arch: 'amd64', vars: {grafana_version: '12.0.1'}}).images.at(-1)!.reference).toBe(
      'docker.io/grafana/grafana:12.0.1',
    )
  })

  it('collectContent throws InvalidInputError listing every content problem', async () => {
    const file = path.join(tmp, 'bad-content.json')
    const values =
      "pack:\n  content:\n    images:\n      - image: 'ghcr.io/acme/app:{{.spectro.var.tag}}'\n      - image: 'ghcr.io/Acme/Bad:1'\n"
    writeFileSync(
      file,
      JSON.stringify({
        metadata: {name: 'bad'},
        spec: {
          version: '1',
          template: {type: 'add-on', cloudType: 'all', packs: [{name: 'app', layer: 'addon', version: '1', values}]},
        },
      }),
    )
    const profiles = await loadProfiles([file])
    let err: unknown
    try {
      collectContent(profiles, {arch: 'amd64'})
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(InvalidInputError)
    const problems = (err as InvalidInputError).details!.problems as string[]
    expect(problems).toHaveLength(2)
    expect(problems[0]).toMatch(
      /bad-content\.json.*pack app \(values line 4\).*\{\{\.spectro\.var\.tag\}\}.*AP-MACRO-UNRESOLVED/,
    )
    expect(problems[1]).toMatch(/values line 5.*must be lowercase.*AP-IMAGE-REF/)
  })
})

describe('loadProfiles: bad input', () => {
  it('malformed JSON names the file and line (exit 2)', async () => {
    const err = await failure([path.join(FIX, 'malformed.json')])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.exitCode).toBe(2)
    expect(err.message).toMatch(/malformed\.json:5:\d+: malformed JSON/)
  })

  it('malformed YAML names the file and line (exit 2)', async () => {
    const err = await failure([path.join(FIX, 'malformed.yaml')])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/malformed\.yaml:6:\d+: malformed YAML/)
  })

  it('an empty file', async () => {
    const err = await failure([path.join(FIX, 'empty.json')])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/empty\.json: it is empty/)
  })

  it('a directory', async () => {
    const err = await failure([FIX])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toContain('is a directory')
  })

  it('a missing file', async () => {
    const err = await failure([path.join(tmp, 'nope.json')])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toContain('no such file')
  })

  it('a binary file', async () => {
    const file = path.join(tmp, 'binary.json')
    writeFileSync(file, Buffer.from([0x7b, 0x0a, 0x00, 0xff, 0xfe, 0x01]))
    const err = await failure([file])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/binary/)
  })

  it('invalid UTF-8 without NUL bytes is binary too', async () => {
    const file = path.join(tmp, 'latin1.yaml')
    writeFileSync(file, Buffer.from('metadata:\n  name: caf\xe9\n', 'latin1'))
    const err = await failure([file])
    expect(err.message).toMatch(/not UTF-8/)
  })

  it('a huge file is refused before it is read', async () => {
    const file = path.join(tmp, 'huge.json')
    writeFileSync(file, '{')
    truncateSync(file, 17 * 1024 * 1024)
    const err = await failure([file])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.code).toBe('ERR_AIRPACK_PROFILE_TOO_LARGE')
    expect(err.message).toMatch(/17 MiB, over the 16 MiB limit/)
  })

  it('an alias bomb in the file', async () => {
    const err = await failure([path.join(FIX, 'alias-bomb.yaml')])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/alias expansion exceeds the limit of 100/)
  })

  it('several YAML documents in one file', async () => {
    const file = path.join(tmp, 'multi.yaml')
    writeFileSync(file, 'metadata: {name: a}\n---\nmetadata: {name: b}\n')
    const err = await failure([file])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/multi\.yaml:2:\d+: .*several YAML documents/)
  })

  it('a well-formed file that is not a profile (exit 3)', async () => {
    const err = await failure([path.join(FIX, 'not-a-profile.json')])
    expect(err).toBeInstanceOf(InvalidInputError)
    expect(err.exitCode).toBe(3)
    expect(err.message).toContain('not a cluster profile')
  })

  it('a profile with schema problems lists each with its path and line (exit 3)', async () => {
    const err = await failure([path.join(FIX, 'schema-problems.json')])
    expect(err).toBeInstanceOf(InvalidInputError)
    const problems = err.details!.problems as string[]
    expect(problems).toHaveLength(3)
    expect(problems[0]).toMatch(
      /^spec\.template\.type \(line 6\): "full"; expected one of cluster, infra, add-on, system/,
    )
    expect(problems[1]).toMatch(/^spec\.template\.packs\[0\]\.layer \(line 9\): missing/)
    expect(problems[2]).toMatch(
      /^spec\.template\.packs\[1\]\.values \(line 10\): must be the pack's values YAML as one string/,
    )
  })

  it('no file at all', async () => {
    const err = await failure([])
    expect(err).toBeInstanceOf(UsageError)
  })
})

describe('loadProfiles: pathological nesting', () => {
  it('a YAML file nested 100k levels deep is malformed input, not a crash', async () => {
    const file = path.join(tmp, 'deep.yaml')
    writeFileSync(file, 'a: ' + '['.repeat(100_000) + ']'.repeat(100_000))
    const err = await failure([file])
    expect(err).toBeInstanceOf(UsageError)
    expect(err.message).toMatch(/nests too deeply/)
  })

  it('pack values nested 100k levels deep are a finding', async () => {
    const file = path.join(tmp, 'deep-values.json')
    writeFileSync(
      file,
      JSON.stringify({
        metadata: {name: 'x'},
        spec: {
          version: '1',
          template: {
            type: 'add-on',
            cloudType: 'all',
            packs: [
              {name: 'a', layer: 'addon', version: '1', values: 'a: ' + '['.repeat(100_000) + ']'.repeat(100_000)},
            ],
          },
        },
      }),
    )
    const report = validateProfiles(await loadProfiles([file]), {arch: 'amd64', mode: 'appliance'})
    expect(report.findings).toEqual([
      expect.objectContaining({
        code: 'AP-VALUES-YAML',
        pack: 'a',
        message: expect.stringContaining('nests too deeply'),
      }),
    ])
  })
})
