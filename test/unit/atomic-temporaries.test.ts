import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readdirSync, writeFileSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {removeAbandonedTemporaries, temporaryNameFor} from '../../src/util/atomic.js'

// What a build killed without warning leaves in its output directory (`.NAME….PID.HEX.partial`), removed by the next
// build of NAME: only a dead process's files, only NAME's, never a finished output.

const root = mkdtempSync(path.join(os.tmpdir(), 'airpack-atomic-'))
afterAll(() => rmSync(root, {recursive: true, force: true}))

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync('true')
  expect(child.status).toBe(0)
  return child.pid!
}

describe('removeAbandonedTemporaries', () => {
  it("removes a dead process's temporary outputs of NAME, and nothing else", async () => {
    const dir = path.join(root, 'out')
    const dead = deadPid()
    const abandoned = [
      `.site.tar.zst.${dead}.0123abcd.partial`,
      `.site.tar.zst.003.${dead}.0123abcd.partial`,
      `.site.lock.json.${dead}.89abcdef.partial`,
      `.site-definition.tgz.${dead}.00000000.partial`,
    ]
    const kept = [
      // This process's own, still being written.
      path.basename(temporaryNameFor(path.join(dir, 'site.tar.zst'))),
      // Another bundle name, even one that starts with NAME.
      `.other.tar.zst.${dead}.0123abcd.partial`,
      `.sitex.tar.zst.${dead}.0123abcd.partial`,
      // Finished outputs, and files that only look alike.
      'site.tar.zst',
      'site.tar.zst.000',
      `site.tar.zst.${dead}.0123abcd.partial`,
      `.site.tar.zst.${dead}.partial`,
    ]
    mkdirSync(dir)
    for (const name of [...abandoned, ...kept]) writeFileSync(path.join(dir, name), 'x')
    expect((await removeAbandonedTemporaries(dir, 'site')).sort()).toEqual([...abandoned].sort())
    expect(readdirSync(dir).sort()).toEqual([...kept].sort())
  })

  it('is a no-op on a directory that does not exist yet', async () => {
    expect(await removeAbandonedTemporaries(path.join(root, 'absent'), 'site')).toEqual([])
  })
})
