import {z} from 'zod'

import * as c from './checks.js'

// The schema of the user-data keys airpack knows (palette-edge-formats.md §7): every `stylus` key, typed, with
// unknown keys rejected (a typo there is silently ignored by the agent and found only at the site); `install`
// and `stages` typed where the reference documents them, open elsewhere because Kairos accepts more keys
// (unknown ones there are warnings, see semantic.ts). Value formats (addresses, PEM, names) are leaf checks.

function checked(check: c.Check<string>) {
  return z.string().superRefine((value, ctx) => {
    const problem = check(value)
    if (problem) ctx.addIssue({code: 'custom', message: problem.message, params: {hint: problem.hint}})
  })
}

const port = (min: number) => z.number().int().min(min).max(65535)
const str = z.string()
const bool = z.boolean()

const pemList = z.array(checked(c.pemCertificatesCheck))

const interfaceSchema = z.strictObject({
  type: z.enum(['dhcp', 'static']).optional(),
  ipAddress: checked(c.hostAddressCheck).optional(),
  mask: z.union([str, z.number().int()]).optional(),
  gateway: checked(c.ipCheck).optional(),
  nameserver: checked(c.nameserverCheck).optional(),
})

const networkSchema = z.strictObject({
  httpProxy: checked(c.proxyUrlCheck).optional(),
  httpsProxy: checked(c.proxyUrlCheck).optional(),
  noProxy: checked(c.noProxyCheck).optional(),
  nameserver: checked(c.nameserverCheck).optional(),
  interfaces: z.record(checked(c.interfaceNameCheck), interfaceSchema).optional(),
})

const siteSchema = z.strictObject({
  caCerts: pemList.optional(),
  clusterId: str.optional(),
  clusterName: str.optional(),
  deviceUIDPaths: z
    .array(z.strictObject({name: checked(c.absolutePathCheck), regex: checked(c.regexCheck).optional()}))
    .optional(),
  edgeHostToken: str.optional(),
  hostName: checked(c.hostNameCheck).optional(),
  insecureSkipVerify: bool.optional(),
  name: checked(c.edgeHostIdCheck).optional(),
  network: networkSchema.optional(),
  paletteEndpoint: str.optional(),
  prefix: checked(c.prefixCheck).optional(),
  projectName: str.optional(),
  projectUid: str.optional(),
  registrationURL: str.optional(),
  remoteShell: z.strictObject({disable: bool.optional()}).optional(),
  tags: z.record(str, str).optional(),
  tagsFromFile: z
    .strictObject({fileName: checked(c.absolutePathCheck), delimiter: str.optional(), separator: str.optional()})
    .optional(),
  tagsFromScript: z
    .strictObject({scriptName: checked(c.absolutePathCheck), timeout: z.number().int().min(1).optional()})
    .optional(),
})

const registryCredentialsSchema = z.strictObject({
  domain: checked(c.registryDomainCheck),
  username: str.optional(),
  password: str.optional(),
  encodedPassword: bool.optional(),
  insecure: bool.optional(),
})

const externalRegistriesSchema = z.strictObject({
  registries: z
    .array(
      z.strictObject({
        domain: checked(c.registryDomainCheck),
        username: str.optional(),
        password: str.optional(),
        repositoryName: str.optional(),
        certificates: pemList.optional(),
        insecure: bool.optional(),
        encodedPassword: bool.optional(),
      }),
    )
    .optional(),
  registryMappingRules: z.record(checked(c.referencePrefixCheck), checked(c.referencePrefixCheck)).optional(),
})

export const MANAGEMENT_MODES = ['local', 'central'] as const

export const stylusSchema = z.strictObject({
  debug: bool.optional(),
  trace: bool.optional(),
  disablePasswordUpdate: bool.optional(),
  enableMultiNode: bool.optional(),
  externalRegistries: externalRegistriesSchema.optional(),
  featureGate: str.optional(),
  includeTui: bool.optional(),
  installationMode: z.enum(['connected', 'airgap']).optional(),
  localUI: z.strictObject({port: port(1).optional()}).optional(),
  managementMode: z.enum(MANAGEMENT_MODES).optional(),
  path: checked(c.absolutePathCheck).optional(),
  registryCredentials: registryCredentialsSchema.optional(),
  site: siteSchema.optional(),
  vip: z.strictObject({skip: bool.optional()}).optional(),
  imageRedirectWebhook: z.strictObject({enable: bool.optional(), port: port(0).optional()}).optional(),
})

