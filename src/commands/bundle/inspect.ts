import {BaseCommand} from '../../base-command.js'
import {bundleArgs} from '../../flags.js'
import {formatPlatform} from '../../oci/platform.js'
import {readBundle, type BundleReport} from '../../bundle/reader.js'
import {formatBytes} from '../../util/format.js'

export default class BundleInspect extends BaseCommand<BundleReport> {
  static summary = 'Show what a content bundle holds: name, platform, identity, profiles, every artifact, totals.'

  static description = `Reads airpack/bundle.json from the start of the stream. Format 1: hashes the whole uncompressed tar for
the bundle's identity (one pass, nothing extracted). Format 2 (seekable): reads only the frames holding
bundle.json, whose sha256 is the identity. BUNDLE is the .tar.zst, its first part or the .parts.json.
It does not check the content: use \`airpack bundle verify\` for that.`

  static examples = [
    '<%= config.bin %> bundle inspect output/store-v1.tar.zst',
    '<%= config.bin %> bundle inspect output/store-v1.parts.json --json',
  ]

  static args = bundleArgs

  async run(): Promise<BundleReport> {
    const {args} = await this.parse(BundleInspect)
    const report = await readBundle(args.bundle, {mode: 'inspect'})
    const t = report.totals
    this.log(`Bundle:    ${report.name} (format ${report.formatVersion}, airpack ${report.airpackVersion})`)
    this.log(`Platform:  ${formatPlatform(report.platform)}`)
    this.log(`Identity:  ${report.identity}`)
    this.log(`Zstd:      ${report.compression?.version} level ${report.compression?.level}`)
    this.log(
      `Signed:    ${report.signature.signed ? `${report.signature.algorithm} key ${report.signature.publicKeyFingerprint}` : 'no'}`,
    )
    this.log('Profiles:')
    for (const p of report.profiles) this.log(`  ${p.name} ${p.version}  sha256:${p.sha256}`)
    this.log('Artifacts:')
    for (const a of report.artifacts.filter((x) => !x.subject)) {
      this.log(`  ${a.kind.padEnd(10)} ${a.reference}  ${a.digest}  ${formatBytes(a.contentSize ?? a.size)}`)
      // Each image's signatures, attestations, SBOMs and referrers, under it.
      for (const s of a.supplyChain ?? [])
        this.log(
          `    ${s.kind.padEnd(12)} ${s.reference}  ${s.digest}  (of ${s.subject === a.digest ? a.digest : `platform manifest ${s.subject}`})`,
        )
    }
    this.log(
      `Totals:    ${t.artifacts} artifact(s), ${t.blobs} blobs, ${formatBytes(t.blobBytes)} of content, ${formatBytes(t.tarBytes)} tar, ${formatBytes(t.compressedBytes)} compressed${t.parts > 1 ? ` in ${t.parts} parts` : ''}`,
    )
    return report
  }
}
