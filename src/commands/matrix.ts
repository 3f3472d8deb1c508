import {BaseCommand} from '../base-command.js'
import {matrixDocument} from '../matrix/index.js'

type MatrixDocument = ReturnType<typeof matrixDocument>

export default class Matrix extends BaseCommand<MatrixDocument> {
  static summary = 'Print the Palette Edge supported matrix airpack validates against, with its documentation sources.'

  static description = [
    'Distributions (PXK-E, PXK-E FIPS, K3s, RKE2, Canonical) with their Kubernetes versions, deployment modes, architectures, OS, CNI and CSI packs, the agent upgrade limits, the documented limitations and the validation rule codes.',
    'Each entry names the Palette documentation page (L:) or CanvOS file (C:) it comes from.',
  ].join('\n\n')

  static examples = ['<%= config.bin %> matrix', "<%= config.bin %> matrix --json | jq '.distributions[].pack'"]

  async run(): Promise<MatrixDocument> {
    await this.parse(Matrix)
    const m = matrixDocument()
    const out: string[] = ['Distributions']
    for (const d of m.distributions) {
      const modes = (['appliance', 'agent'] as const)
        .map((mode) => `${mode}: ${d.modes[mode]} (amd64 ${d.arch[mode].amd64}, arm64 ${d.arch[mode].arm64})`)
        .join('; ')
      out.push(`  ${d.pack}${d.fips ? ' [FIPS]' : ''}  ${d.name}`)
      out.push(
        `    Kubernetes ${d.kubernetes.min}–${d.kubernetes.max} (documented ${d.kubernetes.documentedMin}–${d.kubernetes.documentedMax.replace(/\.99$/, '.x')})`,
      )
      out.push(`    ${modes}`)
      out.push(
        `    OS ${d.os.join(', ')}; CNI ${d.cnis.join(', ')} (+ cni-custom); CSI ${d.csis.join(', ')}; provider images ${d.providerDistributions.join(', ')}`,
      )
      for (const n of d.notes) out.push(`    - ${n}`)
      out.push(`    sources: ${d.sources.join('; ')}`)
    }
    out.push('Deployment modes')
    for (const mode of m.modes) {
      out.push(
        `  ${mode.mode}: Kubernetes ${mode.kubernetes.join(', ')}; arch ${mode.arch}; OS ${mode.os}; FIPS ${mode.fips}${mode.minAgentVersion ? `; agent >= ${mode.minAgentVersion}` : ''}`,
      )
      out.push(`    sources: ${mode.sources.join('; ')}`)
    }
    out.push('Packs')
    for (const [title, list] of [
      ['OS', m.osPacks],
      ['CNI', m.cniPacks],
      ['CSI', m.csiPacks],
    ] as const) {
      out.push(
        `  ${title}: ${list.map((p) => p.pack).join(', ')}  (${[...new Set(list.map((p) => p.source))].join('; ')})`,
      )
    }
    out.push('Agent upgrade limits')
    for (const l of m.agentUpgradeLimits)
      out.push(
        `  agent < ${l.agentBelow}: ${l.packs.map((p) => `${p.pack} ${p.versions.join('/')}`).join(', ')}  (${l.source})`,
      )
    out.push('Limitations')
    for (const l of m.limitations) out.push(`  - ${l.text} [${l.rule ?? 'not checkable from a profile'}] (${l.source})`)
    out.push('Rules')
    for (const r of m.rules) out.push(`  ${r.code.padEnd(26)} ${r.severity.padEnd(7)} ${r.summary}`)
    this.log(out.join('\n'))
    return m
  }
}
