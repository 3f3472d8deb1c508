// Shared set-up of the fault tests (fault-*.test.ts): a real registry seeded with multi-arch images whose layers
// are a few MiB of real tar.gz (a base layer shared by all images, per-image layers), the fault proxy in front of
// it, an exported profile naming the images through the proxy, and helpers to run `airpack bundle build` through
// the built CLI and to inspect what it left behind.

import {execa, type ResultPromise} from 'execa'
import {createHash} from 'node:crypto'
import {createReadStream, existsSync} from 'node:fs'
import {mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {seedBenchContent, benchProfile, type BenchContent} from './bench-content.js'
import {PROJECT_ROOT, runCli, type CliResult} from './cli.js'
import {startFaultProxy, type FaultProxy} from './fault-proxy.js'
import {startRegistry, type RegistryOptions, type TestRegistry} from './registry.js'

export const BUNDLE_NAME = 'fault'
/** Files `bundle build` publishes under final names (PRODUCT.md §3). */
export const FINAL_NAME = new RegExp(
  `^${BUNDLE_NAME}(\\.tar\\.zst(\\.\\d{3})?|\\.tar\\.zst\\.sig|\\.parts\\.json|\\.lock\\.json|\\.inventory\\.json|-definition\\.tgz|\\.report\\.json)$`,
)

export interface FaultFixture {
  registry: TestRegistry
  proxy: FaultProxy
  content: BenchContent
  /** Image references through the proxy. */
  references: string[]
  profile: string
  dir: string
  /** A fresh directory under the fixture's temp dir. */
  fresh(name: string): Promise<string>
  build(options: {
    cache: string
    output: string
    extra?: string[]
    env?: Record<string, string>
    json?: boolean
  }): Promise<CliResult>
  /** Start a build without waiting for it (to signal it mid-way). */
  spawnBuild(options: {cache: string; output: string; extra?: string[]}): ResultPromise
  buildArgs(options: {cache: string; output: string; extra?: string[]}): string[]
  stop(): Promise<void>
}

export async function startFaultFixture(
  options: {bytesPerPlatform?: number; images?: number; registry?: RegistryOptions; seed?: string} = {},
): Promise<FaultFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-fault-'))
  const registry = await startRegistry(options.registry)
  const content = await seedBenchContent(registry, {
    bytesPerPlatform: options.bytesPerPlatform ?? 6 * 1024 * 1024,
    platforms: ['amd64', 'arm64'],
    images: options.images ?? 3,
    layersPerImage: 2,
    seed: options.seed ?? 'airpack-fault-tests',
    prefix: 'fault',
    ...(options.registry?.htpasswd
      ? {auth: Object.entries(options.registry.htpasswd).map(([username, password]) => ({username, password}))[0]}
      : {}),
  })
  const proxy = await startFaultProxy(registry.url)
  const references = content.images.map((i) => i.reference.replace(registry.host, proxy.host))
  const profile = path.join(dir, 'fault-profile.json')
  await writeFile(profile, JSON.stringify(benchProfile(references, 'fault-tests'), null, 2))
  let counter = 0
  const buildArgs = ({cache, output, extra = []}: {cache: string; output: string; extra?: string[]}) => [
    'bundle',
    'build',
    profile,
    '--arch',
    'amd64',
    '--name',
    BUNDLE_NAME,
    '--insecure-registry',
    proxy.host,
    '--cache-dir',
    cache,
    '--output',
    output,
    ...extra,
  ]
  return {
    registry,
    proxy,
    content,
    references,
    profile,
    dir,
    async fresh(name) {
      const p = path.join(dir, `${name}-${++counter}`)
      await rm(p, {recursive: true, force: true})
      return p
    },
    buildArgs,
    build(o) {
      return runCli([...buildArgs(o), ...(o.json ? ['--json'] : [])], {
        env: {SOURCE_DATE_EPOCH: '1700000000', ...o.env},
        timeout: 240_000,
      })
    },
    spawnBuild(o) {
      return execa('node', [path.join(PROJECT_ROOT, 'bin', 'run.js'), ...buildArgs(o)], {
        cwd: PROJECT_ROOT,
        env: {NO_COLOR: '1', DEBUG: undefined, SOURCE_DATE_EPOCH: '1700000000'},
        reject: false,
        stdin: 'ignore',
        timeout: 240_000,
      })
    },
    async stop() {
      await proxy.stop()
      await registry.stop()
      await rm(dir, {recursive: true, force: true})
    },
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Every file under `dir` (relative paths), or [] if it does not exist. */
export async function listFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const e of await readdir(dir, {withFileTypes: true, recursive: true})) {
    if (!e.isDirectory()) out.push(path.relative(dir, path.join(e.parentPath, e.name)))
  }
  return out.sort()
}

/** Names under `dir` that look like finished outputs. */
export async function finalOutputs(dir: string): Promise<string[]> {
  return (await listFiles(dir)).filter((f) => FINAL_NAME.test(path.basename(f)) || f.startsWith('user-data/'))
}

/** Cache blobs whose content does not hash to their name (must always be empty). */
export async function unverifiedCacheBlobs(cache: string): Promise<string[]> {
  const blobs = path.join(cache, 'blobs', 'sha256')
  if (!existsSync(blobs)) return []
  const bad: string[] = []
  for (const name of await readdir(blobs)) {
    if ((await sha256File(path.join(blobs, name))) !== name) bad.push(name)
  }
  return bad
}

export async function cachedDigests(cache: string): Promise<Set<string>> {
  const blobs = path.join(cache, 'blobs', 'sha256')
  if (!existsSync(blobs)) return new Set()
  return new Set((await readdir(blobs)).map((n) => `sha256:${n}`))
}

/** Layer digests of the amd64 images (what a build for amd64 must download). */
export function amd64Layers(content: BenchContent): string[] {
  return [...new Set(content.images.flatMap((i) => i.platforms.amd64!.layerDigests))]
}

/** Poll until `check` returns a value (or fail after `ms`). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
