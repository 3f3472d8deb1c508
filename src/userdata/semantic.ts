import {didYouMean, type PathSegment, type Severity} from './findings.js'
import {parseCidr, parseIp, parseMask, inSubnet, unusableHostReason, type ParsedCidr} from './net.js'
import {KNOWN_STAGES, knownKeysAt} from './schema.js'

// Checks that look at more than one value (an address and its gateway, a rule and the registries it points
// to) and the warnings: things that work but are probably not what was meant. They run on the raw document
// beside the zod schema, guarding every type, so that one bad field never hides the findings of another.

export interface RawFinding {
  path: PathSegment[]
  severity: Severity
  message: string
  hint?: string
}

type Doc = Record<string, unknown>

const isMap = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v)
const asMap = (v: unknown): Doc => (isMap(v) ? v : {})
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])

const TOP_LEVEL = ['stylus', 'install', 'stages']
const FILESYSTEMS = ['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'vfat', 'fat']

export function semanticFindings(doc: Doc): RawFinding[] {
  const out: RawFinding[] = []
  const add = (path: PathSegment[], severity: Severity, message: string, hint?: string) =>
    out.push({path, severity, message, ...(hint ? {hint} : {})})

  for (const key of Object.keys(doc)) {
    if (TOP_LEVEL.includes(key)) continue
    const guess = didYouMean(key, TOP_LEVEL)
    if (guess)
      add([key], 'warning', `is not a key airpack knows; it is passed on unchecked`, `Did you mean \`${guess}\`?`)
  }

  const stylus = asMap(doc.stylus)
  checkStylus(stylus, add)
  checkInstall(asMap(doc.install), add)
  checkStages(asMap(doc.stages), add)
  return out
}

type Add = (path: PathSegment[], severity: Severity, message: string, hint?: string) => void

function checkStylus(stylus: Doc, add: Add): void {
  if ('installationMode' in stylus) {
    add(
      ['stylus', 'installationMode'],
      'warning',
      'is deprecated and was removed in Palette 4.8.21; the agent ignores it',
      stylus.managementMode === undefined
        ? 'Use `stylus.managementMode: local` for a locally managed host (or `central`).'
        : 'Remove it; `stylus.managementMode` already sets the management mode.',
    )
  }

  const localUiPort = asMap(stylus.localUI).port
  const webhookPort = asMap(stylus.imageRedirectWebhook).port
  if (typeof localUiPort === 'number' && localUiPort === webhookPort) {
    add(
      ['stylus', 'imageRedirectWebhook', 'port'],
      'error',
      `is ${webhookPort}, the same port as stylus.localUI.port`,
      'Give the webhook another port, or 0 to let the agent choose.',
    )
  }

  const site = asMap(stylus.site)
  const network = asMap(site.network)
  for (const [nic, value] of Object.entries(asMap(network.interfaces))) {
    checkInterface(['stylus', 'site', 'network', 'interfaces', nic], asMap(value), add)
  }

  const seenUidPaths = new Map<string, number>()
  for (const [i, entry] of asList(site.deviceUIDPaths).entries()) {
    const name = asMap(entry).name
    if (typeof name !== 'string') continue
    if (seenUidPaths.has(name))
      add(
        ['stylus', 'site', 'deviceUIDPaths', i, 'name'],
        'error',
        `'${name}' is listed twice (also deviceUIDPaths[${seenUidPaths.get(name)}])`,
      )
    else seenUidPaths.set(name, i)
  }

  checkRegistries(stylus, add)
}

function checkInterface(path: PathSegment[], nic: Doc, add: Add): void {
  const type = nic.type ?? 'dhcp'
  const ipAddress = typeof nic.ipAddress === 'string' ? nic.ipAddress : undefined
  if (type === 'dhcp') {
    const ignored = ['ipAddress', 'mask', 'gateway'].filter((k) => k in nic)
    if (ignored.length) {
      add(
        [...path, ignored[0]],
        'warning',
        `is ignored because the interface uses DHCP (${ignored.join(', ')})`,
        'Set `type: static` to use a fixed address, or remove these keys.',
      )
    }
    return
  }
  if (type !== 'static') return // the schema reports the bad enum value
  if (!('ipAddress' in nic)) {
    add(
      [...path, 'ipAddress'],
      'error',
      'is missing: a static interface needs an address',
      'e.g. ipAddress: 10.42.0.10/24',
    )
    return
  }
  if (ipAddress === undefined) return
  const host = ipAddress.includes('/') ? cidrHost(path, nic, ipAddress, add) : maskedHost(path, nic, ipAddress, add)
  if (!host) return
  const unusable = unusableHostReason(host)
  if (unusable)
    add(
      [...path, 'ipAddress'],
      'error',
      `'${ipAddress}' ${unusable}`,
      'Give the address of this host inside the subnet.',
    )
  if (typeof nic.gateway === 'string') checkGateway([...path, 'gateway'], nic.gateway, host, add)
}

/** `ipAddress` written with its prefix: a `mask` beside it must say the same. */
function cidrHost(path: PathSegment[], nic: Doc, ipAddress: string, add: Add): ParsedCidr | undefined {
  const host = parseCidr(ipAddress)
  if (host && nic.mask !== undefined) {
    const mask = parseMask(nic.mask as string | number, host.family)
    if (mask !== undefined && mask !== host.prefix) {
      add(
        [...path, 'mask'],
        'error',
        `says /${mask} but ipAddress '${ipAddress}' says /${host.prefix}`,
        'Give the mask once, in ipAddress (10.42.0.10/24), and remove `mask`.',
      )
    }
  }
  return host
}

/** `ipAddress` without a prefix: `mask` must give one. */
function maskedHost(path: PathSegment[], nic: Doc, ipAddress: string, add: Add): ParsedCidr | undefined {
  const ip = parseIp(ipAddress)
  if (!ip) return undefined
  if (nic.mask === undefined) {
    add(
      [...path, 'ipAddress'],
      'error',
      `'${ipAddress}' has no mask`,
      `Write it as ${ipAddress}/${ip.family === 4 ? 24 : 64} (with your prefix length), or set \`mask\`.`,
    )
    return undefined
  }
  const mask = parseMask(nic.mask as string | number, ip.family)
  if (mask === undefined) {
    add(
      [...path, 'mask'],
      'error',
      `'${String(nic.mask)}' is not a netmask`,
      ip.family === 4
        ? 'Give a prefix length (24) or a contiguous mask (255.255.255.0).'
        : 'Give a prefix length, e.g. 64.',
    )
    return undefined
  }
  return {...ip, prefix: mask}
}

/** The gateway: same family as the host, not the host itself, inside its subnet. */
function checkGateway(path: PathSegment[], written: string, host: ParsedCidr, add: Add): void {
  const gateway = parseIp(written)
  if (!gateway) return
  const subnet = `${host.address}/${host.prefix}`
  if (gateway.family !== host.family) {
    add(path, 'error', `'${written}' is an IPv${gateway.family} address but ipAddress is IPv${host.family}`)
  } else if (gateway.value === host.value) {
    add(path, 'error', `'${written}' is the host's own address`, 'Give the address of the router on this subnet.')
  } else if (!inSubnet(gateway, host)) {
    add(
      path,
      'error',
      `'${written}' is not inside the subnet of ${subnet}`,
      'The gateway must be reachable on this interface: check the address and the mask.',
    )
  }
}

function checkRegistries(stylus: Doc, add: Add): void {
  const credentials = asMap(stylus.registryCredentials)
  checkEncodedPassword(['stylus', 'registryCredentials'], credentials, add)

  const external = asMap(stylus.externalRegistries)
  const domains = new Map<string, number>()
  for (const [i, value] of asList(external.registries).entries()) {
    const registry = asMap(value)
    const path = ['stylus', 'externalRegistries', 'registries', i]
    checkEncodedPassword(path, registry, add)
    if (typeof registry.domain !== 'string') continue
    const key = `${registry.domain}/${typeof registry.repositoryName === 'string' ? registry.repositoryName : ''}`
    if (domains.has(key))
      add(
        [...path, 'domain'],
        'error',
        `'${registry.domain}' is listed twice (also registries[${domains.get(key)}])`,
        'Keep one entry per registry.',
      )
    else domains.set(key, i)
  }

  const known = [...domains.keys()].map((k) => k.split('/')[0])
  if (typeof credentials.domain === 'string') known.push(credentials.domain)
  for (const [source, target] of Object.entries(asMap(external.registryMappingRules))) {
    const path = ['stylus', 'externalRegistries', 'registryMappingRules', source]
    if (typeof target !== 'string') continue
    if (source === target) {
      add(path, 'warning', `maps '${source}' to itself`, 'Remove the rule, or point it at the site registry.')
      continue
    }
    const host = target.split('/')[0]
    if (!known.includes(host)) {
      add(
        path,
        'warning',
        `points to '${host}', which has no entry in stylus.externalRegistries.registries`,
        `Add {domain: ${host}} there with its credentials and CA certificate, or the host pulls from it anonymously with the system trust store.`,
      )
    }
  }
}

function checkEncodedPassword(path: PathSegment[], entry: Doc, add: Add): void {
  if (entry.encodedPassword !== true || typeof entry.password !== 'string') return
  const b64 = entry.password
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    add(
      [...path, 'password'],
      'error',
      'is not base64, but encodedPassword is true',
      'Encode it (printf %s "$PASSWORD" | base64), or set encodedPassword: false.',
    )
  }
}

