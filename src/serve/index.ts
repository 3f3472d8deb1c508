import {readFile} from 'node:fs/promises'

import {BundleStore} from '../bundle/store.js'
import {UsageError} from '../errors.js'
import {mirrorsYaml} from '../registry/mirror-config.js'
import type {Logger} from '../util/log.js'
import {hostPathComponent} from '../registry/reference.js'
import {BundleRepositories} from './repositories.js'
import {DistributionApi, listen, type RunningServer, type ServeStats} from './server.js'

// `bundle serve`: a format 2 bundle behind the read-only distribution API, and the configuration a site needs to
// use it (K3s registries.yaml mirrors, or a site registry pulling through it).

export const DEFAULT_LISTEN = '127.0.0.1:5000'

export interface ServeOptions {
  bundle: string
  listen: string
  tlsCert?: string
  tlsKey?: string
  logger: Logger
}

export interface ServeInfo {
  bundle: string
  identity: string
  url: string
  repositories: {name: string; tags: string[]}[]
  /** K3s / RKE2 `registries.yaml`: every source host mirrored to this server, names rewritten to `HOST/PATH`. */
  registriesYaml: string
  /** What a distribution (or Harbor/zot proxy-cache) registry needs to pull through this server. */
  pullThroughConfig: string
}

export interface Serving {
  info: ServeInfo
  stats: ServeStats
  close(): Promise<void>
}

/** `HOST:PORT`, `:PORT` or `[v6]:PORT` → host and port. */
export function parseListen(value: string): {host: string; port: number} {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim())
  const port = m ? Number(m[3]) : NaN
  if (!m || port > 65535)
    throw new UsageError('USAGE', `--listen ${JSON.stringify(value)} is not HOST:PORT`, {
      hint: 'Write --listen 127.0.0.1:5000 (loopback only), 0.0.0.0:5000 (every interface) or [::1]:5000.',
    })
  return {host: m[1] ?? (m[2] || '0.0.0.0'), port}
}

async function readTls(options: ServeOptions): Promise<{cert: Buffer; key: Buffer} | undefined> {
  if (!options.tlsCert && !options.tlsKey) return undefined
  if (!options.tlsCert || !options.tlsKey)
    throw new UsageError('USAGE', '--tls-cert and --tls-key go together', {
      hint: 'Pass both the PEM certificate and its private key, or neither for plain HTTP.',
    })
  const read = async (file: string, flag: string) => {
    try {
      return await readFile(file)
    } catch (error) {
      throw new UsageError(
        'TLS_FILE_UNREADABLE',
        `${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        {
          hint: `Pass a PEM file this user can read.`,
        },
      )
    }
  }
  return {cert: await read(options.tlsCert, '--tls-cert'), key: await read(options.tlsKey, '--tls-key')}
}

export async function startServe(options: ServeOptions): Promise<Serving> {
  const {host, port} = parseListen(options.listen)
  const tls = await readTls(options)
  const store = await BundleStore.open(options.bundle)
  let server: RunningServer
  let repositories: BundleRepositories
  try {
    repositories = await BundleRepositories.of(store)
    const api = new DistributionApi(store, repositories, options.logger)
    try {
      server = await listen(api, {host, port, tls, logger: options.logger})
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL')
        throw new UsageError('LISTEN_FAILED', `cannot listen on ${options.listen}: ${code}`, {
          hint: 'Choose another --listen HOST:PORT (a free port, an address of this host).',
        })
      if (tls) throw new UsageError('TLS_INVALID', `--tls-cert/--tls-key: ${(error as Error).message}`)
      throw error
    }
  } catch (error) {
    await store.close()
    throw error
  }
  const info: ServeInfo = {
    bundle: options.bundle,
    identity: `sha256:${store.identity}`,
    url: server.url,
    repositories: repositories.names().map((name) => ({
      name,
      tags: [...repositories.get(name)!.tags.keys()].sort(),
    })),
    registriesYaml: mirrorsYaml(
      repositories.hosts().map((host) => ({host, endpoint: server.url, pathPrefix: hostPathComponent(host)})),
      tls ? {caFile: '/path/to/ca.pem'} : {},
    ),
    pullThroughConfig: `proxy:\n  remoteurl: ${server.url}\n`,
  }
  return {
    info,
    stats: server.stats,
    async close() {
      await server.close()
      await store.close()
    },
  }
}
