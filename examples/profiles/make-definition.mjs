#!/usr/bin/env node
// Builds examples/profiles/cluster-definition.tgz from the example profiles, in the layout airpack writes:
//   spc/metadata.json        {name, cloudType, profiles: [{name, version, file}]}
//   spc/profiles/NN-<slug>.json  each profile in export JSON shape
//   spc/variables.json       {NAME: value}
// Deterministic: fixed entry order, mtime 0, portable headers, gzip without a timestamp. Run: node examples/profiles/make-definition.mjs
import {mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {create} from 'tar'

const here = path.dirname(fileURLToPath(import.meta.url))
const inputs = ['k3s-calico-infra.json', 'addon-monitoring.json']
const variables = {grafana_version: '11.3.1'}

const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
const stage = mkdtempSync(path.join(tmpdir(), 'airpack-def-'))
try {
  mkdirSync(path.join(stage, 'spc', 'profiles'), {recursive: true})
  const profiles = inputs.map((name, i) => {
    const doc = JSON.parse(readFileSync(path.join(here, name), 'utf8'))
    const file = `profiles/${String(i + 1).padStart(2, '0')}-${slug(doc.metadata.name)}.json`
    writeFileSync(path.join(stage, 'spc', file), JSON.stringify(doc, null, 2) + '\n')
    return {name: doc.metadata.name, version: doc.spec.version, file}
  })
  writeFileSync(path.join(stage, 'spc', 'metadata.json'), JSON.stringify({name: 'edge-store', cloudType: 'edge-native', profiles}, null, 2) + '\n')
  writeFileSync(path.join(stage, 'spc', 'variables.json'), JSON.stringify(variables, null, 2) + '\n')
  const entries = ['spc/', 'spc/metadata.json', 'spc/profiles/', ...profiles.map((p) => `spc/${p.file}`), 'spc/variables.json']
  const out = path.join(here, 'cluster-definition.tgz')
  await create(
    {
      file: out,
      cwd: stage,
      gzip: {level: 9},
      portable: true,
      mtime: new Date(0),
      noDirRecurse: true,
      onWriteEntry(entry) {
        if (entry.stat) entry.stat.mode = entry.type === 'Directory' ? 0o40755 : 0o100644
      },
    },
    entries,
  )
  console.error(`wrote ${path.relative(process.cwd(), out)}`)
} finally {
  rmSync(stage, {recursive: true, force: true})
}
