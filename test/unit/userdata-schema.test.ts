import {readFileSync} from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {checkUserDataObject, validateUserData} from '../../src/userdata/validate.js'

// Every rule of the user-data schema, each with a document that breaks it and one that keeps it. A case names
// the key path the finding must be reported at and its severity; the passing document must have no finding
// at that path at all.

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures', 'userdata')
const CA = readFileSync(path.join(FIXTURES, 'ca.pem'), 'utf8')
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF+0Ue7ITpsde4VF+U4eUCCCaZeedkzsnr4LFCLQ2GjX ops@example.com'
const HASH = '$6$airpackexample$XQ3Qi5GzzGswL/hzR1gNmujnQ309wIMcqZOT3co0wagkOLIGaTRHb/kREbt6DkwwgjmL9xGUq.2Q.5AJ13V5v1'

type Doc = Record<string, unknown>
const stylus = (s: Doc): Doc => ({stylus: {managementMode: 'local', ...s}})
const site = (s: Doc): Doc => stylus({site: s})
const nic = (n: Doc): Doc => site({network: {interfaces: {enp1s0: n}}})
const registries = (r: Doc): Doc => stylus({externalRegistries: r})
const user = (u: Doc, name = 'kairos'): Doc => ({stages: {initramfs: [{name: 'users', users: {[name]: u}}]}})

interface Rule {
  rule: string
  bad: Doc
  good: Doc
  path: string
  severity?: 'error' | 'warning'
  message?: RegExp
  hint?: RegExp
}

