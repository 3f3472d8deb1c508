// Table-driven cases for every validation rule: each case builds profiles in Palette's export shape, validates them
// for an architecture and mode, and lists exactly the rule codes it must produce (errors and warnings apart).

import {describe, expect, it} from 'vitest'

import {normalizeProfile} from '../../src/profile/normalize.js'
import {RULES, validateProfiles, type LoadedProfile} from '../../src/profile/index.js'
import {PositionIndex} from '../../src/profile/text.js'

type Doc = Record<string, any>
type Pack = {
  name: string
  layer: string
  version: string
  values?: string
  type?: string
  manifests?: {name: string; content: string}[]
}

const AGENT = (arch = 'amd64', version = 'v4.7.9') =>
  `container://us-docker.pkg.dev/palette-images/edge/stylus-linux-${arch}:${version}`

function osValues(
  o: {
    dist?: string
    osName?: string
    arch?: string
    agent?: string | null
    uri?: string | null
    listProvider?: boolean
    listAgent?: boolean
    extra?: string
  } = {},
): string {
  const agent = o.agent === null ? undefined : (o.agent ?? AGENT(o.arch))
  const images: string[] = []
  if (o.listProvider ?? true) images.push(`      - image: '{{.spectro.pack.edge-native-byoi.options.system.uri}}'`)
  if (agent && (o.listAgent ?? true)) images.push(`      - image: '${agent}'`)
  const uri =
    o.uri === null
      ? undefined
      : (o.uri ??
        `ttl.sh/ubuntu:{{ .spectro.pack.edge-native-byoi.options.system.k8sDistribution }}-{{ .spectro.system.kubernetes.version }}-v4.7.9-demo`)
  return [
    'pack:',
    '  content:',
    `    images:${images.length === 0 ? ' []' : ''}`,
    ...images,
    ...(agent ? [`stylusPackage: ${agent}`] : []),
    'options:',
    ...(uri ? [`  system.uri: '${uri}'`] : []),
    `  system.k8sDistribution: ${o.dist ?? 'k3s'}`,
    `  system.osName: ${o.osName ?? 'ubuntu'}`,
    ...(o.extra ? [o.extra] : []),
  ].join('\n')
}

const cniValues = (images = ['quay.io/tigera/operator:v1.36.2', 'docker.io/calico/node:v3.29.1']) =>
  ['pack:', '  content:', '    images:', ...images.map((i) => `      - image: ${i}`)].join('\n')

const k3sValues = (config = 'flannel-backend: none\ndisable-network-policy: true') =>
  ['cluster:', '  config: |', ...config.split('\n').map((l) => `    ${l}`)].join('\n')

const addonValues = (images = ['quay.io/prometheus/prometheus:v2.55.1'], charts = '') =>
  [
    'pack:',
    '  namespace: monitoring',
    '  content:',
    '    images:',
    ...images.map((i) => `      - image: ${i}`),
    ...(charts ? ['    charts:', charts] : []),
  ].join('\n')

const os = (values = osValues(), name = 'edge-native-byoi', version = '1.0.0'): Pack => ({
  name,
  layer: 'os',
  version,
  values,
})
const k8s = (name = 'edge-k3s', version = '1.32.1', values = k3sValues()): Pack => ({
  name,
  layer: 'k8s',
  version,
  values,
})
const cni = (name = 'cni-calico', values = cniValues()): Pack => ({name, layer: 'cni', version: '3.29.1', values})
const addon = (name = 'prometheus', values = addonValues(), layer = 'addon'): Pack => ({
  name,
  layer,
  version: '1.0.0',
  values,
})

function doc(o: {name?: string; type?: string; cloudType?: string; packs: Pack[]; variables?: Doc[]}): Doc {
  return {
    metadata: {name: o.name ?? (o.type === 'add-on' ? 'addon' : 'infra')},
    spec: {
      version: '1.0.0',
      template: {
        type: o.type ?? 'infra',
        cloudType: o.cloudType ?? (o.type === 'add-on' ? 'all' : 'edge-native'),
        packs: o.packs.map((p) => ({type: 'spectro', tag: p.version, ...p})),
      },
      ...(o.variables ? {variables: o.variables} : {}),
    },
  }
}

const infra = (packs: Pack[] = [os(), k8s(), cni()], extra: Partial<Parameters<typeof doc>[0]> = {}) =>
  doc({packs, ...extra})
const addonProfile = (packs: Pack[] = [addon()], extra: Partial<Parameters<typeof doc>[0]> = {}) =>
  doc({type: 'add-on', packs, ...extra})

