import {describe, expect, it} from 'vitest'

import type {BundleManifest} from '../../src/bundle/format.js'
import {contentOf} from '../../src/delta/content.js'
import {diffContents} from '../../src/delta/diff.js'
import {inventoryOf, serializeInventory} from '../../src/delta/inventory.js'
import {content, digest, hex, manifestOf} from '../helpers/delta-fixtures.js'

// The pure comparison under `bundle diff` (and the later --delta-from, patch, verify --base): by digest, never by
// reference string, with the blob figures a blob-level delta would carry.

describe('diffContents', () => {
  // N: app:1 (index a → layers b, c), tool:2 (d → e), old:1 (f → g). Shared base layer b.
  const n = content(
    'n',
    [
      {reference: 'r/app:1', digest: digest('a')},
      {reference: 'r/tool:2', digest: digest('d')},
      {reference: 'r/old:1', digest: digest('f')},
    ],
    {a: 10, b: 1000, c: 200, d: 10, e: 300, f: 10, g: 400},
  )

  it('lists added, removed and changed artifacts by digest, and carries only the blobs the old bundle lacks', () => {
    // N+1: app:1 rebuilt (index h → shared b, new i), tool:2 unchanged, old:1 removed, new:1 added (j → b, k).
    const next = content(
      'n1',
      [
        {reference: 'r/app:1', digest: digest('h')},
        {reference: 'r/tool:2', digest: digest('d')},
        {reference: 'r/new:1', digest: digest('j')},
      ],
      {b: 1000, d: 10, e: 300, h: 10, i: 250, j: 10, k: 50},
    )
    const diff = diffContents(n, next)
    expect(diff.artifacts.added).toEqual([{kind: 'image', reference: 'r/new:1', digest: digest('j')}])
    expect(diff.artifacts.removed).toEqual([{kind: 'image', reference: 'r/old:1', digest: digest('f')}])
    expect(diff.artifacts.changed).toEqual([
      {kind: 'image', reference: 'r/app:1', oldDigest: digest('a'), newDigest: digest('h')},
    ])
    expect(diff.artifacts.retagged).toEqual([])
    expect(diff.artifacts.unchanged).toBe(1)
    // Carried: h, i, j, k; the shared base layer b is borrowed although both images that use it changed or are new.
    expect(diff.blobs.carried).toEqual({count: 4, bytes: 10 + 250 + 10 + 50})
    expect(diff.blobs.borrowed).toEqual({count: 3, bytes: 1000 + 10 + 300})
    expect(diff.blobs.dropped).toEqual({count: 4, bytes: 10 + 200 + 10 + 400})
    expect(diff.blobs.whole).toEqual({count: 7, bytes: 1630})
    expect(diff.metadataBytes).toBe(1000 + 30 + 500)
    expect(diff.identical).toBe(false)
  })

  it('a same digest under a new tag is a retag that carries nothing, not a removal and an addition', () => {
    const next = content(
      'n1',
      [
        {reference: 'r/app:1', digest: digest('a')},
        {reference: 'r/tool:2-stable', digest: digest('d')},
        {reference: 'r/old:1', digest: digest('f')},
      ],
      {a: 10, b: 1000, c: 200, d: 10, e: 300, f: 10, g: 400},
    )
    const diff = diffContents(n, next)
    expect(diff.artifacts.retagged).toEqual([
      {kind: 'image', oldReference: 'r/tool:2', newReference: 'r/tool:2-stable', digest: digest('d')},
    ])
    expect(diff.artifacts.added).toEqual([])
    expect(diff.artifacts.removed).toEqual([])
    expect(diff.artifacts.changed).toEqual([])
    expect(diff.blobs.carried).toEqual({count: 0, bytes: 0})
    expect(diff.identical).toBe(false)
  })

  it('a second reference to content the old bundle already holds is added, with no blob carried', () => {
    const next = content(
      'n1',
      [
        {reference: 'r/app:1', digest: digest('a')},
        {reference: 'r/app:latest', digest: digest('a')},
        {reference: 'r/tool:2', digest: digest('d')},
        {reference: 'r/old:1', digest: digest('f')},
      ],
      {a: 10, b: 1000, c: 200, d: 10, e: 300, f: 10, g: 400},
    )
    const diff = diffContents(n, next)
    expect(diff.artifacts.added).toEqual([{kind: 'image', reference: 'r/app:latest', digest: digest('a')}])
    expect(diff.artifacts.unchanged).toBe(3)
    expect(diff.blobs.carried).toEqual({count: 0, bytes: 0})
  })

  it('a bundle against itself: nothing changed, nothing carried', () => {
    const diff = diffContents(n, n)
    expect(diff.identical).toBe(true)
    expect(diff.artifacts).toEqual({added: [], removed: [], changed: [], retagged: [], unchanged: 3})
    expect(diff.blobs.carried).toEqual({count: 0, bytes: 0})
    expect(diff.blobs.borrowed).toEqual({count: 7, bytes: 1930})
    expect(diff.warnings).toEqual([])
  })

  it('warns when the two bundles are for different platforms', () => {
    const arm = {...n, platform: {os: 'linux', architecture: 'arm64'}}
    expect(diffContents(n, arm).warnings[0]).toMatch(/linux\/amd64.*linux\/arm64/)
  })
})

