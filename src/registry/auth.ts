// WWW-Authenticate challenges (RFC 7235 as registries send them):
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"
//   Basic realm="Registry Realm"

export type Challenge =
  {scheme: 'basic'; realm?: string} | {scheme: 'bearer'; realm: string; service?: string; scope?: string}

export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header)
  if (!match) return undefined
  const scheme = match[1].toLowerCase()
  const params: Record<string, string> = {}
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g
  for (let m = re.exec(match[2]); m; m = re.exec(match[2]))
    params[m[1].toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1')
  if (scheme === 'basic') return {scheme: 'basic', ...(params.realm ? {realm: params.realm} : {})}
  if (scheme === 'bearer' && params.realm) {
    return {
      scheme: 'bearer',
      realm: params.realm,
      ...(params.service ? {service: params.service} : {}),
      ...(params.scope ? {scope: params.scope} : {}),
    }
  }
  return undefined
}

export function basicAuthorization(username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64')
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`
}
