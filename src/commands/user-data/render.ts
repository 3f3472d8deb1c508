import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../../base-command.js'
import {modeFlag} from '../../flags.js'
import {renderSites, type RenderResult} from '../../userdata/index.js'

export default class UserDataRender extends BaseCommand<RenderResult> {
  static summary = 'Render one validated #cloud-config user-data per site from a site inventory.'

  static description = [
    "Merges, for every site of SITES.yaml, the template of the deployment mode (templates/appliance.yaml or templates/agent.yaml, both with stylus.managementMode: local), the inventory's `defaults` and the site's own entry (maps merge key by key; scalars and lists of the site replace the default's; null removes a key), checks the result against the user-data schema and writes DIR/<site>/user-data.",
    'Nothing is written unless every site is valid: otherwise the command exits 3 and lists every problem of every site with its key path.',
    'With --iso it also writes DIR/<site>/site-user-data.iso, a NoCloud seed image (volume id cidata, user-data and an empty meta-data) to attach or copy to USB at the site. It needs xorriso (or genisoimage) on PATH; with xorriso the image is byte-reproducible (SOURCE_DATE_EPOCH sets its dates).',
  ].join('\n\n')

  static examples = [
    '<%= config.bin %> user-data render --sites examples/sites/sites.yaml --output out/user-data',
    '<%= config.bin %> user-data render --sites sites.yaml --mode agent --output out/user-data --iso',
    '<%= config.bin %> user-data render --sites sites.yaml --output out/user-data --json',
  ]

  static flags = {
    sites: Flags.string({description: 'Site inventory (SITES.yaml): `defaults` and `sites`.', required: true}),
    mode: modeFlag(),
    output: Flags.string({char: 'o', description: 'Directory to write <site>/user-data into.', required: true}),
    iso: Flags.boolean({
      description: 'Also write <site>/site-user-data.iso, a NoCloud seed image (volume id cidata).',
      default: false,
    }),
  }

  async run(): Promise<RenderResult> {
    const {flags} = await this.parse(UserDataRender)
    const result = await renderSites({
      sitesFile: flags.sites,
      mode: flags.mode,
      outputDir: flags.output,
      iso: flags.iso,
    })
    for (const w of result.warnings) {
      this.logger.warn(`site ${w.site}: ${w.path}: ${w.message}${w.hint ? ` (${w.hint.replace(/\.$/, '')})` : ''}`)
    }
    for (const site of result.sites) {
      this.log(`${site.name}: ${site.file}  sha256:${site.sha256}`)
      if (site.iso) this.log(`${' '.repeat(site.name.length + 2)}${site.iso}  sha256:${site.isoSha256}`)
    }
    this.log(
      `Rendered ${result.sites.length} site${result.sites.length === 1 ? '' : 's'} (${result.mode} mode, local management)${result.warnings.length ? ` with ${result.warnings.length} warning(s)` : ''}.`,
    )
    return result
  }
}
