// Every case of the bad-input corpus (test/fixtures/bad/corpus.ts) through the built CLI, in both output modes:
// the documented exit code, a clear message that names the file / entry / field, no stack trace, nothing written
// outside the case's output directory, and under --json exactly one error document on stdout.

import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, readdirSync, rmSync, statSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {corpusCases, type CorpusCase} from '../fixtures/bad/corpus.js'
import {runCli} from '../helpers/cli.js'

const marker = `airpack-corpus-${randomBytes(4).toString('hex')}`
const root = path.join(os.tmpdir(), `${marker}-root`)
const cases = corpusCases(marker)

/** Every path under `dir` with its type and size, skipping `skip` (the output dir). */
function tree(dir: string, skip?: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const e of readdirSync(d, {withFileTypes: true})) {
      const p = path.join(d, e.name)
      if (p === skip) continue
      if (e.isDirectory()) {
        out.push(`${p}/`)
        walk(p)
      } else out.push(`${p} ${e.isFile() ? statSync(p).size : e.isSymbolicLink() ? 'symlink' : 'special'}`)
    }
  }
  walk(dir)
  return out.sort()
}

function namesContaining(dir: string, needle: string): string[] {
  return tree(dir).filter((p) => path.basename(p.split(' ')[0]!.replace(/\/$/, '')).includes(needle))
}

const STACK_FRAME = /^\s+at .+:\d+:\d+\)?$/m

function expectedMentions(c: CorpusCase): string[] {
  if (c.mentions) return c.mentions
  const input = c.args.find((a) => a.includes('{in}/'))
  return input ? [path.basename(input.replace('{in}/', '').replace(/\/$/, ''))] : []
}

beforeAll(() => {
  mkdirSync(root, {recursive: true})
  for (const c of cases) {
    for (const sub of ['in', 'work']) mkdirSync(path.join(root, c.id, sub), {recursive: true})
    c.make(path.join(root, c.id, 'in'))
  }
}, 120_000)

afterAll(() => {
  rmSync(root, {recursive: true, force: true})
})

describe('bad-input corpus', () => {
  it('has at least 50 cases over every kind of input', () => {
    expect(cases.length).toBeGreaterThanOrEqual(50)
    expect(new Set(cases.map((c) => c.kind))).toEqual(
      new Set(['profile', 'definition', 'sites', 'user-data', 'bundle', 'parts', 'usage']),
    )
    expect(new Set(cases.map((c) => c.id)).size).toBe(cases.length)
  })

  it.concurrent.each(cases.map((c) => [c.id, c] as const))(
    '%s',
    async (_id, c) => {
      const caseDir = path.join(root, c.id)
      const inDir = path.join(caseDir, 'in')
      const outDir = path.join(caseDir, 'out')
      const workDir = path.join(caseDir, 'work')
      const args = c.args.map((a) => a.replaceAll('{in}', inDir).replaceAll('{out}', outDir))
      const before = tree(caseDir, outDir)

      const human = await runCli(args, {
        cwd: workDir,
        timeout: 180_000,
        env: c.env,
        measureRss: c.maxRssMiB !== undefined,
      })
      const context = `${c.id} (${c.what})\nexit ${human.exitCode}\nstderr: ${human.stderr.slice(0, 2000)}\nstdout: ${human.stdout.slice(0, 500)}`
      expect(c.exit, context).toContain(human.exitCode)
      if (c.maxRssMiB !== undefined) expect(human.peakRssMiB, `${context}\npeak RSS`).toBeLessThan(c.maxRssMiB)
      // Nothing from a hostile file reaches a terminal as a control character (issue 17).
      expect(human.stderr + human.stdout, context).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/)
      expect(human.stderr, context).not.toMatch(STACK_FRAME)
      // Errors go to stderr; a findings report (exit 3) is the command's result and may be on stdout.
      expect(
        (human.exitCode === 3 ? human.stdout + human.stderr : human.stderr).trim().length,
        context,
      ).toBeGreaterThan(0)
      const mentions = expectedMentions(c)
      const said = (human.stderr + human.stdout).toLowerCase()
      if (mentions.length > 0) {
        expect(
          mentions.some((m) => said.includes(m.toLowerCase())),
          `${context}\nexpected the message to mention one of ${JSON.stringify(mentions)}`,
        ).toBe(true)
      }

      const machine = await runCli([...args, '--json'], {cwd: workDir, timeout: 180_000, env: c.env})
      const jsonContext = `${c.id} --json\nexit ${machine.exitCode}\nstdout: ${machine.stdout.slice(0, 1500)}\nstderr: ${machine.stderr.slice(0, 1000)}`
      expect(machine.exitCode, jsonContext).toBe(human.exitCode)
      let doc: any
      expect(() => (doc = machine.json()), jsonContext).not.toThrow()
      expect(typeof doc === 'object' && doc !== null, jsonContext).toBe(true)
      // An error is the error envelope; validation findings (exit 3) are the command's report instead.
      if (doc.status === 'error') expect(doc.exitCode, jsonContext).toBe(human.exitCode)
      else
        expect(human.exitCode, `${jsonContext}\nonly a findings report (exit 3) may replace the error envelope`).toBe(3)
      expect(machine.stdout + machine.stderr, jsonContext).not.toMatch(STACK_FRAME)

      // Nothing written outside the output dir: the case dir (inputs, cwd) is unchanged, and no hostile name
      // appears anywhere under the corpus root or the temp dir.
      expect(tree(caseDir, outDir), `${c.id}: files changed outside its output dir`).toEqual(before)
      if (c.escapeMarker) {
        expect(namesContaining(root, c.escapeMarker), c.id).toEqual([])
        expect(existsSync(path.join(os.tmpdir(), c.escapeMarker)), c.id).toBe(false)
        expect(existsSync(path.join('/tmp', c.escapeMarker)), c.id).toBe(false)
      }
    },
    400_000,
  )
})
