// The closed list of validation rules. A code is stable once released (users grep for it, CI may allow-list it);
// the severity says whether the cluster cannot work (error) or the documentation leaves it open (warning).

export interface Rule {
  code: string
  severity: 'error' | 'warning'
  summary: string
}

export const RULES: Rule[] = [
  // Profiles and layers
  {code: 'AP-CLOUD-TYPE', severity: 'error', summary: 'cloudType must be edge-native (add-on profiles may say all)'},
  {code: 'AP-PROFILE-TYPE', severity: 'warning', summary: 'a system profile is not part of an Edge cluster definition'},
  {code: 'AP-INFRA-MULTIPLE', severity: 'error', summary: 'at most one infrastructure or full profile per cluster'},
  {
    code: 'AP-LAYER-MISSING',
    severity: 'error',
    summary: 'an infrastructure or full profile needs an OS, a Kubernetes and a CNI layer',
  },
  {
    code: 'AP-LAYER-DUPLICATE',
    severity: 'error',
    summary: 'an infrastructure or full profile holds exactly one OS, one Kubernetes and one CNI layer',
  },
  {code: 'AP-LAYER-ADDON', severity: 'error', summary: 'an add-on profile holds no OS, Kubernetes or CNI layer'},
  {code: 'AP-LAYER-UNKNOWN', severity: 'warning', summary: 'a pack layer outside os, k8s, cni, csi, addon'},
  {code: 'AP-PACK-DUPLICATE', severity: 'error', summary: 'no pack may appear twice across the profiles'},
  // Supported matrix
  {code: 'AP-OS-PACK', severity: 'warning', summary: 'OS pack not in the Edge OS pack list'},
  {
    code: 'AP-K8S-DISTRO',
    severity: 'error',
    summary: 'the Kubernetes layer must be an Edge distribution (edge-k8s, edge-k3s, edge-rke2, edge-canonical)',
  },
  {
    code: 'AP-K8S-VERSION',
    severity: 'error',
    summary: 'Kubernetes version malformed or older than the distribution supports',
  },
  {
    code: 'AP-K8S-VERSION-UNVERIFIED',
    severity: 'warning',
    summary: 'Kubernetes version outside the documented range (or newer than the matrix knows)',
  },
  {
    code: 'AP-K8S-MODE',
    severity: 'error',
    summary: 'distribution not supported in the deployment mode (RKE2 in agent mode)',
  },
  {
    code: 'AP-ARCH-UNSUPPORTED',
    severity: 'error',
    summary: 'distribution not supported on the architecture (Canonical on ARM64)',
  },
  {
    code: 'AP-ARCH-UNVERIFIED',
    severity: 'warning',
    summary: 'combination only verified on some hardware (appliance ARM64: Nvidia Jetson Orin)',
  },
  {
    code: 'AP-OS-UNSUPPORTED',
    severity: 'error',
    summary: 'OS not supported by the distribution (Canonical: Ubuntu only)',
  },
  {code: 'AP-OS-UNVERIFIED', severity: 'warning', summary: 'OS outside the documented list for the distribution'},
  {
    code: 'AP-OS-K8S-MISMATCH',
    severity: 'error',
    summary: 'the provider image was built for another Kubernetes distribution than the Kubernetes layer',
  },
  {
    code: 'AP-OS-URI-MISSING',
    severity: 'error',
    summary:
      'appliance mode: the BYOS OS pack names no provider image (options.system.uri missing, or "NA" as the Agent Mode preset sets it)',
  },
  {
    code: 'AP-OS-AGENT-PACK',
    severity: 'warning',
    summary: 'agent mode expects BYOS Edge OS 2.0.x with the Agent Mode preset',
  },
  {
    code: 'AP-CNI-UNKNOWN',
    severity: 'warning',
    summary: 'CNI pack not in the Edge CNI list (e.g. cni-cilium instead of cni-cilium-oss)',
  },
  {code: 'AP-CNI-UNLISTED', severity: 'warning', summary: 'CNI outside the distribution table'},
  {code: 'AP-CNI-UNVERIFIED', severity: 'warning', summary: 'agent mode: Flannel is not verified for local management'},
  {code: 'AP-CSI-UNLISTED', severity: 'warning', summary: 'CSI outside the distribution table'},
  {
    code: 'AP-CSI-LOCAL-PATH',
    severity: 'warning',
    summary: 'Local Path Provisioner is not allowed in multi-node Local UI clusters',
  },
  {
    code: 'AP-FIPS',
    severity: 'error',
    summary: 'a FIPS OS image needs a FIPS distribution (PXK-E FIPS / kubeadm-fips, or RKE2)',
  },
  {
    code: 'AP-FIPS-AGENT-OS',
    severity: 'warning',
    summary: 'agent mode: the FIPS agent runs only on RHEL and Rocky Linux 8',
  },
  {
    code: 'AP-K8S-BUILTIN-CNI',
    severity: 'warning',
    summary: 'K3s embedded Flannel / RKE2 built-in CNI left on beside the CNI pack',
  },
  {
    code: 'AP-K8S-ALWAYS-PULL',
    severity: 'warning',
    summary: 'AlwaysPullImages admission plugin breaks air-gapped, locally managed clusters',
  },
  {
    code: 'AP-AGENT-VERSION',
    severity: 'error',
    summary: 'agent mode, local management: the agent must be 4.6.21 or later',
  },
  {
    code: 'AP-AGENT-UPGRADE',
    severity: 'error',
    summary: 'agents older than 4.7.7 cannot upgrade to the packs released in 4.7.20',
  },
  {
    code: 'AP-AGENT-VERSION-UNKNOWN',
    severity: 'warning',
    summary: 'the agent version cannot be read from the agent image tag',
  },
  {
    code: 'AP-AGENT-MISSING',
    severity: 'warning',
    summary: 'agent mode: no agent image (stylusPackage) pins the agent version',
  },
  // Content tags and macros
  {code: 'AP-VALUES-YAML', severity: 'error', summary: 'pack values are not valid YAML (or exceed the alias limit)'},
  {code: 'AP-CONTENT-MALFORMED', severity: 'error', summary: 'pack.content images or charts malformed'},
  {code: 'AP-CONTENT-TYPO', severity: 'warning', summary: '"iamge" used for "image" in a content tag'},
  {
    code: 'AP-CONTENT-UNLISTED',
    severity: 'warning',
    summary: "an image the pack's values or a chart's values.yaml name is in no content tag (the site would lack it)",
  },
  {
    code: 'AP-CONTENT-MISPLACED',
    severity: 'warning',
    summary: 'content tags at the wrong level (content: outside pack:, pack.images): Palette reads only pack.content',
  },
  {
    code: 'AP-IMAGE-ARCH',
    severity: 'warning',
    summary: 'an image name says another architecture than --arch (…-amd64 in an arm64 build)',
  },
  {
    code: 'AP-CONTENT-MISSING',
    severity: 'warning',
    summary:
      'pack has no content tags: its images would be missing at the site (not for packs that ship only manifests naming no image)',
  },
  {
    code: 'AP-MACRO-UNRESOLVED',
    severity: 'error',
    summary: 'a {{.spectro.…}} macro in a content tag cannot be resolved',
  },
  {code: 'AP-IMAGE-REF', severity: 'error', summary: 'an image reference is invalid'},
  {code: 'AP-CHART-REF', severity: 'error', summary: 'a chart repository, name or version is invalid'},
  {
    code: 'AP-CHART-SCHEME',
    severity: 'warning',
    summary: 'a chart repository written without a scheme (helm.coder.com/v2) is read as https://',
  },
  {code: 'AP-AGENT-ARCH', severity: 'error', summary: 'the agent image (stylus-linux-<arch>) does not match --arch'},
  {
    code: 'AP-AGENT-CONTENT',
    severity: 'warning',
    summary: 'stylusPackage not listed (or listed differently) in the OS pack content tags',
  },
  {
    code: 'AP-OS-PROVIDER-CONTENT',
    severity: 'warning',
    summary: 'the provider image (options.system.uri) is not in the OS pack content tags',
  },
  // Variables
  {code: 'AP-VAR-UNKNOWN', severity: 'warning', summary: '--var names a variable no profile declares'},
  {code: 'AP-VAR-FORMAT', severity: 'error', summary: "a variable's value does not match its format or regex"},
  {code: 'AP-VAR-DROPDOWN', severity: 'warning', summary: 'dropdown variables are not supported in Local UI'},
]

export const RULE_CODES = new Set(RULES.map((r) => r.code))
