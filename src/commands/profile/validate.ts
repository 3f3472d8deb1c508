import {BaseCommand} from '../../base-command.js'
import {profileArgs, profileFlags, parseVars} from '../../flags.js'
import {loadProfiles, renderReport, validateProfiles, type ValidationReport} from '../../profile/index.js'

export default class ProfileValidate extends BaseCommand<ValidationReport> {
  static summary = 'Check exported profiles against the Palette Edge supported matrix before anything is downloaded.'

  static description = [
    'Reads profiles exported from Palette (.json or .yaml, as "Export Profile" writes them) or a cluster definition (.tgz), and checks them as one cluster: cloud type, layers, duplicate packs, distribution × Kubernetes version × deployment mode × architecture × OS, CNI and CSI, FIPS, agent version limits, K3s/RKE2 built-ins, content tags and {{.spectro.…}} macros.',
    'Every finding has a stable code (listed by `airpack matrix`), a severity, the file, pack and line, and a fix hint. Errors mean the cluster cannot work as specified; warnings mark what the documentation leaves open.',
    'Exit codes: 0 no errors (warnings allowed), 3 errors found or not a profile, 2 unreadable or malformed input.',
  ].join('\n\n')

  static examples = [
    '<%= config.bin %> profile validate examples/profiles/k3s-calico-infra.json examples/profiles/addon-monitoring.json --arch amd64',
    '<%= config.bin %> profile validate examples/profiles/pxke-agent-infra.yaml --arch amd64 --mode agent --json',
    '<%= config.bin %> profile validate examples/profiles/cluster-definition.tgz --arch amd64 --var grafana_version=11.4.0',
  ]

  static args = profileArgs

  static strict = false

  static flags = profileFlags()

  async run(): Promise<ValidationReport> {
    const {argv, flags} = await this.parse(ProfileValidate)
    const vars = parseVars(flags.var)
    const profiles = await loadProfiles(argv as string[])
    const report = validateProfiles(profiles, {arch: flags.arch, mode: flags.mode, vars})
    this.log(renderReport(report))
    if (!report.valid) this.finishWith(report, 3)
    return report
  }
}
