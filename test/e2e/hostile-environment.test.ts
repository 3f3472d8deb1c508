// Issue 17: terminal escapes from bundles never reach the terminal raw, and the user's own environment (a missing
// file named by a flag, a read-only output or cache file system, a cache this user cannot read) is exit 2 with the
// path named and what to do — never exit 1 or a raw errno alone. Tests run as root, so "cannot read" is made real
// with a read-only tmpfs the test mounts, and with the CLI run as an unprivileged user through setpriv.

import {execFileSync} from 'node:child_process'
import {chmodSync, chownSync, mkdirSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {environmentError} from '../../src/util/environment.js'
import {escapeControl} from '../../src/util/terminal.js'
import {addonProfile, bundleJson, rawTar, zstd} from '../fixtures/bad/corpus.js'
import {PROJECT_ROOT, runCli} from '../helpers/cli.js'

vi.setConfig({testTimeout: 120_000})

const STACK = /^\s+at .+:\d+:\d+\)?$/m
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/
const HOSTILE = 'evil\x1b[2J\x1b]0;pwned\x07name'

let dir: string
const mounts: string[] = []

function readOnlyTmpfs(name: string): string {
  const mount = path.join(dir, name)
  mkdirSync(mount, {recursive: true})
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mount])
  mounts.push(mount)
  // Something already there (a cache that exists), then the whole file system made read-only.
  mkdirSync(path.join(mount, 'blobs', 'sha256'), {recursive: true})
  mkdirSync(path.join(mount, 'partial'), {recursive: true})
  execFileSync('mount', ['-o', 'remount,ro', mount])
  return mount
}

function expectUsage(result: Awaited<ReturnType<typeof runCli>>, mentions: (string | RegExp)[]) {
  const context = `exit ${result.exitCode}\n${result.stderr}`
  expect(result.exitCode, context).toBe(2)
  expect(result.stderr, context).not.toMatch(STACK)
  for (const m of mentions) expect(result.stderr, context).toMatch(m)
}

let profile: string

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airpack-hostile-env-'))
  chmodSync(dir, 0o755)
  profile = path.join(dir, 'ok.json')
  writeFileSync(
    profile,
    JSON.stringify(
      addonProfile({values: 'pack:\n  namespace: web\n  content:\n    images:\n      - image: 127.0.0.1:9/app:1.0\n'}),
    ),
  )
})

afterAll(async () => {
  for (const m of mounts.reverse()) execFileSync('umount', ['-l', m])
  await rm(dir, {recursive: true, force: true})
})

describe('terminal control characters', () => {
  it('escapeControl shows them as \\xNN and leaves text, tabs and newlines alone', () => {
    expect(escapeControl(HOSTILE)).toBe('evil\\x1b[2J\\x1b]0;pwned\\x07name')
    expect(escapeControl('plain text\twith tab\nand line')).toBe('plain text\twith tab\nand line')
    expect(escapeControl('\u009b31m')).toBe('\\x9b31m')
    expect(escapeControl('naïve — ok ✓')).toBe('naïve — ok ✓')
  })

  it('inspect of a bundle whose name and profile hold escapes prints them escaped; --json keeps JSON escaping', async () => {
    const manifest = JSON.parse(bundleJson([]).toString())
    manifest.name = HOSTILE
    manifest.profiles = [{name: HOSTILE, version: '1\x1b[31m', sha256: 'a'.repeat(64)}]
    const file = path.join(dir, 'escape.tar.zst')
    writeFileSync(file, zstd(rawTar([{name: 'airpack/bundle.json', body: JSON.stringify(manifest)}])))
    const human = await runCli(['bundle', 'inspect', file])
    expect(human.exitCode, human.stderr).toBe(0)
    expect(human.stdout).toContain('evil\\x1b[2J\\x1b]0;pwned\\x07name')
    expect(human.stdout + human.stderr).not.toMatch(RAW_CONTROL)
    const machine = await runCli(['bundle', 'inspect', file, '--json'])
    expect(machine.exitCode).toBe(0)
    expect(machine.stdout).toContain('\\u001b[2J')
    expect(machine.json().name).toBe(HOSTILE)
  })

  it('verify errors naming a hostile entry show it escaped', async () => {
    const file = path.join(dir, 'entry.tar.zst')
    writeFileSync(
      file,
      zstd(
        rawTar([
          {name: 'airpack/bundle.json', body: bundleJson([])},
          {name: `blobs/${HOSTILE}`, body: 'x'},
        ]),
      ),
    )
    const result = await runCli(['bundle', 'verify', file])
    expect(result.exitCode, result.stderr).toBe(5)
    expect(result.stderr).toContain('blobs/evil\\x1b[2J\\x1b]0;pwned\\x07name')
    expect(result.stderr + result.stdout).not.toMatch(RAW_CONTROL)
  })
})