const rules: Rule[] = [
  {
    rule: 'unknown stylus key, with did-you-mean',
    bad: stylus({sitee: {}}),
    good: stylus({site: {}}),
    path: 'stylus.sitee',
    hint: /Did you mean `site`/,
  },
  {
    rule: 'unknown stylus key, case slip',
    bad: stylus({enablemultinode: true}),
    good: stylus({enableMultiNode: true}),
    path: 'stylus.enablemultinode',
    hint: /enableMultiNode/,
  },
  {
    rule: 'unknown stylus.site key',
    bad: site({hostname: 'edge-1'}),
    good: site({hostName: 'edge-1'}),
    path: 'stylus.site.hostname',
    hint: /hostName/,
  },
  {
    rule: 'unknown interface key',
    bad: nic({type: 'dhcp', dhcp: true}),
    good: nic({type: 'dhcp'}),
    path: 'stylus.site.network.interfaces.enp1s0.dhcp',
  },
  {
    rule: 'managementMode enum',
    bad: {stylus: {managementMode: 'airgap'}},
    good: {stylus: {managementMode: 'central'}},
    path: 'stylus.managementMode',
    message: /not one of local, central/,
  },
  {
    rule: 'installationMode is deprecated',
    bad: stylus({installationMode: 'airgap'}),
    good: stylus({}),
    path: 'stylus.installationMode',
    severity: 'warning',
    message: /deprecated/,
    hint: /managementMode/,
  },
  {
    rule: 'installationMode enum',
    bad: stylus({installationMode: 'offline'}),
    good: stylus({}),
    path: 'stylus.installationMode',
    message: /not one of connected, airgap/,
  },
  {
    rule: 'boolean type',
    bad: stylus({debug: 'true'}),
    good: stylus({debug: true}),
    path: 'stylus.debug',
    message: /expected true or false, got a string/,
    hint: /without quotes/,
  },
  {
    rule: 'featureGate is a string',
    bad: stylus({featureGate: ['UserDataForm']}),
    good: stylus({featureGate: 'UserDataForm'}),
    path: 'stylus.featureGate',
  },
  {
    rule: 'Local UI port range',
    bad: stylus({localUI: {port: 70000}}),
    good: stylus({localUI: {port: 5080}}),
    path: 'stylus.localUI.port',
    message: /at most 65535/,
  },
  {
    rule: 'Local UI port is not 0',
    bad: stylus({localUI: {port: 0}}),
    good: stylus({localUI: {port: 1}}),
    path: 'stylus.localUI.port',
    message: /at least 1/,
  },
  {
    rule: 'port is a whole number',
    bad: stylus({localUI: {port: '5080'}}),
    good: stylus({localUI: {port: 5080}}),
    path: 'stylus.localUI.port',
    hint: /without quotes/,
  },
  {
    rule: 'webhook port may be 0, not negative',
    bad: stylus({imageRedirectWebhook: {port: -1}}),
    good: stylus({imageRedirectWebhook: {port: 0, enable: true}}),
    path: 'stylus.imageRedirectWebhook.port',
  },
  {
    rule: 'webhook port differs from Local UI port',
    bad: stylus({localUI: {port: 5080}, imageRedirectWebhook: {port: 5080}}),
    good: stylus({localUI: {port: 5080}, imageRedirectWebhook: {port: 8443}}),
    path: 'stylus.imageRedirectWebhook.port',
    message: /same port/,
  },
  {
    rule: 'stylus.path is absolute',
    bad: stylus({path: 'opt/x'}),
    good: stylus({path: '/persistent'}),
    path: 'stylus.path',
  },
  {
    rule: 'vip.skip type',
    bad: stylus({vip: {skip: 'no'}}),
    good: stylus({vip: {skip: false}}),
    path: 'stylus.vip.skip',
  },

  {
    rule: 'IPv4 address with /mask',
    bad: nic({type: 'static', ipAddress: '10.0.0.300/24', gateway: '10.0.0.1'}),
    good: nic({type: 'static', ipAddress: '10.0.0.30/24', gateway: '10.0.0.1'}),
    path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
    message: /^'10\.0\.0\.300\/24' is not an IPv4 address with a \/mask$/,
  },
  {
    rule: 'prefix length out of range',
    bad: nic({type: 'static', ipAddress: '10.0.0.30/33'}),
    good: nic({type: 'static', ipAddress: '10.0.0.30/32'}),
    path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
  },
  {
    rule: 'IPv6 address with /prefix',
    bad: nic({type: 'static', ipAddress: 'fd00:42::zz/64'}),
    good: nic({type: 'static', ipAddress: 'fd00:42::10/64', gateway: 'fd00:42::1'}),
    path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
    message: /IPv6/,
  },
  {
    rule: 'static interface needs an address',
    bad: nic({type: 'static', gateway: '10.0.0.1'}),
    good: nic({type: 'static', ipAddress: '10.0.0.5/24', gateway: '10.0.0.1'}),
    path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
    message: /missing/,
  },
  {
    rule: 'address without mask',
    bad: nic({type: 'static', ipAddress: '10.0.0.5'}),
    good: nic({type: 'static', ipAddress: '10.0.0.5', mask: '255.255.255.0'}),
    path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
    message: /has no mask/,
  },
  {
    rule: 'mask is contiguous',
    bad: nic({type: 'static', ipAddress: '10.0.0.5', mask: '255.0.255.0'}),
    good: nic({type: 'static', ipAddress: '10.0.0.5', mask: 24}),
    path: 'stylus.site.network.interfaces.enp1s0.mask',
    message: /not a netmask/,
  },
  {
    rule: 'mask agrees with the /prefix',
    bad: nic({type: 'static', ipAddress: '10.0.0.5/24', mask: '255.255.0.0'}),
    good: nic({type: 'static', ipAddress: '10.0.0.5/24', mask: '255.255.255.0'}),
    path: 'stylus.site.network.interfaces.enp1s0.mask',
    message: /says \/16/,
  },
  {
    rule: 'mask type',
    bad: nic({type: 'static', ipAddress: '10.0.0.5', mask: true}),
    good: nic({type: 'static', ipAddress: '10.0.0.5', mask: '24'}),
    path: 'stylus.site.network.interfaces.enp1s0.mask',
  },
  {
    rule: 'gateway inside the subnet',
    bad: nic({type: 'static', ipAddress: '10.42.0.10/24', gateway: '10.43.0.1'}),
    good: nic({type: 'static', ipAddress: '10.42.0.10/16', gateway: '10.42.200.1'}),
    path: 'stylus.site.network.interfaces.enp1s0.gateway',
    message: /not inside the subnet of 10\.42\.0\.10\/24/,
  },
  {
    rule: 'gateway inside the subnet given by mask',
    bad: nic({type: 'static', ipAddress: '192.168.7.20', mask: '255.255.255.128', gateway: '192.168.7.200'}),
    good: nic({type: 'static', ipAddress: '192.168.7.20', mask: '255.255.255.0', gateway: '192.168.7.200'}),
    path: 'stylus.site.network.interfaces.enp1s0.gateway',
  },
  {
    rule: 'gateway of the same family',
    bad: nic({type: 'static', ipAddress: 'fd00::10/64', gateway: '10.0.0.1'}),
    good: nic({type: 'static', ipAddress: 'fd00::10/64', gateway: 'fd00::1'}),
    path: 'stylus.site.network.interfaces.enp1s0.gateway',
    message: /IPv4 address but ipAddress is IPv6/,
  },
  {
    rule: 'gateway is not the host itself',
    bad: nic({type: 'static', ipAddress: '10.0.0.1/24', gateway: '10.0.0.1'}),
    good: nic({type: 'static', ipAddress: '10.0.0.2/24', gateway: '10.0.0.1'}),
    path: 'stylus.site.network.interfaces.enp1s0.gateway',
    message: /own address/,
  },
  {
    rule: 'gateway is an address',
    bad: nic({type: 'static', ipAddress: '10.0.0.2/24', gateway: 'router'}),
    good: nic({type: 'static', ipAddress: '10.0.0.2/24', gateway: '10.0.0.254'}),
    path: 'stylus.site.network.interfaces.enp1s0.gateway',
  },
  {
    rule: 'host address is not the network address',
    bad: nic({type: 'static', ipAddress: '10.0.0.0/24'}),
    good: nic({type: 'static', ipAddress: '10.0.1.0/16'}),
    path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
    message: /network address/,
  },
  {
    rule: 'host address is not the broadcast address',
    bad: nic({type: 'static', ipAddress: '10.0.0.255/24'}),
    good: nic({type: 'static', ipAddress: '10.0.0.254/24'}),
    path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
    message: /broadcast/,
  },
  {
    rule: 'interface name',
    bad: site({network: {interfaces: {'enp1s0 ': {type: 'dhcp'}, 'a-very-long-interface-name': {type: 'dhcp'}}}}),
    good: site({network: {interfaces: {'enp1s0.100': {type: 'dhcp'}}}}),
    path: 'stylus.site.network.interfaces["enp1s0 "]',
    message: /not a network interface name/,
  },
  {
    rule: 'interface type enum',
    bad: nic({type: 'manual'}),
    good: nic({type: 'dhcp'}),
    path: 'stylus.site.network.interfaces.enp1s0.type',
    message: /not one of dhcp, static/,
  },
  {
    rule: 'DHCP ignores a static address',
    bad: nic({type: 'dhcp', ipAddress: '10.0.0.5/24'}),
    good: nic({}),
    path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
    severity: 'warning',
    message: /DHCP/,
  },
  {
    rule: 'interface name server',
    bad: nic({type: 'dhcp', nameserver: 'dns.local'}),
    good: nic({type: 'dhcp', nameserver: '10.0.0.53'}),
    path: 'stylus.site.network.interfaces.enp1s0.nameserver',
  },
  {
    rule: 'global name servers',
    bad: site({network: {nameserver: '1.1.1.1,8.8.8'}}),
    good: site({network: {nameserver: '1.1.1.1, 8.8.8.8 2606:4700::1111'}}),
    path: 'stylus.site.network.nameserver',
    message: /'8\.8\.8'/,
  },
  {
    rule: 'proxy URL scheme',
    bad: site({network: {httpProxy: 'socks5://proxy:1080'}}),
    good: site({network: {httpProxy: 'http://proxy.example.com:3128'}}),
    path: 'stylus.site.network.httpProxy',
    message: /scheme socks5/,
  },
  {
    rule: 'proxy is a URL',
    bad: site({network: {httpsProxy: 'proxy.example.com:3128'}}),
    good: site({network: {httpsProxy: 'https://proxy.example.com:3128'}}),
    path: 'stylus.site.network.httpsProxy',
  },
  {
    rule: 'noProxy entries',
    bad: site({network: {noProxy: '10.0.0.0/8,bad_host!'}}),
    good: site({network: {noProxy: '10.0.0.0/8,.example.com,*.corp.local,localhost,127.0.0.1,fd00::/8,host:8080'}}),
    path: 'stylus.site.network.noProxy',
    message: /'bad_host!'/,
  },
  {
    rule: 'network key type',
    bad: site({network: {interfaces: ['enp1s0']}}),
    good: site({network: {interfaces: {enp1s0: {type: 'dhcp'}}}}),
    path: 'stylus.site.network.interfaces',
    message: /expected a map/,
  },

  {
    rule: 'CA certificate is PEM',
    bad: site({caCerts: ['MIIBroken']}),
    good: site({caCerts: [CA]}),
    path: 'stylus.site.caCerts[0]',
    message: /not a PEM certificate/,
  },
  {
    rule: 'CA certificate as base64 of the PEM',
    bad: site({
      caCerts: [Buffer.from('not a certificate at all, only some text that is long enough').toString('base64')],
    }),
    good: site({caCerts: [Buffer.from(CA).toString('base64')]}),
    path: 'stylus.site.caCerts[0]',
    message: /not a PEM certificate/,
  },
  {
    rule: 'CA certificate parses',
    bad: site({caCerts: [CA.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA')]}),
    good: site({caCerts: [CA + CA]}),
    path: 'stylus.site.caCerts[0]',
    message: /malformed/,
  },
  {
    rule: 'no private key among certificates',
    bad: site({caCerts: [CA + '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n']}),
    good: site({caCerts: [CA]}),
    path: 'stylus.site.caCerts[0]',
    hint: /never a private key/,
  },
  {
    rule: 'caCerts is a list',
    bad: site({caCerts: CA}),
    good: site({caCerts: [CA]}),
    path: 'stylus.site.caCerts',
    message: /expected a list/,
  },
  {
    rule: 'registry certificates are PEM',
    bad: registries({registries: [{domain: 'r.local', certificates: ['nope']}]}),
    good: registries({registries: [{domain: 'r.local', certificates: [CA]}]}),
    path: 'stylus.externalRegistries.registries[0].certificates[0]',
  },

  {
    rule: 'host name charset',
    bad: site({hostName: 'edge_store'}),
    good: site({hostName: 'edge-store'}),
    path: 'stylus.site.hostName',
    message: /not a valid host name/,
  },
  {
    rule: 'host name lower case',
    bad: site({hostName: 'Edge-1'}),
    good: site({hostName: 'edge-1'}),
    path: 'stylus.site.hostName',
    hint: /edge-1/,
  },
  {
    rule: 'Edge host ID charset',
    bad: site({name: 'edge.store:1'}),
    good: site({name: 'edge-store_1'}),
    path: 'stylus.site.name',
    message: /may not contain/,
  },
  {
    rule: 'Edge host ID may be $random',
    bad: site({name: '$rand'}),
    good: site({name: '$random'}),
    path: 'stylus.site.name',
  },
  {
    rule: 'Edge host ID length',
    bad: site({name: 'e'.repeat(129)}),
    good: site({name: 'e'.repeat(128)}),
    path: 'stylus.site.name',
    message: /at most 128/,
  },
  {
    rule: 'device ID prefix charset',
    bad: site({prefix: 'store_east'}),
    good: site({prefix: 'store-east1'}),
    path: 'stylus.site.prefix',
  },
  {
    rule: 'deviceUIDPaths name is an absolute path',
    bad: site({deviceUIDPaths: [{name: 'sys/class/dmi/id/product_uuid'}]}),
    good: site({deviceUIDPaths: [{name: '/sys/class/dmi/id/product_uuid'}]}),
    path: 'stylus.site.deviceUIDPaths[0].name',
  },
  {
    rule: 'deviceUIDPaths regex compiles',
    bad: site({deviceUIDPaths: [{name: '/etc/machine-id', regex: '([a-f'}]}),
    good: site({deviceUIDPaths: [{name: '/etc/machine-id', regex: '^[a-f0-9]{8}'}]}),
    path: 'stylus.site.deviceUIDPaths[0].regex',
  },
  {
    rule: 'deviceUIDPaths unique',
    bad: site({deviceUIDPaths: [{name: '/etc/machine-id'}, {name: '/etc/machine-id'}]}),
    good: site({deviceUIDPaths: [{name: '/etc/machine-id'}, {name: '/sys/class/dmi/id/product_uuid'}]}),
    path: 'stylus.site.deviceUIDPaths[1].name',
    message: /twice/,
  },
  {
    rule: 'tags are strings',
    bad: site({tags: {store: 42}}),
    good: site({tags: {store: '0042'}}),
    path: 'stylus.site.tags.store',
    hint: /Quote the value/,
  },
  {
    rule: 'tagsFromScript path',
    bad: site({tagsFromScript: {scriptName: 'tags.sh'}}),
    good: site({tagsFromScript: {scriptName: '/opt/tags.sh', timeout: 30}}),
    path: 'stylus.site.tagsFromScript.scriptName',
  },
  {
    rule: 'tagsFromFile keys',
    bad: site({tagsFromFile: {file: '/etc/tags'}}),
    good: site({tagsFromFile: {fileName: '/etc/tags', delimiter: '\n', separator: ':'}}),
    path: 'stylus.site.tagsFromFile.file',
    hint: /fileName/,
  },

  {
    rule: 'registry domain has no scheme',
    bad: stylus({registryCredentials: {domain: 'https://reg.example.com'}}),
    good: stylus({registryCredentials: {domain: 'reg.example.com:5000'}}),
    path: 'stylus.registryCredentials.domain',
    hint: /'reg\.example\.com'/,
  },
  {
    rule: 'registry domain port range',
    bad: stylus({registryCredentials: {domain: 'reg.example.com:99999'}}),
    good: stylus({registryCredentials: {domain: '[fd00::5]:5000'}}),
    path: 'stylus.registryCredentials.domain',
  },
  {
    rule: 'registry domain is required',
    bad: stylus({registryCredentials: {username: 'u'}}),
    good: stylus({registryCredentials: {domain: 'r.local', username: 'u', password: 'p'}}),
    path: 'stylus.registryCredentials.domain',
    message: /required/,
  },
  {
    rule: 'registry password is a string',
    bad: stylus({registryCredentials: {domain: 'r.local', password: null}}),
    good: stylus({registryCredentials: {domain: 'r.local', password: 'x'}}),
    path: 'stylus.registryCredentials.password',
    message: /expected a string, got null/,
  },
  {
    rule: 'encoded password is base64',
    bad: registries({registries: [{domain: 'r.local', password: 'not base64!', encodedPassword: true}]}),
    good: registries({registries: [{domain: 'r.local', password: 'c2VjcmV0', encodedPassword: true}]}),
    path: 'stylus.externalRegistries.registries[0].password',
    message: /not base64/,
  },
  {
    rule: 'registries listed once',
    bad: registries({registries: [{domain: 'r.local'}, {domain: 'r.local'}]}),
    good: registries({registries: [{domain: 'r.local'}, {domain: 'r.local', repositoryName: 'mirror'}]}),
    path: 'stylus.externalRegistries.registries[1].domain',
    message: /twice/,
  },
  {
    rule: 'unknown registry key',
    bad: registries({registries: [{domain: 'r.local', user: 'u'}]}),
    good: registries({registries: [{domain: 'r.local', username: 'u'}]}),
    path: 'stylus.externalRegistries.registries[0].user',
    hint: /username/,
  },
  {
    rule: 'mapping rule source has no scheme',
    bad: registries({
      registryMappingRules: {'https://docker.io': 'r.local/docker.io'},
      registries: [{domain: 'r.local'}],
    }),
    good: registries({registryMappingRules: {'docker.io': 'r.local/docker.io'}, registries: [{domain: 'r.local'}]}),
    path: 'stylus.externalRegistries.registryMappingRules["https://docker.io"]',
    message: /URL scheme/,
  },
  {
    rule: 'mapping rule target is a prefix',
    bad: registries({
      registryMappingRules: {'docker.io': 'r.local/Docker@sha256:ab'},
      registries: [{domain: 'r.local'}],
    }),
    good: registries({
      registryMappingRules: {'docker.io': 'r.local:5000/docker.io'},
      registries: [{domain: 'r.local:5000'}],
    }),
    path: 'stylus.externalRegistries.registryMappingRules["docker.io"]',
  },
  {
    rule: 'mapping rule target is a listed registry',
    bad: registries({registryMappingRules: {'docker.io': 'other.local/docker.io'}, registries: [{domain: 'r.local'}]}),
    good: registries({registryMappingRules: {'docker.io': 'r.local/docker.io'}, registries: [{domain: 'r.local'}]}),
    path: 'stylus.externalRegistries.registryMappingRules["docker.io"]',
    severity: 'warning',
    message: /no entry/,
  },
  {
    rule: 'mapping rule is not a no-op',
    bad: registries({registryMappingRules: {'r.local': 'r.local'}, registries: [{domain: 'r.local'}]}),
    good: registries({registryMappingRules: {'quay.io': 'r.local/quay.io'}, registries: [{domain: 'r.local'}]}),
    path: 'stylus.externalRegistries.registryMappingRules["r.local"]',
    severity: 'warning',
    message: /to itself/,
  },

  {
    rule: 'install key typo is a warning',
    bad: {install: {rebot: true}},
    good: {install: {reboot: true}},
    path: 'install.rebot',
    severity: 'warning',
    hint: /reboot/,
  },
  {
    rule: 'install reboot and poweroff',
    bad: {install: {reboot: true, poweroff: true}},
    good: {install: {reboot: true, poweroff: false}},
    path: 'install.poweroff',
    severity: 'warning',
  },
  {
    rule: 'install reboot type',
    bad: {install: {reboot: 'yes'}},
    good: {install: {reboot: true}},
    path: 'install.reboot',
  },
  {
    rule: 'bind mounts are absolute paths',
    bad: {install: {bind_mounts: ['var/lib/x']}},
    good: {install: {bind_mounts: ['/var/lib/x']}},
    path: 'install.bind_mounts[0]',
  },
  {
    rule: 'partition size is not negative',
    bad: {install: {partitions: {persistent: {size: -1}}}},
    good: {install: {partitions: {persistent: {size: 0, fs: 'ext4'}}}},
    path: 'install.partitions.persistent.size',
  },
  {
    rule: 'partition file system',
    bad: {install: {'extra-partitions': [{name: 'data', size: 100, fs: 'ntfs'}]}},
    good: {install: {'extra-partitions': [{name: 'data', size: 100, fs: 'xfs', label: 'DATA'}]}},
    path: 'install.extra-partitions[0].fs',
    severity: 'warning',
  },
  {
    rule: 'grub extra_cmdline is a string',
    bad: {install: {grub_options: {extra_cmdline: ['fips=1']}}},
    good: {install: {grub_options: {extra_cmdline: 'fips=1 selinux=0'}}},
    path: 'install.grub_options.extra_cmdline',
  },

  {
    rule: 'unknown stage',
    bad: {stages: {initramz: []}},
    good: {stages: {initramfs: [], 'boot.after': []}},
    path: 'stages.initramz',
    severity: 'warning',
    hint: /initramfs/,
  },
  {
    rule: 'stage is a list of steps',
    bad: {stages: {initramfs: {users: {}}}},
    good: {stages: {initramfs: [{users: {}}]}},
    path: 'stages.initramfs',
    message: /expected a list/,
  },
  {
    rule: 'user name',
    bad: user({passwd: HASH}, 'Kairos'),
    good: user({passwd: HASH}, 'kairos'),
    path: 'stages.initramfs[0].users.Kairos',
    message: /Linux user name/,
  },
  {
    rule: 'SSH public key',
    bad: user({ssh_authorized_keys: [SSH_KEY.replace('AAAAC3Nza', 'AAAAB3Nza')]}),
    good: user({ssh_authorized_keys: [SSH_KEY, 'github:octocat']}),
    path: 'stages.initramfs[0].users.kairos.ssh_authorized_keys[0]',
    message: /damaged/,
  },
  {
    rule: 'no private key as SSH key',
    bad: user({ssh_authorized_keys: ['-----BEGIN OPENSSH PRIVATE KEY-----']}),
    good: user({ssh_authorized_keys: [SSH_KEY]}),
    path: 'stages.initramfs[0].users.kairos.ssh_authorized_keys[0]',
    message: /private key/,
  },
  {
    rule: 'SSH key type',
    bad: user({ssh_authorized_keys: ['ssh-dss AAAAB3NzaC1kc3M= old']}),
    good: user({ssh_authorized_keys: [SSH_KEY]}),
    path: 'stages.initramfs[0].users.kairos.ssh_authorized_keys[0]',
  },
  {
    rule: 'clear-text password',
    bad: user({passwd: 'kairos'}),
    good: user({passwd: HASH}),
    path: 'stages.initramfs[0].users.kairos.passwd',
    severity: 'warning',
    hint: /mkpasswd/,
  },
  {
    rule: 'user without credentials',
    bad: user({groups: ['sudo']}),
    good: user({groups: ['sudo'], ssh_authorized_keys: [SSH_KEY]}),
    path: 'stages.initramfs[0].users.kairos',
    severity: 'warning',
    message: /nobody can log in/,
  },
  {
    rule: 'user key typo',
    bad: user({passwd: HASH, ssh_authorised_keys: []}),
    good: user({passwd: HASH, ssh_authorized_keys: []}),
    path: 'stages.initramfs[0].users.kairos.ssh_authorised_keys',
    severity: 'warning',
    hint: /ssh_authorized_keys/,
  },
  {
    rule: 'groups is a list',
    bad: user({passwd: HASH, groups: 'sudo'}),
    good: user({passwd: HASH, groups: ['sudo']}),
    path: 'stages.initramfs[0].users.kairos.groups',
  },
  {
    rule: 'stage file path',
    bad: {stages: {boot: [{files: [{path: 'etc/x', content: 'x'}]}]}},
    good: {stages: {boot: [{files: [{path: '/etc/x', content: 'x', permissions: 0o644}]}]}},
    path: 'stages.boot[0].files[0].path',
  },
  {
    rule: 'top-level typo',
    bad: {stylis: {managementMode: 'local'}},
    good: {stylus: {managementMode: 'local'}},
    path: 'stylis',
    severity: 'warning',
    hint: /stylus/,
  },
]

describe('user-data schema rules', () => {
  for (const r of rules) {
    const severity = r.severity ?? 'error'
    it(`${r.rule}: fails`, () => {
      const findings = checkUserDataObject(r.bad).filter((f) => f.path === r.path)
      expect(findings, JSON.stringify(checkUserDataObject(r.bad))).toContainEqual(expect.objectContaining({severity}))
      const f = findings.find((x) => x.severity === severity)!
      if (r.message) expect(f.message).toMatch(r.message)
      if (r.hint) expect(f.hint).toMatch(r.hint)
    })
    it(`${r.rule}: passes`, () => {
      const findings = checkUserDataObject(r.good)
      expect(
        findings.filter((f) => f.path === r.path || f.path.startsWith(`${r.path}.`) || f.path.startsWith(`${r.path}[`)),
      ).toEqual([])
      expect(findings.filter((f) => f.severity === 'error')).toEqual([])
    })
  }
})

describe('validateUserData on text', () => {
  it('requires #cloud-config on the first line', () => {
    const bad = validateUserData('stylus:\n  managementMode: local\n', {file: 'x'})
    expect(bad.valid).toBe(false)
    expect(bad.findings[0]).toMatchObject({file: 'x', path: '', line: 1, severity: 'error'})
    expect(validateUserData('#cloud-config\nstylus:\n  managementMode: local\n')).toEqual({valid: true, findings: []})
    expect(validateUserData('#cloud-config\r\nstylus:\r\n  managementMode: local\r\n').valid).toBe(true)
    expect(validateUserData('\uFEFF#cloud-config\nstylus: {}\n').findings[0].message).toMatch(/byte-order mark/)
  })

  it('reports YAML syntax errors with their line', () => {
    const r = validateUserData('#cloud-config\nstylus:\n  managementMode: local\n   bad: [\n')
    expect(r.valid).toBe(false)
    expect(r.findings[0].message).toMatch(/YAML syntax/)
    expect(r.findings[0].line).toBeGreaterThan(1)
  })

  it('rejects duplicate keys', () => {
    const r = validateUserData('#cloud-config\nstylus:\n  debug: true\n  debug: false\n')
    expect(r.valid).toBe(false)
    expect(r.findings[0].message).toMatch(/unique|duplicate/i)
  })

  it('gives each finding the line of its key and sorts by line', () => {
    const text = [
      '#cloud-config',
      'stylus:',
      '  managementMode: local',
      '  site:',
      '    hostName: Bad_Host',
      '  localUI:',
      '    port: 99999',
      '',
    ].join('\n')
    const r = validateUserData(text, {file: 'u'})
    expect(r.findings.map((f) => [f.path, f.line])).toEqual([
      ['stylus.site.hostName', 5],
      ['stylus.localUI.port', 7],
    ])
  })

  it('reads YAML 1.1 like the installer: unquoted 0042 is a number, not a tag string', () => {
    const r = validateUserData('#cloud-config\nstylus:\n  site:\n    tags:\n      store: 0042\n')
    expect(r.findings[0]).toMatchObject({path: 'stylus.site.tags.store', severity: 'error', line: 5})
    expect(r.findings[0].message).not.toMatch(/34/)
  })

  it('warns on an empty document and on a valid file with only warnings stays valid', () => {
    expect(validateUserData('#cloud-config\n')).toMatchObject({valid: true, findings: [{severity: 'warning'}]})
    const r = validateUserData('#cloud-config\nstylus:\n  installationMode: airgap\n')
    expect(r.valid).toBe(true)
    expect(r.findings).toEqual([expect.objectContaining({path: 'stylus.installationMode', severity: 'warning'})])
  })

  it('refuses an alias bomb instead of expanding it', () => {
    const bomb = [
      '#cloud-config',
      'a: &a [x,x,x,x,x,x,x,x,x,x]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      '',
    ].join('\n')
    const r = validateUserData(bomb)
    expect(r.valid).toBe(false)
    expect(r.findings[0].message).toMatch(/alias/i)
  })

  it('rejects a document that is not a map', () => {
    expect(validateUserData('#cloud-config\n- a\n- b\n').valid).toBe(false)
  })

  it('never repeats a secret in a finding', () => {
    const text = [
      '#cloud-config',
      'stylus:',
      '  registryCredentials: {domain: r.local, password: 12345678}',
      '  site:',
      '    edgeHostToken: 987654321',
      '    network:',
      '      httpProxy: "ftp://alice:hunter2secret@proxy:21"',
      'stages:',
      '  initramfs:',
      '    - users: {kairos: {passwd: hunter3secret}}',
      '',
    ].join('\n')
    const r = validateUserData(text)
    expect(r.findings.length).toBeGreaterThanOrEqual(3)
    const all = JSON.stringify(r.findings)
    for (const secret of ['12345678', '987654321', 'hunter2secret', 'hunter3secret']) expect(all).not.toContain(secret)
  })
})
