import {describe, expect, it} from 'vitest'

import {apiHost, InvalidReferenceError, normalizeReference, parseReference} from '../../src/registry/reference.js'

const D = 'sha256:' + 'a'.repeat(64)

describe('image reference normalisation', () => {
  it.each([
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['bitnami/redis:7', 'docker.io/bitnami/redis:7'],
    ['index.docker.io/nginx', 'docker.io/library/nginx:latest'],
    ['registry-1.docker.io/library/nginx:1', 'docker.io/library/nginx:1'],
    ['quay.io/prometheus/prometheus:v2.35.0', 'quay.io/prometheus/prometheus:v2.35.0'],
    ['localhost/app', 'localhost/app:latest'],
    ['127.0.0.1:5000/team/app:1.0', '127.0.0.1:5000/team/app:1.0'],
    [`ghcr.io/a/b@${D}`, `ghcr.io/a/b@${D}`],
    [`ghcr.io/a/b:v1@${D}`, `ghcr.io/a/b:v1@${D}`],
    [
      'container://us-docker.pkg.dev/palette-images/edge/stylus-linux-amd64:v4.6.21',
      'us-docker.pkg.dev/palette-images/edge/stylus-linux-amd64:v4.6.21',
    ],
    ['  nginx:1  ', 'docker.io/library/nginx:1'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeReference(input)).toBe(expected)
  })

  it.each([
    ['', 'empty'],
    ['Nginx', 'lowercase'],
    ['nginx:bad tag', 'white space'],
    ['nginx@sha256:abc', 'digest'],
    ['https://ghcr.io/a/b', 'URL scheme'],
    ['ghcr.io/a/b:', 'tag'],
    ['{{.spectro.pack.x.options.y}}', 'macro'],
    ['ghcr.io/', 'repository'],
    ['ghcr.io/a//b', 'component'],
  ])('rejects %j (%s)', (input, reason) => {
    expect(() => parseReference(input)).toThrow(InvalidReferenceError)
    expect(() => parseReference(input)).toThrow(new RegExp(reason))
  })

  it('maps Docker Hub to its API host', () => {
    expect(apiHost(parseReference('nginx').registry)).toBe('registry-1.docker.io')
    expect(apiHost('ghcr.io')).toBe('ghcr.io')
  })
})
