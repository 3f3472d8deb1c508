import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../../base-command.js'
import {bundleArgs, concurrencyFlag, registryAccessFrom, registryFlags} from '../../flags.js'
import {pushBundle, type PushReport} from '../../push/index.js'
import {formatBytes} from '../../util/format.js'

export default class BundlePush extends BaseCommand<PushReport> {
  static summary =
    'Copy every artifact of a format 2 bundle into a site registry, keeping the source host in the names.'

  static description = `Reads the bundle in place (whole or split, nothing extracted) and pushes each image, chart and the
cluster definition to REGISTRY/PREFIX/HOST/PATH:TAG (docker.io/library/nginx:1.27 → REGISTRY/PREFIX/docker.io/library/nginx:1.27),
children before indexes. Every blob is checked with HEAD first, mounted from another repository of the same registry
when one already holds it, and uploaded (POST, then one PUT) otherwise, with retries and a timeout scaled by its size:
a second push of the same bundle uploads nothing.

--index sparse (default) pushes each image's index as stored, so its digest stays the lock's; registries that refuse
an index whose other platforms are absent (distribution 2.8, Harbor: 400 MANIFEST_BLOB_UNKNOWN) make it fail with
exit 4, naming their answer. --index platform pushes the platform manifest under the tag instead and reports each
digest that changed. --registries-out writes the K3s/RKE2 registries.yaml mirrors and rewrites that send nodes to
what was pushed; --hosts-dir the same as containerd hosts.toml files (a config_path directory).

Exit codes: 0 pushed, 2 bad usage or a format 1 bundle, 4 the registry refused or could not be reached (a Harbor
project that does not exist is named as such), 5 the bundle's content does not match its digests.`

  static examples = [
    '<%= config.bin %> bundle push /media/usb/store-v1.tar.zst --to registry.site.local:5000/edge',
    '<%= config.bin %> bundle push store-v1.parts.json --to harbor.site.local/edge --index platform --registries-out /etc/rancher/k3s/registries.yaml',
    '<%= config.bin %> bundle push store-v1.tar.zst --to 10.0.0.5:5000 --insecure-registry 10.0.0.5:5000 --json',
  ]

  static args = bundleArgs

  static flags = {
    to: Flags.string({description: 'REGISTRY[/PREFIX] to push into.', required: true}),
    index: Flags.option({
      options: ['sparse', 'platform'] as const,
      description: 'sparse: push each index as stored (its digest kept); platform: tag the platform manifest instead.',
      default: 'sparse' as const,
    })(),
    'registries-out': Flags.string({description: 'Write the K3s/RKE2 registries.yaml (mirrors and rewrites) here.'}),
    'hosts-dir': Flags.string({
      description: 'Write containerd hosts.toml files (HOST/hosts.toml) under this directory.',
    }),
    ...registryFlags,
    concurrency: concurrencyFlag,
  }

  async run(): Promise<PushReport> {
    const {args, flags} = await this.parse(BundlePush)
    const report = await pushBundle({
      bundle: args.bundle,
      to: flags.to,
      index: flags.index,
      registriesOut: flags['registries-out'],
      hostsDir: flags['hosts-dir'],
      registry: registryAccessFrom(flags),
      concurrency: flags.concurrency,
      logger: this.logger,
    })
    this.log(
      `Pushed ${report.artifacts.length} artifact(s) of ${report.bundle} to ${report.registry}${report.prefix ? `/${report.prefix}` : ''}:`,
    )
    for (const a of report.artifacts)
      this.log(`  ${a.pushedAs}  ${a.pushedDigest}${a.changed ? `  (was ${a.digest} in the bundle)` : ''}`)
    this.log(
      `Blobs: ${report.blobs.uploaded} uploaded (${formatBytes(report.bytesUploaded)}), ${report.blobs.mounted} mounted; ${report.present} blob(s) and manifest(s) already there; ${report.manifestsPushed} manifest(s), ${report.tagsSet} tag(s) set, ${report.seconds} s`,
    )
    if (report.registriesOut) this.log(`Mirrors for K3s/RKE2 written to ${report.registriesOut}`)
    if (report.hostsDir) this.log(`containerd hosts.toml written under ${report.hostsDir}`)
    return report
  }
}
