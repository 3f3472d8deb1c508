import {execa} from 'execa'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {mkdtemp, readdir, rm, symlink} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {parse, stringify} from 'yaml'

import {InvalidInputError, UsageError} from '../../src/errors.js'
import {renderSites, validateUserData} from '../../src/userdata/index.js'

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures', 'userdata')
const SITES = path.join(FIXTURES, 'sites.yaml')
const EXAMPLE = path.resolve(import.meta.dirname, '..', '..', 'examples', 'sites', 'sites.yaml')
const UPDATE = process.env.UPDATE_GOLDEN === '1'

const scratch: string[] = []
async function tmp(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-ud-'))
  scratch.push(dir)
  return dir
}
afterAll(async () => {
  for (const dir of scratch) await rm(dir, {recursive: true, force: true})
})

describe('renderSites golden files', () => {
  for (const mode of ['appliance', 'agent'] as const) {
    it(`renders every site of the fixture inventory as its golden file (${mode})`, async () => {
      const out = await tmp()
      const result = await renderSites({sitesFile: SITES, mode, outputDir: out})
      expect(result.sites.map((s) => s.name)).toEqual(['alpha', 'beta', 'gamma'])
      for (const site of result.sites) {
        expect(site.file).toBe(path.join(out, site.name, 'user-data'))
        const text = readFileSync(site.file, 'utf8')
        const golden = path.join(FIXTURES, 'golden', mode, site.name, 'user-data')
        if (UPDATE) {
          mkdirSync(path.dirname(golden), {recursive: true})
          writeFileSync(golden, text)
        }
        expect(text, `${golden} (UPDATE_GOLDEN=1 to regenerate)`).toBe(readFileSync(golden, 'utf8'))
        expect(validateUserData(text).findings.filter((f) => f.severity === 'error')).toEqual([])
      }
    })
  }

  it('applies the mode template under defaults and sites', async () => {
    const out = await tmp()
    const {sites} = await renderSites({sitesFile: SITES, mode: 'agent', outputDir: out})
    const alpha = parse(readFileSync(sites[0].file, 'utf8'))
    expect(alpha.install).toEqual({poweroff: false, reboot: true})
    expect(alpha.stylus.managementMode).toBe('local')
    expect(alpha.stylus.vip).toEqual({skip: false})
    // gamma's own stages.initramfs list replaces the default's (lists replace); its boot.after is added.
    const gamma = parse(readFileSync(sites[2].file, 'utf8'))
    expect(Object.keys(gamma.stages.initramfs[0].users)).toEqual(['tech'])
    expect(gamma.stages['boot.after'][0].files[0].permissions).toBe(0o644)
    // beta removed a default tag and the proxies with null.
    const beta = parse(readFileSync(sites[1].file, 'utf8'))
    expect(beta.stylus.site.tags).toEqual({fleet: 'retail'})
    expect(beta.stylus.site.network.httpProxy).toBeUndefined()
    expect(beta.stylus.externalRegistries).toBeUndefined()
  })

  it('reports sha256 of each file', async () => {
    const out = await tmp()
    const {sites} = await renderSites({sitesFile: SITES, mode: 'appliance', outputDir: out})
    const {stdout} = await execa(
      'sha256sum',
      sites.map((s) => s.file),
    )
    expect(stdout.split('\n').map((l) => l.split(' ')[0])).toEqual(sites.map((s) => s.sha256))
  })

  it('does not depend on the key order of the inventory', async () => {
    const reversed = reverseKeys(parse(readFileSync(SITES, 'utf8'), {version: '1.1'}))
    const dir = await tmp()
    const file = path.join(dir, 'reversed.yaml')
    writeFileSync(file, stringify(reversed, {version: '1.1'}))
    const a = await renderSites({sitesFile: SITES, mode: 'appliance', outputDir: path.join(dir, 'a')})
    const b = await renderSites({sitesFile: file, mode: 'appliance', outputDir: path.join(dir, 'b')})
    expect(b.sites.map((s) => s.sha256)).toEqual(a.sites.map((s) => s.sha256))
  })

  it('renders the example inventory of the README without errors or warnings', async () => {
    for (const mode of ['appliance', 'agent'] as const) {
      const result = await renderSites({sitesFile: EXAMPLE, mode, outputDir: await tmp()})
      expect(result.sites.map((s) => s.name)).toEqual(['store-0042', 'store-0043', 'warehouse-01'])
      expect(result.warnings).toEqual([])
    }
  })
})

