// The README's main job on a machine with no Internet: build, sign, verify and inspect a real content bundle from
// the example profiles. Upstream registries (quay.io, docker.io, us-docker.pkg.dev, …) are stood in for by one
// local distribution registry, reached through airpack's own `--registries` mirror and rewrite rules, seeded with
// small synthetic multi-arch images under the profiles' image names; the Helm repositories by a local HTTP repo.
// Everything else is the real pipeline: validation, resolution, the cache, the bundle, the signature.
//
//   npm run demo            (outputs in ./output/demo)

import {execFileSync, spawn} from 'node:child_process'
import {mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {stringify} from 'yaml'

import {collectContent, loadProfiles} from '../src/profile/index.js'
import {parseReference} from '../src/registry/reference.js'
import {startHelmRepo} from '../support/helm-repo.js'
import {startRegistry} from '../support/registry.js'
import {layerOf, pushImage} from '../support/seed.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const out = path.join(root, 'output', 'demo')
const arch = 'amd64'
const vars = {grafana_version: '11.3.0'}
const profiles = ['examples/profiles/k3s-calico-infra.json', 'examples/profiles/addon-monitoring.json']

function step(title: string) {
  process.stderr.write(`\n==> ${title}\n`)
}

// Asynchronous on purpose: the stand-in Helm repository is served from this process's event loop.
async function airpack(args: string[]): Promise<void> {
  process.stderr.write(`$ airpack ${args.join(' ')}\n`)
  const child = spawn('node', [path.join(root, 'bin', 'run.js'), ...args], {cwd: root, stdio: 'inherit'})
  const status = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  if (status !== 0) throw new Error(`airpack ${args[0]} ${args[1] ?? ''} exited ${status}`)
}

/** `buildArgs` run again with the CLI of `checkout` (its own cache and output), every output but the report
 *  (times, hosts) compared with cmp. */
async function compareBuild(checkout: string, buildArgs: string[], bundleDir: string, dir: string): Promise<void> {
  step(`Compare: the same build with ${checkout}`)
  const args = [...buildArgs]
  args[args.indexOf('--output') + 1] = path.join(dir, 'bundle')
  args[args.indexOf('--cache-dir') + 1] = path.join(dir, 'cache')
  // Asynchronous like airpack(): the stand-in Helm repository answers from this process's event loop.
  const child = spawn('node', [path.join(checkout, 'bin', 'run.js'), ...args], {cwd: root, stdio: 'inherit'})
  const status = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  if (status !== 0) throw new Error(`${checkout}: bundle build exited ${status}`)
  for (const f of [
    'demo-store.tar.zst',
    'demo-store.tar.zst.sig',
    'demo-store.lock.json',
    'demo-store.inventory.json',
    'demo-store-definition.tgz',
  ]) {
    execFileSync('cmp', [path.join(bundleDir, f), path.join(dir, 'bundle', f)], {stdio: 'inherit'})
    process.stderr.write(`  cmp ${f}: identical\n`)
  }
}

async function main() {
  await rm(out, {recursive: true, force: true})
  await mkdir(out, {recursive: true})

  step('Validate the example profiles against the supported matrix')
  await airpack([
    'profile',
    'validate',
    ...profiles,
    '--arch',
    arch,
    ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}=${v}`]),
  ])

  step('Stand in for the upstream registries and Helm repositories (loopback only)')
  const loaded = await loadProfiles(profiles.map((p) => path.join(root, p)))
  const content = collectContent(loaded, {arch, vars})
  const registry = await startRegistry()
  const charts = await startHelmRepo({charts: content.charts.map((c) => ({name: c.name, version: c.version}))})
  try {
    const base = layerOf({'etc/os-release': 'ID=demo\n'}) // shared by every image, stored once in the bundle
    const hosts = new Set<string>()
    for (const image of content.images) {
      const ref = parseReference(image.reference)
      hosts.add(ref.registry)
      const platforms = image.kind === 'image' ? ['amd64', 'arm64'] : [arch]
      await pushImage(
        registry,
        `${ref.registry}/${ref.repository}`,
        ref.tag ?? 'latest',
        platforms.map((a) => ({
          architecture: a,
          layers: [base, layerOf({[`opt/${ref.repository}/${a}`]: image.reference})],
        })),
        {format: image.kind === 'image' ? 'oci' : 'docker'},
      )
      process.stderr.write(`  seeded ${image.reference} (${platforms.join(', ')})\n`)
    }
    // K3s registries.yaml: every upstream host mirrors to the local registry, its repositories prefixed by the host.
    const mirrors = Object.fromEntries(
      [...hosts].map((h) => [h, {endpoint: [`http://${registry.host}`], rewrite: {'^(.*)$': `${h}/$1`}}]),
    )
    const registriesFile = path.join(out, 'registries.yaml')
    await writeFile(registriesFile, stringify({mirrors}))

    // The add-on profile's Helm repositories point at the local repository in a copy made for the demo.
    const addon = JSON.parse(await readFile(path.join(root, profiles[1]), 'utf8'))
    for (const pack of addon.spec.template.packs) {
      pack.values = pack.values.replaceAll(/repo: https:\/\/\S+/g, `repo: ${charts.url}`)
    }
    const addonCopy = path.join(out, 'addon-monitoring.demo.json')
    await writeFile(addonCopy, JSON.stringify(addon, null, 2))

    step('Make a signing key (RSA, as Palette content signing uses)')
    const key = path.join(out, 'signing-key.pem')
    const pub = path.join(out, 'signing-key.pub.pem')
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072', '-out', key], {
      stdio: 'ignore',
    })
    execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-out', pub])

    step('Build the bundle: resolve, fetch into the cache, write, sign, render per-site user-data')
    const bundleDir = path.join(out, 'bundle')
    const buildArgs = [
      'bundle',
      'build',
      profiles[0],
      addonCopy,
      '--arch',
      arch,
      '--name',
      'demo-store',
      '--output',
      bundleDir,
      '--registries',
      registriesFile,
      '--cache-dir',
      path.join(out, 'cache'),
      '--sign-key',
      key,
      '--sites',
      'examples/sites/sites.yaml',
      // AIRPACK_DEMO_FORMAT=1|2 pins the bundle format (to compare with a checkout whose default differs).
      ...(process.env.AIRPACK_DEMO_FORMAT ? ['--format', process.env.AIRPACK_DEMO_FORMAT] : []),
      ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}=${v}`]),
    ]
    await airpack(buildArgs)

    // AIRPACK_DEMO_COMPARE=<another checkout, built>: the same build with that checkout's CLI against the same
    // servers (a refactoring's byte-identity evidence: ports and keys are only equal within one demo run).
    const other = process.env.AIRPACK_DEMO_COMPARE
    if (other) await compareBuild(other, buildArgs, bundleDir, path.join(out, 'compare'))

    step('At the site: verify the stick with the public key, then look inside')
    await airpack(['bundle', 'verify', path.join(bundleDir, 'demo-store.tar.zst'), '--public-key', pub])
    await airpack(['bundle', 'inspect', path.join(bundleDir, 'demo-store.tar.zst')])

    step('The same signature checked with stock openssl')
    execFileSync(
      'openssl',
      [
        'dgst',
        '-sha256',
        '-verify',
        pub,
        '-signature',
        path.join(bundleDir, 'demo-store.tar.zst.sig'),
        path.join(bundleDir, 'demo-store.tar.zst'),
      ],
      {stdio: 'inherit'},
    )
    process.stderr.write(`\nDone. Outputs are in ${path.relative(root, bundleDir)}/\n`)
  } finally {
    await charts.stop()
    await registry.stop()
  }
}

main().catch((error) => {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`)
  process.exit(1)
})
