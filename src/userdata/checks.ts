import {X509Certificate} from 'node:crypto'
import {isIPv4} from 'node:net'

import {isHostName, parseCidr, parseIp} from './net.js'
import {redactUrl} from '../util/redact.js'

// Format checks of single values, shared by the zod schema (leaves) and the cross-field checks. Each returns
// undefined when the value is fine, or what is wrong with it (and how to fix it). Messages never repeat a
// secret: proxy URLs are shown without their user info.

export interface Problem {
  message: string
  hint?: string
}

export type Check<T> = (value: T) => Problem | undefined

const IPV4_LIKE = /^[\d.]+(\/.*)?$/

export const hostAddressCheck: Check<string> = (value) => {
  if (value.includes('/')) {
    if (parseCidr(value)) return undefined
    return IPV4_LIKE.test(value)
      ? {
          message: `'${value}' is not an IPv4 address with a /mask`,
          hint: 'Write it as ADDRESS/PREFIX, e.g. 10.42.0.10/24.',
        }
      : {
          message: `'${value}' is not an IPv6 or IPv4 address with a /prefix`,
          hint: 'Write it as ADDRESS/PREFIX, e.g. 10.42.0.10/24 or fd00:42::10/64.',
        }
  }
  if (parseIp(value)) return undefined
  return {
    message: `'${value}' is not an IP address`,
    hint: 'Write it as ADDRESS/PREFIX, e.g. 10.42.0.10/24 (or give the mask in `mask`).',
  }
}

export const ipCheck: Check<string> = (value) =>
  parseIp(value)
    ? undefined
    : {message: `'${value}' is not an IPv4 or IPv6 address`, hint: 'e.g. 10.42.0.1 or fd00:42::1'}

/** One name server or several, separated by commas or spaces. */
export const nameserverCheck: Check<string> = (value) => {
  const entries = splitList(value)
  if (entries.length === 0)
    return {message: 'is empty', hint: 'Give a name server address such as 10.42.0.2, or remove the key.'}
  const bad = entries.filter((e) => !parseIp(e))
  return bad.length
    ? {
        message: `${bad.map((b) => `'${b}'`).join(', ')} is not an IP address of a name server`,
        hint: 'e.g. 10.42.0.2 or 1.1.1.1',
      }
    : undefined
}

export const proxyUrlCheck: Check<string> = (value) => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return {
      message: `'${redactUrl(value)}' is not a URL`,
      hint: 'Write the proxy as http://HOST:PORT (e.g. http://proxy.example.com:3128).',
    }
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return {
      message: `'${redactUrl(value)}' uses the scheme ${url.protocol.replace(':', '')}`,
      hint: 'A proxy URL starts with http:// or https://.',
    }
  }
  if (!url.hostname) return {message: `'${redactUrl(value)}' has no host`, hint: 'e.g. http://proxy.example.com:3128'}
  return undefined
}

/** NO_PROXY entries: host names, domains (.example.com), IPs, CIDRs, host:port, or `*`. */
export const noProxyCheck: Check<string> = (value) => {
  const bad = splitList(value).filter((entry) => {
    if (entry === '*') return false
    if (parseIp(entry) || parseCidr(entry)) return false
    const host = entry.replace(/^\*?\./, '').replace(/:\d{1,5}$/, '')
    return !isHostName(host) || /^[\d.]+$/.test(host)
  })
  return bad.length
    ? {
        message: `${bad.map((b) => `'${b}'`).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not a host, domain, IP address or CIDR`,
        hint: 'List entries separated by commas, e.g. "10.0.0.0/8,.example.com,localhost".',
      }
    : undefined
}

