import {readFileSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {PROJECT_ROOT, runCli} from '../helpers/cli.js'

// `airpack user-data validate FILE...` as a user runs it: 0 with warnings, 3 with errors, 2 unreadable.

const GOLDEN = path.join(PROJECT_ROOT, 'test', 'fixtures', 'userdata', 'golden')
let dir: string
let good: string
let warned: string
let bad: string

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-udv-e2e-'))
  good = path.join(GOLDEN, 'agent', 'alpha', 'user-data')
  warned = path.join(dir, 'warned.yaml')
  writeFileSync(warned, '#cloud-config\nstylus:\n  installationMode: airgap\n')
  bad = path.join(dir, 'bad.yaml')
  writeFileSync(
    bad,
    [
      '#cloud-config',
      'stylus:',
      '  managementMode: local',
      '  site:',
      '    network:',
      '      interfaces:',
      '        enp1s0: {type: static, ipAddress: 10.42.0.10/24, gateway: 10.43.0.1}',
      '  registryCredentials: {domain: reg.local, password: null}',
      '  localUi: {port: 5080}',
      '',
    ].join('\n'),
  )
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

describe('airpack user-data validate', () => {
  it('exits 0 for valid files', async () => {
    const r = await runCli(['user-data', 'validate', good, path.join(GOLDEN, 'appliance', 'beta', 'user-data')])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toContain(`${good}: valid (0 errors, 0 warnings)`)
  })

  it('exits 0 with warnings, naming the replacement of a deprecated key', async () => {
    const r = await runCli(['user-data', 'validate', warned])
    expect(r.exitCode).toBe(0)
    expect(r.stderr).toContain(`${warned}:3: warning: stylus.installationMode: is deprecated`)
    expect(r.stderr).toContain('managementMode')
    const json = await runCli(['user-data', 'validate', warned, '--json'])
    expect(json.exitCode).toBe(0)
    expect(json.json()).toMatchObject({valid: true, files: [{file: warned, valid: true, errors: 0, warnings: 1}]})
  })

  it('exits 3 printing every finding with file, line and key path', async () => {
    const r = await runCli(['user-data', 'validate', good, bad])
    expect(r.exitCode).toBe(3)
    expect(r.stderr).toContain(
      `${bad}:7: error: stylus.site.network.interfaces.enp1s0.gateway: '10.43.0.1' is not inside the subnet of 10.42.0.10/24`,
    )
    expect(r.stderr).toContain(`${bad}:8: error: stylus.registryCredentials.password: expected a string, got null`)
    expect(r.stderr).toContain(`${bad}:9: error: stylus.localUi: is not a key of stylus`)
    expect(r.stderr).toContain('Did you mean `localUI`?')
    expect(r.stdout).toContain(`${good}: valid`)
    expect(r.stdout).toContain(`${bad}: INVALID (3 errors, 0 warnings)`)
  })

  it('prints the result as JSON with exit 3 under --json', async () => {
    const r = await runCli(['user-data', 'validate', bad, good, '--json'])
    expect(r.exitCode).toBe(3)
    const result = r.json()
    expect(result.valid).toBe(false)
    expect(result.files.map((f: {valid: boolean}) => f.valid)).toEqual([false, true])
    expect(result.findings).toHaveLength(3)
    expect(result.findings[0]).toEqual({
      file: bad,
      path: 'stylus.site.network.interfaces.enp1s0.gateway',
      severity: 'error',
      message: "'10.43.0.1' is not inside the subnet of 10.42.0.10/24",
      hint: 'The gateway must be reachable on this interface: check the address and the mask.',
      line: 7,
    })
  })

  it('exits 3 for a file without the #cloud-config header', async () => {
    const file = path.join(dir, 'noheader.yaml')
    writeFileSync(file, readFileSync(good, 'utf8').replace('#cloud-config\n', ''))
    const r = await runCli(['user-data', 'validate', file])
    expect(r.exitCode).toBe(3)
    expect(r.stderr).toContain("not '#cloud-config'")
  })

  it('exits 2 for a missing file or no file at all', async () => {
    const missing = await runCli(['user-data', 'validate', path.join(dir, 'nope')])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toContain('cannot read the user-data file')
    const json = await runCli(['user-data', 'validate', path.join(dir, 'nope'), '--json'])
    expect(json.exitCode).toBe(2)
    expect(json.json()).toMatchObject({status: 'error', exitCode: 2, code: 'ERR_AIRPACK_USER_DATA_UNREADABLE'})
    const none = await runCli(['user-data', 'validate'])
    expect(none.exitCode).toBe(2)
  })
})