function checkInstall(install: Doc, add: Add): void {
  const known = knownKeysAt(['install'])
  for (const key of Object.keys(install)) {
    if (known.includes(key)) continue
    const guess = didYouMean(key, known)
    add(
      ['install', key],
      'warning',
      'is not a key airpack knows; it is passed to the installer unchecked',
      guess ? `Did you mean \`${guess}\`?` : undefined,
    )
  }
  if (install.reboot === true && install.poweroff === true) {
    add(
      ['install', 'poweroff'],
      'warning',
      'and install.reboot are both true; the host powers off instead of rebooting',
      'Keep only one of them true.',
    )
  }
  const filesystems: [PathSegment[], unknown][] = [
    [['install', 'partitions', 'persistent', 'fs'], asMap(asMap(install.partitions).persistent).fs],
  ]
  for (const [i, p] of asList(install['extra-partitions']).entries())
    filesystems.push([['install', 'extra-partitions', i, 'fs'], asMap(p).fs])
  for (const [path, fs] of filesystems) {
    if (typeof fs === 'string' && !FILESYSTEMS.includes(fs))
      add(
        path,
        'warning',
        `'${fs}' is not a file system the installer is known to format`,
        `Use one of ${FILESYSTEMS.join(', ')}.`,
      )
  }
}