describe('contentOf refuses a tampered bundle.json (exit 5)', () => {
  const where = {input: 'x.tar.zst', from: 'bundle' as const, bundleJsonSha256: digest('f'), bundleJsonSize: 10}
  it.each([
    [
      'an artifact whose digest is not a listed blob',
      manifestOf('x', [{reference: 'r/a:1', digest: digest('z')}], {a: 1}),
      /names artifact r\/a:1 with digest sha256:[a-f0-9]{64}, which it does not list as a blob/,
    ],
    [
      'a blob named by another digest',
      (() => {
        const m = manifestOf('x', [], {a: 1})
        m.entries[2].sha256 = hex('b')
        return m
      })(),
      /lists blob blobs\/sha256\/[a-f0-9]{64} with sha256 [a-f0-9]{64}: a blob is named by its digest/,
    ],
    [
      'an entry without a size',
      (() => {
        const m = manifestOf('x', [], {a: 1})
        delete (m.entries[2] as {size?: number}).size
        return m
      })(),
      /malformed entry/,
    ],
    [
      'an artifact listed twice',
      manifestOf(
        'x',
        [
          {reference: 'r/a:1', digest: digest('a')},
          {reference: 'r/a:1', digest: digest('a')},
        ],
        {a: 1},
      ),
      /lists image r\/a:1 twice/,
    ],
    [
      'no artifacts list',
      {...manifestOf('x', [], {}), artifacts: undefined} as unknown as BundleManifest,
      /has no artifacts list/,
    ],
  ])('%s', (_what, manifest, message) => {
    let error: unknown
    try {
      contentOf(manifest, where)
    } catch (e) {
      error = e
    }
    expect(error).toMatchObject({exitCode: 5, code: 'ERR_AIRPACK_BUNDLE_INVALID'})
    expect((error as Error).message).toMatch(message)
    expect((error as Error).message).toContain('x.tar.zst')
  })
})

describe('inventory', () => {
  it('is canonical JSON of the identity and bundle.json: equal bundles give byte-identical inventories', () => {
    const m = manifestOf('site', [{reference: 'r/a:1', digest: digest('a')}], {a: 1})
    const one = serializeInventory(inventoryOf({name: 'site', identity: digest('1'), manifest: m}))
    const reordered = JSON.parse(JSON.stringify(m, Object.keys(m).reverse()))
    const two = serializeInventory(inventoryOf({name: 'site', identity: digest('1'), manifest: {...reordered, ...m}}))
    expect(two).toBe(one)
    const parsed = JSON.parse(one)
    expect(Object.keys(parsed)).toEqual([
      'bundleFile',
      'bundleJson',
      'bundleJsonSha256',
      'identity',
      'inventoryVersion',
      'kind',
      'name',
    ])
    expect(parsed).toMatchObject({
      kind: 'airpack-inventory',
      inventoryVersion: 1,
      name: 'site',
      identity: digest('1'),
      bundleFile: 'site.tar.zst',
    })
  })
})
