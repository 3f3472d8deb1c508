import {describe, expect, it} from 'vitest'

import {inSubnet, isHostName, parseCidr, parseIp, parseMask, unusableHostReason} from '../../src/userdata/net.js'

describe('user-data address arithmetic', () => {
  it('parses IPv4 and IPv6 host addresses with a prefix', () => {
    expect(parseCidr('10.42.0.10/24')).toMatchObject({family: 4, prefix: 24})
    expect(parseCidr('fd00:42::10/64')).toMatchObject({family: 6, prefix: 64})
    expect(parseCidr('::ffff:10.0.0.1/120')).toMatchObject({family: 6, prefix: 120})
  })

  it('rejects malformed addresses and prefixes', () => {
    for (const bad of [
      '10.0.0.300/24',
      '10.0.0.1/33',
      '10.0.0.1/',
      '10.0.0.1',
      'fd00::1/129',
      'host/24',
      '10.0.0.1/2a',
    ]) {
      expect(parseCidr(bad), bad).toBeUndefined()
    }
  })

  it('reads masks as prefix length, /prefix or contiguous dotted quad', () => {
    expect(parseMask('255.255.255.0', 4)).toBe(24)
    expect(parseMask('255.255.255.255', 4)).toBe(32)
    expect(parseMask('0.0.0.0', 4)).toBe(0)
    expect(parseMask(24, 4)).toBe(24)
    expect(parseMask('/20', 4)).toBe(20)
    expect(parseMask('255.0.255.0', 4)).toBeUndefined()
    expect(parseMask('33', 4)).toBeUndefined()
    expect(parseMask('64', 6)).toBe(64)
    expect(parseMask('255.255.0.0', 6)).toBeUndefined()
  })

  it('tells whether a gateway is inside the subnet', () => {
    const host = parseCidr('10.42.0.10/24')!
    expect(inSubnet(parseIp('10.42.0.1')!, host)).toBe(true)
    expect(inSubnet(parseIp('10.42.1.1')!, host)).toBe(false)
    expect(inSubnet(parseIp('10.42.1.1')!, parseCidr('10.42.0.10/23')!)).toBe(true)
    expect(inSubnet(parseIp('fd00:42::1')!, parseCidr('fd00:42::10/64')!)).toBe(true)
    expect(inSubnet(parseIp('fd00:43::1')!, parseCidr('fd00:42::10/64')!)).toBe(false)
    expect(inSubnet(parseIp('10.42.0.1')!, parseCidr('fd00:42::10/64')!)).toBe(false)
  })

  it('flags network and broadcast addresses used as a host address', () => {
    expect(unusableHostReason(parseCidr('10.42.0.0/24')!)).toMatch(/network address/)
    expect(unusableHostReason(parseCidr('10.42.0.255/24')!)).toMatch(/broadcast/)
    expect(unusableHostReason(parseCidr('10.42.0.10/24')!)).toBeUndefined()
    expect(unusableHostReason(parseCidr('10.42.0.0/31')!)).toBeUndefined()
  })

  it('checks host names per RFC 1123', () => {
    expect(isHostName('edge-store-0042')).toBe(true)
    expect(isHostName('a.b-c.d')).toBe(true)
    expect(isHostName('-edge')).toBe(false)
    expect(isHostName('edge_1')).toBe(false)
    expect(isHostName('a'.repeat(64))).toBe(false)
  })
})
