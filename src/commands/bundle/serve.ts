import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../../base-command.js'
import {bundleArgs} from '../../flags.js'
import {DEFAULT_LISTEN, startServe, type ServeInfo} from '../../serve/index.js'
import {formatBytes} from '../../util/format.js'

export default class BundleServe extends BaseCommand<ServeInfo> {
  static summary = 'Serve a format 2 bundle as a read-only OCI registry, straight from the file (no extraction).'

  static description = `Answers the OCI distribution API (/v2/, manifests and blobs by tag or digest, GET and HEAD, Range on
blobs, tags/list, _catalog) from the seekable bundle in place, whole or split: nothing is extracted or joined on disk.
Repositories are named HOST/PATH of each original reference (docker.io/library/nginx), tags as in the reference; an
image's index is served byte for byte (its digest is the lock's), and the platforms the bundle does not carry answer
404. Every manifest and blob is checked against its digest as it is read. Writes answer 405.

Prints the URL, a K3s/RKE2 registries.yaml that mirrors every source host to this server, and the pull-through
(proxy.remoteurl) configuration a site registry (distribution, Harbor or zot proxy cache) needs to use it as its
upstream. Stops cleanly on SIGINT or SIGTERM. A format 1 bundle is refused (exit 2): rebuild it with --format 2.
With --json, one JSON document (URL, repositories, configurations) is printed when the server is ready.`

  static examples = [
    '<%= config.bin %> bundle serve /media/usb/store-v1.tar.zst',
    '<%= config.bin %> bundle serve store-v1.parts.json --listen 0.0.0.0:5000 --tls-cert site.pem --tls-key site.key',
  ]

  static args = bundleArgs

  static flags = {
    listen: Flags.string({
      description: 'HOST:PORT to listen on (0.0.0.0:PORT for every interface).',
      default: DEFAULT_LISTEN,
    }),
    'tls-cert': Flags.file({description: 'PEM certificate: serve HTTPS (with --tls-key).', dependsOn: ['tls-key']}),
    'tls-key': Flags.file({description: 'PEM private key of --tls-cert.', dependsOn: ['tls-cert']}),
  }

  async run(): Promise<ServeInfo> {
    const {args, flags} = await this.parse(BundleServe)
    const serving = await startServe({
      bundle: args.bundle,
      listen: flags.listen,
      tlsCert: flags['tls-cert'],
      tlsKey: flags['tls-key'],
      logger: this.logger,
    })
    const {info} = serving
    if (this.jsonEnabled()) {
      process.stdout.write(JSON.stringify(this.toSuccessJson(info), null, 2) + '\n')
    } else {
      this.log(`Serving ${info.bundle} (identity ${info.identity}) at ${info.url}`)
      for (const r of info.repositories) this.log(`  ${r.name}${r.tags.length > 0 ? `: ${r.tags.join(', ')}` : ''}`)
      this.log('')
      this.log(
        'K3s/RKE2 nodes, /etc/rancher/{k3s,rke2}/registries.yaml (replace the endpoint by the address nodes reach):',
      )
      this.log(info.registriesYaml)
      this.log('A site registry pulling through this server (distribution config.yml; Harbor/zot: a proxy-cache')
      this.log('registry endpoint with this URL); nodes then mirror to the site registry with the same rewrites:')
      this.log(info.pullThroughConfig)
      this.log('Stop with Ctrl-C (SIGINT) or SIGTERM.')
    }
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'))
      process.once('SIGTERM', () => resolve('SIGTERM'))
    })
    this.logger.info(`${signal}: stopping (transfers in progress get 5 s to finish)`)
    await serving.close()
    this.logger.info(`Served ${serving.stats.requests} request(s), ${formatBytes(serving.stats.bytes)}.`)
    // The one JSON document was printed when the server was ready; end without a second one.
    if (this.jsonEnabled()) this.exit(0)
    return info
  }
}
