// A cached blob this user cannot read (issue 17): a cache filled by one user (root here), then used by another
// (the CLI run as `nobody` through setpriv) for whom one blob is unreadable. The build must end with exit 2 naming
// that blob's path and what to do — not exit 1 with a raw EACCES — and publish nothing.

import {execFileSync} from 'node:child_process'
import {chmodSync, chownSync, mkdirSync, readdirSync} from 'node:fs'
import path from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'

import {PROJECT_ROOT} from '../helpers/cli.js'
import {amd64Layers, finalOutputs, startFaultFixture, type FaultFixture} from '../helpers/fault-fixture.js'

vi.setConfig({testTimeout: 240_000, hookTimeout: 240_000})

const NOBODY = 65534
const STACK = /^\s+at .+:\d+:\d+\)?$/m

let fx: FaultFixture

beforeAll(async () => {
  fx = await startFaultFixture({bytesPerPlatform: 1024 * 1024, images: 1, seed: 'airpack-permission-tests'})
  chmodSync(fx.dir, 0o755)
})

afterAll(async () => {
  await fx?.stop()
})

describe('permissions', () => {
  it('a cached blob this user cannot read: exit 2 naming it, nothing published', async () => {
    const cache = await fx.fresh('cache')
    const warm = await fx.build({cache, output: await fx.fresh('warm-out')})
    expect(warm.exitCode, warm.stderr).toBe(0)
    // Hand the cache to the unprivileged user, except one layer that only root may read.
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, cache])
    const layer = amd64Layers(fx.content)[0]!.replace('sha256:', '')
    const blob = path.join(cache, 'blobs', 'sha256', layer)
    expect(readdirSync(path.dirname(blob))).toContain(layer)
    chownSync(blob, 0, 0)
    chmodSync(blob, 0o600)
    const output = await fx.fresh('out')
    mkdirSync(output, {recursive: true})
    chownSync(output, NOBODY, NOBODY)
    const home = await fx.fresh('home')
    mkdirSync(home, {recursive: true})
    chownSync(home, NOBODY, NOBODY)
    const result = await execa(
      'setpriv',
      [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        '--clear-groups',
        'node',
        path.join(PROJECT_ROOT, 'bin', 'run.js'),
        ...fx.buildArgs({cache, output}),
      ],
      {
        reject: false,
        cwd: home,
        env: {HOME: home, NO_COLOR: '1', DEBUG: undefined, SOURCE_DATE_EPOCH: '1700000000'},
        timeout: 240_000,
      },
    )
    const context = `exit ${result.exitCode}\n${result.stderr}`
    expect(result.exitCode, context).toBe(2)
    expect(result.stderr, context).toContain(blob)
    expect(result.stderr, context).toMatch(/permission denied/)
    expect(result.stderr, context).toMatch(/permissions|--cache-dir/)
    expect(result.stderr, context).not.toMatch(STACK)
    expect(await finalOutputs(output)).toEqual([])
  })
})
