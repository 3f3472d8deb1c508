// A throwaway containerd (the runtime Palette pre-loads images into) for the tests that import bundles with
// `ctr images import`: its own root, state and socket under a temporary directory, no CRI plugin, stopped and
// cleaned up afterwards.

import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export interface TestContainerd {
  socket: string
  /** `ctr --address SOCKET -n k8s.io ARGS…`, its stdout. */
  ctr(args: string[]): string
  /** The k8s.io namespace's images: name → target digest. */
  images(): Map<string, string>
  /** A shell script with `$CTR` set to `ctr --address SOCKET -n k8s.io`; throws on a non-zero exit. */
  sh(script: string): string
  stop(): Promise<void>
}

export async function startContainerd(): Promise<TestContainerd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-ctd-'))
  const socket = path.join(dir, 'containerd.sock')
  mkdirSync(path.join(dir, 'root'))
  const config = [
    'version = 2',
    `root = ${JSON.stringify(path.join(dir, 'root'))}`,
    `state = ${JSON.stringify(path.join(dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(socket + '.ttrpc')}`,
    // No scheduled garbage collection (the first would run after an hour; explicit --sync deletes still collect).
    // `ctr images import` points an existing name at its new manifest before it unpacks the layers, so a collection
    // scheduled in between removes the parent snapshots the old image held and the unpack fails with "parent
    // snapshot … does not exist" (seen under load in the delta import over N: containerd 1.6's race, not the
    // bundle's). A real site retries the import (README, day-2 pitfalls).
    '[plugins."io.containerd.gc.v1.scheduler"]',
    '  startup_delay = "1h"',
  ].join('\n')
  writeFileSync(path.join(dir, 'config.toml'), config + '\n')
  const child: ChildProcess = spawn('containerd', ['--config', path.join(dir, 'config.toml')], {stdio: 'ignore'})
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    // Unpacked snapshots may hold overlay mounts briefly; ignore what cannot be removed.
    try {
      execFileSync('bash', ['-c', `grep -o "${dir}[^ ]*" /proc/mounts | xargs -r umount -l`], {stdio: 'ignore'})
    } catch {}
    rmSync(dir, {recursive: true, force: true})
  }
  const deadline = Date.now() + 20_000
  for (;;) {
    if (existsSync(socket)) {
      try {
        execFileSync('ctr', ['--address', socket, 'version'], {stdio: 'pipe'})
        break
      } catch {}
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error('containerd did not start within 20 s')
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const ctr = (args: string[]) =>
    execFileSync('ctr', ['--address', socket, '-n', 'k8s.io', ...args], {maxBuffer: 64 << 20}).toString()
  return {
    socket,
    ctr,
    images: () =>
      new Map(
        ctr(['images', 'ls'])
          .trim()
          .split('\n')
          .slice(1)
          .map((line) => line.split(/\s+/))
          .map((cols) => [cols[0], cols[2]] as [string, string]),
      ),
    sh(script) {
      try {
        return execFileSync('bash', ['-c', script], {
          env: {...process.env, CTR: `ctr --address ${socket} -n k8s.io`},
          maxBuffer: 64 << 20,
          stdio: ['ignore', 'pipe', 'pipe'],
        }).toString()
      } catch (error) {
        throw new Error(`${script}: ${String((error as {stderr?: Buffer}).stderr ?? error)}`)
      }
    },
    stop,
  }
}
