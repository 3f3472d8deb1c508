import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../../base-command.js'
import {buildBundle, sourceDateEpochFrom, type BuildReport} from '../../bundle/build.js'
import {MEDIA_PART_SIZE, parseSize} from '../../bundle/split.js'
import {formatPlatform} from '../../oci/platform.js'
import {formatBytes} from '../../util/format.js'
import {
  archFlag,
  cacheDirFlag,
  profileArgs,
  concurrencyFlag,
  lockFileFlag,
  modeFlag,
  parseVars,
  registryAccessFrom,
  registryFlags,
  supplyChainFlag,
  varFlag,
} from '../../flags.js'

export default class BundleBuild extends BaseCommand<BuildReport> {
  static summary =
    'Build the reproducible, signed content bundle (.tar.zst) and cluster definition for an air-gapped site.'

  static description = `Validates the profiles (exit 3 on errors), resolves every image and chart they name to a digest for
--arch (or, with --locked, checks that no tag of --lock-file moved), fetches the content into the cache by digest,
and writes into --output:

  NAME.tar.zst             the content bundle: an OCI image layout in a zstd-compressed tar, airpack/bundle.json first
                           (or NAME.tar.zst.000, .001, … and NAME.parts.json with --split/--media)
  NAME.tar.zst.sig         with --sign-key: detached signature of the whole .tar.zst
  NAME.lock.json           every artifact pinned by digest (also written to --lock-file when given)
  NAME-definition.tgz      the cluster definition for Local UI (also inside the bundle)
  user-data/SITE/user-data with --sites: one validated #cloud-config per site
  NAME.report.json         what was fetched, from where, cache hits, bytes, seconds, throughput
  NAME.inventory.json      the bundle's identity and bundle.json: a later --delta-from or bundle diff needs only this
  NAME.delta.tar.zst       with --delta-from BASE: the day-2 delta, written in addition to the whole NAME.tar.zst

Split parts are plain byte ranges: \`cat NAME.tar.zst.[0-9][0-9][0-9] > NAME.tar.zst\` rebuilds the file (a bare
NAME.tar.zst.* would also pick up NAME.tar.zst.sig). \`bundle verify\` and \`bundle inspect\` read the parts directly.

Every file appears under its final name only when complete; a failed or interrupted build publishes nothing.
The same inputs give a byte-identical bundle whatever the cache state, --concurrency or machine; its identity
(format 1: sha256 of the uncompressed tar; format 2: sha256 of airpack/bundle.json) is printed at the end. SOURCE_DATE_EPOCH, when set, is the only time used.

Signing: RSA or ECDSA P-256 keys give a detached signature that stock openssl checks:
  openssl dgst -sha256 -verify pub.pem -signature NAME.tar.zst.sig NAME.tar.zst
An Ed25519 key signs the file's SHA-256 digest:
  openssl dgst -sha256 -binary NAME.tar.zst > NAME.sha256
  openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in NAME.sha256 -sigfile NAME.tar.zst.sig

Day-2 deltas (--delta-from BASE, repeatable; BASE is a bundle, its first part, its parts file or its
NAME.inventory.json): the build writes the whole NAME.tar.zst as usual AND NAME.delta.tar.zst (split and signed like
the bundle): airpack/delta.json, then the bundle's metadata byte for byte, then only the blobs no base holds.
Sites that hold a base import the delta (after \`bundle verify DELTA --site-content\`); Local UI sites rebuild the
whole bundle with \`bundle patch BASE DELTA\`. --delta-mode artifacts writes instead an ordinary self-contained
bundle of only the artifacts whose digest changed.

Format 2 compresses in-process; --format 1 and a --delta-from bundle need the zstd program (apt-get install zstd).`

  static examples = [
    '<%= config.bin %> bundle build examples/profiles/k3s-calico-infra.json examples/profiles/addon-monitoring.json --arch amd64 --name store-v1',
    '<%= config.bin %> bundle build infra.json addons.json --arch arm64 --name retail-2026-06 --sign-key content-key.pem --media fat32 --sites sites.yaml',
    '<%= config.bin %> bundle build infra.json --arch amd64 --name store-v1 --lock-file store-v1.lock.json --locked --json',
    '<%= config.bin %> bundle build infra.json addons.json --arch amd64 --name store-v2 --delta-from output/store-v1.inventory.json --sign-key content-key.pem',
  ]

  static args = profileArgs

  static strict = false

