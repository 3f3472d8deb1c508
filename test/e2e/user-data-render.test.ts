import {existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {PROJECT_ROOT, runCli} from '../helpers/cli.js'

// `airpack user-data render` as a user runs it (built CLI): exit codes 0, 2, 3, --json, and the files.

const EXAMPLE = path.join(PROJECT_ROOT, 'examples', 'sites', 'sites.yaml')
const scratch: string[] = []
async function tmp(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-ud-e2e-'))
  scratch.push(dir)
  return dir
}
afterAll(async () => {
  for (const dir of scratch) await rm(dir, {recursive: true, force: true})
})

describe('airpack user-data render', () => {
  it('renders the README example: three sites, exit 0', async () => {
    const out = await tmp()
    const r = await runCli(['user-data', 'render', '--sites', EXAMPLE, '--output', out])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toContain('Rendered 3 sites (appliance mode, local management).')
    for (const site of ['store-0042', 'store-0043', 'warehouse-01']) {
      const text = readFileSync(path.join(out, site, 'user-data'), 'utf8')
      expect(text.startsWith('#cloud-config\n')).toBe(true)
      expect(text).toContain('managementMode: local')
    }
  })

  it('prints one JSON document with --json, with agent mode and ISO', async () => {
    const out = await tmp()
    const r = await runCli([
      'user-data',
      'render',
      '--sites',
      EXAMPLE,
      '--mode',
      'agent',
      '--output',
      out,
      '--iso',
      '--json',
    ])
    expect(r.exitCode, r.stderr).toBe(0)
    const result = r.json()
    expect(result.mode).toBe('agent')
    expect(result.sites.map((s: {name: string}) => s.name)).toEqual(['store-0042', 'store-0043', 'warehouse-01'])
    for (const site of result.sites) {
      expect(site.file).toBe(path.join(out, site.name, 'user-data'))
      expect(site.sha256).toMatch(/^[a-f0-9]{64}$/)
      expect(existsSync(site.iso)).toBe(true)
    }
    expect(readFileSync(result.sites[0].file, 'utf8')).toContain('reboot: true')
    // Registry passwords belong in the user-data files only, never in the report.
    expect(r.stdout).not.toContain('site-0043-pull')
  })

  it('exits 3 listing every problem with its site and key path, and writes nothing', async () => {
    const dir = await tmp()
    const sites = path.join(dir, 'sites.yaml')
    writeFileSync(
      sites,
      [
        'defaults:',
        '  stylus: {site: {network: {httpProxy: "http://alice:s3cr3tpass@proxy:3128"}}}',
        'sites:',
        '  - name: store-0042',
        '    stylus: {site: {network: {interfaces: {enp1s0: {type: static, ipAddress: 10.0.0.300/24}}}}}',
        '  - name: store-0043',
        '    stylus: {site: {caCerts: ["-----BEGIN CERTIFICATE-----\\nnope\\n-----END CERTIFICATE-----"]}, managementMod: local}',
        '',
      ].join('\n'),
    )
    const out = path.join(dir, 'out')
    const human = await runCli(['user-data', 'render', '--sites', sites, '--output', out])
    expect(human.exitCode).toBe(3)
    expect(human.stdout).toBe('')
    expect(human.stderr).toContain(
      "site store-0042: stylus.site.network.interfaces.enp1s0.ipAddress: '10.0.0.300/24' is not an IPv4 address with a /mask",
    )
    expect(human.stderr).toContain('site store-0043: stylus.site.caCerts[0]: certificate is malformed PEM')
    expect(human.stderr).toContain('site store-0043: stylus.managementMod: is not a key of stylus')
    expect(human.stderr).toContain('Did you mean `managementMode`?')
    expect(human.stderr).toContain('(ERR_AIRPACK_SITES_INVALID, exit 3)')
    expect(human.stderr).not.toMatch(/at .*\.js:\d+/)
    expect(existsSync(out)).toBe(false)

    const json = await runCli(['user-data', 'render', '--sites', sites, '--output', out, '--json'])
    expect(json.exitCode).toBe(3)
    const envelope = json.json()
    expect(envelope).toMatchObject({status: 'error', exitCode: 3, code: 'ERR_AIRPACK_SITES_INVALID'})
    expect(envelope.details.problems).toHaveLength(3)
    expect(envelope.details.findings[0]).toMatchObject({
      site: 'store-0042',
      path: 'stylus.site.network.interfaces.enp1s0.ipAddress',
      line: 5,
    })
    expect(json.stdout + json.stderr).not.toContain('s3cr3tpass')
  })

  it('exits 0 with warnings on stderr, naming the site and key', async () => {
    const dir = await tmp()
    const sites = path.join(dir, 'sites.yaml')
    writeFileSync(sites, 'sites:\n  - name: old-style\n    stylus: {installationMode: airgap}\n')
    const r = await runCli(['user-data', 'render', '--sites', sites, '--output', path.join(dir, 'out')])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stderr).toContain('Warning: site old-style: stylus.installationMode: is deprecated')
    expect(r.stdout).toContain('Rendered 1 site (appliance mode, local management) with 1 warning(s).')
    const json = await runCli(['user-data', 'render', '--sites', sites, '--output', path.join(dir, 'out'), '--json'])
    expect(json.json().warnings).toEqual([
      expect.objectContaining({site: 'old-style', path: 'stylus.installationMode', severity: 'warning'}),
    ])
  })

  it('exits 2 for an unreadable inventory or a bad flag', async () => {
    const out = await tmp()
    const missing = await runCli(['user-data', 'render', '--sites', path.join(out, 'nope.yaml'), '--output', out])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toContain('cannot read the site inventory')
    const json = await runCli([
      'user-data',
      'render',
      '--sites',
      path.join(out, 'nope.yaml'),
      '--output',
      out,
      '--json',
    ])
    expect(json.exitCode).toBe(2)
    expect(json.json()).toMatchObject({status: 'error', code: 'ERR_AIRPACK_SITES_UNREADABLE'})
    const badMode = await runCli(['user-data', 'render', '--sites', EXAMPLE, '--output', out, '--mode', 'edge'])
    expect(badMode.exitCode).toBe(2)
    const noOutput = await runCli(['user-data', 'render', '--sites', EXAMPLE])
    expect(noOutput.exitCode).toBe(2)
  })

  it('exits 2 naming the package when --iso has no ISO tool', async () => {
    const root = await tmp()
    const out = path.join(root, 'out')
    // A PATH holding node and nothing else: no xorriso, no genisoimage.
    const bin = path.join(root, 'bin')
    mkdirSync(bin)
    symlinkSync(process.execPath, path.join(bin, 'node'))
    const r = await runCli(['user-data', 'render', '--sites', EXAMPLE, '--output', out, '--iso'], {env: {PATH: bin}})
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('xorriso')
    expect(r.stderr).toContain('apt-get install xorriso')
    expect(existsSync(out)).toBe(false)
  })
})
