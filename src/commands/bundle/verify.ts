import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../../base-command.js'
import {bundleArgs} from '../../flags.js'
import {readBundle, type BundleReport} from '../../bundle/reader.js'
import {readDeltaHead} from '../../delta/head.js'
import {verifyDelta, type DeltaReport} from '../../delta/read.js'
import {loadPublicKey} from '../../bundle/sign.js'
import {formatPlatform} from '../../oci/platform.js'
import {formatBytes} from '../../util/format.js'

export default class BundleVerify extends BaseCommand<BundleReport | DeltaReport> {
  static summary =
    'Check a content bundle (whole or split) before uploading it: parts, entries, blobs, references, signatures.'

  static description = `Reads the bundle as one stream, without extracting it or joining its parts on disk. BUNDLE is the
.tar.zst, its first part (.tar.zst.000) or the .parts.json of a split bundle.

Checks, in order: every part's size and sha256 (a bad or missing part is named first); for a format 2 (seekable)
bundle, its seek table and every frame; airpack/bundle.json is the
first entry; every entry is a regular file with a safe relative path, listed in bundle.json with the same size and
sha256, and appears once; nothing is missing; every blob matches its digest; every manifest's config and layers
are present, and every image index child is present or recorded as an omitted platform. With --public-key, the
signature of bundle.json and the detached NAME.tar.zst.sig beside the bundle (when present) must verify. With
--cosign-key, every image must carry a cosign signature (sha256-<hex>.sig) that verifies with that key and whose
payload names the image's index or platform digest, as \`cosign verify --key\` would check it at the registry.

A day-2 delta (NAME.delta.tar.zst, PRODUCT.md §11) is checked the same way against the bundle it makes (N+1),
except for the blobs airpack/delta.json borrows from the base: carried and borrowed must be N+1's entries exactly,
never both; with --public-key, delta.json's signature too. --base BASE (the bundle, or its NAME.inventory.json) also
proves the base is the one the delta names and, for a bundle, that base + delta rebuild N+1's identity.
--site-content FILE (the output of \`ctr -n k8s.io content ls -q\` on the site, or of \`ctr content ls\`) lists the
borrowed blobs the site's containerd lacks: run it before \`ctr images import\`, which would otherwise fail half-way.

Exit codes: 0 the bundle is intact, 5 it is not (the message says exactly what is wrong), 2 unreadable input,
4 the site lacks blobs the delta borrows (--site-content: the delta is fine, this site needs the whole bundle).`

  static examples = [
    '<%= config.bin %> bundle verify /media/usb/store-v1.tar.zst',
    '<%= config.bin %> bundle verify /media/usb/store-v1.parts.json --public-key content-pub.pem',
    '<%= config.bin %> bundle verify store-v1.tar.zst.000 --json',
    '<%= config.bin %> bundle verify store-v2.delta.tar.zst --public-key content-pub.pem --site-content site-content.txt',
    '<%= config.bin %> bundle verify store-v2.delta.tar.zst --base store-v1.tar.zst',
    '<%= config.bin %> bundle verify /media/usb/store-v1.tar.zst --cosign-key cosign.pub',
  ]

  static args = bundleArgs

  static flags = {
    'public-key': Flags.string({
      description: 'PEM public key: the bundle must carry a valid signature made with its private key.',
    }),
    'cosign-key': Flags.string({
      description:
        'PEM public key of a cosign key pair (cosign.pub): every image in the bundle must carry a cosign signature made with it over its digest.',
    }),
    base: Flags.string({
      description:
        'For a delta: the base bundle (or its NAME.inventory.json) it applies to; proves base + delta rebuild N+1.',
    }),
    'site-content': Flags.string({
      description:
        'For a delta: the output of `ctr -n k8s.io content ls -q` at the site; fails (exit 4) listing borrowed blobs the site lacks.',
    }),
  }

