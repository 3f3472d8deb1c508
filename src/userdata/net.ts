import {isIPv4, isIPv6} from 'node:net'

// Address arithmetic for the network checks of user-data: host addresses with a prefix length, gateways
// inside the subnet, netmasks. BigInt keeps IPv4 and IPv6 on one code path.

export type IpFamily = 4 | 6

export interface ParsedAddress {
  family: IpFamily
  address: string
  value: bigint
}

export interface ParsedCidr extends ParsedAddress {
  prefix: number
}

export function parseIp(text: string): ParsedAddress | undefined {
  if (isIPv4(text)) return {family: 4, address: text, value: ipv4Value(text)}
  if (isIPv6(text)) return {family: 6, address: text, value: ipv6Value(text)}
  return undefined
}

/** `10.0.0.5/24` or `fd00::5/64`; undefined when either part is malformed. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/')
  if (slash < 0) return undefined
  const ip = parseIp(text.slice(0, slash))
  const prefixText = text.slice(slash + 1)
  if (!ip || !/^\d{1,3}$/.test(prefixText)) return undefined
  const prefix = Number(prefixText)
  if (prefix > bits(ip.family)) return undefined
  return {...ip, prefix}
}

/** A netmask given as `255.255.255.0`, `24` or `/24`, as a prefix length; undefined if not a contiguous mask. */
export function parseMask(mask: string | number, family: IpFamily): number | undefined {
  const text = String(mask).trim().replace(/^\//, '')
  if (/^\d{1,3}$/.test(text)) {
    const n = Number(text)
    return n <= bits(family) ? n : undefined
  }
  if (family !== 4 || !isIPv4(text)) return undefined
  const binary = ipv4Value(text).toString(2).padStart(32, '0')
  if (!/^1*0*$/.test(binary)) return undefined
  return binary.indexOf('0') < 0 ? 32 : binary.indexOf('0')
}

export function bits(family: IpFamily): number {
  return family === 4 ? 32 : 128
}

export function networkOf(value: bigint, prefix: number, family: IpFamily): bigint {
  const width = BigInt(bits(family))
  const hostBits = width - BigInt(prefix)
  return (value >> hostBits) << hostBits
}

export function inSubnet(candidate: ParsedAddress, subnet: ParsedCidr): boolean {
  if (candidate.family !== subnet.family) return false
  return (
    networkOf(candidate.value, subnet.prefix, subnet.family) === networkOf(subnet.value, subnet.prefix, subnet.family)
  )
}

/** Why a host address cannot be used with its prefix (network or broadcast address), or undefined. */
export function unusableHostReason(host: ParsedCidr): string | undefined {
  if (host.family !== 4 || host.prefix >= 31) return undefined
  const network = networkOf(host.value, host.prefix, 4)
  const broadcast = network | ((1n << BigInt(32 - host.prefix)) - 1n)
  if (host.value === network) return 'is the network address of its subnet, not a host address'
  if (host.value === broadcast) return 'is the broadcast address of its subnet, not a host address'
  return undefined
}

function ipv4Value(text: string): bigint {
  return text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n)
}

function ipv6Value(text: string): bigint {
  let body = text
  // An embedded IPv4 tail (::ffff:10.0.0.1) is two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(body)
  if (v4) {
    const n = ipv4Value(v4[1])
    body = body.slice(0, -v4[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`
  }
  const [head, tail] = body.includes('::') ? body.split('::') : [body, undefined]
  const headParts = head ? head.split(':') : []
  const tailParts = tail === undefined ? [] : tail ? tail.split(':') : []
  const missing = 8 - headParts.length - tailParts.length
  const parts = tail === undefined ? headParts : [...headParts, ...Array(missing).fill('0'), ...tailParts]
  return parts.reduce((acc, part) => (acc << 16n) | BigInt(parseInt(part, 16)), 0n)
}

/** A DNS host name (RFC 1123): labels of letters, digits and '-', 1–63 chars each, 253 in all. */
export function isHostName(text: string): boolean {
  if (text.length === 0 || text.length > 253) return false
  return text.split('.').every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label))
}
