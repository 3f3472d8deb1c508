// The built CLI, as a user runs it: exit codes 0, 2 and 3, human output and --json for `profile validate`.

import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {gzipSync} from 'node:zlib'

import {describe, expect, it} from 'vitest'

import {runCli} from '../helpers/cli.js'

const EX = 'examples/profiles'
const FIX = 'test/fixtures/profiles'
const tmp = mkdtempSync(path.join(tmpdir(), 'airpack-e2e-validate-'))

function noStackTrace(text: string) {
  expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
}

describe('airpack profile validate', () => {
  it('exit 0 for the examples, one summary line', async () => {
    const r = await runCli([
      'profile',
      'validate',
      `${EX}/k3s-calico-infra.json`,
      `${EX}/addon-monitoring.json`,
      '--arch',
      'amd64',
    ])
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toContain(
      'valid: 0 errors, 0 warnings in 2 profiles: k3s-calico-edge@1.0.0 (infra), monitoring@1.2.0 (add-on)',
    )
  })

  it('exit 0 with warnings only, and --json prints the report alone on stdout', async () => {
    const r = await runCli([
      'profile',
      'validate',
      `${EX}/k3s-calico-infra.json`,
      '--arch',
      'arm64',
      '--mode',
      'appliance',
      '--json',
    ])
    // The example pins an amd64 agent, so arm64 is an error; use the agent-mode YAML for a warnings-only run instead.
    expect(r.exitCode).toBe(3)
    const w = await runCli([
      'profile',
      'validate',
      `${EX}/pxke-agent-infra.yaml`,
      '--arch',
      'amd64',
      '--mode',
      'agent',
      '--var',
      'nothing=1',
      '--json',
    ])
    expect(w.exitCode).toBe(0)
    const report = w.json()
    expect(report).toMatchObject({valid: true, errors: 0, warnings: 1})
    expect(report.findings[0]).toMatchObject({code: 'AP-VAR-UNKNOWN', severity: 'warning'})
    expect(report.profiles).toEqual([
      {file: `${EX}/pxke-agent-infra.yaml`, name: 'pxke-agent-edge', version: '1.1.0', type: 'infra'},
    ])
  })

  it('exit 0 for the cluster definition', async () => {
    const r = await runCli(['profile', 'validate', `${EX}/cluster-definition.tgz`, '--arch', 'amd64', '--json'])
    expect(r.exitCode).toBe(0)
    expect(r.json().profiles.map((p: any) => p.file)).toEqual([
      `${EX}/cluster-definition.tgz#spc/profiles/01-k3s-calico-edge.json`,
      `${EX}/cluster-definition.tgz#spc/profiles/02-monitoring.json`,
    ])
  })

  it('exit 3 with errors: one line per finding with code, file:line, pack, message and hint, then a summary', async () => {
    const r = await runCli([
      'profile',
      'validate',
      `${FIX}/agent-arm64-mismatch.yaml`,
      '--arch',
      'arm64',
      '--mode',
      'agent',
    ])
    expect(r.exitCode).toBe(3)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^error +AP-K8S-MODE ${FIX}/agent-arm64-mismatch\\.yaml:20 pack edge-rke2: Palette Optimized RKE2 is not supported in agent mode$`,
        ),
      ),
    )
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^error +AP-AGENT-ARCH ${FIX}/agent-arm64-mismatch\\.yaml:19 pack edge-native-byoi \\(values line 5\\): agent image .*stylus-linux-amd64.* is for amd64, but the target architecture is arm64$`,
        ),
      ),
    )
    expect(lines).toContainEqual(expect.stringMatching(/^ +hint: In agent mode use /))
    expect(lines.at(-1)).toBe('INVALID: 2 errors, 0 warnings in 1 profile: arm-site@1.0.0 (infra)')
    noStackTrace(r.stdout + r.stderr)
  })

  it('exit 3 with --json still prints the whole report', async () => {
    const r = await runCli([
      'profile',
      'validate',
      `${FIX}/agent-arm64-mismatch.yaml`,
      '--arch',
      'arm64',
      '--mode',
      'agent',
      '--json',
    ])
    expect(r.exitCode).toBe(3)
    const report = r.json()
    expect(report).toMatchObject({valid: false, errors: 2, warnings: 0})
    expect(report.findings.map((f: any) => f.code).sort()).toEqual(['AP-AGENT-ARCH', 'AP-K8S-MODE'])
    expect(report.findings.find((f: any) => f.code === 'AP-K8S-MODE')).toMatchObject({
      file: `${FIX}/agent-arm64-mismatch.yaml`,
      profile: 'arm-site',
      pack: 'edge-rke2',
      fileLine: 20,
    })
  })

  it('exit 2 for malformed JSON, naming file and line, no stack trace', async () => {
    const r = await runCli(['profile', 'validate', `${FIX}/malformed.json`, '--arch', 'amd64'])
    expect(r.exitCode).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(new RegExp(`Error: ${FIX}/malformed\\.json:5:\\d+: malformed JSON`))
    expect(r.stderr).toContain('(ERR_AIRPACK_PROFILE_MALFORMED, exit 2)')
    noStackTrace(r.stderr)
  })

  it('exit 2 with --json prints the error envelope on stdout', async () => {
    const r = await runCli(['profile', 'validate', `${FIX}/malformed.yaml`, '--arch', 'amd64', '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json()).toMatchObject({
      status: 'error',
      exitCode: 2,
      code: 'ERR_AIRPACK_PROFILE_MALFORMED',
      details: {file: `${FIX}/malformed.yaml`, line: 6},
    })
  })

  it.each([
    ['a directory', [FIX], /is a directory/],
    ['an empty file', [`${FIX}/empty.json`], /it is empty/],
    ['an alias bomb', [`${FIX}/alias-bomb.yaml`], /alias expansion exceeds/],
    ['a missing file', [`${FIX}/does-not-exist.json`], /no such file/],
  ])('exit 2 for %s', async (_name, files, message) => {
    const r = await runCli(['profile', 'validate', ...files, '--arch', 'amd64'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(message)
    noStackTrace(r.stderr)
  })

  it('exit 2 for a binary and for a huge file', async () => {
    const bin = path.join(tmp, 'blob.yaml')
    writeFileSync(bin, Buffer.from([0, 1, 2, 3, 255]))
    const huge = path.join(tmp, 'huge.yaml')
    writeFileSync(huge, 'x'.repeat(17 * 1024 * 1024))
    for (const [file, message] of [
      [bin, /binary/],
      [huge, /over the 16 MiB limit/],
    ] as const) {
      const r = await runCli(['profile', 'validate', file, '--arch', 'amd64'])
      expect(r.exitCode).toBe(2)
      expect(r.stderr).toMatch(message)
    }
  })

  it('exit 2 for a cluster definition with a ../ entry', async () => {
    const h = Buffer.alloc(512)
    h.write('spc/../../evil.json', 0)
    h.write('0000644\0', 100)
    h.write('0000000\0', 108)
    h.write('0000000\0', 116)
    h.write('00000000002\0', 124)
    h.write('00000000000\0', 136)
    h.write('        ', 148)
    h.write('0', 156)
    h.write('ustar\0' + '00', 257)
    let sum = 0
    for (const b of h) sum += b
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
    const file = path.join(tmp, 'evil.tgz')
    writeFileSync(file, gzipSync(Buffer.concat([h, Buffer.from('{}'), Buffer.alloc(510), Buffer.alloc(1024)])))
    const r = await runCli(['profile', 'validate', file, '--arch', 'amd64', '--json'])
    expect(r.exitCode).toBe(2)
    expect(r.json()).toMatchObject({code: 'ERR_AIRPACK_DEFINITION_UNSAFE'})
    expect(r.json().message).toContain('escapes the archive')
  })

  it('exit 3 for a well-formed file that is not a profile', async () => {
    const r = await runCli(['profile', 'validate', `${FIX}/not-a-profile.json`, '--arch', 'amd64', '--json'])
    expect(r.exitCode).toBe(3)
    expect(r.json()).toMatchObject({status: 'error', exitCode: 3, code: 'ERR_AIRPACK_NOT_A_PROFILE'})
  })

  it('exit 3 for schema problems, each listed', async () => {
    const r = await runCli(['profile', 'validate', `${FIX}/schema-problems.json`, '--arch', 'amd64'])
    expect(r.exitCode).toBe(3)
    expect(r.stderr).toMatch(/^ {2}- spec\.template\.type \(line 6\)/m)
    expect(r.stderr).toMatch(/^ {2}- spec\.template\.packs\[0\]\.layer \(line 9\)/m)
  })

  it('exit 2 for bad usage: no --arch, a bad --arch, a bad --var', async () => {
    for (const args of [
      [`${EX}/k3s-calico-infra.json`],
      [`${EX}/k3s-calico-infra.json`, '--arch', 'ppc64le'],
      [`${EX}/k3s-calico-infra.json`, '--arch', 'amd64', '--var', 'novalue'],
    ]) {
      const r = await runCli(['profile', 'validate', ...args])
      expect([args, r.exitCode]).toEqual([args, 2])
      noStackTrace(r.stderr)
    }
  })

  it('every example in --help runs and exits 0', async () => {
    const help = await runCli(['profile', 'validate', '--help'])
    expect(help.exitCode).toBe(0)
    const examples = help.stdout
      .slice(help.stdout.indexOf('EXAMPLES'))
      .split('\n')
      .filter((l) => l.trim().startsWith('$ airpack profile validate'))
      .map((l) => l.trim().split(/\s+/).slice(2))
    expect(examples.length).toBe(3)
    for (const args of examples) {
      const r = await runCli(args)
      expect([args.join(' '), r.exitCode]).toEqual([args.join(' '), 0])
    }
  })

  it('--var changes the resolved content and is checked against the variable format', async () => {
    const r = await runCli([
      'profile',
      'validate',
      `${EX}/pxke-agent-infra.yaml`,
      '--arch',
      'amd64',
      '--mode',
      'agent',
      '--var',
      'pod_cidr=10.0.0.0/33',
      '--json',
    ])
    expect(r.exitCode).toBe(3)
    expect(r.json().findings).toEqual([
      expect.objectContaining({
        code: 'AP-VAR-FORMAT',
        message: expect.stringContaining('"10.0.0.0/33" is not a valid ipv4cidr'),
      }),
    ])
  })
})