const agentOs = (o: Parameters<typeof osValues>[0] = {}) =>
  os(osValues({uri: null, listProvider: false, dist: 'kubeadm', ...o}), 'edge-native-byoi', '2.0.1')

function load(d: Doc, i: number): LoadedProfile {
  const r = normalizeProfile(d, new PositionIndex(undefined, undefined))
  if (!r.profile) throw new Error(r.problems.join('; '))
  return {file: `profile-${i}.json`, sha256: '0'.repeat(64), ...r.profile}
}

interface Case {
  name: string
  docs: Doc[]
  arch?: 'amd64' | 'arm64'
  mode?: 'appliance' | 'agent'
  vars?: Record<string, string>
  errors?: string[]
  warnings?: string[]
}

const CASES: Case[] = [
  // Valid
  {name: 'K3s + Calico infrastructure, appliance, amd64', docs: [infra()]},
  {name: 'infrastructure plus an add-on profile', docs: [infra(), addonProfile()]},
  {name: 'an add-on profile on its own (day-2 bundle)', docs: [addonProfile()]},
  {name: 'an add-on profile with cloudType edge-native', docs: [addonProfile(undefined, {cloudType: 'edge-native'})]},
  {name: 'PXK-E agent mode amd64', mode: 'agent', docs: [infra([agentOs(), k8s('edge-k8s', '1.32.8', ''), cni()])]},
  {
    name: 'PXK-E agent mode arm64',
    mode: 'agent',
    arch: 'arm64',
    docs: [infra([agentOs({arch: 'arm64'}), k8s('edge-k8s', '1.32.8', ''), cni()])],
  },
  {
    name: 'RKE2 appliance with cni: none',
    docs: [
      infra([os(osValues({dist: 'rke2'})), k8s('edge-rke2', '1.31.4', 'cluster:\n  config: |\n    cni: none'), cni()]),
    ],
  },
  {
    name: 'Canonical + Cilium OSS appliance',
    docs: [infra([os(osValues({dist: 'canonical'})), k8s('edge-canonical', '1.32.3', ''), cni('cni-cilium-oss')])],
  },
  {
    name: 'cni-custom keeps K3s embedded Flannel (host-gw)',
    docs: [
      infra([
        os(),
        k8s('edge-k3s', '1.32.1', k3sValues('flannel-backend: host-gw')),
        cni('cni-custom', cniValues(['docker.io/library/busybox:1.36'])),
      ]),
    ],
  },
  {
    name: '--var overrides a defaultValue',
    vars: {tag: '2.0.0'},
    docs: [
      addonProfile([addon('app', addonValues(['ghcr.io/acme/app:{{.spectro.var.tag}}']))], {
        variables: [{name: 'tag', format: 'version', defaultValue: '1.0.0'}],
      }),
    ],
  },
  {
    name: 'macros with and without spaces inside the braces',
    docs: [
      addonProfile(
        [
          addon(
            'app',
            addonValues(['ghcr.io/acme/app:{{ .spectro.var.tag }}', 'ghcr.io/acme/side:{{.spectro.var.tag}}']),
          ),
        ],
        {variables: [{name: 'tag', defaultValue: '1.0.0'}]},
      ),
    ],
  },
  {
    name: 'charts under "repository" and image digests',
    docs: [
      addonProfile([
        addon(
          'k8gb',
          addonValues(
            [`docker.io/absaoss/k8gb@sha256:${'a'.repeat(64)}`],
            '      - repository: https://www.k8gb.io\n        name: k8gb\n        version: 0.12.2',
          ),
        ),
      ]),
    ],
  },
  {
    name: 'an option of another pack in a content tag',
    docs: [
      infra(),
      addonProfile([
        addon(
          'app',
          addonValues(['ghcr.io/acme/os-tools:{{.spectro.pack.edge-native-byoi.options.system.k8sDistribution}}']),
        ),
      ]),
    ],
  },
  // Real-world profiles (issue 10)
  {
    name: 'BYOS Agent Mode preset (system.uri "NA", no content tags) in agent mode',
    mode: 'agent',
    docs: [
      infra([
        os(osValues({uri: 'NA', listProvider: false, dist: 'kubeadm'}), 'edge-native-byoi', '2.0.1'),
        k8s('edge-k8s', '1.32.8', ''),
        cni(),
      ]),
    ],
  },
  {
    name: 'BYOS Agent Mode preset keeping the provider content tag, in agent mode',
    mode: 'agent',
    docs: [
      infra([
        os(osValues({uri: 'NA', dist: 'kubeadm'}), 'edge-native-byoi', '2.0.1'),
        k8s('edge-k8s', '1.32.8', ''),
        cni(),
      ]),
    ],
  },
  {
    name: 'BYOS Agent Mode preset in appliance mode: a provider image is needed, not a syntax hint',
    docs: [infra([os(osValues({uri: 'NA'})), k8s(), cni()])],
    errors: ['AP-OS-URI-MISSING'],
  },
  {
    name: 'BYOS values with a second YAML document of Kairos stages',
    docs: [
      infra([
        os(
          osValues() +
            '\n---\nstages:\n  initramfs:\n    - name: kubeadm path\n      commands:\n        - cp /persistent/spectro/usr/bin/kubeadm /usr/bin/',
        ),
        k8s(),
        cni(),
      ]),
    ],
  },
  {
    name: 'content tags in the second YAML document are read',
    docs: [addonProfile([addon('app', 'options:\n  x: 1\n---\n' + addonValues(['ghcr.io/Acme/App:1.0']))])],
    errors: ['AP-IMAGE-REF'],
  },
  {
    name: 'Custom CNI shipping only a ConfigMap needs no content tags',
    docs: [
      infra([
        os(),
        k8s(),
        cni(
          'cni-custom',
          'manifests:\n  byo-cni:\n    contents: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: custom-cni\n      data:\n        custom-cni: "byo-cni"',
        ),
      ]),
    ],
  },
  {
    name: 'a manifest layer that only creates a namespace needs no content tags',
    docs: [
      addonProfile([
        {
          name: 'ns',
          layer: 'addon',
          version: '1.0.0',
          type: 'manifest',
          values: 'pack:\n  spectrocloud.com/install-priority: 0',
          manifests: [{name: 'ns', content: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: edge-apps'}],
        },
      ]),
    ],
  },
  {
    name: 'a manifest layer running a pod still needs content tags',
    docs: [
      addonProfile([
        {
          name: 'job',
          layer: 'addon',
          version: '1.0.0',
          type: 'manifest',
          values: '',
          manifests: [
            {
              name: 'job',
              content:
                'apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: x\n      image: docker.io/library/busybox:1.36',
            },
          ],
        },
      ]),
    ],
    warnings: ['AP-CONTENT-MISSING'],
  },
  {
    name: 'raw manifests in values that run an image still need content tags',
    docs: [
      addonProfile([
        addon(
          'pod',
          'manifests:\n  pod:\n    contents: |\n      kind: Pod\n      spec:\n        containers:\n          - image: docker.io/library/busybox:1.36',
        ),
      ]),
    ],
    warnings: ['AP-CONTENT-MISSING'],
  },
  {
    name: 'a chart repository without a scheme (pack-central coder pack) is read as https://',
    docs: [
      addonProfile([
        addon(
          'coder',
          addonValues(
            ['ghcr.io/coder/coder:v2.23.3'],
            '      - repo: helm.coder.com/v2\n        name: coder\n        version: 2.23.3',
          ),
        ),
      ]),
    ],
    warnings: ['AP-CHART-SCHEME'],
  },
  {
    name: 'charts at a release .tar.gz URL and at an oci:// repo ending in the chart name',
    docs: [
      addonProfile([
        addon(
          'trident',
          addonValues(
            ['docker.io/netapp/trident:24.10.0'],
            '      - repo: https://github.com/NetApp/trident/releases/download/v24.10.0/trident-installer-24.10.0.tar.gz\n        name: trident-operator\n        version: 24.10.0',
          ),
        ),
        addon(
          'spegel',
          addonValues(
            ['ghcr.io/spegel-org/spegel:v0.0.30'],
            '      - repo: oci://ghcr.io/spegel-org/helm-charts/spegel\n        name: spegel \n        version: v0.0.30',
          ),
        ),
      ]),
    ],
  },
  {
    name: 'values naming an image no content tag lists',
    docs: [
      addonProfile([
        addon(
          'spegel',
          addonValues(['ghcr.io/spegel-org/spegel:v0.0.30']) +
            '\ncharts:\n  spegel:\n    image:\n      repository: ghcr.io/spegel-org/spegel\n      tag: ""\n    sidecar:\n      image: docker.io/library/busybox:1.36',
        ),
      ]),
    ],
    warnings: ['AP-CONTENT-UNLISTED'],
  },
  {
    name: 'values naming only listed images (tagless repository, images map, digest)',
    docs: [
      addonProfile([
        addon(
          'hello',
          addonValues(['ghcr.io/spectrocloud/hello-universe:1.3.2', `quay.io/acme/tool@sha256:${'b'.repeat(64)}`]) +
            `\nmanifests:\n  hello-universe:\n    images:\n      hellouniverse: ghcr.io/spectrocloud/hello-universe:1.3.2\n    tool:\n      image:\n        repository: quay.io/acme/tool\n        digest: sha256:${'b'.repeat(64)}\n    pullPolicy:\n      image: IfNotPresent`,
        ),
      ]),
    ],
  },
  {
    name: 'an amd64 image in an arm64 build',
    arch: 'arm64',
    docs: [
      addonProfile([
        addon(
          'proxy',
          addonValues(['registry.k8s.io/kube-proxy-amd64:v1.31.4', 'docker.io/library/nginx:1.27-arm64v8']),
        ),
      ]),
    ],
    warnings: ['AP-IMAGE-ARCH'],
  },
  {
    name: 'content: at the top level instead of under pack:',
    docs: [
      addonProfile([addon('app', 'pack:\n  namespace: app\ncontent:\n  images:\n    - image: ghcr.io/acme/app:1.0')]),
    ],
    warnings: ['AP-CONTENT-MISPLACED'],
  },
  // Profiles and layers
  {
    name: 'the iamge typo is read, with a warning',
    docs: [addonProfile([addon('csm', 'pack:\n  content:\n    images:\n      - iamge: docker.io/dellemc/csm:1.11.0')])],
    warnings: ['AP-CONTENT-TYPO'],
  },
  {name: 'infrastructure cloudType aws', docs: [infra(undefined, {cloudType: 'aws'})], errors: ['AP-CLOUD-TYPE']},
  {
    name: 'add-on cloudType vsphere',
    docs: [addonProfile(undefined, {cloudType: 'vsphere'})],
    errors: ['AP-CLOUD-TYPE'],
  },
  {name: 'system profile', docs: [doc({type: 'system', packs: [addon()]})], warnings: ['AP-PROFILE-TYPE']},
  {
    name: 'two infrastructure profiles',
    docs: [
      infra(),
      infra(
        [os(undefined, 'edge-native-byoi'), k8s(), cni()].map((p) => ({...p, name: `${p.name}-2`})),
        {name: 'other', type: 'cluster'},
      ),
    ],
    errors: ['AP-INFRA-MULTIPLE'],
  },
  {name: 'infrastructure without a CNI layer', docs: [infra([os(), k8s()])], errors: ['AP-LAYER-MISSING']},
  {
    name: 'infrastructure with two Kubernetes layers',
    docs: [infra([os(), k8s(), k8s('edge-rke2', '1.31.4', ''), cni()])],
    errors: ['AP-LAYER-DUPLICATE'],
  },
  {
    name: 'add-on profile holding a CNI',
    docs: [infra(), addonProfile([cni('cni-flannel')])],
    errors: ['AP-LAYER-ADDON'],
  },
  {
    name: 'the same pack in two profiles',
    docs: [
      infra(),
      addonProfile([addon(), addon()].map((p, i) => ({...p, name: i === 0 ? 'cni-calico' : 'prometheus'}))),
    ],
    errors: ['AP-PACK-DUPLICATE'],
  },
  {
    name: 'a kernel layer',
    docs: [addonProfile([addon('rt-kernel', addonValues(), 'kernel')])],
    warnings: ['AP-LAYER-UNKNOWN'],
  },
  // Supported matrix
  {
    name: 'an OS pack outside the Edge list',
    docs: [
      infra([
        os(
          osValues({uri: 'ttl.sh/ubuntu:k3s-1.32.1-v4.7.9-demo', listProvider: false})
            .replace('pack:', 'pack:\n  x: 1')
            .replace('images:', "images:\n      - image: 'ttl.sh/ubuntu:k3s-1.32.1-v4.7.9-demo'"),
          'ubuntu-aws',
        ),
        k8s(),
        cni(),
      ]),
    ],
    warnings: ['AP-OS-PACK'],
  },
  {
    name: 'a non-Edge Kubernetes pack',
    docs: [infra([os(), k8s('kubernetes', '1.32.1', ''), cni()])],
    errors: ['AP-K8S-DISTRO'],
  },
  {
    name: 'K3s older than supported',
    docs: [infra([os(), k8s('edge-k3s', '1.25.16'), cni()])],
    errors: ['AP-K8S-VERSION'],
  },
  {
    name: 'a Kubernetes version that is not one',
    docs: [infra([os(osValues({uri: 'ttl.sh/ubuntu:k3s-latest-v4.7.9-demo'})), k8s('edge-k3s', 'latest'), cni()])],
    errors: ['AP-K8S-VERSION'],
  },
  {
    name: 'K3s newer than the matrix knows',
    docs: [infra([os(), k8s('edge-k3s', '1.36.0'), cni()])],
    warnings: ['AP-K8S-VERSION-UNVERIFIED'],
  },
  {
    name: 'K3s outside the documented range',
    docs: [infra([os(), k8s('edge-k3s', '1.34.2'), cni()])],
    warnings: ['AP-K8S-VERSION-UNVERIFIED'],
  },
  {
    name: 'RKE2 in agent mode',
    mode: 'agent',
    docs: [infra([agentOs({dist: 'rke2'}), k8s('edge-rke2', '1.31.4', ''), cni()])],
    errors: ['AP-K8S-MODE'],
  },
  {
    name: 'Canonical on ARM64',
    arch: 'arm64',
    docs: [infra([os(osValues({dist: 'canonical', arch: 'arm64'})), k8s('edge-canonical', '1.32.3', ''), cni()])],
    errors: ['AP-ARCH-UNSUPPORTED'],
  },
  {
    name: 'appliance on ARM64 (Jetson Orin only)',
    arch: 'arm64',
    docs: [infra([os(osValues({arch: 'arm64'})), k8s(), cni()])],
    warnings: ['AP-ARCH-UNVERIFIED'],
  },
  {
    name: 'Canonical on openSUSE',
    docs: [
      infra([os(osValues({dist: 'canonical', osName: 'opensuse-leap'})), k8s('edge-canonical', '1.32.3', ''), cni()]),
    ],
    errors: ['AP-OS-UNSUPPORTED'],
  },
  {
    name: 'K3s on RHEL (appliance)',
    docs: [infra([os(osValues({osName: 'rhel'})), k8s(), cni()])],
    warnings: ['AP-OS-UNVERIFIED'],
  },
  {
    name: 'provider image built for RKE2 under a K3s layer',
    docs: [infra([os(osValues({dist: 'rke2'})), k8s(), cni()])],
    errors: ['AP-OS-K8S-MISMATCH'],
  },
  {
    name: 'appliance BYOS pack without options.system.uri',
    docs: [infra([os(osValues({uri: null, listProvider: false})), k8s(), cni()])],
    errors: ['AP-OS-URI-MISSING'],
  },
  {
    name: 'agent mode with BYOS Edge OS 1.x',
    mode: 'agent',
    docs: [
      infra([os(osValues({uri: null, listProvider: false, dist: 'kubeadm'})), k8s('edge-k8s', '1.32.8', ''), cni()]),
    ],
    warnings: ['AP-OS-AGENT-PACK'],
  },
  {
    name: 'cni-cilium instead of cni-cilium-oss',
    docs: [infra([os(), k8s(), cni('cni-cilium')])],
    warnings: ['AP-CNI-UNKNOWN'],
  },
  {name: 'Cilium OSS beside K3s', docs: [infra([os(), k8s(), cni('cni-cilium-oss')])], warnings: ['AP-CNI-UNLISTED']},
  {
    name: 'Flannel in agent mode',
    mode: 'agent',
    docs: [infra([agentOs(), k8s('edge-k8s', '1.32.8', ''), cni('cni-flannel')])],
    warnings: ['AP-CNI-UNVERIFIED'],
  },
  {
    name: 'Longhorn beside K3s',
    docs: [
      infra([
        os(),
        k8s(),
        cni(),
        {
          name: 'csi-longhorn',
          layer: 'csi',
          version: '1.7.2',
          values: cniValues(['docker.io/longhornio/longhorn-manager:v1.7.2']),
        },
      ]),
    ],
    warnings: ['AP-CSI-UNLISTED'],
  },
  {
    name: 'Local Path Provisioner',
    docs: [
      infra([
        os(),
        k8s(),
        cni(),
        {
          name: 'csi-local-path-provisioner',
          layer: 'csi',
          version: '0.0.30',
          values: cniValues(['docker.io/rancher/local-path-provisioner:v0.0.30']),
        },
      ]),
    ],
    warnings: ['AP-CSI-LOCAL-PATH'],
  },
  {
    name: 'FIPS OS image under K3s',
    docs: [infra([os(osValues({osName: 'ubuntu-fips'})), k8s(), cni()])],
    errors: ['AP-FIPS'],
  },
  {
    name: 'FIPS agent on Ubuntu',
    mode: 'agent',
    docs: [infra([agentOs({dist: 'kubeadm-fips'}), k8s('edge-k8s', '1.32.8', ''), cni()])],
    warnings: ['AP-FIPS-AGENT-OS'],
  },
  {
    name: 'K3s embedded Flannel left on beside Calico',
    docs: [infra([os(), k8s('edge-k3s', '1.32.1', k3sValues('flannel-backend: vxlan')), cni()])],
    warnings: ['AP-K8S-BUILTIN-CNI'],
  },
  {
    name: 'RKE2 Canal left on beside Calico',
    docs: [
      infra([os(osValues({dist: 'rke2'})), k8s('edge-rke2', '1.31.4', 'cluster:\n  config: |\n    cni: canal'), cni()]),
    ],
    warnings: ['AP-K8S-BUILTIN-CNI'],
  },
  {
    name: 'AlwaysPullImages admission plugin',
    docs: [
      infra([
        os(),
        k8s(
          'edge-k3s',
          '1.32.1',
          k3sValues(
            'flannel-backend: none\nkube-apiserver-arg:\n  - enable-admission-plugins=NodeRestriction,AlwaysPullImages',
          ),
        ),
        cni(),
      ]),
    ],
    warnings: ['AP-K8S-ALWAYS-PULL'],
  },
  {
    name: 'agent older than 4.6.21 in agent mode',
    mode: 'agent',
    docs: [infra([agentOs({agent: AGENT('amd64', 'v4.5.3')}), k8s('edge-k8s', '1.31.4', ''), cni()])],
    errors: ['AP-AGENT-VERSION'],
  },
  {
    name: 'agent 4.7.5 cannot reach edge-k8s 1.32.8',
    mode: 'agent',
    docs: [infra([agentOs({agent: AGENT('amd64', 'v4.7.5')}), k8s('edge-k8s', '1.32.8', ''), cni()])],
    errors: ['AP-AGENT-UPGRADE'],
  },
  {
    name: 'agent image tag without a version',
    docs: [infra([os(osValues({agent: AGENT('amd64', 'v0.0.0-8a1f3e2')})), k8s(), cni()])],
    warnings: ['AP-AGENT-VERSION-UNKNOWN'],
  },
  {
    name: 'agent mode without an agent image',
    mode: 'agent',
    docs: [infra([agentOs({agent: null}), k8s('edge-k8s', '1.32.8', ''), cni()])],
    warnings: ['AP-AGENT-MISSING'],
  },
  // Content tags and macros
  {
    name: 'values that are not YAML',
    docs: [addonProfile([addon('bad', 'pack:\n  content: [unclosed\n')])],
    errors: ['AP-VALUES-YAML'],
  },
  {name: 'an alias bomb in values', docs: [addonProfile([addon('bomb', aliasBomb())])], errors: ['AP-VALUES-YAML']},
  {
    name: 'pack.content.images not a list',
    docs: [addonProfile([addon('x', 'pack:\n  content:\n    images: docker.io/library/nginx:1.27')])],
    errors: ['AP-CONTENT-MALFORMED'],
    warnings: ['AP-CONTENT-MISSING'],
  },
  {
    name: 'a chart without a version',
    docs: [
      addonProfile([addon('x', addonValues(undefined, '      - repo: https://charts.example.com\n        name: x'))]),
    ],
    errors: ['AP-CONTENT-MALFORMED'],
  },
  {
    name: 'an unquoted macro (YAML reads {{ as a mapping)',
    docs: [
      addonProfile([addon('app', addonValues(['{{.spectro.var.img}}']))], {
        variables: [{name: 'img', defaultValue: 'nginx'}],
      }),
    ],
    errors: ['AP-CONTENT-MALFORMED'],
    warnings: ['AP-CONTENT-MISSING'],
  },
  {
    name: 'an add-on pack without content tags',
    docs: [addonProfile([addon('kubeflow', 'pack:\n  namespace: kubeflow')])],
    warnings: ['AP-CONTENT-MISSING'],
  },
  {
    name: 'a variable with no value',
    docs: [
      addonProfile([addon('app', addonValues(['ghcr.io/acme/app:{{.spectro.var.tag}}']))], {
        variables: [{name: 'tag'}],
      }),
    ],
    errors: ['AP-MACRO-UNRESOLVED'],
  },
  {
    name: 'a macro airpack does not resolve',
    docs: [addonProfile([addon('vip', addonValues(['ghcr.io/acme/vip:{{.spectro.system.cluster.kubevip}}']))])],
    errors: ['AP-MACRO-UNRESOLVED'],
  },
  {
    name: 'a macro naming a pack that is not there',
    docs: [addonProfile([addon('app', addonValues(["'{{.spectro.pack.edge-native-byoi.options.system.uri}}'"]))])],
    errors: ['AP-MACRO-UNRESOLVED'],
  },
  {
    name: 'an invalid image reference',
    docs: [addonProfile([addon('app', addonValues(['ghcr.io/Acme/App:1.0']))])],
    errors: ['AP-IMAGE-REF'],
  },
  {
    name: 'a chart repository that is not a URL',
    docs: [
      addonProfile([
        addon(
          'x',
          addonValues(undefined, '      - repo: ftp://charts.example.com\n        name: x\n        version: 1.0.0'),
        ),
      ]),
    ],
    errors: ['AP-CHART-REF'],
  },
  {
    name: 'an ARM64 agent for an AMD64 build',
    docs: [infra([os(osValues({arch: 'arm64'})), k8s(), cni()])],
    errors: ['AP-AGENT-ARCH'],
  },
  {
    name: 'stylusPackage missing from the content tags',
    docs: [infra([os(osValues({listAgent: false})), k8s(), cni()])],
    warnings: ['AP-AGENT-CONTENT'],
  },
  {
    name: 'provider image missing from the content tags',
    docs: [infra([os(osValues({listProvider: false})), k8s(), cni()])],
    warnings: ['AP-OS-PROVIDER-CONTENT'],
  },
  // Variables
  {name: '--var for an undeclared variable', vars: {nope: '1'}, docs: [addonProfile()], warnings: ['AP-VAR-UNKNOWN']},
  {
    name: 'a variable that is not an IPv4 address',
    vars: {vip: '10.0.0.300'},
    docs: [addonProfile(undefined, {variables: [{name: 'vip', format: 'ipv4'}]})],
    errors: ['AP-VAR-FORMAT'],
  },
  {
    name: 'a variable that does not match its regex',
    docs: [addonProfile(undefined, {variables: [{name: 'site', regex: '^store-[0-9]{4}$', defaultValue: 'store-12'}]})],
    errors: ['AP-VAR-FORMAT'],
  },
  {
    name: 'a dropdown variable',
    docs: [
      addonProfile(undefined, {
        variables: [{name: 'size', inputType: 'dropdown', defaultValue: 'small', options: [{value: 'small'}]}],
      }),
    ],
    warnings: ['AP-VAR-DROPDOWN'],
  },
]

function aliasBomb(): string {
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]']
  for (let i = 1; i < 8; i++)
    lines.push(
      `${'abcdefgh'[i]}: &${'abcdefgh'[i]} [${Array(10)
        .fill(`*${'abcdefgh'[i - 1]}`)
        .join(', ')}]`,
    )
  return lines.join('\n')
}

const uniq = (codes: string[]) => [...new Set(codes)].sort()

describe('validateProfiles rules', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const profiles = c.docs.map(load)
    const report = validateProfiles(profiles, {
      arch: c.arch ?? 'amd64',
      mode: c.mode ?? 'appliance',
      ...(c.vars ? {vars: c.vars} : {}),
    })
    const errors = uniq(report.findings.filter((f) => f.severity === 'error').map((f) => f.code))
    const warnings = uniq(report.findings.filter((f) => f.severity === 'warning').map((f) => f.code))
    expect({errors, warnings}).toEqual({errors: uniq(c.errors ?? []), warnings: uniq(c.warnings ?? [])})
    expect(report.valid).toBe((c.errors ?? []).length === 0)
    expect(report.errors + report.warnings).toBe(report.findings.length)
    for (const f of report.findings) {
      expect(f.message.length).toBeGreaterThan(10)
      expect(f.hint.length).toBeGreaterThan(10)
    }
  })

  it('has at least one case for every rule code', () => {
    const covered = new Set(CASES.flatMap((c) => [...(c.errors ?? []), ...(c.warnings ?? [])]))
    expect(RULES.map((r) => r.code).filter((code) => !covered.has(code))).toEqual([])
    expect(CASES.length).toBeGreaterThanOrEqual(40)
  })

  it('reports each rule with the severity rules.ts declares', () => {
    const bySeverity = new Map(RULES.map((r) => [r.code, r.severity]))
    for (const c of CASES) {
      for (const code of c.errors ?? []) expect([code, bySeverity.get(code)]).toEqual([code, 'error'])
      for (const code of c.warnings ?? []) expect([code, bySeverity.get(code)]).toEqual([code, 'warning'])
    }
  })

  it('reports a bad provider image once, though options.system.uri and its content tag both reach it', () => {
    const d = infra([os(osValues({uri: 'ttl.sh/Ubuntu:k3s-1.32.1'})), k8s(), cni()])
    const report = validateProfiles([load(d, 0)], {arch: 'amd64', mode: 'appliance'})
    const bad = report.findings.filter((f) => f.code === 'AP-IMAGE-REF')
    expect(bad).toHaveLength(1)
    expect(bad[0]).toMatchObject({pack: 'edge-native-byoi', path: 'options.system.uri', line: 8})
    const macro = validateProfiles(
      [
        load(
          addonProfile(
            [addon('app', addonValues(['ghcr.io/acme/a:{{.spectro.var.tag}}', 'ghcr.io/acme/b:{{.spectro.var.tag}}']))],
            {variables: [{name: 'tag'}]},
          ),
          0,
        ),
      ],
      {arch: 'amd64', mode: 'appliance'},
    )
    expect(macro.findings.filter((f) => f.code === 'AP-MACRO-UNRESOLVED')).toHaveLength(1)
  })

  it('says why "NA" is refused in appliance mode, at the line of options.system.uri', () => {
    const report = validateProfiles([load(infra([os(osValues({uri: 'NA'})), k8s(), cni()]), 0)], {
      arch: 'amd64',
      mode: 'appliance',
    })
    expect(report.findings.map((f) => f.code)).toEqual(['AP-OS-URI-MISSING'])
    const f = report.findings[0]!
    expect(f.message).toContain('"NA"')
    expect(f.message).toContain('appliance mode needs a provider image')
    expect(f.message).not.toMatch(/lowercase/)
    expect(f).toMatchObject({path: 'options.system.uri', line: 8})
  })

  it('keeps values line numbers right in every YAML document', () => {
    const values = [
      '# first document',
      'options:',
      '  x: 1',
      '---',
      '# second document',
      'pack:',
      '  content:',
      '    images:',
      '      - image: ghcr.io/acme/ok:1.0',
      '      - image: ghcr.io/Acme/Bad:1.0',
    ].join('\n')
    const report = validateProfiles([load(addonProfile([addon('app', values)]), 0)], {arch: 'amd64', mode: 'appliance'})
    expect(report.findings).toHaveLength(1)
    expect(report.findings[0]).toMatchObject({code: 'AP-IMAGE-REF', line: 10, path: 'pack.content.images[1].image'})
    const third = validateProfiles(
      [load(addonProfile([addon('app', 'a: 1\n---\nb: 2\n---\n- not\n- a mapping')]), 0)],
      {arch: 'amd64', mode: 'appliance'},
    )
    expect(third.findings[0]).toMatchObject({code: 'AP-VALUES-YAML', line: 5})
  })

  it('says where misplaced content tags belong, and where an unlisted image is named', () => {
    const top = validateProfiles(
      [
        load(
          addonProfile([
            addon('app', 'pack:\n  namespace: app\ncontent:\n  images:\n    - image: ghcr.io/acme/app:1.0'),
          ]),
          0,
        ),
      ],
      {arch: 'amd64', mode: 'appliance'},
    )
    expect(top.findings.map((f) => f.code)).toEqual(['AP-CONTENT-MISPLACED'])
    expect(top.findings[0]).toMatchObject({path: 'content', line: 4})
    expect(top.findings[0]!.message).toContain('content: belongs under pack:')
    const nested = validateProfiles(
      [load(addonProfile([addon('app', 'pack:\n  images:\n    - image: ghcr.io/acme/app:1.0')]), 0)],
      {arch: 'amd64', mode: 'appliance'},
    )
    expect(nested.findings[0]).toMatchObject({code: 'AP-CONTENT-MISPLACED', path: 'pack.images', line: 3})
    expect(nested.findings[0]!.message).toContain('images: belongs under pack.content:')
    const unlisted = validateProfiles(
      [
        load(
          addonProfile([
            addon(
              'app',
              addonValues(['ghcr.io/acme/app:1.0']) +
                '\ncharts:\n  app:\n    sidecar:\n      image: ghcr.io/acme/sidecar:2.0',
            ),
          ]),
          0,
        ),
      ],
      {arch: 'amd64', mode: 'appliance'},
    )
    expect(unlisted.findings).toHaveLength(1)
    expect(unlisted.findings[0]).toMatchObject({code: 'AP-CONTENT-UNLISTED', path: 'charts.app.sidecar.image', line: 9})
    expect(unlisted.findings[0]!.message).toContain('ghcr.io/acme/sidecar:2.0')
  })

  it('names the pack, the values line and the macro of an unresolved macro', () => {
    const d = addonProfile(
      [addon('app', addonValues(['docker.io/library/nginx:1.27', 'ghcr.io/acme/app:{{.spectro.var.tag}}']))],
      {variables: [{name: 'tag'}]},
    )
    const report = validateProfiles([load(d, 0)], {arch: 'amd64', mode: 'appliance'})
    const f = report.findings.find((x) => x.code === 'AP-MACRO-UNRESOLVED')!
    expect(f).toMatchObject({pack: 'app', profile: 'addon', line: 6, path: 'pack.content.images[1].image'})
    expect(f.message).toContain('{{.spectro.var.tag}}')
    expect(f.hint).toContain('--var')
  })
})