/** One or more PEM CERTIFICATE blocks, each a certificate node:crypto can parse. */
export const pemCertificatesCheck: Check<string> = (value) => {
  const blocks = value.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)
  // The installer reference says caCerts "must be base64-encoded" while its template shows PEM: accept both,
  // a base64 string counting when it decodes to a PEM or DER certificate.
  if (!blocks && isBase64Certificate(value)) return undefined
  if (!blocks) {
    return {
      message: 'is not a PEM certificate (no -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE----- block)',
      hint: 'Paste the CA certificate in PEM form as a YAML block scalar (caCerts: [ |\n  -----BEGIN CERTIFICATE-----\n  ...]).',
    }
  }
  const rest = value.replace(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g, '').trim()
  if (rest.includes('-----BEGIN') || rest.includes('-----END')) {
    return {
      message: 'holds a PEM block that is not a complete CERTIFICATE block',
      hint: 'Only certificates belong here, never a private key; check the BEGIN/END lines.',
    }
  }
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block)
    } catch (error) {
      return {
        message: `certificate ${blocks.length > 1 ? `#${i + 1} ` : ''}is malformed PEM (${(error as Error).message.replace(/^error:[^:]*:/, '')})`,
        hint: 'Check that the base64 body is complete and unchanged (openssl x509 -in CA.pem -noout -text).',
      }
    }
  }
  return undefined
}

function isBase64Certificate(value: string): boolean {
  const compact = value.replace(/\s+/g, '')
  if (compact.length < 64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return false
  const bytes = Buffer.from(compact, 'base64')
  const text = bytes.toString('latin1')
  try {
    if (text.includes('-----BEGIN CERTIFICATE-----')) return pemCertificatesCheck(text) === undefined
    new X509Certificate(bytes)
    return true
  } catch {
    return false
  }
}

/** Kubernetes node names come from it: an RFC 1123 name in lower case. */
export const hostNameCheck: Check<string> = (value) => {
  if (!isHostName(value)) {
    return {
      message: `'${value}' is not a valid host name`,
      hint: 'Use letters, digits and "-" in dot-separated labels of at most 63 characters (e.g. edge-store-0042).',
    }
  }
  if (value !== value.toLowerCase()) {
    return {
      message: `'${value}' has upper-case letters`,
      hint: `It becomes the Kubernetes node name, which must be lower case: '${value.toLowerCase()}'.`,
    }
  }
  return undefined
}

// Characters the Edge host ID (device UID) may not hold, per the installer reference.
const UID_FORBIDDEN = /[/?#&+%,$~!@*(){}|=;:<>'.^"\s]/

export const edgeHostIdCheck: Check<string> = (value) => {
  if (value === '$random') return undefined
  if (value.length === 0) return {message: 'is empty', hint: 'Remove the key to use edge-<serial>, or use "$random".'}
  if (value.length > 128) return {message: `is ${value.length} characters long; an Edge host ID has at most 128`}
  const bad = UID_FORBIDDEN.exec(value)
  if (bad) {
    return {
      message: `'${value}' contains '${bad[0] === ' ' ? 'a space' : bad[0]}', which an Edge host ID may not contain`,
      hint: 'Use letters, digits, "-" and "_" (or "$random" for a random ID).',
    }
  }
  return undefined
}

export const prefixCheck: Check<string> = (value) =>
  /^[A-Za-z0-9-]+$/.test(value)
    ? undefined
    : {message: `'${value}' may hold only letters, digits and "-"`, hint: 'e.g. edge or store-east'}

export const absolutePathCheck: Check<string> = (value) =>
  value.startsWith('/') && !/\s/.test(value) && !value.split('/').includes('..')
    ? undefined
    : {message: `'${value}' is not an absolute path`, hint: 'Give a path starting with "/", without spaces or "..".'}

export const regexCheck: Check<string> = (value) => {
  try {
    new RegExp(value)
    return undefined
  } catch (error) {
    return {message: `'${value}' is not a valid regular expression (${(error as Error).message})`}
  }
}

/** A registry host as the agent expects it: HOST[:PORT], no scheme, no path. */
export const registryDomainCheck: Check<string> = (value) => {
  if (/^[a-z]+:\/\//i.test(value)) {
    return {
      message: `'${value}' includes a URL scheme`,
      hint: `Give the registry host only: '${value.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '')}'.`,
    }
  }
  if (value.includes('/'))
    return {
      message: `'${value}' includes a path`,
      hint: 'Give HOST[:PORT] here; a repository path belongs in repositoryName or a mapping rule.',
    }
  return hostPortProblem(value)
}

/** A mapping rule side: HOST[:PORT][/PATH], no scheme, no tag or digest. */
export const referencePrefixCheck: Check<string> = (value) => {
  if (/^[a-z]+:\/\//i.test(value))
    return {
      message: `'${value}' includes a URL scheme`,
      hint: 'Write registry prefixes without scheme, e.g. docker.io or registry.site.local:5000/mirror.',
    }
  if (value.includes('@'))
    return {
      message: `'${value}' includes a digest`,
      hint: 'A mapping rule maps a registry or repository prefix, not one image.',
    }
  const [host, ...path] = value.replace(/\/+$/, '').split('/')
  const hostProblem = hostPortProblem(host)
  if (hostProblem) return hostProblem
  if (path.some((p) => !/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(p))) {
    return {message: `'${value}' has a repository path that is not lower-case letters, digits and . _ -`}
  }
  return undefined
}

function hostPortProblem(value: string): Problem | undefined {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:]+)(?::(\d+))?$/.exec(value)
  if (!match) return {message: `'${value}' is not HOST[:PORT]`, hint: 'e.g. registry.site.local:5000'}
  const [, host, port] = match
  const hostOk = host.startsWith('[')
    ? Boolean(parseIp(host.slice(1, -1)))
    : isIPv4(host) || (isHostName(host) && !/^[\d.]+$/.test(host))
  if (!hostOk)
    return {
      message: `'${value}' does not start with a valid host name or IP address`,
      hint: 'e.g. registry.site.local:5000',
    }
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535))
    return {message: `port ${port} in '${value}' is outside 1-65535`}
  return undefined
}

