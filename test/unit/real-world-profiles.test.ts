// Issue 10: profiles and pack values as Palette users write them (fixtures made from public Palette material, each
// with the images and charts to carry written down by reading the values). `profile validate` and the content scan
// that `profile resolve` and `bundle build` use must agree with what was read by hand.

import {describe, expect, it} from 'vitest'

import {collectContent, loadProfiles, validateProfiles} from '../../src/profile/index.js'
import {describeError} from '../../src/registry/errors.js'
import {chartSourceKind, ociChartCandidates} from '../../src/resolve/charts.js'

const FIX = 'test/fixtures/profiles'

async function check(file: string, mode: 'agent' | 'appliance') {
  const profiles = await loadProfiles([`${FIX}/${file}`])
  const report = validateProfiles(profiles, {arch: 'amd64', mode})
  const codes = (severity: string) =>
    [...new Set(report.findings.filter((f) => f.severity === severity).map((f) => f.code))].sort()
  return {profiles, report, errors: codes('error'), warnings: codes('warning')}
}

const refs = (list: {reference: string}[]) => list.map((i) => i.reference).sort()

describe('case 1: the Agent Mode preset of BYOS Edge OS (options.system.uri "NA")', () => {
  it('is valid in agent mode and carries only the CNI images', async () => {
    const {profiles, errors, warnings} = await check('byos-agent-mode-preset.yaml', 'agent')
    expect(errors).toEqual([])
    expect(warnings).toEqual(['AP-AGENT-MISSING'])
    const content = collectContent(profiles, {arch: 'amd64'})
    expect(refs(content.images)).toEqual([
      'docker.io/calico/cni:v3.29.2',
      'docker.io/calico/kube-controllers:v3.29.2',
      'docker.io/calico/node:v3.29.2',
      'quay.io/tigera/operator:v1.36.5',
    ])
    expect(content.charts).toEqual([])
  })

  it('in appliance mode is one error saying a provider image is needed, at the system.uri line', async () => {
    const {report, errors} = await check('byos-agent-mode-preset.yaml', 'appliance')
    expect(errors).toEqual(['AP-OS-URI-MISSING'])
    const f = report.findings.find((x) => x.code === 'AP-OS-URI-MISSING')!
    expect(f).toMatchObject({pack: 'edge-native-byoi', line: 8, fileLine: 28, path: 'options.system.uri'})
    expect(f.message).toMatch(/needs a provider image/)
    expect(report.findings.some((x) => x.code === 'AP-IMAGE-REF')).toBe(false)
  })
})

describe('case 2: pack values of several YAML documents (Kairos stages after the BYOS values)', () => {
  it('reads them as Palette does; the images come from the first document', async () => {
    const {profiles, errors, warnings} = await check('byos-kairos-stages.yaml', 'appliance')
    expect(errors).toEqual([])
    expect(warnings).toEqual(['AP-AGENT-CONTENT'])
    const content = collectContent(profiles, {arch: 'amd64'})
    expect(refs(content.images)).toEqual([
      'docker.io/calico/node:v3.29.1',
      'quay.io/tigera/operator:v1.36.2',
      'ttl.sh/ubuntu:k3s-1.32.1-v4.7.9-demo',
      'us-docker.pkg.dev/palette-images/edge/stylus-linux-amd64:v4.7.9',
    ])
    expect(content.charts).toEqual([])
  })

  it('keeps line numbers right: values line 8 is file line 29', async () => {
    const profiles = await loadProfiles([`${FIX}/byos-kairos-stages.yaml`])
    const report = validateProfiles(profiles, {arch: 'arm64', mode: 'appliance'})
    expect(report.findings.find((f) => f.code === 'AP-AGENT-ARCH')).toMatchObject({
      line: 8,
      fileLine: 29,
      path: 'stylusPackage',
    })
  })
})

