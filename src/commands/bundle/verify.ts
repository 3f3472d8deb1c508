import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {bundleArgs} from '../../flags.js'
import {readBundle, type BundleReport} from '../../bundle/reader.js'
import {loadPublicKey} from '../../bundle/sign.js'
import {formatPlatform} from '../../oci/platform.js'
import {formatBytes} from '../../util/format.js'

export default class BundleVerify extends BaseCommand<BundleReport> {
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

Exit codes: 0 the bundle is intact, 5 it is not (the message says exactly what is wrong), 2 unreadable input.`

  static examples = [
    '<%= config.bin %> bundle verify /media/usb/store-v1.tar.zst',
    '<%= config.bin %> bundle verify /media/usb/store-v1.parts.json --public-key content-pub.pem',
    '<%= config.bin %> bundle verify store-v1.tar.zst.000 --json',
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
  }

  async run(): Promise<BundleReport> {
    const {args, flags} = await this.parse(BundleVerify)
    const publicKey = flags['public-key'] ? await loadPublicKey(flags['public-key']) : undefined
    const cosignKey = flags['cosign-key'] ? await loadPublicKey(flags['cosign-key'], '--cosign-key') : undefined
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
}