function checkStages(stages: Doc, add: Add): void {
  for (const [stage, steps] of Object.entries(stages)) {
    const base = stage.replace(/\.(before|after)$/, '')
    if (!(KNOWN_STAGES as readonly string[]).includes(base)) {
      const guess = didYouMean(base, KNOWN_STAGES)
      add(
        ['stages', stage],
        'warning',
        'is not a Kairos stage airpack knows; its steps may never run',
        guess ? `Did you mean \`${guess}\`?` : `Known stages: ${KNOWN_STAGES.join(', ')}.`,
      )
    }
    for (const [i, step] of asList(steps).entries()) {
      for (const [name, value] of Object.entries(asMap(asMap(step).users))) {
        checkUser(['stages', stage, i, 'users', name], asMap(value), add)
      }
    }
  }
}

function checkUser(path: PathSegment[], user: Doc, add: Add): void {
  const knownKeys = knownKeysAt(['stages', 'initramfs', 0, 'users', 'x'])
  for (const key of Object.keys(user)) {
    if (knownKeys.includes(key)) continue
    const guess = didYouMean(key, knownKeys)
    add(
      [...path, key],
      'warning',
      'is not a user key airpack knows; it is passed on unchecked',
      guess ? `Did you mean \`${guess}\`?` : undefined,
    )
  }
  const keys = asList(user.ssh_authorized_keys)
  if (typeof user.passwd === 'string') {
    // Crypt(3) hashes: $1$ $5$ $6$ $y$ $2b$ ...; anything else is a clear-text password in the user-data.
    if (!/^\$[0-9a-z]+\$/.test(user.passwd)) {
      add(
        [...path, 'passwd'],
        'warning',
        'is a clear-text password; anyone with the site media can read it',
        'Store a hash instead: mkpasswd -m sha-512 (or openssl passwd -6).',
      )
    }
  } else if (keys.length === 0 && user.lock_passwd !== true) {
    add(
      path,
      'warning',
      'has neither passwd nor ssh_authorized_keys; nobody can log in as this user',
      'Add an SSH public key (ssh_authorized_keys) or a hashed passwd.',
    )
  }
}