describe('case 3: chart locations as pack-central writes them', () => {
  it('lists each chart where it is; a repository without a scheme is read as https:// with a warning', async () => {
    const {profiles, report, errors, warnings} = await check('addon-chart-locations.yaml', 'appliance')
    expect(errors).toEqual([])
    expect(warnings).toEqual(['AP-CHART-SCHEME'])
    expect(report.findings.find((f) => f.code === 'AP-CHART-SCHEME')).toMatchObject({
      pack: 'coder',
      path: 'pack.content.charts[0].repo',
      line: 6,
    })
    const content = collectContent(profiles, {arch: 'amd64'})
    expect(content.charts.map((c) => [c.repository, c.name, c.version, chartSourceKind(c.repository)])).toEqual([
      [
        'https://github.com/NetApp/trident/releases/download/v24.10.0/trident-installer-24.10.0.tar.gz',
        'trident-operator',
        '24.10.0',
        'tgz',
      ],
      ['oci://ghcr.io/spegel-org/helm-charts/spegel', 'spegel', 'v0.0.30', 'oci'],
      ['oci://ghcr.io/nvidia/kai-scheduler', 'kai-scheduler', 'v0.10.0', 'oci'],
      ['https://helm.coder.com/v2', 'coder', '2.23.3', 'classic'],
    ])
    expect(ociChartCandidates('oci://ghcr.io/nvidia/kai-scheduler', 'kai-scheduler').map((c) => c.repository)).toEqual([
      'nvidia/kai-scheduler',
      'nvidia/kai-scheduler/kai-scheduler',
    ])
    expect(refs(content.images)).toEqual([
      'docker.io/netapp/trident-autosupport:24.10.0',
      'docker.io/netapp/trident-operator:24.10.0',
      'docker.io/netapp/trident:24.10.0',
      'ghcr.io/coder/coder:v2.23.3',
      'ghcr.io/nvidia/kai-scheduler/operator:v0.10.0',
      'ghcr.io/spegel-org/spegel:v0.0.30',
    ])
  })
})

describe('case 4: completeness before shipping', () => {
  it('names the unlisted image with its values path, the misplaced content tags and where they belong', async () => {
    const {profiles, report, errors, warnings} = await check('addon-completeness.yaml', 'appliance')
    expect(errors).toEqual([])
    expect(warnings).toEqual(['AP-CONTENT-MISPLACED', 'AP-CONTENT-UNLISTED'])
    expect(report.findings.map((f) => [f.code, f.pack, f.path, f.line])).toEqual([
      ['AP-CONTENT-MISPLACED', 'hello-universe', 'content', 4],
      ['AP-CONTENT-UNLISTED', 'crossplane', 'charts.crossplane.image.repository', 10],
    ])
    expect(report.findings[0]!.message).toContain('content: belongs under pack:')
    expect(report.findings[1]!.message).toContain('xpkg.crossplane.io/crossplane/crossplane')
    expect(refs(collectContent(profiles, {arch: 'amd64'}).images)).toEqual([
      'ghcr.io/project-zot/zot-linux-amd64:v2.0.2-rc2',
      'xpkg.upbound.io/crossplane/crossplane:v2.3.0',
    ])
  })

  it('warns when an image name says amd64 in an arm64 build', async () => {
    const profiles = await loadProfiles([`${FIX}/addon-completeness.yaml`])
    const report = validateProfiles(profiles, {arch: 'arm64', mode: 'appliance'})
    const arch = report.findings.filter((f) => f.code === 'AP-IMAGE-ARCH')
    expect(arch).toHaveLength(1)
    expect(arch[0]).toMatchObject({severity: 'warning', pack: 'zot', path: 'pack.content.images[0].image', line: 4})
    expect(arch[0]!.message).toContain('says amd64')
  })
})

describe('case 5: messages', () => {
  it('a Custom CNI that ships only a ConfigMap is not AP-CONTENT-MISSING', async () => {
    const {profiles, errors, warnings} = await check('custom-cni-configmap.json', 'appliance')
    expect(errors).toEqual([])
    expect(warnings).toEqual(['AP-AGENT-CONTENT', 'AP-AGENT-VERSION-UNKNOWN'])
    const content = collectContent(profiles, {arch: 'amd64'})
    expect(refs(content.images)).toEqual([
      'ttl.sh/stylus-linux-amd64:v0.0.0-4f1ab3c',
      'ttl.sh/ubuntu:k3s-1.32.1-v4.7.9-4f1ab3c',
    ])
    expect(content.charts).toEqual([])
  })

  it('a network error states its cause once', () => {
    const dns = Object.assign(new Error('getaddrinfo EAI_AGAIN ghcr.io'), {code: 'EAI_AGAIN'})
    const fetchFailed = new TypeError('fetch failed', {cause: dns})
    const wrapped = new Error(`cannot reach ghcr.io: ${describeError(fetchFailed)}`, {cause: fetchFailed})
    expect(describeError(fetchFailed)).toBe('fetch failed: getaddrinfo EAI_AGAIN ghcr.io')
    expect(describeError(wrapped)).toBe('cannot reach ghcr.io: fetch failed: getaddrinfo EAI_AGAIN ghcr.io')
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect failed'), {code: 'ECONNREFUSED'}),
    })
    expect(describeError(refused)).toBe('fetch failed: connect failed (ECONNREFUSED)')
  })
})