describe("the user's own environment is exit 2", () => {
  for (const flag of ['registries', 'cred-file', 'ca-cert']) {
    it(`--${flag} naming a missing file, or a directory`, async () => {
      const missing = path.join(dir, `no-such-${flag}.yaml`)
      expectUsage(
        await runCli([
          'profile',
          'resolve',
          profile,
          '--arch',
          'amd64',
          '--cache-dir',
          path.join(dir, 'cache'),
          `--${flag}`,
          missing,
        ]),
        [missing, /no such file/, new RegExp(`--${flag}`)],
      )
      expectUsage(
        await runCli([
          'profile',
          'resolve',
          profile,
          '--arch',
          'amd64',
          '--cache-dir',
          path.join(dir, 'cache'),
          `--${flag}`,
          dir,
        ]),
        [dir, /directory/],
      )
    })
  }

  it('--output on a read-only file system: exit 2 naming the directory, nothing written', async () => {
    const ro = readOnlyTmpfs('ro-output')
    const output = path.join(ro, 'out')
    const result = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'ro',
      '--output',
      output,
      '--cache-dir',
      path.join(dir, 'cache'),
    ])
    expectUsage(result, [output, /read-only file system/, /--output/])
    const json = await runCli([
      'bundle',
      'build',
      profile,
      '--arch',
      'amd64',
      '--name',
      'ro',
      '--output',
      ro,
      '--cache-dir',
      path.join(dir, 'cache'),
      '--json',
    ])
    expect(json.exitCode).toBe(2)
    expect(json.json().details.dir).toBe(ro)
  })

  it('a cache directory on a read-only file system: exit 2 naming it', async () => {
    const ro = readOnlyTmpfs('ro-cache')
    expectUsage(await runCli(['profile', 'resolve', profile, '--arch', 'amd64', '--cache-dir', ro]), [
      ro,
      /read-only file system/,
      /--cache-dir/,
    ])
  })

  it('a cache directory this user cannot read or write (the CLI run unprivileged): exit 2 naming it', async () => {
    const cache = path.join(dir, 'root-only-cache')
    mkdirSync(path.join(cache, 'blobs', 'sha256'), {recursive: true})
    chmodSync(cache, 0o700)
    const home = path.join(dir, 'nobody-home')
    mkdirSync(home, {recursive: true})
    chownSync(home, 65534, 65534)
    const result = await execa(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        'node',
        path.join(PROJECT_ROOT, 'bin', 'run.js'),
        'profile',
        'resolve',
        profile,
        '--arch',
        'amd64',
        '--cache-dir',
        cache,
      ],
      {
        reject: false,
        env: {HOME: home, NO_COLOR: '1', DEBUG: undefined},
        extendEnv: true,
        cwd: home,
      },
    )
    const context = `exit ${result.exitCode}\n${result.stderr}`
    expect(result.exitCode, context).toBe(2)
    expect(result.stderr, context).toContain(cache)
    expect(result.stderr, context).toMatch(/permission denied/)
    expect(result.stderr, context).not.toMatch(STACK)
  })

  it('a file-system error that escapes a command deep inside (EACCES on a cached blob) becomes exit 2 naming the path', () => {
    const blob = '/cache/blobs/sha256/' + 'a'.repeat(64)
    const eacces = Object.assign(new Error(`EACCES: permission denied, open '${blob}'`), {
      code: 'EACCES',
      syscall: 'open',
      path: blob,
    })
    const mapped = environmentError(eacces)
    expect(mapped?.exitCode).toBe(2)
    expect(mapped?.message).toContain(blob)
    expect(mapped?.message).toMatch(/permission denied/)
    const erofs = environmentError(
      Object.assign(new Error('EROFS'), {code: 'EROFS', syscall: 'mkdir', path: '/mnt/out'}),
    )
    expect(erofs?.message).toMatch(/\/mnt\/out: it is on a read-only file system/)
    expect(environmentError(new TypeError('x is undefined'))).toBeUndefined()
    expect(environmentError(Object.assign(new Error('no path'), {code: 'EACCES'}))).toBeUndefined()
  })
})