const partitionSize = z.number().int().min(0)

export const installSchema = z.looseObject({
  bind_mounts: z.array(checked(c.absolutePathCheck)).optional(),
  'extra-dirs-rootfs': z.array(checked(c.absolutePathCheck)).optional(),
  grub_options: z.looseObject({extra_cmdline: str.optional()}).optional(),
  partitions: z
    .looseObject({persistent: z.looseObject({size: partitionSize.optional(), fs: str.optional()}).optional()})
    .optional(),
  'extra-partitions': z
    .array(
      z.looseObject({name: str.optional(), size: partitionSize.optional(), fs: str.optional(), label: str.optional()}),
    )
    .optional(),
  poweroff: bool.optional(),
  reboot: bool.optional(),
  device: str.optional(),
  auto: bool.optional(),
})

const userSchema = z.looseObject({
  groups: z.array(str).optional(),
  passwd: str.optional(),
  lock_passwd: bool.optional(),
  ssh_authorized_keys: z.array(checked(c.sshPublicKeyCheck)).optional(),
  primary_group: str.optional(),
  homedir: checked(c.absolutePathCheck).optional(),
  shell: checked(c.absolutePathCheck).optional(),
  uid: z.union([str, z.number().int().min(0)]).optional(),
  no_create_home: bool.optional(),
  system: bool.optional(),
  gecos: str.optional(),
})

const stageStepSchema = z.looseObject({
  name: str.optional(),
  if: str.optional(),
  users: z.record(checked(c.userNameCheck), userSchema).optional(),
  commands: z.array(str).optional(),
  files: z
    .array(
      z.looseObject({
        path: checked(c.absolutePathCheck),
        content: str.optional(),
        permissions: z.number().int().min(0).max(0o7777).optional(),
        owner: z.union([str, z.number().int()]).optional(),
        group: z.union([str, z.number().int()]).optional(),
        encoding: str.optional(),
      }),
    )
    .optional(),
  directories: z.array(z.looseObject({path: checked(c.absolutePathCheck)})).optional(),
  hostname: str.optional(),
  environment: z.record(str, str).optional(),
})

export const stagesSchema = z.record(str, z.array(stageStepSchema))

export const userDataSchema = z.looseObject({
  stylus: stylusSchema.optional(),
  install: installSchema.optional(),
  stages: stagesSchema.optional(),
})

export type UserData = z.infer<typeof userDataSchema>

/** The keys a map at `path` of the schema accepts, for did-you-mean hints (empty when open or unknown). */
export function knownKeysAt(path: readonly PropertyKey[], schema: z.ZodType = userDataSchema): string[] {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- walks zod's internal definition objects
  let node: any = schema
  const unwrap = () => {
    while (node && ['optional', 'nullable', 'default', 'pipe'].includes(node._zod.def.type)) {
      node = node._zod.def.type === 'pipe' ? node._zod.def.in : node._zod.def.innerType
    }
  }
  unwrap()
  for (const segment of path) {
    const def = node?._zod.def
    if (!def) return []
    if (def.type === 'object') node = def.shape[segment as string]
    else if (def.type === 'array') node = def.element
    else if (def.type === 'record') node = def.valueType
    else return []
    unwrap()
  }
  return node?._zod.def.type === 'object' ? Object.keys(node._zod.def.shape) : []
}

// Keys Local UI cannot change after installation (palette-edge-formats.md §7.8): a mistake in these is only
// fixed by reinstalling, so the docs and `validate` point them out.
export const NOT_EDITABLE_IN_LOCAL_UI = [
  'stylus.site.deviceUIDPaths',
  'stylus.site.tagsFromFile',
  'stylus.site.tagsFromScript',
  'stylus.site.remoteShell.disable',
  'stylus.localUI.port',
  'stylus.includeTui',
  'stylus.debug',
  'stylus.featureGate',
  'stylus.trace',
  'stylus.disablePasswordUpdate',
  'stylus.imageRedirectWebhook',
  'install.bind_mounts',
] as const

export const KNOWN_STAGES = [
  'initramfs',
  'rootfs',
  'boot',
  'fs',
  'network',
  'reconcile',
  'after-install',
  'after-install-chroot',
  'after-reset',
  'after-reset-chroot',
  'after-upgrade',
  'after-upgrade-chroot',
  'before-install',
  'before-upgrade',
  'before-reset',
] as const