describe('renderSites failures', () => {
  async function inventoryFile(text: string): Promise<string> {
    const file = path.join(await tmp(), 'sites.yaml')
    writeFileSync(file, text)
    return file
  }

  async function failure(text: string): Promise<InvalidInputError> {
    const out = path.join(await tmp(), 'out')
    const error = await renderSites({sitesFile: await inventoryFile(text), mode: 'appliance', outputDir: out}).catch(
      (e) => e,
    )
    expect(error).toBeInstanceOf(InvalidInputError)
    expect(existsSync(out), 'nothing is written when a site is invalid').toBe(false)
    return error
  }

  it('lists every problem of every site at once', async () => {
    const error = await failure(
      [
        'sites:',
        '  - name: store-0042',
        '    stylus:',
        '      site:',
        '        network:',
        '          interfaces: {enp1s0: {type: static, ipAddress: 10.0.0.300/24, gateway: 10.0.0.1}}',
        '  - name: store-0043',
        '    stylus: {sitee: {}, localUI: {port: 0}}',
        '  - name: ok-site',
        '  - stylus: {}',
        '',
      ].join('\n'),
    )
    const problems = error.details!.problems as string[]
    expect(problems).toContain(
      "site store-0042: stylus.site.network.interfaces.enp1s0.ipAddress: '10.0.0.300/24' is not an IPv4 address with a /mask (Write it as ADDRESS/PREFIX, e.g. 10.42.0.10/24)",
    )
    expect(
      problems.some((p) => p.startsWith('site store-0043: stylus.sitee: ') && p.includes('Did you mean `site`')),
    ).toBe(true)
    expect(problems.some((p) => p.startsWith('site store-0043: stylus.localUI.port: '))).toBe(true)
    expect(problems.some((p) => p.startsWith('sites[3].name: is missing'))).toBe(true)
    expect(problems).toHaveLength(4)
    expect(error.details!.findings).toContainEqual(
      expect.objectContaining({site: 'store-0042', line: 6, path: 'stylus.site.network.interfaces.enp1s0.ipAddress'}),
    )
  })

  it('requires unique site names (ignoring case), host names and Edge host IDs', async () => {
    const error = await failure(
      [
        'defaults: {stylus: {site: {hostName: edge-same}}}',
        'sites:',
        '  - {name: a, stylus: {site: {name: host-1}}}',
        '  - {name: b, stylus: {site: {name: host-1}}}',
        '  - {name: A}',
        '  - {name: c, stylus: {site: {name: $random, hostName: edge-c}}}',
        '  - {name: d, stylus: {site: {name: $random, hostName: edge-d}}}',
        '',
      ].join('\n'),
    )
    const problems = error.details!.problems as string[]
    expect(problems).toEqual([
      "site b: stylus.site.hostName: 'edge-same' is also the host name of site a; each host needs its own (Set stylus.site.hostName per site, not in defaults)",
      'site b: stylus.site.name: \'host-1\' is also the Edge host ID of site a; each host needs its own (Set stylus.site.name per site, or use "$random")',
      'site A: name: is already used by another site (a); site names must be unique, ignoring case, because they name the output folders',
    ])
  })

  it('checks site names, inventory keys and the sites list', async () => {
    const bad = await failure('sites:\n  - {name: "../escape"}\n  - {name: ok, stylis: {}}\n')
    expect(bad.details!.problems).toEqual([
      `site ../escape: name: '../escape' is not a usable site name: letters, digits, ".", "_" and "-", at most 64, starting and ending with a letter or digit`,
      'site ok: stylis: is not an inventory key; did you mean `stylus`?',
    ])
    expect((await failure('sites: []\n')).details!.problems).toEqual(['sites: is empty: list at least one site'])
    expect((await failure('default: {}\nsites: [{name: a}]\n')).details!.problems).toEqual([
      'default: is not an inventory key; did you mean `defaults`?',
    ])
    expect((await failure('defaults: {stylus: []}\nsites: [{name: a}]\n')).details!.problems).toEqual([
      'defaults.stylus: must be a map',
    ])
    expect(((await failure('sites: [\n')).details!.problems as string[])[0]).toMatch(/^line \d+: YAML syntax/)
  })

  it('reports a site entry that is not a map, and still checks the others', async () => {
    const error = await failure('sites:\n  - store-1\n  - {name: b, stylus: {debug: maybe}}\n')
    expect(error.details!.problems).toEqual([
      'sites[0]: must be a map',
      expect.stringMatching(/^site b: stylus\.debug: expected true or false/),
    ])
  })

  it('refuses an inventory that is an alias bomb', async () => {
    const bomb = [
      'x: &a [x,x,x,x,x,x,x,x,x,x]',
      'y: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'z: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'sites: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      '',
    ].join('\n')
    expect((await failure(bomb)).details!.problems).toEqual([expect.stringMatching(/alias/i)])
  })

  it('renders only locally managed hosts', async () => {
    const error = await failure(
      'sites:\n  - {name: a, stylus: {managementMode: central}}\n  - {name: b, stylus: {managementMode: null}}\n',
    )
    expect(error.details!.problems).toEqual([
      expect.stringMatching(
        /^site a: stylus\.managementMode: is 'central'; airpack renders user-data for locally managed hosts/,
      ),
      expect.stringMatching(/^site b: stylus\.managementMode: is unset/),
    ])
  })

  it('treats a missing inventory as unreadable input (exit 2)', async () => {
    const error = await renderSites({
      sitesFile: '/nonexistent/sites.yaml',
      mode: 'appliance',
      outputDir: await tmp(),
    }).catch((e) => e)
    expect(error).toBeInstanceOf(UsageError)
    expect(error.message).toContain('/nonexistent/sites.yaml')
  })

  it('refuses an output path that is a file, before writing anything (exit 2)', async () => {
    const dir = await tmp()
    writeFileSync(path.join(dir, 'taken'), 'x')
    for (const output of [path.join(dir, 'taken'), path.join(dir, 'taken', 'sub')]) {
      const error = await renderSites({sitesFile: SITES, mode: 'appliance', outputDir: output}).catch((e) => e)
      expect(error).toBeInstanceOf(UsageError)
      expect(error.message).toContain(`${path.join(dir, 'taken')} is a file, not a directory`)
    }
  })

  it('returns warnings with the site and does not fail on them', async () => {
    const file = await inventoryFile('sites:\n  - {name: a, stylus: {installationMode: airgap}}\n')
    const result = await renderSites({sitesFile: file, mode: 'appliance', outputDir: await tmp()})
    expect(result.warnings).toEqual([
      expect.objectContaining({site: 'a', path: 'stylus.installationMode', severity: 'warning', line: 2}),
    ])
  })
})

