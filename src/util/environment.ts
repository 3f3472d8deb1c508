import {randomBytes} from 'node:crypto'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {UsageError} from '../errors.js'

// The user's own environment (a directory they cannot write, a read-only file system, a file they cannot read) is
// bad input, exit 2, said in words with the path and what to do — never a raw errno from deep inside a build.

const WHY: Record<string, string> = {
  EROFS: 'it is on a read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'a file with that name is in the way',
  ENOENT: 'no such file or directory',
  EISDIR: 'it is a directory',
  ENOSPC: 'no space left on the device',
}

/** A reason in words for an errno code, or undefined when it is not about the user's environment. */
export function environmentReason(code: string | undefined): string | undefined {
  return code ? WHY[code] : undefined
}

/**
 * Creates `dir` if needed and writes (then removes) a probe file in it: a read-only mount or a directory without
 * write permission is found before any work is done. Throws a UsageError (exit 2) naming the directory.
 */
export async function ensureWritableDir(dir: string, spec: {code: string; what: string; hint: string}): Promise<void> {
  const probe = path.join(dir, `.airpack-probe-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await mkdir(dir, {recursive: true}).catch((error: NodeJS.ErrnoException) =>
      error.code === 'ENOENT' ? mkdirStepwise(dir) : Promise.reject(error),
    )
    await writeFile(probe, '')
    await rm(probe, {force: true})
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new UsageError(
      spec.code,
      `cannot write to ${spec.what} ${dir}: ${environmentReason(code) ?? (error as Error).message}`,
      {
        hint: spec.hint,
        details: {dir, ...(code ? {errno: code} : {})},
        cause: error,
      },
    )
  }
}

/** Recursive mkdir reports ENOENT on a read-only mount; one level at a time reports the real cause (EROFS, EACCES). */
async function mkdirStepwise(dir: string): Promise<void> {
  const parent = path.dirname(dir)
  if (parent !== dir) await mkdir(parent, {recursive: true}).catch(() => mkdirStepwise(parent))
  try {
    await mkdir(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
}

/**
 * A file-system error that escaped a command (EACCES on a cached blob, EROFS while writing) as the UsageError it
 * is, naming the path; undefined for anything else (a bug stays a bug, exit 1).
 */
export function environmentError(error: unknown): UsageError | undefined {
  const e = error as NodeJS.ErrnoException
  const code = e?.code
  if (!code || !['EACCES', 'EPERM', 'EROFS'].includes(code) || typeof e.path !== 'string') return undefined
  return new UsageError(
    'ENVIRONMENT',
    `cannot ${e.syscall === 'open' || e.syscall === 'read' || e.syscall === 'scandir' ? 'read or write' : (e.syscall ?? 'use')} ${e.path}: ${environmentReason(code)}`,
    {
      hint:
        code === 'EROFS'
          ? 'That file system is mounted read-only: choose a writable directory (--output DIR, --cache-dir DIR).'
          : 'Fix the permissions of that path for this user (or run as its owner), or choose another directory with --output / --cache-dir.',
      details: {path: e.path, errno: code},
      cause: error,
    },
  )
}
