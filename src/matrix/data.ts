// The supported matrix of Palette Edge, as data. Every entry names the Palette documentation page (librarium,
// `docs/docs-content/…`, at the commit read) or CanvOS file it comes from, so that a new Palette release is a change
// to this file only. Validation rules (src/profile/validate.ts) read nothing else about what is supported.
//
// Source keys: `L:` = spectrocloud/librarium docs, `C:` = spectrocloud/CanvOS @fb36e292.

export type Mode = 'appliance' | 'agent'
export type ArchName = 'amd64' | 'arm64'
/** supported = documented to work; unverified = documentation leaves it open (a warning); unsupported = an error. */
export type Support = 'supported' | 'unverified' | 'unsupported'

export const SOURCES = {
  edgeArchitecture: 'L: clusters/edge/architecture/architecture.md@5b0eb27d',
  deploymentModes: 'L: deployment-modes/deployment-modes.md@959de227',
  agentArchitecture: 'L: deployment-modes/agent-mode/architecture.md',
  installAgentHost: 'L: deployment-modes/agent-mode/install-agent-host.md@d2471bda',
  twoNode: 'L: clusters/edge/architecture/two-node.md@ad73e5e3',
  fips: 'L: clusters/edge/edgeforge-workflow/fips.md@105b49bf',
  hardware: 'L: clusters/edge/hardware-requirements.md@a9b2b10e',
  localUiCreateCluster: 'L: clusters/edge/local-ui/cluster-management/create-cluster.md@b886738f',
  agentUpgradeAirgap: 'L: clusters/edge/cluster-management/agent-upgrade-airgap.md@0736346c',
  byoiPack: 'L: integrations/edge-native-byoi.mdx@37662292',
  integrations: 'L: integrations/ (pack pages)',
  profileVariables:
    'L: profiles/cluster-profiles/create-cluster-profiles/define-profile-variables/create-cluster-profile-variables.md@8c5f8782',
  exportClusterDefinition: 'L: clusters/edge/local-ui/cluster-management/export-cluster-definition.md@5a72bf11',
  modelProfile: 'L: clusters/edge/site-deployment/model-profile.md@ba862f18',
  buildContentBundle: 'L: clusters/edge/edgeforge-workflow/palette-canvos/build-content-bundle.md@04133df4',
  releaseNotes: 'L: release-notes (4.7.20, 4.8.21, 4.8.33)',
  canvosK8sVersions: 'C: k8s_version.json@fb36e292',
  canvosEarthfile: 'C: Earthfile@fb36e292',
  canvosReadme: 'C: README.md@fb36e292',
} as const

export interface VersionRange {
  /** Lowest and highest version CanvOS publishes provider images for (outside: an error). */
  min: string
  max: string
  /** Range the Palette docs' Supported Configurations list (outside it, inside min–max: a warning). */
  documentedMin: string
  documentedMax: string
  source: string
}

export interface DistributionEntry {
  /** Kubernetes layer pack name. */
  pack: string
  name: string
  /** CanvOS `K8S_DISTRIBUTION` values whose provider images carry this distribution (`options.system.k8sDistribution`). */
  providerDistributions: string[]
  fips: boolean
  modes: Record<Mode, Support>
  arch: Record<Mode, Record<ArchName, Support>>
  /** Operating systems documented for this distribution (lower-case families). */
  os: string[]
  /** CNI packs in the distribution table (cni-custom is always allowed). */
  cnis: string[]
  /** CSI packs in the distribution table (others: a warning). */
  csis: string[]
  kubernetes: VersionRange
  sources: string[]
  notes: string[]
}

const DOCS_K8S = {documentedMin: '1.26.0', documentedMax: '1.33.99'}