const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]

/** An OpenSSH public key line: TYPE BASE64 [comment], whose blob names the same TYPE. Also `github:USER` (Kairos). */
export const sshPublicKeyCheck: Check<string> = (value) => {
  const line = value.trim()
  if (/^(github|gitlab):[A-Za-z0-9-]+$/.test(line)) return undefined
  if (line.includes('PRIVATE KEY'))
    return {
      message: 'is a private key',
      hint: 'Put the public key here (the .pub file), and keep the private key off the site media.',
    }
  const [type, blob] = line.split(/\s+/)
  if (!SSH_KEY_TYPES.includes(type)) {
    return {
      message: `does not start with an SSH public key type (${SSH_KEY_TYPES.slice(0, 3).join(', ')}, ...)`,
      hint: 'Paste one line of the .pub file, e.g. "ssh-ed25519 AAAAC3Nz... user@host".',
    }
  }
  const bytes = blob && /^[A-Za-z0-9+/]+={0,2}$/.test(blob) ? Buffer.from(blob, 'base64') : undefined
  const nameLength = bytes && bytes.length >= 4 ? bytes.readUInt32BE(0) : -1
  if (!bytes || nameLength < 0 || bytes.subarray(4, 4 + nameLength).toString('latin1') !== type) {
    return {
      message: `is an SSH key (${type}) whose base64 body is damaged or belongs to another key type`,
      hint: 'Copy the whole line of the .pub file again.',
    }
  }
  return undefined
}

export const userNameCheck: Check<string> = (value) =>
  /^[a-z_][a-z0-9_-]{0,31}$/.test(value)
    ? undefined
    : {
        message: `'${value}' is not a valid Linux user name`,
        hint: 'Use at most 32 lower-case letters, digits, "_" and "-", starting with a letter or "_".',
      }

/** A Linux network interface name: at most 15 characters, no '/', ':' or white space. */
export const interfaceNameCheck: Check<string> = (value) =>
  /^[A-Za-z0-9_.@-]{1,15}$/.test(value) && value !== '.' && value !== '..'
    ? undefined
    : {
        message: `'${value}' is not a network interface name`,
        hint: 'Use the name the host shows in `ip link`, e.g. enp1s0 or eth0 (at most 15 characters).',
      }

export function splitList(value: string): string[] {
  return value
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean)
}
