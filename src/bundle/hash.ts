import {spawn, spawnSync, type ChildProcessWithoutNullStreams} from 'node:child_process'
import {createHash} from 'node:crypto'
import {once} from 'node:events'

// SHA-256 of multi-GB streams. Node 20's bundled OpenSSL hashes at about 750 MB/s here, while the system
// `openssl` (SHA-NI) does over 2 GB/s; on two cores that is the difference between hashing being the
// bottleneck of a build or not. So large streams are hashed by an `openssl dgst` child fed through a pipe (a
// memory copy for Node), small ones in process. Without an `openssl` binary everything falls back to
// node:crypto, with identical results.

/** Bytes a writer may queue in memory ahead of a child's stdin before it waits (memory stays bounded). */
export const PIPE_AHEAD = 8 * 1024 * 1024

export interface StreamHash {
  /** Feed a chunk; returns a promise only when the consumer asks to wait (backpressure). */
  write(chunk: Buffer): Promise<void> | undefined
  /** The hex digest, once everything was written. */
  digest(): Promise<string>
  /** Stop early (on failure): no digest will be asked for. */
  destroy(): void
}

let opensslAvailable: boolean | undefined

function haveOpenssl(): boolean {
  if (opensslAvailable === undefined) {
    if (process.env.AIRPACK_NO_OPENSSL_HASH === '1') opensslAvailable = false
    else {
      const r = spawnSync('openssl', ['version'], {stdio: 'ignore'})
      opensslAvailable = r.status === 0
    }
  }
  return opensslAvailable
}

class NodeHash implements StreamHash {
  private readonly hash = createHash('sha256')
  write(chunk: Buffer): undefined {
    this.hash.update(chunk)
    return undefined
  }
  async digest(): Promise<string> {
    return this.hash.digest('hex')
  }
  destroy(): void {}
}

class OpensslHash implements StreamHash {
  private readonly child: ChildProcessWithoutNullStreams
  private readonly exited: Promise<number | null>
  private out = ''
  private err = ''
  private failed: Error | undefined

  constructor() {
    this.child = spawn('openssl', ['dgst', '-sha256', '-r'], {stdio: ['pipe', 'pipe', 'pipe']})
    this.child.stdout.setEncoding('utf8')
    this.child.stdout.on('data', (d: string) => (this.out += d))
    this.child.stderr.on('data', (d: Buffer) => (this.err += d.toString()))
    this.child.stdin.on('error', (e) => (this.failed ??= e))
    this.child.on('error', (e) => (this.failed ??= e))
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)))
  }

  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failed) throw this.failed
    this.child.stdin.write(chunk)
    if (this.child.stdin.writableLength <= PIPE_AHEAD) return undefined
    // Neither branch may reject on its own: the loser of the race would be an unhandled rejection.
    const drained = once(this.child.stdin, 'drain').then(
      () => true,
      () => false,
    )
    return Promise.race([drained, this.exited.then(() => false)]).then((ok) => {
      if (!ok) throw this.failed ?? new Error(`openssl dgst exited early: ${this.err.trim()}`)
    })
  }

  async digest(): Promise<string> {
    this.child.stdin.end()
    const code = await this.exited
    const hex = /^([a-f0-9]{64})/.exec(this.out.trim())
    if (code !== 0 || !hex) throw this.failed ?? new Error(`openssl dgst failed (${code}): ${this.err.trim()}`)
    return hex[1]
  }

  destroy(): void {
    this.child.stdin.destroy()
    this.child.kill('SIGKILL')
  }
}

/** A hasher for a stream of about `expectedBytes`: out of process when that is large and openssl exists. */
export function streamHash(expectedBytes = Number.POSITIVE_INFINITY): StreamHash {
  return expectedBytes >= 8 * 1024 * 1024 && haveOpenssl() ? new OpensslHash() : new NodeHash()
}

/** sha256 (hex) of a file: `openssl dgst` reads it directly when it is large, else node:crypto. */
export async function hashFile(file: string, size: number): Promise<string> {
  if (size >= 8 * 1024 * 1024 && haveOpenssl()) {
    const child = spawn('openssl', ['dgst', '-sha256', '-r', file], {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d: string) => (out += d))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', resolve)
    })
    const hex = /^([a-f0-9]{64})/.exec(out.trim())
    if (code !== 0 || !hex) throw new Error(`openssl dgst ${file} failed (${code}): ${err.trim()}`)
    return hex[1]
  }
  const {createReadStream} = await import('node:fs')
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20})) hash.update(chunk as Buffer)
  return hash.digest('hex')
}
