import {describe, expect, it} from 'vitest'

import {ExitCode} from '../../src/errors.js'
import {parseRetryAfter} from '../../src/registry/http.js'
import {proxyFor, readProxyEnv} from '../../src/registry/proxy.js'

const via = (url: string, env: NodeJS.ProcessEnv) => proxyFor(new URL(url), readProxyEnv(env))?.href

describe('proxy selection from the environment', () => {
  it('HTTPS_PROXY for https, HTTP_PROXY for http, ALL_PROXY for either when the specific one is unset', () => {
    const env = {HTTPS_PROXY: 'http://tls-proxy:3128', HTTP_PROXY: 'http://plain-proxy:3128'}
    expect(via('https://registry.example.com/v2/', env)).toBe('http://tls-proxy:3128/')
    expect(via('http://charts.example.com/index.yaml', env)).toBe('http://plain-proxy:3128/')
    expect(via('https://r.example.com/', {ALL_PROXY: 'http://all:1'})).toBe('http://all:1/')
    expect(via('https://r.example.com/', {})).toBeUndefined()
  })

  it('lower case wins over upper case; an empty value is unset; a bare host:port means http://', () => {
    expect(via('https://r.example.com/', {https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2'})).toBe(
      'http://lower:1/',
    )
    expect(via('https://r.example.com/', {https_proxy: '', HTTPS_PROXY: 'http://upper:2'})).toBe('http://upper:2/')
    expect(via('https://r.example.com/', {HTTPS_PROXY: 'proxy.corp:8080'})).toBe('http://proxy.corp:8080/')
  })

  it('keeps user:pass@ for the Proxy-Authorization header', () => {
    expect(via('https://r.example.com/', {HTTPS_PROXY: 'http://u%40corp:p%3Ass@proxy:1'})).toBe(
      'http://u%40corp:p%3Ass@proxy:1/',
    )
  })

  it('NO_PROXY: names cover subdomains, leading dots and *., host:port, IPs, CIDR blocks, IPv6, and *', () => {
    const env = (no: string) => ({HTTPS_PROXY: 'http://p:1', HTTP_PROXY: 'http://p:1', NO_PROXY: no})
    expect(via('https://registry.corp.example/', env('corp.example'))).toBeUndefined()
    expect(via('https://corp.example/', env('.corp.example'))).toBeUndefined()
    expect(via('https://a.corp.example/', env('*.corp.example'))).toBeUndefined()
    expect(via('https://notcorp.example/', env('corp.example'))).toBe('http://p:1/')
    expect(via('https://harbor.local:8443/', env('harbor.local:8443'))).toBeUndefined()
    expect(via('https://harbor.local/', env('harbor.local:8443'))).toBe('http://p:1/')
    expect(via('http://10.1.2.3:5000/', env('10.0.0.0/8'))).toBeUndefined()
    expect(via('http://11.1.2.3:5000/', env('10.0.0.0/8'))).toBe('http://p:1/')
    expect(via('http://127.0.0.1:5000/', env('127.0.0.1'))).toBeUndefined()
    expect(via('http://[::1]:5000/', env('::1'))).toBeUndefined()
    expect(via('https://anything/', env('a, b *'))).toBeUndefined()
    expect(via('https://REGISTRY.Corp.Example/', {HTTPS_PROXY: 'http://p:1', no_proxy: 'corp.EXAMPLE'})).toBeUndefined()
  })

  it('loopback is not exempt unless NO_PROXY says so (a proxy that is set is used)', () => {
    expect(via('http://127.0.0.1:5000/v2/', {HTTP_PROXY: 'http://p:1'})).toBe('http://p:1/')
    expect(via('https://localhost:5000/v2/', {HTTPS_PROXY: 'http://p:1'})).toBe('http://p:1/')
  })

  it('a proxy URL that is not http:// or not a URL is a usage error (exit 2) that masks the password', () => {
    for (const value of [
      'https://u:topsecret@proxy:443',
      'socks5://u:topsecret@proxy:1080',
      'http://u:topsecret@[bad',
    ]) {
      let error: unknown
      try {
        readProxyEnv({HTTPS_PROXY: value})
      } catch (e) {
        error = e
      }
      expect((error as {exitCode: number}).exitCode, value).toBe(ExitCode.usage)
      expect((error as Error).message, value).toContain('HTTPS_PROXY=')
      expect((error as Error).message, value).not.toContain('topsecret')
    }
  })
})

describe('Retry-After', () => {
  it('seconds or an HTTP date, in ms', () => {
    expect(parseRetryAfter('3')).toBe(3000)
    expect(parseRetryAfter(' 0 ')).toBe(0)
    expect(parseRetryAfter('Sun, 06 Dec 2026 22:00:10 GMT', Date.parse('Sun, 06 Dec 2026 22:00:00 GMT'))).toBe(10_000)
    expect(parseRetryAfter('soon')).toBeUndefined()
    expect(parseRetryAfter(null)).toBeUndefined()
  })
})
