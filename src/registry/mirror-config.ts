import path from 'node:path'

// The configurations that send a site's nodes to where the content is (a served bundle, or the registry it was
// pushed into) while images keep their original names: K3s/RKE2 `registries.yaml` (mirrors with a `rewrite` that
// puts the source host, and any prefix, in front of the path) and containerd's `hosts.toml` (a config_path
// directory: one `HOST/hosts.toml` whose host URL carries that path, with `override_path`).

export interface MirrorTarget {
  /** The source registry host images are named with (`docker.io`). */
  host: string
  /** Base URL of the registry to use instead (`https://site-registry:5000`). */
  endpoint: string
  /** The repository path in front of the original path there (`docker.io`, `edge/docker.io`). */
  pathPrefix: string
}

export interface MirrorTls {
  caFile?: string
  insecureSkipVerify?: boolean
}

/** K3s/RKE2 registries.yaml: every host mirrored to its endpoint, the path rewritten to `PREFIX/$1`. */
export function mirrorsYaml(targets: readonly MirrorTarget[], tls: MirrorTls = {}): string {
  const lines = ['mirrors:']
  for (const t of targets) {
    lines.push(
      `  ${JSON.stringify(t.host)}:`,
      '    endpoint:',
      `      - ${JSON.stringify(t.endpoint)}`,
      '    rewrite:',
      `      ${JSON.stringify('^(.*)$')}: ${JSON.stringify(`${t.pathPrefix}/$1`)}`,
    )
  }
  const endpoints = [
    ...new Set(targets.filter((t) => t.endpoint.startsWith('https:')).map((t) => new URL(t.endpoint).host)),
  ]
  if (endpoints.length > 0 && (tls.caFile || tls.insecureSkipVerify)) {
    lines.push('configs:')
    for (const host of endpoints) {
      lines.push(`  ${JSON.stringify(host)}:`, '    tls:')
      if (tls.caFile) lines.push(`      ca_file: ${JSON.stringify(tls.caFile)}`)
      if (tls.insecureSkipVerify) lines.push('      insecure_skip_verify: true')
    }
  }
  return lines.join('\n') + '\n'
}

/** containerd's name for a registry's own server (Docker Hub's API is not at docker.io). */
function upstreamServer(host: string): string {
  return host === 'docker.io' ? 'https://registry-1.docker.io' : `https://${host}`
}

/** containerd hosts.toml files, by path relative to the config_path directory (`docker.io/hosts.toml`). */
export function hostsTomlFiles(targets: readonly MirrorTarget[], tls: MirrorTls = {}): Map<string, string> {
  const files = new Map<string, string>()
  for (const t of targets) {
    const url = `${t.endpoint.replace(/\/+$/, '')}/v2/${t.pathPrefix}`
    const lines = [
      `server = ${JSON.stringify(upstreamServer(t.host))}`,
      '',
      `[host.${JSON.stringify(url)}]`,
      '  capabilities = ["pull", "resolve"]',
      '  override_path = true',
    ]
    if (t.endpoint.startsWith('https:') && tls.caFile) lines.push(`  ca = ${JSON.stringify(tls.caFile)}`)
    if (t.endpoint.startsWith('https:') && tls.insecureSkipVerify) lines.push('  skip_verify = true')
    files.set(path.join(t.host, 'hosts.toml'), lines.join('\n') + '\n')
  }
  return files
}
