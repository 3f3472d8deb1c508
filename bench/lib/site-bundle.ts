// The bundle the site benchmarks (bench/push.ts, bench/serve.ts) work on: bench content (support/bench-content.ts,
// incompressible layers, a base layer shared by every image) seeded into a loopback registry and built into a
// format 2 bundle by the CLI. References name `registry.example.com` (through a mirror to the loopback registry),
// because pushed and served repositories are HOST/PATH and a port's colon is not allowed in a repository name.

import {execFileSync} from 'node:child_process'
import {rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {benchProfile, seedBenchContent} from '../../support/bench-content.js'
import {startRegistry} from '../../support/registry.js'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BIN = path.join(ROOT, 'bin', 'run.js')
export const SOURCE_HOST = 'registry.example.com'

export interface SiteBenchBundle {
  bundle: string
  references: string[]
  /** Bytes of distinct blobs in the bundle. */
  blobBytes: number
}

export async function buildSiteBundle(
  work: string,
  size: number,
  log: (line: string) => void,
): Promise<SiteBenchBundle> {
  const upstream = await startRegistry()
  try {
    const content = await seedBenchContent(upstream, {bytesPerPlatform: size, platforms: ['amd64'], images: 4, log})
    const references = content.images.map((i) => i.reference.replace(upstream.host, SOURCE_HOST))
    const profile = path.join(work, 'profile.json')
    await writeFile(profile, JSON.stringify(benchProfile(references, 'site-bench')))
    const registries = path.join(work, 'upstream.yaml')
    await writeFile(registries, `mirrors:\n  ${SOURCE_HOST}:\n    endpoint: ["${upstream.url}"]\n`)
    const cache = path.join(work, 'cache')
    execFileSync(
      'node',
      [BIN, 'bundle', 'build', profile, '--arch', 'amd64', '--name', 'site', '--format', '2'].concat([
        '--registries',
        registries,
        '--cache-dir',
        cache,
        '--output',
        path.join(work, 'out'),
      ]),
      {stdio: ['ignore', 'ignore', 'inherit']},
    )
    // The cache is not needed any more: keep the disk for the registries the benchmarks fill.
    await rm(cache, {recursive: true, force: true})
    return {bundle: path.join(work, 'out', 'site.tar.zst'), references, blobBytes: content.bytesPerPlatform.amd64!}
  } finally {
    await upstream.stop()
  }
}
