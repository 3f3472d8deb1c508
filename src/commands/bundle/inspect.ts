import {BaseCommand} from '../../base-command.js'
import {bundleArgs} from '../../flags.js'
import {formatPlatform} from '../../oci/platform.js'
import {readBundle, type BundleReport} from '../../bundle/reader.js'
import {readDeltaHead} from '../../delta/head.js'
import {inspectDelta, type DeltaReport} from '../../delta/read.js'
import {formatBytes} from '../../util/format.js'

export default class BundleInspect extends BaseCommand<BundleReport | DeltaReport> {
  static summary = 'Show what a content bundle holds: name, platform, identity, profiles, every artifact, totals.'

  static description = `Reads airpack/bundle.json from the start of the stream. Format 1: hashes the whole uncompressed tar for
the bundle's identity (one pass, nothing extracted). Format 2 (seekable): reads only the frames holding
bundle.json, whose sha256 is the identity. BUNDLE is the .tar.zst, its first part or the .parts.json.
It does not check the content: use \`airpack bundle verify\` for that.

A day-2 delta (NAME.delta.tar.zst) is shown as one, never as a complete bundle: kind "delta", the bundle it makes
(N+1) and the base(s) it needs, what it carries and borrows, and the references to remove after importing it.
Only its head (airpack/delta.json and bundle.json) is read.`

  static examples = [
    '<%= config.bin %> bundle inspect output/store-v1.tar.zst',
    '<%= config.bin %> bundle inspect output/store-v1.parts.json --json',
  ]

  static args = bundleArgs

  async run(): Promise<BundleReport | DeltaReport> {
    const {args} = await this.parse(BundleInspect)
    const head = await readDeltaHead(args.bundle).catch((error: {code?: string}) => {
      if (error?.code === 'ERR_AIRPACK_DELTA_INVALID') throw error
      return undefined
    })
    if (head) return this.renderDelta(inspectDelta(head))
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

  private renderDelta(report: DeltaReport): DeltaReport {
    this.log(`Delta:     ${report.delta} (NOT a complete bundle: import it only over a base below)`)
    this.log(`Kind:      delta`)
    this.log(`Makes:     ${report.name} (format ${report.formatVersion}), identity ${report.target.identity}`)
    for (const b of report.bases) this.log(`Base:      ${b.name}, identity ${b.identity}`)
    this.log(`Platform:  ${formatPlatform(report.platform)}`)
    this.log(`Identity:  ${report.identity} (of the delta: sha256 of airpack/delta.json)`)
    this.log(
      `Signed:    ${report.signature.signed ? `${report.signature.algorithm} key ${report.signature.publicKeyFingerprint}` : 'no'}`,
    )
    this.log(`Carried:   ${report.carried.blobs} blob(s), ${formatBytes(report.carried.bytes)}`)
    this.log(`Borrowed:  ${report.borrowed.blobs} blob(s), ${formatBytes(report.borrowed.bytes)} (from the base)`)
    this.log(`Removed:   ${report.removed.length === 0 ? 'none' : ''}`)
    for (const r of report.removed) this.log(`  ${r.kind.padEnd(10)} ${r.reference}  ${r.digest}`)
    this.log(`Artifacts of ${report.name}:`)
    for (const a of report.artifacts)
      this.log(`  ${a.kind.padEnd(10)} ${a.reference}  ${a.digest}  ${formatBytes(a.contentSize ?? a.size)}`)
    this.log(
      `Totals:    ${formatBytes(report.totals.compressedBytes)} compressed${report.totals.parts > 1 ? ` in ${report.totals.parts} parts` : ''}`,
    )
    return report
  }
}