describe('many sites', () => {
  const many = (n: number, broken: number[] = []) =>
    stringify({
      defaults: {
        stylus: {site: {network: {httpProxy: 'http://proxy:3128', noProxy: '10.0.0.0/8'}, tags: {fleet: 'retail'}}},
      },
      sites: Array.from({length: n}, (_, i) => ({
        name: `store-${String(i).padStart(4, '0')}`,
        stylus: {
          site: {
            hostName: `edge-store-${String(i).padStart(4, '0')}`,
            tags: {store: String(i).padStart(4, '0')},
            network: {
              interfaces: {
                enp1s0: broken.includes(i)
                  ? {
                      type: 'static',
                      ipAddress: `10.${i >> 8}.${i & 255}.10/24`,
                      gateway: `10.${(i >> 8) + 1}.${i & 255}.1`,
                    }
                  : {type: 'static', ipAddress: `10.${i >> 8}.${i & 255}.10/24`, gateway: `10.${i >> 8}.${i & 255}.1`},
              },
            },
          },
        },
      })),
    })

  it('renders 200 sites, one folder each', async () => {
    const dir = await tmp()
    writeFileSync(path.join(dir, 'sites.yaml'), many(200))
    const result = await renderSites({
      sitesFile: path.join(dir, 'sites.yaml'),
      mode: 'appliance',
      outputDir: path.join(dir, 'out'),
    })
    expect(result.sites).toHaveLength(200)
    expect((await readdir(path.join(dir, 'out'))).sort()).toEqual(result.sites.map((s) => s.name).sort())
    expect(new Set(result.sites.map((s) => s.sha256)).size).toBe(200)
    const last = readFileSync(path.join(dir, 'out', 'store-0199', 'user-data'), 'utf8')
    expect(last).toContain('ipAddress: 10.0.199.10/24')
    expect(last).toContain('store: "0199"')
  })

  it('names every broken site among 200, and writes none', async () => {
    const dir = await tmp()
    writeFileSync(path.join(dir, 'sites.yaml'), many(200, [3, 77, 199]))
    const error = await renderSites({
      sitesFile: path.join(dir, 'sites.yaml'),
      mode: 'appliance',
      outputDir: path.join(dir, 'out'),
    }).catch((e) => e)
    expect(error).toBeInstanceOf(InvalidInputError)
    expect((error.details.problems as string[]).map((p) => p.split(':')[0])).toEqual([
      'site store-0003',
      'site store-0077',
      'site store-0199',
    ])
    expect(existsSync(path.join(dir, 'out'))).toBe(false)
  })
})