export const DISTRIBUTIONS: DistributionEntry[] = [
  {
    pack: 'edge-k8s',
    name: 'Palette eXtended Kubernetes Edge (PXK-E)',
    providerDistributions: ['kubeadm', 'kubeadm-fips'],
    fips: false,
    modes: {appliance: 'supported', agent: 'supported'},
    arch: {appliance: {amd64: 'supported', arm64: 'unverified'}, agent: {amd64: 'supported', arm64: 'supported'}},
    os: ['ubuntu', 'opensuse'],
    cnis: ['cni-calico', 'cni-flannel'],
    csis: ['csi-rook-ceph'],
    kubernetes: {min: '1.27.2', max: '1.35.6', ...DOCS_K8S, source: SOURCES.canvosK8sVersions},
    sources: [SOURCES.edgeArchitecture, SOURCES.deploymentModes, SOURCES.agentArchitecture],
    notes: ['Agent mode verified: Ubuntu + PXK-E + Calico; Rocky Linux 8.10 + PXK-E + Cilium (AMD64).'],
  },
  {
    pack: 'edge-k8s',
    name: 'PXK-E FIPS',
    providerDistributions: ['kubeadm-fips'],
    fips: true,
    modes: {appliance: 'supported', agent: 'supported'},
    arch: {appliance: {amd64: 'supported', arm64: 'unverified'}, agent: {amd64: 'supported', arm64: 'supported'}},
    os: ['ubuntu', 'rhel'],
    cnis: ['cni-calico', 'cni-flannel'],
    csis: ['csi-rook-ceph'],
    kubernetes: {min: '1.27.2', max: '1.35.6', ...DOCS_K8S, source: SOURCES.canvosK8sVersions},
    sources: [SOURCES.fips, SOURCES.edgeArchitecture],
    notes: [
      'Built from Ubuntu Pro FIPS or RHEL FIPS base images with FIPS_ENABLED=true.',
      'The FIPS installer is incompatible with secure boot; end-to-end FIPS needs Palette VerteX.',
      'In agent mode the FIPS agent runs only on RHEL and Rocky Linux 8.',
    ],
  },
  {
    pack: 'edge-k3s',
    name: 'Palette Optimized K3s',
    providerDistributions: ['k3s'],
    fips: false,
    modes: {appliance: 'supported', agent: 'supported'},
    arch: {appliance: {amd64: 'supported', arm64: 'unverified'}, agent: {amd64: 'supported', arm64: 'supported'}},
    os: ['ubuntu', 'opensuse'],
    cnis: ['cni-calico', 'cni-flannel'],
    csis: ['csi-rook-ceph'],
    kubernetes: {min: '1.26.14', max: '1.35.3', ...DOCS_K8S, source: SOURCES.canvosK8sVersions},
    sources: [SOURCES.edgeArchitecture, SOURCES.deploymentModes, SOURCES.twoNode],
    notes: [
      'Two-node HA is K3s only, appliance mode and central management only.',
      'Agent mode verified: Ubuntu + K3s + Flannel (AMD64).',
      'K3s built-ins disabled by default: Traefik, servicelb, local-path provisioner, Flannel, metrics-server.',
    ],
  },
  {
    pack: 'edge-rke2',
    name: 'Palette Optimized RKE2',
    providerDistributions: ['rke2'],
    fips: true,
    modes: {appliance: 'supported', agent: 'unsupported'},
    arch: {appliance: {amd64: 'supported', arm64: 'unverified'}, agent: {amd64: 'unsupported', arm64: 'unsupported'}},
    os: ['ubuntu', 'opensuse'],
    cnis: ['cni-calico', 'cni-flannel'],
    csis: ['csi-rook-ceph'],
    kubernetes: {min: '1.27.2', max: '1.35.3', ...DOCS_K8S, source: SOURCES.canvosK8sVersions},
    sources: [SOURCES.edgeArchitecture, SOURCES.deploymentModes, SOURCES.fips],
    notes: ['RKE2 is not listed for agent mode.', 'RKE2 provider images are FIPS-compliant.'],
  },
  {
    pack: 'edge-canonical',
    name: 'Palette Optimized Canonical',
    providerDistributions: ['canonical'],
    fips: false,
    modes: {appliance: 'supported', agent: 'supported'},
    arch: {appliance: {amd64: 'supported', arm64: 'unsupported'}, agent: {amd64: 'supported', arm64: 'unsupported'}},
    os: ['ubuntu'],
    cnis: ['cni-calico', 'cni-cilium-oss'],
    csis: ['csi-longhorn'],
    kubernetes: {
      min: '1.32.3',
      max: '1.35.2',
      documentedMin: '1.32.3',
      documentedMax: '1.35.2',
      source: SOURCES.canvosK8sVersions,
    },
    sources: [SOURCES.edgeArchitecture, SOURCES.agentArchitecture, SOURCES.releaseNotes],
    notes: [
      'No ARM64, no Palette VerteX, no HA with one or two nodes.',
      'Agent mode: Ubuntu only, no custom install paths, no non-Edge environments.',
      'No network overlay in locally managed clusters before Palette 4.8.33.',
      'Two-node Canonical: never delete the leader.',
    ],
  },
]

export interface PackEntry {
  pack: string
  name: string
  source: string
  notes?: string[]
}

