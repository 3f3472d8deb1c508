import {readFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {UsageError} from '../errors.js'
import {canonicalHost, type HostAuth, type RegistriesConfig} from './registries-config.js'
import {readInputText} from '../util/read-input.js'

// Where the credentials for a registry host come from, first match wins:
//   1. `--cred-file` (Palette's {"image":[…],"helm":[…]} JSON; GCR `_json_key` with an object password),
//   2. `--registries` `configs.<host>.auth` (K3s),
//   3. Docker's config.json: `credHelpers[host]`, then `credsStore`, then `auths[host]` (`auth` or
//      `identitytoken`). Helpers run as `docker-credential-<name> get` with the server URL on stdin.
//   4. Without an explicit --docker-config: podman's auth.json ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers).
// Nothing here ever logs or returns a secret in an error message.

export interface Credential {
  username?: string
  password?: string
  /** An OAuth2 refresh token (Docker `identitytoken`, a helper's `<token>` user, K3s `identity_token`). */
  identityToken?: string
  /** Where it came from, for messages ("docker config auths", "cred-file"): never the secret. */
  origin: string
}

export interface CredentialSources {
  registries?: RegistriesConfig
  credFile?: string
  dockerConfigDir?: string
  env?: NodeJS.ProcessEnv
}

interface DockerConfig {
  auths?: Record<string, {auth?: string; username?: string; password?: string; identitytoken?: string}>
  credHelpers?: Record<string, string>
  credsStore?: string
}

interface PaletteEntry {
  endpoint: string
  username: string
  password: string | Record<string, unknown>
}

/** Docker Hub's credentials live under `https://index.docker.io/v1/`; other keys may carry a scheme or path. */
export function dockerConfigKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '')
  return canonicalHost(host)
}

export class CredentialStore {
  private palette?: {image: PaletteEntry[]; helm: PaletteEntry[]}
  private docker?: DockerConfig
  private containers?: Promise<NonNullable<DockerConfig['auths']>>
  private loading?: Promise<void>
  private readonly cache = new Map<string, Promise<Credential | undefined>>()

  constructor(private readonly sources: CredentialSources) {}

  /** Reads the files once; concurrent lookups share the one read. */
  private load(): Promise<void> {
    this.loading ??= this.read()
    return this.loading
  }

  private async read(): Promise<void> {
    if (this.sources.credFile) this.palette = await loadPaletteCredFile(this.sources.credFile)
    this.docker = await loadDockerConfig(this.dockerConfigDir())
  }

  private dockerConfigDir(): string {
    const env = this.sources.env ?? process.env
    return this.sources.dockerConfigDir ?? env.DOCKER_CONFIG ?? path.join(env.HOME ?? os.homedir(), '.docker')
  }

  /** Credential for an endpoint host (`127.0.0.1:5000`, `docker.io`), for images or Helm charts. */
  async forHost(host: string, kind: 'image' | 'helm' = 'image'): Promise<Credential | undefined> {
    const key = `${kind}\0${canonicalHost(host)}`
    let hit = this.cache.get(key)
    if (!hit) {
      hit = this.lookup(canonicalHost(host), kind)
      this.cache.set(key, hit)
    }
    return hit
  }

  private async lookup(host: string, kind: 'image' | 'helm'): Promise<Credential | undefined> {
    await this.load()
    if (this.palette) {
      const lists = kind === 'helm' ? [this.palette.helm, this.palette.image] : [this.palette.image, this.palette.helm]
      for (const list of lists) {
        const entry = list.find((e) => dockerConfigKey(e.endpoint) === host)
        if (entry) {
          return {
            username: entry.username,
            password: typeof entry.password === 'string' ? entry.password : JSON.stringify(entry.password),
            origin: 'cred-file',
          }
        }
      }
    }
    const k3s: HostAuth | undefined = this.sources.registries?.auth.get(host)
    if (k3s && (k3s.username !== undefined || k3s.identityToken !== undefined)) {
      return {...k3s, origin: 'registries.yaml configs'}
    }
    const docker = this.docker
    if (!docker) return this.fromContainersAuth(host)
    const helper = Object.entries(docker.credHelpers ?? {}).find(([k]) => dockerConfigKey(k) === host)?.[1]
    if (helper) {
      const fromHelper = await this.runHelper(helper, host)
      if (fromHelper) return fromHelper
    }
    const auth = Object.entries(docker.auths ?? {}).find(([k]) => dockerConfigKey(k) === host)
    if (docker.credsStore && !helper) {
      const fromStore = await this.runHelper(docker.credsStore, host)
      if (fromStore) return fromStore
    }
    return (auth && fromAuthEntry(auth[1], 'docker config auths')) ?? this.fromContainersAuth(host)
  }

  /**
   * Podman / skopeo / buildah logins (`containers-auth.json`: `$REGISTRY_AUTH_FILE`, then
   * `$XDG_RUNTIME_DIR/containers/auth.json`), used only when --docker-config was not given explicitly.
   */
  private async fromContainersAuth(host: string): Promise<Credential | undefined> {
    if (this.sources.dockerConfigDir) return undefined
    this.containers ??= loadContainersAuth(this.sources.env ?? process.env)
    const auths = await this.containers
    const entry = Object.entries(auths).find(([k]) => dockerConfigKey(k) === host)
    return entry ? fromAuthEntry(entry[1], 'containers auth.json') : undefined
  }

