import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {UsageError} from './errors.js'
import type {RegistryAccessOptions} from './resolve/index.js'

// Flags shared by several commands, defined once so that names, help and defaults never drift apart
// (PRODUCT.md §2 is the contract for these names).

/** PROFILE...: the positional arguments of every command that reads profiles (the command sets `strict = false`). */
export const profileArgs = {
  profile: Args.string({
    description: 'Exported profile (.json/.yaml) or cluster definition (.tgz); several form one cluster.',
    required: true,
  }),
}

/** BUNDLE: the positional argument of the commands that read a bundle. */
export const bundleArgs = {
  bundle: Args.string({description: 'NAME.tar.zst, NAME.tar.zst.000 or NAME.parts.json.', required: true}),
}

export const archFlag = Flags.option({
  options: ['amd64', 'arm64'] as const,
  description: 'Target architecture of the edge hosts; only this platform is resolved and bundled.',
  required: true,
})

export const modeFlag = Flags.option({
  options: ['appliance', 'agent'] as const,
  description: 'Palette Edge deployment mode of the hosts.',
  default: 'appliance' as const,
})

export const varFlag = Flags.string({
  description: 'Value of a cluster profile variable, NAME=VALUE (repeatable); overrides its defaultValue.',
  multiple: true,
  default: [],
  defaultHelp: async () => undefined,
})

/** What every command that reads profiles needs: the target, the deployment mode and the variables. */
export const profileFlags = () => ({arch: archFlag(), mode: modeFlag(), var: varFlag})

export const registryFlags = {
  registries: Flags.file({
    description: 'Mirrors, rewrites and per-registry TLS/auth in the K3s registries.yaml format.',
  }),
  'docker-config': Flags.directory({
    description:
      'Directory holding Docker config.json (auths, credHelpers, credsStore). [default: $DOCKER_CONFIG or ~/.docker]',
  }),
  'cred-file': Flags.file({
    description: 'Palette registry credentials JSON ({"image":[…],"helm":[…]}).',
  }),
  'ca-cert': Flags.file({description: 'Extra CA certificate (PEM) trusted for every registry.'}),
  'insecure-registry': Flags.string({
    description: 'HOST[:PORT] to reach over plain HTTP or with unverified TLS (repeatable; that host only).',
    multiple: true,
    default: [],
    defaultHelp: async () => undefined,
  }),
}

/** The registry flags (and --concurrency) as the registry layer's options, for every command that takes them. */
export function registryAccessFrom(flags: {
  registries?: string
  'docker-config'?: string
  'cred-file'?: string
  'ca-cert'?: string
  'insecure-registry': string[]
  concurrency: number
}): RegistryAccessOptions {
  return {
    registriesFile: flags.registries,
    dockerConfigDir: flags['docker-config'],
    credFile: flags['cred-file'],
    caCertFile: flags['ca-cert'],
    insecureRegistries: flags['insecure-registry'],
    concurrency: flags.concurrency,
  }
}

export const concurrencyFlag = Flags.integer({
  description: 'Parallel registry requests.',
  min: 1,
  max: 64,
  default: 8,
})

export const cacheDirFlag = Flags.directory({
  description: 'Blob cache directory. [default: $XDG_CACHE_HOME/airpack or ~/.cache/airpack]',
})

export const supplyChainFlag = Flags.option({
  options: ['carry', 'skip'] as const,
  description:
    "carry: also pin and bundle each image's cosign signatures, attestations and SBOMs (sha256-<hex>.sig|.att|.sbom tags) and OCI referrers; skip: only what the profiles list.",
  default: 'carry' as const,
})

export const lockFileFlag = Flags.file({description: 'Lock file to write (or, with --locked, to build from).'})

/** Parse repeated `--var NAME=VALUE` flags (UsageError, exit 2, for a malformed one). */
export function parseVars(values: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const v of values) {
    const eq = v.indexOf('=')
    if (eq <= 0)
      throw new UsageError('USAGE', `--var ${JSON.stringify(v)} must be NAME=VALUE`, {
        hint: 'Write each variable as --var NAME=VALUE.',
      })
    out[v.slice(0, eq)] = v.slice(eq + 1)
  }
  return out
}
