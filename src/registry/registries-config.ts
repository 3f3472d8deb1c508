import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {parse as parseYaml} from 'yaml'

import {UsageError} from '../errors.js'
import {redactText, redactUrl} from '../util/redact.js'
import {readInputText} from '../util/read-input.js'
import type {RegistriesFile} from './registries-schema.js'
import {splitUserinfo} from './url-credentials.js'

// The K3s / RKE2 `registries.yaml` format (docs.k3s.io "Private Registry Configuration"):
//
//   mirrors:
//     docker.io:                       # or "*" for every registry
//       endpoint: ["https://mirror.local:5000", "http://10.0.0.5:5000/v2/proxy"]
//       rewrite: {"^rancher/(.*)": "mirrored/rancher/$1"}
//   configs:
//     mirror.local:5000:
//       auth: {username, password} | {auth: base64(user:pass)} | {identity_token}
//       tls: {ca_file, cert_file, key_file, insecure_skip_verify}
//
// Endpoints are tried in order, then the upstream registry itself. As in K3s, rewrites apply to the mirror
// endpoints only; the upstream is always asked for the name as written. An `http://` endpoint is plain HTTP.
// The file's schema (registries-schema.ts) is loaded only when a --registries file is read: zod costs about 0.1 s
// of start-up.

export interface HostAuth {
  username?: string
  password?: string
  identityToken?: string
}

export interface HostTls {
  caPem?: string
  certPem?: string
  keyPem?: string
  insecureSkipVerify?: boolean
}

export interface MirrorConfig {
  endpoints: URL[]
  rewrites: {pattern: RegExp; replacement: string}[]
}

export interface RegistriesConfig {
  /** Keyed by registry host as written in references (`docker.io`, `ghcr.io`, `*`). */
  mirrors: Map<string, MirrorConfig>
  /** Keyed by endpoint host[:port]. */
  auth: Map<string, HostAuth>
  tls: Map<string, HostTls>
}

export const emptyRegistriesConfig = (): RegistriesConfig => ({mirrors: new Map(), auth: new Map(), tls: new Map()})

type MirrorEntry = NonNullable<RegistriesFile['mirrors']>[string]
type ConfigEntry = NonNullable<RegistriesFile['configs']>[string]

export async function loadRegistriesConfig(file: string): Promise<RegistriesConfig> {
  const data = await readRegistriesFile(file)
  const base = path.dirname(path.resolve(file))
  const out = emptyRegistriesConfig()
  const problems: string[] = []
  const fromEndpoints = new Map<string, {username: string; password: string}>()
  for (const [host, mirror] of Object.entries(data.mirrors ?? {}))
    out.mirrors.set(canonicalHost(host), mirrorOf(host, mirror, fromEndpoints, problems))
  for (const [host, cfg] of Object.entries(data.configs ?? {})) {
    const key = canonicalHost(stripScheme(host))
    if (cfg.auth) out.auth.set(key, authOf(host, cfg.auth, problems))
    if (cfg.tls) out.tls.set(key, await tlsOf(host, cfg.tls, base, problems))
  }
  for (const [host, auth] of fromEndpoints) if (!out.auth.has(host)) out.auth.set(host, auth)
  if (problems.length > 0) {
    throw new UsageError('REGISTRIES_INVALID', `--registries file ${file} has ${problems.length} problem(s)`, {
      details: {file, problems},
    })
  }
  return out
}

/** The file read, parsed as YAML and checked against the K3s registries.yaml shape (exit 2 otherwise). */
async function readRegistriesFile(file: string): Promise<RegistriesFile> {
  const text = await readInputText(file, {
    code: 'REGISTRIES_UNREADABLE',
    what: 'the --registries file',
    hint: 'Pass the path of a K3s registries.yaml file that this user can read.',
  })
  let doc: unknown
  try {
    doc = parseYaml(text) ?? {}
  } catch (error) {
    throw new UsageError(
      'REGISTRIES_INVALID',
      `--registries file ${file} is not valid YAML: ${(error as Error).message}`,
    )
  }
  const {RegistriesSchema} = await import('./registries-schema.js')
  const parsed = RegistriesSchema.safeParse(doc)
  if (!parsed.success) {
    throw new UsageError(
      'REGISTRIES_INVALID',
      `--registries file ${file} does not follow the K3s registries.yaml format`,
      {
        hint: 'Top-level keys are `mirrors` and `configs`; see docs.k3s.io "Private Registry Configuration".',
        details: {file, problems: parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)},
      },
    )
  }
  return parsed.data
}

