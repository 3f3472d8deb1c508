// Byte identity of bundles between two airpack checkouts (a refactoring must not change a byte of what is built):
// seeds one loopback registry with the benchmark's content, builds the same bundle with each checkout's CLI into
// its own empty cache (cold: the fetch runs), then again from that cache (warm), and compares every output with
// cmp.
//
//   node --import tsx bench/identity.ts --base /tmp/base [--size 1G] [--format 1|2] [--work-dir DIR] [--keep]
//
// `--base` is the other checkout (built: `npm run build` there); this checkout is the other side. Exit 0 when all
// bundles are identical, 1 otherwise.

import {execFileSync} from 'node:child_process'
import {mkdir, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {benchProfile, parseSize, seedBenchContent} from '../support/bench-content.js'
import {startRegistry} from '../support/registry.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

const {values: args} = parseArgs({
  options: {
    base: {type: 'string'},
    size: {type: 'string', default: '1G'},
    format: {type: 'string', default: '1'},
    'work-dir': {type: 'string'},
    keep: {type: 'boolean', default: false},
  },
})

function log(text: string): void {
  process.stderr.write(`${text}\n`)
}

/** One `bundle build` with the CLI of `checkout`; returns the output directory. */
function build(checkout: string, profile: string, registry: string, cache: string, output: string): void {
  const started = Date.now()
  execFileSync(
    'node',
    [
      path.join(checkout, 'bin', 'run.js'),
      ...['bundle', 'build', profile, '--arch', 'amd64', '--name', 'identity'],
      ...['--insecure-registry', registry, '--cache-dir', cache, '--output', output],
      '--format',
      args.format!,
    ],
    {stdio: ['ignore', 'ignore', 'inherit']},
  )
  log(`  ${checkout}: ${((Date.now() - started) / 1000).toFixed(1)} s → ${output}`)
}

/** The bundle files of a build (the report names hosts and times, so it is left out). */
async function bundleFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => !f.endsWith('.report.json')).sort()
}

async function compare(a: string, b: string): Promise<boolean> {
  const [fa, fb] = [await bundleFiles(a), await bundleFiles(b)]
  if (fa.join('\n') !== fb.join('\n')) {
    log(`  different files: ${fa.join(', ')} vs ${fb.join(', ')}`)
    return false
  }
  let same = true
  for (const f of fa) {
    try {
      execFileSync('cmp', [path.join(a, f), path.join(b, f)], {stdio: 'inherit'})
      log(`  cmp ${f}: identical`)
    } catch {
      same = false
    }
  }
  return same
}

async function main(): Promise<number> {
  if (!args.base) throw new Error('--base <other checkout> is required')
  const work = args['work-dir'] ?? (await mkdtemp(path.join(os.tmpdir(), 'airpack-identity-')))
  await mkdir(work, {recursive: true})
  const registry = await startRegistry()
  try {
    const content = await seedBenchContent(registry, {
      bytesPerPlatform: parseSize(args.size!),
      platforms: ['amd64', 'arm64'],
      log,
    })
    const profile = path.join(work, 'profile.json')
    await writeFile(profile, JSON.stringify(benchProfile(content.images.map((i) => i.reference)), null, 2))
    let same = true
    for (const [side, checkout] of [
      ['base', path.resolve(args.base)],
      ['this', ROOT],
    ] as const) {
      log(`${side}: cold and warm builds`)
      build(checkout, profile, registry.host, path.join(work, `${side}-cache`), path.join(work, `${side}-cold`))
      build(checkout, profile, registry.host, path.join(work, `${side}-cache`), path.join(work, `${side}-warm`))
    }
    for (const [a, b] of [
      ['base-cold', 'this-cold'],
      ['base-warm', 'this-warm'],
      ['base-cold', 'base-warm'],
    ]) {
      log(`${a} vs ${b}`)
      same = (await compare(path.join(work, a), path.join(work, b))) && same
    }
    log(same ? 'IDENTICAL' : 'DIFFERENT')
    return same ? 0 : 1
  } finally {
    await registry.stop()
    if (!args.keep) await rm(work, {recursive: true, force: true})
  }
}

process.exitCode = await main()