  static flags = {
    arch: archFlag(),
    name: Flags.string({
      description: 'Bundle name: the output files are NAME.tar.zst, NAME.lock.json, …',
      required: true,
    }),
    output: Flags.string({char: 'o', description: 'Output directory.', default: './output'}),
    'lock-file': lockFileFlag,
    locked: Flags.boolean({
      description:
        'Build exactly --lock-file: refuse if a tag moved or the profiles need something else; fetch by digest only.',
      default: false,
    }),
    ...registryFlags,
    'sign-key': Flags.string({
      description: 'PEM private key (RSA, ECDSA P-256 or Ed25519) to sign bundle.json and the whole .tar.zst.',
    }),
    split: Flags.string({
      description: 'Split the .tar.zst into parts of at most SIZE (3G, 500M, 4GiB; K/M/G are 1024-based).',
      exclusive: ['media'],
    }),
    media: Flags.option({
      options: ['fat32', 'exfat', 'dvd', 'bd25'] as const,
      description:
        'Split for a medium: fat32 = parts of 4 GiB − 1 byte, exfat = no split, dvd = 4.37 GiB, bd25 = 23.3 GiB.',
      exclusive: ['split'],
    })(),
    sites: Flags.string({
      description: 'Site inventory (SITES.yaml): also render user-data/SITE/user-data for every site.',
    }),
    concurrency: concurrencyFlag,
    'compression-level': Flags.integer({description: 'zstd compression level (1–19).', min: 1, max: 19, default: 3}),
    format: Flags.option({
      options: ['1', '2'] as const,
      description:
        'Bundle format: 2 (default) = the seekable format of PRODUCT.md §4 (a frame group per tar entry, already-compressed layers stored in raw frames, a seek table at the end; still one plain zstd file); 1 = one zstd stream from the zstd program.',
      default: '2',
    })(),
    'cache-dir': cacheDirFlag,
    'supply-chain': supplyChainFlag(),
    'delta-from': Flags.string({
      description:
        'Also write NAME.delta.tar.zst holding only what BASE lacks (a bundle, its first part, its parts file or its NAME.inventory.json; repeatable: a mixed fleet).',
      multiple: true,
    }),
    'delta-mode': Flags.option({
      options: ['thin', 'artifacts'] as const,
      description:
        'thin = blob-level delta (import over the base, or `bundle patch`); artifacts = an ordinary bundle of only the artifacts whose digest changed (Local UI).',
      default: 'thin' as const,
    })(),
    var: varFlag,
    mode: modeFlag(),
  }

  async run(): Promise<BuildReport> {
    const {argv, flags} = await this.parse(BundleBuild)
    const vars = parseVars(flags.var)
    const partSize =
      flags.split !== undefined ? parseSize(flags.split) : flags.media ? MEDIA_PART_SIZE[flags.media] : undefined
    const report = await buildBundle({
      profiles: argv as string[],
      arch: flags.arch,
      mode: flags.mode,
      vars,
      name: flags.name,
      outputDir: flags.output,
      lockFile: flags['lock-file'],
      locked: flags.locked,
      supplyChain: flags['supply-chain'],
      registry: registryAccessFrom(flags),
      signKeyFile: flags['sign-key'],
      partSize,
      sitesFile: flags.sites,
      compressionLevel: flags['compression-level'],
      formatVersion: flags.format === '2' ? 2 : 1,
      cacheDir: flags['cache-dir'],
      airpackVersion: this.config.version,
      sourceDateEpoch: sourceDateEpochFrom(process.env),
      deltaFrom: flags['delta-from'],
      deltaMode: flags['delta-mode'],
      logger: this.logger,
    })
    const t = report.totals
    this.log(
      `Bundle ${report.name} for ${formatPlatform(report.platform)}: ${t.images} image(s), ${t.charts} chart(s), ${t.blobs} blobs, ${formatBytes(t.bytes)}`,
    )
    this.log(
      `  fetched ${formatBytes(t.downloadedBytes)} (${formatBytes(t.cachedBytes)} from cache), compressed to ${formatBytes(report.bundle.compressedBytes)} in ${t.seconds} s`,
    )
    for (const f of report.files) this.log(`  ${f}`)
    this.log(`Identity: ${report.identity}`)
    const d = report.delta
    if (d) {
      this.log(
        `Delta (${d.mode}) against ${d.bases.map((b) => b.name).join(', ')}: carries ${d.carried.blobs} blob(s), ${formatBytes(d.carried.bytes)}; borrows ${d.borrowed.blobs}, ${formatBytes(d.borrowed.bytes)}; ${formatBytes(d.compressedBytes)} compressed`,
      )
      this.log(`Delta identity: ${d.identity}`)
    }
    return report
  }
}