  private async runHelper(name: string, host: string): Promise<Credential | undefined> {
    // Docker Hub's helper entry is keyed by its legacy index URL.
    const serverUrl = host === 'docker.io' ? 'https://index.docker.io/v1/' : host
    const env = this.sources.env ?? process.env
    // Loaded here, not at start-up (about 0.1 s): most builds run no credential helper.
    const {execa} = await import('execa')
    const result = await execa(`docker-credential-${name}`, ['get'], {
      input: serverUrl,
      env,
      extendEnv: false,
      reject: false,
      timeout: 30_000,
    }).catch((error: Error) => ({exitCode: -1, stdout: '', stderr: error.message, failed: true}))
    if (result.exitCode !== 0) {
      const out = String(result.stdout ?? '') + String(result.stderr ?? '')
      // "credentials not found" is the helper protocol's normal miss.
      if (/credentials not found/i.test(out)) return undefined
      throw new UsageError(
        'CREDENTIAL_HELPER_FAILED',
        `docker-credential-${name} get failed for ${host} (exit ${result.exitCode})`,
        {
          hint: `Check that docker-credential-${name} is on PATH and logged in, or remove it from the Docker config.`,
        },
      )
    }
    try {
      const parsed = JSON.parse(String(result.stdout)) as {Username?: string; Secret?: string}
      if (!parsed.Secret) return undefined
      if (parsed.Username === '<token>') return {identityToken: parsed.Secret, origin: `docker-credential-${name}`}
      return {username: parsed.Username, password: parsed.Secret, origin: `docker-credential-${name}`}
    } catch {
      throw new UsageError(
        'CREDENTIAL_HELPER_FAILED',
        `docker-credential-${name} get for ${host} did not print the helper JSON`,
      )
    }
  }
}

type AuthEntry = NonNullable<DockerConfig['auths']>[string]

function fromAuthEntry(a: AuthEntry, origin: string): Credential | undefined {
  if (a.identitytoken) return {identityToken: a.identitytoken, origin}
  if (a.auth) {
    const decoded = Buffer.from(a.auth, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon > 0) return {username: decoded.slice(0, colon), password: decoded.slice(colon + 1), origin}
  }
  if (a.username !== undefined) return {username: a.username, password: a.password, origin}
  return undefined
}

async function loadContainersAuth(env: NodeJS.ProcessEnv): Promise<NonNullable<DockerConfig['auths']>> {
  const files = [
    env.REGISTRY_AUTH_FILE,
    env.XDG_RUNTIME_DIR && path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'),
  ].filter((f): f is string => Boolean(f))
  for (const file of files) {
    try {
      return (JSON.parse(await readFile(file, 'utf8')) as DockerConfig).auths ?? {}
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw new UsageError('CONTAINERS_AUTH_INVALID', `cannot read ${file}: ${(error as Error).message}`, {
        hint: 'Fix the file (podman login writes it), or pass --docker-config to use a Docker config instead.',
      })
    }
  }
  return {}
}

async function loadDockerConfig(dir: string): Promise<DockerConfig | undefined> {
  const file = path.join(dir, 'config.json')
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return undefined
  }
  try {
    return JSON.parse(text) as DockerConfig
  } catch (error) {
    throw new UsageError(
      'DOCKER_CONFIG_INVALID',
      `Docker config ${file} is not valid JSON: ${(error as Error).message}`,
      {
        hint: 'Fix the file or point --docker-config at another directory.',
      },
    )
  }
}

async function loadPaletteCredFile(file: string): Promise<{image: PaletteEntry[]; helm: PaletteEntry[]}> {
  const hint = 'It is Palette\'s credentials JSON: {"image":[{"endpoint","username","password"}],"helm":[…]}.'
  const text = await readInputText(file, {code: 'CRED_FILE_UNREADABLE', what: 'the --cred-file', hint})
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    // Not the parser's message: it quotes the text around the error, which may be a password.
    throw new UsageError('CRED_FILE_INVALID', `--cred-file ${file} is not valid JSON`, {hint, details: {file}})
  }
  const problems: string[] = []
  const list = (key: 'image' | 'helm'): PaletteEntry[] => {
    const value = (doc as Record<string, unknown>)?.[key]
    if (value === undefined) return []
    if (!Array.isArray(value)) {
      problems.push(`${key}: must be a list`)
      return []
    }
    return value.flatMap((e, i) => {
      const entry = e as Partial<PaletteEntry>
      if (typeof entry?.endpoint !== 'string' || typeof entry.username !== 'string') {
        problems.push(`${key}[${i}]: needs "endpoint" and "username" strings`)
        return []
      }
      if (typeof entry.password !== 'string' && (typeof entry.password !== 'object' || entry.password === null)) {
        problems.push(
          `${key}[${i}] (${entry.endpoint}): "password" must be a string, or the service-account object for _json_key`,
        )
        return []
      }
      return [entry as PaletteEntry]
    })
  }
  const out = {image: list('image'), helm: list('helm')}
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    problems.push('the document must be an object with "image" and "helm" lists')
  if (problems.length > 0) {
    throw new UsageError('CRED_FILE_INVALID', `--cred-file ${file} is not a valid Palette credentials file`, {
      details: {file, problems},
    })
  }
  return out
}
