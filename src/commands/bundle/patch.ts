import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../../base-command.js'
import {patchBundle, type PatchReport} from '../../delta/patch.js'
import {formatBytes} from '../../util/format.js'

export default class BundlePatch extends BaseCommand<PatchReport> {
  static summary = 'Rebuild the whole bundle N+1 from the base bundle N and a day-2 delta, byte for byte.'

  static description = `For sites that load content through Local UI, which takes whole bundles: BASE (the bundle the site
holds: NAME.tar.zst, its first part or NAME.parts.json) and DELTA (NAME.delta.tar.zst, or its part or parts file)
give --output DIR/NAME.tar.zst, the same tar (same identity) as the whole build of N+1, plus its NAME.inventory.json.
Both inputs are streamed side by side in digest order; nothing but the output is written, under a temporary name
until complete. Every entry is checked against N+1's bundle.json; a base other than the one the delta names is
refused, naming both identities.

When the delta recorded the whole build's compressed file (signed or split builds) and the output is that very file
(format 2 always; format 1 with the same zstd version), the build's detached signature is written beside it, so
\`bundle verify --public-key\` checks the patched bundle exactly as the original. bundle.json's signature is always
carried.

Exit codes: 0 written, 5 a wrong base or a damaged input (nothing written), 2 unreadable input.`

  static examples = [
    '<%= config.bin %> bundle patch /media/usb/store-v1.tar.zst /media/usb/store-v2.delta.tar.zst --output ./store-v2',
    '<%= config.bin %> bundle patch store-v1.parts.json store-v2.delta.tar.zst --output out --json',
  ]

  static args = {
    base: Args.string({
      description: 'The base bundle N: NAME.tar.zst, NAME.tar.zst.000 or NAME.parts.json.',
      required: true,
    }),
    delta: Args.string({
      description: 'The delta: NAME.delta.tar.zst, its first part or its parts file.',
      required: true,
    }),
  }

  static flags = {
    output: Flags.string({char: 'o', description: 'Directory to write N+1 into.', required: true}),
  }

  async run(): Promise<PatchReport> {
    const {args, flags} = await this.parse(BundlePatch)
    const report = await patchBundle({base: args.base, delta: args.delta, outputDir: flags.output, logger: this.logger})
    for (const w of report.warnings) this.warn(w)
    this.log(
      `Wrote ${report.bundle}: bundle ${report.name} from base ${report.base.name} (identity ${report.base.identity}) + delta`,
    )
    this.log(`  ${formatBytes(report.tarBytes)} tar, ${formatBytes(report.compressedBytes)} compressed`)
    for (const f of report.files) this.log(`  ${f}`)
    this.log(`Identity: ${report.identity}`)
    return report
  }
}
