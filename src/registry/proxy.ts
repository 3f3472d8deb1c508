import net from 'node:net'

import {UsageError} from '../errors.js'
import {redactUrl} from '../util/redact.js'

// Which proxy a request goes through, from the environment as curl, Go and undici read it:
//   http_proxy / HTTP_PROXY     for http:// URLs
//   https_proxy / HTTPS_PROXY   for https:// URLs (reached with CONNECT)
//   all_proxy / ALL_PROXY       for either, when the specific one is unset
//   no_proxy / NO_PROXY         hosts that are reached directly: `*`, host names (a name also covers its
//                               subdomains; a leading `.` or `*.` is allowed), `host:port`, IP addresses and CIDR
//                               blocks, separated by commas or spaces
// The lower-case name wins when both are set (curl's rule). Loopback addresses are NOT bypassed implicitly
// (Go does that; curl and undici do not): a proxy that is set is used unless NO_PROXY says otherwise.

export interface ProxyEnv {
  http?: URL
  https?: URL
  noProxy: NoProxyRule[]
}

type NoProxyRule =
  {kind: 'all'} | {kind: 'name'; name: string; port?: string} | {kind: 'ip'; list: net.BlockList; port?: string}

function envValue(env: NodeJS.ProcessEnv, name: string): {name: string; value: string} | undefined {
  for (const n of [name.toLowerCase(), name.toUpperCase()]) {
    const v = env[n]?.trim()
    if (v) return {name: n, value: v}
  }
  return undefined
}

function proxyUrl(found: {name: string; value: string} | undefined): URL | undefined {
  if (!found) return undefined
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(found.value) ? found.value : `http://${found.value}`
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new UsageError('PROXY_INVALID', `${found.name}=${redactUrl(found.value)} is not a proxy URL`, {
      hint: `Set ${found.name} to http://[user:password@]host:port, or unset it.`,
    })
  }
  if (url.protocol !== 'http:') {
    throw new UsageError(
      'PROXY_UNSUPPORTED',
      `${found.name}=${redactUrl(found.value)}: only http:// proxies are supported (https:// URLs are tunnelled through them with CONNECT)`,
      {
        hint: `Set ${found.name} to the proxy's http://host:port address.`,
      },
    )
  }
  return url
}

export function parseNoProxy(value: string | undefined): NoProxyRule[] {
  const rules: NoProxyRule[] = []
  for (const raw of (value ?? '').split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase()
    if (!entry) continue
    if (entry === '*') {
      rules.push({kind: 'all'})
      continue
    }
    let port: string | undefined
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry)
    if (bracketed) {
      entry = bracketed[1]!
      port = bracketed[2]
    } else if (/^[^:]+:\d+$/.test(entry)) {
      ;[entry, port] = entry.split(':') as [string, string]
    }
    const cidr = /^(.+)\/(\d{1,3})$/.exec(entry)
    const address = cidr ? cidr[1]! : entry
    const family = net.isIP(address)
    if (family !== 0) {
      const list = new net.BlockList()
      const type = family === 6 ? 'ipv6' : 'ipv4'
      if (cidr) list.addSubnet(address, Number(cidr[2]), type)
      else list.addAddress(address, type)
      rules.push({kind: 'ip', list, ...(port ? {port} : {})})
      continue
    }
    rules.push({kind: 'name', name: entry.replace(/^\*?\./, ''), ...(port ? {port} : {})})
  }
  return rules
}

export function readProxyEnv(env: NodeJS.ProcessEnv): ProxyEnv {
  const all = proxyUrl(envValue(env, 'all_proxy'))
  const http = proxyUrl(envValue(env, 'http_proxy')) ?? all
  const https = proxyUrl(envValue(env, 'https_proxy')) ?? all
  return {...(http ? {http} : {}), ...(https ? {https} : {}), noProxy: parseNoProxy(envValue(env, 'no_proxy')?.value)}
}

/** The proxy for `url`, or undefined to connect directly. */
export function proxyFor(url: URL, proxies: ProxyEnv): URL | undefined {
  const proxy = url.protocol === 'https:' ? proxies.https : url.protocol === 'http:' ? proxies.http : undefined
  if (!proxy) return undefined
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase()
  const port = url.port || (url.protocol === 'https:' ? '443' : '80')
  const family = net.isIP(host)
  for (const rule of proxies.noProxy) {
    if (rule.kind === 'all') return undefined
    if (rule.port && rule.port !== port) continue
    if (rule.kind === 'ip') {
      if (family !== 0 && rule.list.check(host, family === 6 ? 'ipv6' : 'ipv4')) return undefined
    } else if (host === rule.name || host.endsWith(`.${rule.name}`)) {
      return undefined
    }
  }
  return proxy
}
