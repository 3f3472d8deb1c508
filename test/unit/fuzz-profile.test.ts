// Property/fuzz test of the profile parser (`loadProfiles`): seeded mutations of real-shaped inputs — an export
// JSON, the same as YAML, a cluster definition .tgz — byte-level (flips, cuts, insertions, duplications) and
// structure-aware (a random field replaced by a value of another type, deleted, or made hostile). Whatever the
// input, loadProfiles either returns profiles or throws an AirpackError with exit code 2 or 3 whose message names
// the file; never another exception (a TypeError or RangeError would be a crash, exit 1, for the user).
// Seeded: a failure prints the seed and iteration, and re-running reproduces it.

import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {gzipSync} from 'node:zlib'
import {stringify} from 'yaml'
import {afterAll, describe, expect, it} from 'vitest'

import {AirpackError} from '../../src/errors.js'
import {loadProfiles} from '../../src/profile/index.js'
import {addonProfile, rawTar, yamlAliasBomb} from '../fixtures/bad/corpus.js'
import {int, mulberry32, mutateBytes, pick, type Rand} from '../fixtures/bad/mutate.js'

function randomValue(r: Rand, depth = 0): unknown {
  switch (int(r, depth > 2 ? 6 : 9)) {
    case 0:
      return null
    case 1:
      return int(r, 2) === 0
    case 2:
      return pick(r, [0, -1, 1e308, Number.MAX_SAFE_INTEGER, 3.14, -0])
    case 3:
      return pick(r, [
        '',
        'x',
        'a'.repeat(10_000),
        '../../etc/passwd',
        '{{.spectro.system.nope}}',
        'docker.io/library/nginx:1.27',
        '\u202e',
        '🦄',
        'UPPER::bad ref',
      ])
    case 4:
      return yamlAliasBomb()
    case 5:
      return (
        'pack:\n  content:\n    images:\n' +
        Array.from(
          {length: int(r, 5)},
          () =>
            `      - image: ${pick(r, ['nginx', '', '::', 'a/b:c@sha256:zz', '{{.spectro.var.x}}', 'x'.repeat(300)])}`,
        ).join('\n')
      )
    case 6:
      return Array.from({length: int(r, 4)}, () => randomValue(r, depth + 1))
    case 7:
      return Object.fromEntries(
        Array.from({length: int(r, 4)}, () => [
          pick(r, ['name', 'type', 'layer', 'values', '__proto__', 'constructor', 'packs', '']),
          randomValue(r, depth + 1),
        ]),
      )
    default:
      return {name: randomValue(r, depth + 1), values: randomValue(r, depth + 1)}
  }
}

/** Replace, delete or add one field somewhere in a JSON-like value. */
export function mutateStructure(r: Rand, doc: any): any {
  const copy = JSON.parse(JSON.stringify(doc))
  const containers: {parent: any; key: string | number}[] = []
  const walk = (v: any) => {
    if (v && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        containers.push({parent: v, key: Array.isArray(v) ? Number(k) : k})
        walk(v[k])
      }
    }
  }
  walk(copy)
  const rounds = 1 + int(r, 3)
  for (let i = 0; i < rounds && containers.length > 0; i++) {
    const {parent, key} = pick(r, containers)
    const op = int(r, 3)
    if (op === 0) {
      if (Array.isArray(parent)) parent.splice(Number(key), 1)
      else delete parent[key]
    } else if (op === 1) parent[key] = randomValue(r)
    else if (!Array.isArray(parent))
      parent[pick(r, ['extra', 'registry', 'manifests', 'variables', 'tag'])] = randomValue(r)
  }
  return copy
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-fuzz-profile-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

const tally = {ok: 0, 2: 0, 3: 0}

async function outcome(file: string, context: string): Promise<void> {
  try {
    const profiles = await loadProfiles([file])
    tally.ok++
    expect(Array.isArray(profiles), context).toBe(true)
    for (const p of profiles) expect(typeof p.sha256, context).toBe('string')
  } catch (error) {
    if (!(error instanceof AirpackError)) {
      throw new Error(
        `${context}: loadProfiles threw ${(error as Error)?.name}: ${(error as Error)?.message}\n${(error as Error)?.stack}`,
      )
    }
    expect([2, 3], `${context}: ${error.message}`).toContain(error.exitCode)
    tally[error.exitCode as 2 | 3]++
    expect(error.message, context).toContain(file)
  }
}

const SEED = 20261201
const base = addonProfile()
const definitionEntries = () => [
  {name: 'spc/', type: '5'},
  {name: 'spc/metadata.json', body: JSON.stringify({name: 'fuzz', profiles: [{file: 'profiles/01-fuzz.json'}]})},
  {name: 'spc/profiles/01-fuzz.json', body: JSON.stringify(base)},
]

describe('loadProfiles under fuzzing', () => {
  it('JSON exports: byte mutations', async () => {
    const r = mulberry32(SEED)
    const seedBytes = Buffer.from(JSON.stringify(base, null, 2))
    for (let i = 0; i < 300; i++) {
      const file = path.join(dir, `bytes-${i}.json`)
      writeFileSync(file, mutateBytes(r, seedBytes))
      await outcome(file, `seed ${SEED} json-bytes #${i}`)
    }
  })

  it('JSON exports: structure mutations', async () => {
    const r = mulberry32(SEED + 1)
    for (let i = 0; i < 300; i++) {
      const file = path.join(dir, `struct-${i}.json`)
      writeFileSync(file, JSON.stringify(mutateStructure(r, base)))
      await outcome(file, `seed ${SEED + 1} json-structure #${i}`)
    }
  })

  it('YAML exports: structure and byte mutations', async () => {
    const r = mulberry32(SEED + 2)
    for (let i = 0; i < 300; i++) {
      const file = path.join(dir, `yaml-${i}.yaml`)
      const text = Buffer.from(stringify(mutateStructure(r, base)))
      writeFileSync(file, int(r, 2) === 0 ? text : mutateBytes(r, text))
      await outcome(file, `seed ${SEED + 2} yaml #${i}`)
    }
  })

  it('cluster definitions: mutated tar inside valid gzip, and mutated gzip', async () => {
    const r = mulberry32(SEED + 3)
    const tar = rawTar(definitionEntries())
    for (let i = 0; i < 200; i++) {
      const file = path.join(dir, `def-${i}.tgz`)
      let bytes: Buffer
      const mode = int(r, 3)
      if (mode === 0) bytes = gzipSync(mutateBytes(r, tar))
      else if (mode === 1) bytes = mutateBytes(r, gzipSync(tar))
      else {
        const entries = definitionEntries().map((e) => ({...e}))
        const victim = entries[1 + int(r, 2)]!
        victim.body = JSON.stringify(mutateStructure(r, JSON.parse(victim.body!)))
        bytes = gzipSync(rawTar(entries))
      }
      writeFileSync(file, bytes)
      await outcome(file, `seed ${SEED + 3} definition #${i} (mode ${mode})`)
    }
  })

  it('reached every outcome (the mutations are neither all fatal nor all harmless)', () => {
    expect(tally.ok).toBeGreaterThan(20)
    expect(tally[2]).toBeGreaterThan(20)
    expect(tally[3]).toBeGreaterThan(20)
    console.log(`fuzz-profile outcomes: ${JSON.stringify(tally)}`)
  })
})
