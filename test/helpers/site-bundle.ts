// A format 2 bundle of the fixture images (test/helpers/bundle-fixtures.ts), written directly (no registry), for
// the site-side tests: `bundle serve` and `bundle push` read it as a store.

import {mkdtemp} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {buildDefinitionTgz} from '../../src/bundle/definition.js'
import {writeBundle} from '../../src/bundle/writer.js'
import type {BundleFormatVersion} from '../../src/bundle/format.js'
import {fixtureLock, type FixtureImage} from './bundle-fixtures.js'

export interface SiteBundle {
  root: string
  /** NAME.tar.zst, or NAME.parts.json when split. */
  bundle: string
  images: FixtureImage[]
  charts: string[]
  identity: string
}

export async function siteBundle(
  options: {formatVersion?: BundleFormatVersion; partSize?: number; name?: string} = {},
): Promise<SiteBundle> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'airpack-site-'))
  const name = options.name ?? 'site'
  const fx = await fixtureLock(path.join(root, 'cache'), {arch: 'amd64', withChart: true})
  const definitionTgz = buildDefinitionTgz({
    name,
    cloudType: 'edge-native',
    profiles: fx.profiles,
    variables: {},
    mtime: 0,
  })
  const pending = await writeBundle({
    name,
    outputDir: path.join(root, 'out'),
    lock: fx.lock,
    store: fx.store,
    profiles: fx.profiles,
    definitionTgz,
    compressionLevel: 3,
    formatVersion: options.formatVersion ?? 2,
    airpackVersion: '0.1.0',
    ...(options.partSize ? {partSize: options.partSize} : {}),
  })
  await pending.commit()
  const file = options.partSize ? `${name}.parts.json` : `${name}.tar.zst`
  return {
    root,
    bundle: path.join(root, 'out', file),
    images: fx.images,
    charts: Object.values(fx.lock.charts).map((c) => c.reference),
    identity: pending.identity,
  }
}
