import {describe, expect, it} from 'vitest'

import {canonicalOrder, mergeFragments} from '../../src/userdata/merge.js'
import {renderCloudConfig} from '../../src/userdata/output.js'

describe('inventory merge rule (PRODUCT.md §9)', () => {
  it('merges maps key by key', () => {
    const merged = mergeFragments(
      {stylus: {site: {tags: {fleet: 'retail'}, network: {httpProxy: 'http://p:3128'}}}},
      {stylus: {site: {tags: {store: '0042'}, hostName: 'edge-1'}}},
    )
    expect(merged).toEqual({
      stylus: {
        site: {tags: {fleet: 'retail', store: '0042'}, network: {httpProxy: 'http://p:3128'}, hostName: 'edge-1'},
      },
    })
  })

  it('lets scalars and lists of the site replace the default', () => {
    const merged = mergeFragments(
      {stylus: {localUI: {port: 5080}, site: {caCerts: ['A', 'B']}}},
      {stylus: {localUI: {port: 5443}, site: {caCerts: ['C']}}},
    )
    expect(merged).toEqual({stylus: {localUI: {port: 5443}, site: {caCerts: ['C']}}})
  })

  it('replaces a map by a scalar and a scalar by a map', () => {
    expect(mergeFragments({a: {b: 1}}, {a: 2})).toEqual({a: 2})
    expect(mergeFragments({a: 2}, {a: {b: 1}})).toEqual({a: {b: 1}})
  })

  it('removes a key set to null', () => {
    expect(
      mergeFragments({stylus: {site: {tags: {tier: 'gold', fleet: 'x'}}}}, {stylus: {site: {tags: {tier: null}}}}),
    ).toEqual({
      stylus: {site: {tags: {fleet: 'x'}}},
    })
  })

  it('layers template, defaults and site in that order, without changing its inputs', () => {
    const template = {stylus: {managementMode: 'local', vip: {skip: false}}}
    const defaults = {stylus: {vip: {skip: true}}}
    const site = {stylus: {debug: true}}
    expect(mergeFragments(template, defaults, site)).toEqual({
      stylus: {managementMode: 'local', vip: {skip: true}, debug: true},
    })
    expect(template).toEqual({stylus: {managementMode: 'local', vip: {skip: false}}})
  })
})

describe('deterministic output', () => {
  it('orders keys canonically whatever the input order', () => {
    const a = {stages: {x: []}, stylus: {site: {b: 1, a: 2}, managementMode: 'local'}, install: {reboot: true}}
    const b = {install: {reboot: true}, stylus: {managementMode: 'local', site: {a: 2, b: 1}}, stages: {x: []}}
    expect(renderCloudConfig(a)).toBe(renderCloudConfig(b))
    expect(Object.keys(canonicalOrder(a, ['install', 'stylus', 'stages']) as object)).toEqual([
      'install',
      'stylus',
      'stages',
    ])
  })

  it('puts #cloud-config first and quotes strings YAML 1.1 would misread', () => {
    const text = renderCloudConfig({stylus: {site: {tags: {store: '0042', open: 'yes', n: 'on'}}}}, 'site x')
    expect(text.split('\n').slice(0, 2)).toEqual(['#cloud-config', '# site x'])
    expect(text).toContain('store: "0042"')
    expect(text).toContain('open: "yes"')
    expect(text).toContain('"n": "on"')
  })

  it('writes multi-line strings as literal blocks and never folds long lines', () => {
    const long = 'x'.repeat(300)
    const text = renderCloudConfig({
      stylus: {site: {caCerts: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], name: long}},
    })
    expect(text).toContain('- |\n')
    expect(text).toContain(`name: ${long}\n`)
  })
})