/** One mirror: its endpoint URLs (userinfo taken out into `fromEndpoints`) and rewrite rules. */
function mirrorOf(
  host: string,
  mirror: MirrorEntry,
  fromEndpoints: Map<string, {username: string; password: string}>,
  problems: string[],
): MirrorConfig {
  const endpoints: URL[] = []
  for (const [i, raw] of (mirror.endpoint ?? []).entries()) {
    try {
      const written = new URL(raw.includes('://') ? raw : `https://${raw}`)
      if (written.protocol !== 'http:' && written.protocol !== 'https:')
        throw new Error('only http:// and https:// endpoints exist')
      // `https://user:pass@mirror` is a credential for that endpoint: kept as its auth (unless configs names one),
      // and taken out of the URL so it can reach no message, report or DEBUG line.
      const {url, credential} = splitUserinfo(written)
      if (credential)
        fromEndpoints.set(canonicalHost(url.host), {
          username: credential.username ?? '',
          password: credential.password ?? '',
        })
      endpoints.push(url)
    } catch (error) {
      problems.push(
        `mirrors.${host}.endpoint[${i}]: ${JSON.stringify(redactUrl(raw))} is not a URL (${redactText((error as Error).message)})`,
      )
    }
  }
  const rewrites: MirrorConfig['rewrites'] = []
  for (const [pattern, replacement] of Object.entries(mirror.rewrite ?? {})) {
    try {
      rewrites.push({pattern: new RegExp(pattern), replacement})
    } catch (error) {
      problems.push(
        `mirrors.${host}.rewrite: ${JSON.stringify(pattern)} is not a regular expression (${(error as Error).message})`,
      )
    }
  }
  return {endpoints, rewrites}
}

/** A configs.<host>.auth block: username and password, or `auth` (base64 of user:password), and identity_token. */
function authOf(host: string, a: NonNullable<ConfigEntry['auth']>, problems: string[]) {
  let {username, password} = a
  if (a.auth) {
    const decoded = Buffer.from(a.auth, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon === -1) problems.push(`configs.${host}.auth.auth: is not base64 of "user:password"`)
    else {
      username = decoded.slice(0, colon)
      password = decoded.slice(colon + 1)
    }
  }
  return {username, password, ...(a.identity_token ? {identityToken: a.identity_token} : {})}
}

/** A configs.<host>.tls block: the PEM files it names read (relative to the registries file), each failure named. */
async function tlsOf(
  host: string,
  t: NonNullable<ConfigEntry['tls']>,
  base: string,
  problems: string[],
): Promise<HostTls> {
  const read = async (field: string, p?: string) => {
    if (!p) return undefined
    try {
      return await readFile(path.resolve(base, p), 'utf8')
    } catch (error) {
      problems.push(
        `configs.${host}.tls.${field}: cannot read ${p} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      )
      return undefined
    }
  }
  return {
    caPem: await read('ca_file', t.ca_file),
    certPem: await read('cert_file', t.cert_file),
    keyPem: await read('key_file', t.key_file),
    insecureSkipVerify: t.insecure_skip_verify,
  }
}

function stripScheme(host: string): string {
  return host.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '')
}

/** Registry host keys compared case-insensitively, with Docker Hub's aliases folded into `docker.io`. */
export function canonicalHost(host: string): string {
  const h = host.toLowerCase()
  return h === 'index.docker.io' || h === 'registry-1.docker.io' ? 'docker.io' : h
}

/** Apply the first matching rewrite rule of a mirror to a repository path. */
export function rewriteRepository(repository: string, rewrites: MirrorConfig['rewrites']): string {
  for (const r of rewrites) {
    if (r.pattern.test(repository)) return repository.replace(r.pattern, r.replacement)
  }
  return repository
}