describe('site ISO (NoCloud seed)', () => {
  it('writes site-user-data.iso with volume id cidata, user-data and an empty meta-data', async () => {
    const out = await tmp()
    const {sites} = await renderSites({sitesFile: SITES, mode: 'appliance', outputDir: out, iso: true})
    for (const site of sites) {
      expect(site.iso).toBe(path.join(out, site.name, 'site-user-data.iso'))
      const {stdout: descriptor} = await execa('isoinfo', ['-d', '-i', site.iso!])
      expect(descriptor).toMatch(/^Volume id: cidata$/m)
      expect(descriptor).toMatch(/Joliet/)
      expect(descriptor).toMatch(/Rock Ridge/)
      const {stdout: listing} = await execa('isoinfo', ['-f', '-R', '-i', site.iso!])
      expect(listing.split('\n').sort()).toEqual(['/meta-data', '/user-data'])
      const {stdout: userData} = await execa('isoinfo', ['-R', '-x', '/user-data', '-i', site.iso!], {
        stripFinalNewline: false,
      })
      expect(userData).toBe(readFileSync(site.file, 'utf8'))
      const {stdout: metaData} = await execa('isoinfo', ['-R', '-x', '/meta-data', '-i', site.iso!], {
        stripFinalNewline: false,
      })
      expect(metaData).toBe('')
    }
    const {stdout} = await execa('xorriso', ['-indev', sites[0].iso!, '-ls', '/'], {all: true})
    expect(stdout).toContain("'user-data'")
    expect(stdout).toContain("'meta-data'")
  })

  it('removes the ISO of an earlier run when rendering without --iso', async () => {
    const out = await tmp()
    await renderSites({sitesFile: SITES, mode: 'appliance', outputDir: out, iso: true})
    expect(existsSync(path.join(out, 'alpha', 'site-user-data.iso'))).toBe(true)
    const {sites} = await renderSites({sitesFile: SITES, mode: 'agent', outputDir: out})
    expect(sites[0].iso).toBeUndefined()
    expect(existsSync(path.join(out, 'alpha', 'site-user-data.iso'))).toBe(false)
  })

  it('is byte-reproducible with xorriso', async () => {
    const a = await renderSites({sitesFile: SITES, mode: 'agent', outputDir: await tmp(), iso: true})
    const b = await renderSites({sitesFile: SITES, mode: 'agent', outputDir: await tmp(), iso: true})
    expect(b.sites.map((s) => s.isoSha256)).toEqual(a.sites.map((s) => s.isoSha256))
  })

  it('takes its dates from SOURCE_DATE_EPOCH', async () => {
    const render = async (epoch: string | undefined) => {
      const saved = process.env.SOURCE_DATE_EPOCH
      if (epoch === undefined) delete process.env.SOURCE_DATE_EPOCH
      else process.env.SOURCE_DATE_EPOCH = epoch
      try {
        const {sites} = await renderSites({sitesFile: SITES, mode: 'appliance', outputDir: await tmp(), iso: true})
        return sites[0]
      } finally {
        if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH
        else process.env.SOURCE_DATE_EPOCH = saved
      }
    }
    const a = await render('1700000000')
    const b = await render('1700000000')
    const c = await render('1800000000')
    expect(b.isoSha256).toBe(a.isoSha256)
    expect(c.isoSha256).not.toBe(a.isoSha256)
    // 1700000000 is 2023-11-14T22:13:20Z.
    const {stdout} = await execa('xorriso', ['-indev', a.iso!, '-pvd_info'], {all: true})
    expect(stdout).toMatch(/Creation Time: 2023111422132000/)
  })

  it('falls back to genisoimage when xorriso is not on PATH', async () => {
    const bin = await tmp()
    await symlink('/usr/bin/genisoimage', path.join(bin, 'genisoimage'))
    const out = await tmp()
    const {sites} = await renderSites({sitesFile: SITES, mode: 'appliance', outputDir: out, iso: true, searchPath: bin})
    const {stdout} = await execa('isoinfo', ['-d', '-i', sites[0].iso!])
    expect(stdout).toMatch(/^Volume id: cidata$/m)
  })

  it('names the package to install when no ISO tool exists, before writing anything', async () => {
    const out = path.join(await tmp(), 'out')
    const error = await renderSites({
      sitesFile: SITES,
      mode: 'appliance',
      outputDir: out,
      iso: true,
      searchPath: '/nonexistent',
    }).catch((e) => e)
    expect(error).toBeInstanceOf(UsageError)
    expect(error.code).toBe('ERR_AIRPACK_ISO_TOOL_MISSING')
    expect(error.hint).toMatch(/apt-get install xorriso/)
    expect(existsSync(out)).toBe(false)
  })
})

function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys)
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([k, v]) => [k, reverseKeys(v)]),
    )
  }
  return value
}
