import {createHash} from 'node:crypto'

import type {BundleManifest} from '../../src/bundle/format.js'
import {contentOf, type BundleContent} from '../../src/delta/content.js'

// Small bundle.json documents for the pure delta tests (diff, plan, delta.json checks): blobs named by a letter.

// A distinct, well-formed sha256 hex per letter.
export const hex = (c: string) => createHash('sha256').update(c).digest('hex')
export const digest = (c: string) => `sha256:${hex(c)}`

export interface Art {
  kind?: string
  reference: string
  digest: string
}

export function manifestOf(
  name: string,
  artifacts: Art[],
  blobs: Record<string, number>,
  extra: {path: string; size: number}[] = [],
): BundleManifest {
  return {
    formatVersion: 1,
    name,
    platform: {os: 'linux', architecture: 'amd64'},
    airpack: {version: '0.0.0-test'},
    compression: {algorithm: 'zstd', version: '1.5.4', level: 3},
    profiles: [],
    artifacts: artifacts.map((a) => ({
      kind: (a.kind ?? 'image') as 'image',
      reference: a.reference,
      digest: a.digest,
      mediaType: 'x',
      size: 1,
      source: 'r',
      omittedPlatforms: [],
      contentSize: 1,
    })),
    entries: [
      {path: 'oci-layout', size: 30, sha256: hex('0')},
      {path: 'index.json', size: 500, sha256: hex('9')},
      ...extra.map((e) => ({...e, sha256: hex('8')})),
      ...Object.entries(blobs)
        .sort()
        .map(([c, size]) => ({path: `blobs/sha256/${hex(c)}`, size, sha256: hex(c)})),
    ],
    totals: {
      artifacts: artifacts.length,
      images: artifacts.length,
      charts: 0,
      blobs: Object.keys(blobs).length,
      blobBytes: 0,
    },
  }
}

export function content(name: string, artifacts: Art[], blobs: Record<string, number>): BundleContent {
  return contentOf(manifestOf(name, artifacts, blobs), {
    input: `${name}.tar.zst`,
    from: 'bundle',
    bundleJsonSha256: digest('f'),
    bundleJsonSize: 1000,
  })
}
