import * as Args from '@oclif/core/args'

import {BaseCommand} from '../../base-command.js'
import {loadBundleContent} from '../../delta/content.js'
import {diffContents, type BundleDiff as DiffResult, type DiffSide} from '../../delta/diff.js'
import {formatPlatform} from '../../oci/platform.js'
import {formatBytes} from '../../util/format.js'

const percent = (part: number, whole: number) =>
  whole === 0 ? '0 %' : `${((100 * part) / whole).toFixed(part === 0 || part === whole ? 0 : 1)} %`

export default class BundleDiff extends BaseCommand<DiffResult> {
  static summary =
    'Compare two bundles by digest: artifacts added, removed, changed, and the bytes a delta would carry.'

  static description = `OLD and NEW are each a bundle (NAME.tar.zst, its first part NAME.tar.zst.000, or NAME.parts.json) or the
NAME.inventory.json its build wrote. Only airpack/bundle.json is read from a bundle, so this is fast on multi-GB
bundles; it does not check the rest of the bundle (use \`airpack bundle verify\` for that).

Artifacts are compared by digest, never by reference string: the same reference with a new digest is "changed";
a new reference whose digest OLD held under another reference (a moved tag) is "retagged" and carries no bytes.
The blob figures are what a blob-level delta (\`--delta-from OLD\`) would carry: the blobs of NEW that OLD lacks.

Exit codes: 0 the comparison was made (whatever it found), 2 unreadable input, 5 a bundle.json or inventory is
invalid or was altered.`

  static examples = [
    '<%= config.bin %> bundle diff output/store-v1.tar.zst output/store-v2.tar.zst',
    '<%= config.bin %> bundle diff store-v1.inventory.json output/store-v2.parts.json --json',
  ]

  static args = {
    old: Args.string({
      description: 'The bundle the sites hold: NAME.tar.zst, NAME.tar.zst.000, NAME.parts.json or NAME.inventory.json.',
      required: true,
    }),
    new: Args.string({
      description: 'The update: NAME.tar.zst, NAME.tar.zst.000, NAME.parts.json or NAME.inventory.json.',
      required: true,
    }),
  }

  async run(): Promise<DiffResult> {
    const {args} = await this.parse(BundleDiff)
    const oldContent = await loadBundleContent(args.old)
    const newContent = await loadBundleContent(args.new)
    const diff = diffContents(oldContent, newContent)
    this.render(diff)
    return diff
  }

  private render(diff: DiffResult): void {
    const side = (label: string, s: DiffSide) =>
      this.log(
        `${label} ${s.name} (${s.from} ${s.input}, ${formatPlatform(s.platform)})  ${s.identity ? `identity ${s.identity}` : `bundle.json ${s.bundleJsonSha256}`}`,
      )
    side('OLD:', diff.old)
    side('NEW:', diff.new)
    for (const w of diff.warnings) this.warn(w)
    const a = diff.artifacts
    this.log(
      `Artifacts: ${a.added.length} added, ${a.removed.length} removed, ${a.changed.length} changed, ${a.retagged.length} retagged, ${a.unchanged} unchanged`,
    )
    const rows: [string, string, string, string][] = [
      ...a.added.map((x): [string, string, string, string] => ['added', x.kind, x.reference, x.digest]),
      ...a.removed.map((x): [string, string, string, string] => ['removed', x.kind, x.reference, x.digest]),
      ...a.changed.map((x): [string, string, string, string] => [
        'changed',
        x.kind,
        x.reference,
        `${x.oldDigest} → ${x.newDigest}`,
      ]),
      ...a.retagged.map((x): [string, string, string, string] => [
        'retagged',
        x.kind,
        `${x.oldReference} → ${x.newReference}`,
        x.digest,
      ]),
    ]
    const width = (i: number) => Math.max(0, ...rows.map((r) => r[i].length))
    for (const r of rows)
      this.log(`  ${r[0].padEnd(width(0))}  ${r[1].padEnd(width(1))}  ${r[2].padEnd(width(2))}  ${r[3]}`)
    const b = diff.blobs
    const lines: [string, string, string][] = [
      [
        'delta carries',
        `${b.carried.count} of ${b.whole.count} blobs`,
        `${formatBytes(b.carried.bytes)} (${percent(b.carried.bytes, b.whole.bytes)} of NEW's ${formatBytes(b.whole.bytes)} of blobs)`,
      ],
      ['borrowed from OLD', `${b.borrowed.count} blobs`, formatBytes(b.borrowed.bytes)],
      ['no longer needed', `${b.dropped.count} blobs`, formatBytes(b.dropped.bytes)],
      [
        'metadata',
        'bundle.json, index.json, profiles, definition',
        `${formatBytes(diff.metadataBytes)} (carried by any delta)`,
      ],
    ]
    const w0 = Math.max(...lines.map((l) => l[0].length))
    const w1 = Math.max(...lines.map((l) => l[1].length))
    this.log('Blobs:')
    for (const l of lines) this.log(`  ${l[0].padEnd(w0)}  ${l[1].padEnd(w1)}  ${l[2]}`)
    if (diff.identical) this.log('No difference: NEW holds the same artifacts and blobs as OLD.')
  }
}