export const OS_PACKS: (PackEntry & {os?: string})[] = [
  {
    pack: 'edge-native-byoi',
    name: 'BYOS Edge OS (provider image from EdgeForge/CanvOS)',
    source: SOURCES.byoiPack,
    notes: ['Agent mode: pack 2.0.x with the Agent Mode preset.'],
  },
  {pack: 'edge-native-ubuntu', name: 'Ubuntu (Edge native)', source: SOURCES.integrations, os: 'ubuntu'},
  {pack: 'edge-native-opensuse', name: 'openSUSE (Edge native)', source: SOURCES.integrations, os: 'opensuse'},
]

export const CNI_PACKS: PackEntry[] = [
  {pack: 'cni-calico', name: 'Calico', source: SOURCES.integrations},
  {
    pack: 'cni-flannel',
    name: 'Flannel',
    source: SOURCES.integrations,
    notes: ['Agent mode: Flannel is not verified for local management.'],
  },
  {
    pack: 'cni-cilium-oss',
    name: 'Cilium (OSS)',
    source: SOURCES.integrations,
    notes: ['The pack is cni-cilium-oss, not cni-cilium.'],
  },
  {pack: 'cni-custom', name: 'Custom CNI (bring your own)', source: SOURCES.integrations},
]

/** Pack names that look right but do not exist, with the name to use instead. */
export const MISNAMED_PACKS: Record<string, string> = {'cni-cilium': 'cni-cilium-oss'}

export const CSI_PACKS: PackEntry[] = [
  {pack: 'csi-rook-ceph', name: 'Rook Ceph', source: SOURCES.edgeArchitecture},
  {pack: 'csi-longhorn', name: 'Longhorn', source: SOURCES.edgeArchitecture},
  {
    pack: 'csi-local-path-provisioner',
    name: 'Local Path Provisioner',
    source: SOURCES.localUiCreateCluster,
    notes: ['Not allowed in multi-node clusters created from Local UI.'],
  },
]

export interface ModeEntry {
  mode: Mode
  os: string
  kubernetes: string[]
  arch: string
  fips: string
  twoNode: boolean
  trustedBoot: boolean
  /** Lowest Palette agent version for locally managed clusters in this mode. */
  minAgentVersion?: string
  notes: string[]
  sources: string[]
}

export const MODES: ModeEntry[] = [
  {
    mode: 'appliance',
    os: 'Immutable, built with EdgeForge: Ubuntu, openSUSE, BYOOS (RHEL in CanvOS)',
    kubernetes: ['edge-k8s', 'edge-k3s', 'edge-rke2', 'edge-canonical'],
    arch: 'AMD64; ARM64 only verified on the Nvidia Jetson Orin family',
    fips: 'kubeadm-fips or rke2 provider images; FIPS installer incompatible with secure boot',
    twoNode: true,
    trustedBoot: true,
    notes: [],
    sources: [SOURCES.deploymentModes, SOURCES.hardware, SOURCES.fips, SOURCES.twoNode],
  },
  {
    mode: 'agent',
    os: "The user's Linux with systemd (verified: Ubuntu, Rocky Linux 8.10)",
    kubernetes: ['edge-k8s', 'edge-k3s', 'edge-canonical'],
    arch: 'AMD64 and ARM64',
    fips: 'FIPS agent only on RHEL and Rocky Linux 8',
    twoNode: false,
    trustedBoot: false,
    minAgentVersion: '4.6.21',
    notes: [
      'Flannel not verified for local management.',
      'Local management needs Palette >= 4.6.32 and agent >= 4.6.21.',
    ],
    sources: [SOURCES.deploymentModes, SOURCES.agentArchitecture, SOURCES.installAgentHost],
  },
]

export interface AgentUpgradeLimit {
  /** Agents older than this cannot move to the packs listed. */
  agentBelow: string
  packs: {pack: string; versions: string[]}[]
  text: string
  source: string
}

export const AGENT_UPGRADE_LIMITS: AgentUpgradeLimit[] = [
  {
    agentBelow: '4.7.7',
    packs: [
      {pack: 'edge-canonical', versions: ['1.32.8', '1.33.4']},
      {pack: 'edge-k8s', versions: ['1.31.12', '1.32.8', '1.33.4']},
    ],
    text: 'Agents older than 4.7.7 cannot upgrade to the packs released in Palette 4.7.20; upgrade the agent first (Configure Palette Agent Version).',
    source: SOURCES.releaseNotes,
  },
]

