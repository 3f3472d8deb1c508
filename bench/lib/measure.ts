// Runs one benchmarked command and measures it: wall-clock seconds, the peak RSS GNU time reports (largest single
// process of the tree: for airpack that is the node process), and the peak of the summed RSS of the whole
// process tree (node + its zstd child), polled from /proc.

import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readdir, readFile, rm, stat} from 'node:fs/promises'
import path from 'node:path'

export interface Measurement {
  seconds: number
  exitCode: number
  /** GNU time's %M (KiB → MiB): max RSS of the largest process in the tree. */
  maxRssMiB?: number
  /** Peak of the sum of RSS over the process tree, sampled every 50 ms. */
  treeRssMiB: number
  stderrTail: string
  /** Killed after the run's time limit. */
  timedOut?: boolean
}

const GNU_TIME = '/usr/bin/time'

/** Process groups of the runs in flight, so that stopping the benchmark stops them too. */
const active = new Set<number>()

export function killActiveRuns(): void {
  for (const pgid of active) {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {}
  }
}

async function processTable(): Promise<Map<number, {ppid: number; rssKiB: number}>> {
  const table = new Map<number, {ppid: number; rssKiB: number}>()
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const status = await readFile(`/proc/${entry}/status`, 'utf8')
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      table.set(Number(entry), {ppid, rssKiB: rss})
    } catch {
      // the process ended between readdir and readFile
    }
  }
  return table
}

async function treeRssKiB(root: number): Promise<number> {
  const table = await processTable()
  const children = new Map<number, number[]>()
  for (const [pid, {ppid}] of table) children.set(ppid, [...(children.get(ppid) ?? []), pid])
  let total = 0
  const stack = [root]
  while (stack.length > 0) {
    const pid = stack.pop()!
    total += table.get(pid)?.rssKiB ?? 0
    stack.push(...(children.get(pid) ?? []))
  }
  return total
}

/** Run `argv` (no shell) or a bash script (string), measured. */
export async function measure(
  command: string[] | string,
  options: {cwd?: string; env?: NodeJS.ProcessEnv; rssFile: string; timeoutMs?: number},
): Promise<Measurement> {
  const argv = typeof command === 'string' ? ['bash', '-o', 'pipefail', '-ec', command] : command
  const useTime = existsSync(GNU_TIME)
  const full = useTime ? [GNU_TIME, '-f', '%M', '-o', options.rssFile, ...argv] : argv
  const started = process.hrtime.bigint()
  // Its own process group, so a run that hangs can be killed with all its children (zstd, skopeo, tar).
  const child = spawn(full[0]!, full.slice(1), {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  })
  if (child.pid !== undefined) active.add(child.pid)
  let timedOut = false
  const timer = options.timeoutMs
    ? setTimeout(() => {
        timedOut = true
        try {
          process.kill(-child.pid!, 'SIGKILL')
        } catch {}
      }, options.timeoutMs)
    : undefined
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  let peakTree = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      if (child.pid !== undefined) peakTree = Math.max(peakTree, await treeRssKiB(child.pid))
      await new Promise((r) => setTimeout(r, 50))
    }
  })()
  const exitCode = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (timer) clearTimeout(timer)
  if (child.pid !== undefined) active.delete(child.pid)
  sampling = false
  await sampler
  let maxRssMiB: number | undefined
  if (useTime) {
    const text = await readFile(options.rssFile, 'utf8').catch(() => '')
    const kib = Number(text.trim().split('\n').pop())
    if (Number.isFinite(kib) && kib > 0) maxRssMiB = kib / 1024
    await rm(options.rssFile, {force: true})
  }
  // GNU time's own few MiB are included in the tree sum; they are noise next to node's.
  const stderrTail =
    (timedOut ? `timed out after ${options.timeoutMs! / 1000} s and was killed\n` : '') +
    stderr.trim().split('\n').slice(-15).join('\n')
  return {
    seconds,
    exitCode: timedOut ? -1 : exitCode,
    maxRssMiB,
    treeRssMiB: peakTree / 1024,
    stderrTail,
    ...(timedOut ? {timedOut} : {}),
  }
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export async function dirBytes(dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, {withFileTypes: true, recursive: true})) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size
  }
  return total
}
