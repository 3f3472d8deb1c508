import {describe, expect, it} from 'vitest'
import {redactText, redactUrl} from '../../src/util/redact.js'

describe('redactUrl', () => {
  it('masks the password and keeps the user', () => {
    expect(redactUrl('https://alice:s3cret@registry.example.com:5000/v2/')).toBe(
      'https://alice:***@registry.example.com:5000/v2/',
    )
  })
  it('keeps a URL without userinfo or without a password', () => {
    expect(redactUrl('https://registry.example.com/v2/')).toBe('https://registry.example.com/v2/')
    expect(redactUrl('http://token@proxy:3128')).toBe('http://token@proxy:3128')
  })
  it('masks a password that holds reserved characters, percent-encoded', () => {
    expect(redactUrl('http://u:p%40ss%3Aw0rd@proxy:3128')).toBe('http://u:***@proxy:3128')
  })
})

describe('redactText', () => {
  it('masks every URL inside a message and leaves an @ outside a URL alone', () => {
    const text = 'fetch https://a:one@x.io/v2/ failed, then oci://b:two@y.io/charts; mail ops@example.com'
    const out = redactText(text)
    expect(out).not.toContain('one')
    expect(out).not.toContain('two')
    expect(out).toContain('https://a:***@x.io/v2/')
    expect(out).toContain('oci://b:***@y.io/charts')
    expect(out).toContain('ops@example.com')
  })
})