  async run(): Promise<BundleReport | DeltaReport> {
    const {args, flags} = await this.parse(BundleVerify)
    const publicKey = flags['public-key'] ? await loadPublicKey(flags['public-key']) : undefined
    const cosignKey = flags['cosign-key'] ? await loadPublicKey(flags['cosign-key'], '--cosign-key') : undefined
    // A delta starts with airpack/delta.json. A head that cannot be read is left to the bundle reader to explain
    // (it names a bad or missing part first).
    const head = await readDeltaHead(args.bundle).catch((error: {code?: string}) => {
      if (error?.code === 'ERR_AIRPACK_DELTA_INVALID') throw error
      return undefined
    })
    if (head && cosignKey)
      this.error(
        `${args.bundle} is a day-2 delta: --cosign-key checks a whole bundle; run it on the bundle \`airpack bundle patch\` writes`,
        {exit: 2},
      )
    if (head)
      return this.renderDelta(
        await verifyDelta(head, {publicKey, base: flags.base, siteContent: flags['site-content']}),
      )
    if (flags.base || flags['site-content'])
      this.error(`${args.bundle} is a whole bundle, not a delta: --base and --site-content apply to deltas only`, {
        exit: 2,
      })
    const report = await readBundle(args.bundle, {mode: 'verify', publicKey, cosignKey})
    const t = report.totals
    this.log(`OK ${args.bundle}: bundle ${report.name} for ${formatPlatform(report.platform)}`)
    this.log(
      `  ${t.artifacts} artifact(s) (${t.images} image(s), ${t.charts} chart(s)), ${t.entries} entries, ${t.blobs} blobs, ${formatBytes(t.blobBytes)} of content`,
    )
    this.log(
      `  ${formatBytes(t.tarBytes)} uncompressed, ${formatBytes(t.compressedBytes)} compressed${t.parts > 1 ? ` in ${t.parts} parts` : ''}`,
    )
    const sig = report.signature
    if (sig.signed || sig.detached !== 'absent') {
      this.log(
        `  signature: ${sig.algorithm ?? 'detached only'}${sig.publicKeyFingerprint ? ` key ${sig.publicKeyFingerprint}` : ''}; bundle.json ${sig.inner}, detached ${sig.detached}${publicKey ? '' : ' (pass --public-key to check)'}`,
      )
    }
    if (report.cosign)
      this.log(
        `  cosign: ${report.cosign.images.length} image(s) signed with key ${report.cosign.publicKeyFingerprint}, every signature valid`,
      )
    this.log(`Identity: ${report.identity}`)
    return report
  }

  private renderDelta(report: DeltaReport): DeltaReport {
    this.log(
      `OK ${report.delta}: delta to bundle ${report.name} for ${formatPlatform(report.platform)}, from ${report.bases.map((b) => b.name).join(' or ')}`,
    )
    this.log(
      `  carries ${report.carried.blobs} blob(s), ${formatBytes(report.carried.bytes)}; borrows ${report.borrowed.blobs}, ${formatBytes(report.borrowed.bytes)} from the base`,
    )
    const sig = report.signature
    if (sig.signed)
      this.log(
        `  signature: ${sig.algorithm} key ${sig.publicKeyFingerprint}; delta.json ${sig.delta}, bundle.json ${sig.bundleJson}, detached ${sig.detached}`,
      )
    if (report.base)
      this.log(
        report.base.rebuilt
          ? `  base ${report.base.name} (identity ${report.base.identity}) + delta rebuild ${report.name} (identity ${report.base.targetIdentity})`
          : `  base ${report.base.name} (identity ${report.base.identity}, from its inventory) holds every borrowed blob`,
      )
    if (report.siteContent)
      this.log(`  site content: all ${report.siteContent.borrowed} borrowed blob(s) present: safe to import`)
    if (report.removed.length > 0)
      this.log(`  after the import, remove: ${report.removed.map((r) => r.reference).join(' ')}`)
    this.log(`Delta identity: ${report.identity}`)
    this.log(`Target identity: ${report.target.identity}`)
    return report
  }
}
