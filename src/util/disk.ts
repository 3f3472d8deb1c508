import {stat, statfs} from 'node:fs/promises'
import path from 'node:path'

import {UsageError} from '../errors.js'
import {formatBytes} from './format.js'

// Checking free space before a build writes anything (oc-mirror users asked for exactly this): a multi-GB bundle
// that fails at 90 % on a full disk wastes the download and the time. The check is an estimate made from the
// plan's exact sizes; the write path still handles ENOSPC cleanly if something else fills the disk meanwhile.

export interface SpaceNeed {
  /** Directory that will receive `bytes` (it or its nearest existing ancestor is examined). */
  dir: string
  bytes: number
  /** What the bytes are, for the message: "blobs to download into the cache". */
  what: string
}

async function existingAncestor(dir: string): Promise<string> {
  let current = path.resolve(dir)
  for (;;) {
    try {
      await stat(current)
      return current
    } catch {
      const parent = path.dirname(current)
      if (parent === current) return current
      current = parent
    }
  }
}

/** Throws a UsageError (exit 2) naming each filesystem that lacks room; needs on one filesystem are added up. */
export async function ensureFreeSpace(needs: SpaceNeed[], margin = 64 * 1024 * 1024): Promise<void> {
  const byDevice = new Map<number, {dir: string; bytes: number; what: string[]; free: number}>()
  for (const need of needs) {
    if (need.bytes <= 0) continue
    const dir = await existingAncestor(need.dir)
    const [info, fs] = await Promise.all([stat(dir), statfs(dir)])
    const entry = byDevice.get(info.dev) ?? {dir, bytes: 0, what: [], free: fs.bavail * fs.bsize}
    entry.bytes += need.bytes
    entry.what.push(`${formatBytes(need.bytes)} of ${need.what} in ${need.dir}`)
    byDevice.set(info.dev, entry)
  }
  const short = [...byDevice.values()].filter((e) => e.free < e.bytes + margin)
  if (short.length === 0) return
  throw new UsageError(
    'DISK_SPACE',
    `not enough free disk space for this build: ${short.map((e) => `the filesystem of ${e.dir} has ${formatBytes(e.free)} free, the build needs about ${formatBytes(e.bytes)} there (${e.what.join(', ')})`).join('; ')}`,
    {
      hint: 'Free some space, or point --cache-dir and --output at a larger filesystem. Nothing was downloaded or written.',
      details: {problems: short.map((e) => `${e.dir}: ${formatBytes(e.free)} free, ~${formatBytes(e.bytes)} needed`)},
    },
  )
}
