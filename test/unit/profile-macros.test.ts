// Macro resolution and values parsing in isolation.

import {describe, expect, it} from 'vitest'

import {macroContext, resolveMacros} from '../../src/profile/macros.js'
import {packOption, parseValues, scalarSource} from '../../src/profile/values.js'
import type {LoadedProfile, PackModel} from '../../src/profile/types.js'

function profile(
  packs: Partial<PackModel>[],
  variables: LoadedProfile['variables'] = [],
  definitionVars?: Record<string, string>,
): LoadedProfile {
  return {
    file: 'p.json',
    sha256: '',
    name: 'p',
    version: '1',
    type: 'infra',
    cloudType: 'edge-native',
    variables,
    document: {},
    packs: packs.map((p) => ({name: 'x', type: 'spectro', layer: 'addon', version: '1', values: '', ...p})),
    ...(definitionVars ? {definitionVars} : {}),
  }
}

const os = {
  name: 'edge-native-byoi',
  layer: 'os',
  values: [
    'options:',
    "  system.uri: '{{ .spectro.pack.edge-native-byoi.options.system.registry }}/ubuntu:{{.spectro.pack.edge-native-byoi.options.system.k8sDistribution}}-{{.spectro.system.kubernetes.version}}-{{.spectro.var.tag}}'",
    '  system.registry: ttl.sh',
    '  system.k8sDistribution: k3s',
    '  loop.a: "{{.spectro.pack.edge-native-byoi.options.loop.b}}"',
    '  loop.b: "{{.spectro.pack.edge-native-byoi.options.loop.a}}"',
    '  nested:',
    '    key: from-a-map',
  ].join('\n'),
}
const k8s = {name: 'edge-k3s', layer: 'k8s', version: '1.32.1'}

describe('resolveMacros', () => {
  it('composes system.uri from other options, the Kubernetes version and a variable', () => {
    const p = profile([os, k8s], [{name: 'tag', defaultValue: 'v4.7.9-demo'}])
    const r = resolveMacros('{{.spectro.pack.edge-native-byoi.options.system.uri}}', macroContext([p]), p)
    expect(r).toEqual({value: 'ttl.sh/ubuntu:k3s-1.32.1-v4.7.9-demo', problems: []})
  })

  it('--var beats the cluster definition value, which beats defaultValue', () => {
    const p = profile([os, k8s], [{name: 'tag', defaultValue: 'default'}], {tag: 'stored'})
    expect(resolveMacros('{{.spectro.var.tag}}', macroContext([p]), p).value).toBe('stored')
    expect(resolveMacros('{{.spectro.var.tag}}', macroContext([p], {tag: 'flag'}), p).value).toBe('flag')
  })

  it('reports a cycle instead of looping', () => {
    const p = profile([os])
    const r = resolveMacros('{{.spectro.pack.edge-native-byoi.options.loop.a}}', macroContext([p]), p)
    expect(r.value).toBeUndefined()
    expect(r.problems.join(' ')).toMatch(/nest deeper than 8 levels/)
  })

  it('reads nested option maps as well as literal dotted keys', () => {
    const p = profile([os])
    expect(resolveMacros('{{.spectro.pack.edge-native-byoi.options.nested.key}}', macroContext([p]), p).value).toBe(
      'from-a-map',
    )
  })

  it('names every unresolvable macro', () => {
    const p = profile([os])
    const r = resolveMacros(
      '{{.spectro.var.nope}}:{{.spectro.pack.missing.options.x}}:{{.spectro.system.kubernetes.version}}:{{ .spectro.system.cluster.kubevip }}',
      macroContext([p]),
      p,
    )
    expect(r.problems).toHaveLength(4)
    expect(r.problems[0]).toContain('variable "nope" is not declared')
    expect(r.problems[1]).toContain('no pack named "missing"')
    expect(r.problems[2]).toContain('no profile has a Kubernetes layer')
    expect(r.problems[3]).toContain('cannot resolve this macro')
  })

  it('leaves text without macros alone', () => {
    const p = profile([])
    expect(resolveMacros('docker.io/library/nginx:1.27', macroContext([p]), p).value).toBe(
      'docker.io/library/nginx:1.27',
    )
  })
})

describe('parseValues', () => {
  it('keeps scalars as written (version 1.10 is not the number 1.1)', () => {
    const pack: PackModel = {name: 'x', type: 'spectro', layer: 'addon', version: '1', values: 'options:\n  v: 1.10\n'}
    const v = parseValues(pack)
    expect(scalarSource(v, ['options', 'v'], v.data!.options && (v.data!.options as any).v)).toBe('1.10')
    expect(packOption(v, 'v')).toEqual({value: '1.10', line: 2})
  })

  it('reports a values string that is not a mapping', () => {
    const pack: PackModel = {name: 'x', type: 'spectro', layer: 'addon', version: '1', values: '- a\n- b\n'}
    expect(parseValues(pack).error?.message).toContain('not a YAML mapping')
  })

  it('treats empty values as no content', () => {
    const pack: PackModel = {name: 'x', type: 'spectro', layer: 'addon', version: '1', values: '  \n'}
    expect(parseValues(pack).data).toEqual({})
  })
})