/** The agent image: its repository's last path component embeds the architecture. */
export const AGENT_IMAGE_PATTERN = /(?:^|\/)stylus-linux-([a-z0-9]+)$/

export interface Limitation {
  text: string
  /** The rule code that enforces it, or null where a profile cannot show it (documented for the user). */
  rule: string | null
  source: string
}

export const LIMITATIONS: Limitation[] = [
  {
    text: 'At most one infrastructure or full profile per cluster; no pack in two profiles.',
    rule: 'AP-INFRA-MULTIPLE',
    source: SOURCES.exportClusterDefinition,
  },
  {
    text: 'An infrastructure or full profile holds exactly one OS, one Kubernetes and one CNI layer.',
    rule: 'AP-LAYER-MISSING',
    source: SOURCES.modelProfile,
  },
  {text: 'RKE2 is not supported in agent mode.', rule: 'AP-K8S-MODE', source: SOURCES.deploymentModes},
  {text: 'Canonical: no ARM64.', rule: 'AP-ARCH-UNSUPPORTED', source: SOURCES.edgeArchitecture},
  {text: 'Canonical: Ubuntu only.', rule: 'AP-OS-UNSUPPORTED', source: SOURCES.agentArchitecture},
  {
    text: 'Canonical: no Palette VerteX, no HA with one or two nodes, no custom install paths in agent mode.',
    rule: null,
    source: SOURCES.edgeArchitecture,
  },
  {
    text: 'Canonical: no network overlay for locally managed clusters before Palette 4.8.33.',
    rule: null,
    source: SOURCES.releaseNotes,
  },
  {
    text: 'Appliance mode on ARM64 is only verified on the Nvidia Jetson Orin family.',
    rule: 'AP-ARCH-UNVERIFIED',
    source: SOURCES.hardware,
  },
  {
    text: 'Agent mode, local management: agent >= 4.6.21 (Palette >= 4.6.32).',
    rule: 'AP-AGENT-VERSION',
    source: SOURCES.installAgentHost,
  },
  {
    text: 'Agent < 4.7.7 cannot upgrade to edge-canonical 1.32.8/1.33.4, edge-k8s 1.31.12/1.32.8/1.33.4.',
    rule: 'AP-AGENT-UPGRADE',
    source: SOURCES.releaseNotes,
  },
  {
    text: 'Agent mode: Flannel not verified for local management.',
    rule: 'AP-CNI-UNVERIFIED',
    source: SOURCES.installAgentHost,
  },
  {
    text: 'FIPS: only kubeadm-fips (PXK-E FIPS) and rke2 provider images are FIPS-compliant.',
    rule: 'AP-FIPS',
    source: SOURCES.fips,
  },
  {text: 'FIPS agent (agent mode) only on RHEL and Rocky Linux 8.', rule: 'AP-FIPS', source: SOURCES.deploymentModes},
  {text: 'Two-node HA: K3s only, appliance mode, central management only.', rule: null, source: SOURCES.twoNode},
  {
    text: 'Local UI multi-node clusters: no Local Path Provisioner pack; odd number of control-plane nodes.',
    rule: 'AP-CSI-LOCAL-PATH',
    source: SOURCES.localUiCreateCluster,
  },
  {
    text: 'Local UI: dropdown profile variables are not supported.',
    rule: 'AP-VAR-DROPDOWN',
    source: SOURCES.profileVariables,
  },
  {
    text: 'K3s/RKE2 built-ins (embedded Flannel, RKE2 Canal) must stay off beside a CNI pack.',
    rule: 'AP-K8S-BUILTIN-CNI',
    source: SOURCES.edgeArchitecture,
  },
  {
    text: 'Locally managed clusters: remove AlwaysPullImages from enable-admission-plugins.',
    rule: 'AP-K8S-ALWAYS-PULL',
    source: SOURCES.installAgentHost,
  },
  {
    text: 'Content tags (pack.content.images/charts) list every image a pack needs; without them the site misses images.',
    rule: 'AP-CONTENT-MISSING',
    source: SOURCES.buildContentBundle,
  },
  {
    text: 'The agent image name embeds its architecture (stylus-linux-amd64 / stylus-linux-arm64).',
    rule: 'AP-AGENT-ARCH',
    source: SOURCES.agentUpgradeAirgap,
  },
]

export const CLOUD_TYPES = {infra: ['edge-native'], addon: ['edge-native', 'all'], source: SOURCES.modelProfile}
