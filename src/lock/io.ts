import {readFile} from 'node:fs/promises'

import {UsageError} from '../errors.js'
import {writeFileAtomic} from '../util/atomic.js'
import {canonicalJson} from '../util/canonical-json.js'
import type {Lock} from './types.js'

// Reading, writing and comparing the lock of PRODUCT.md §5. It is written as canonical JSON (sorted keys, fixed
// indent) and atomically, so equal resolutions give equal bytes and a crash never leaves half a lock. Its schema
// (schema.ts) is loaded only when a lock is read: zod costs about 0.1 s of start-up, and most runs read no lock.

export async function readLock(file: string): Promise<Lock> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new UsageError(
      'LOCK_UNREADABLE',
      `cannot read lock file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {
        hint: 'Write one with `airpack profile resolve PROFILE... --arch A --lock-file FILE`.',
        details: {file},
      },
    )
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (error) {
    throw new UsageError('LOCK_INVALID', `lock file ${file} is not JSON: ${(error as Error).message}`, {
      hint: 'Regenerate it with `airpack profile resolve --lock-file`.',
      details: {file},
    })
  }
  const {LockSchema} = await import('./schema.js')
  const parsed = LockSchema.safeParse(doc)
  if (!parsed.success) {
    throw new UsageError('LOCK_INVALID', `lock file ${file} is not an airpack lock (version 1)`, {
      hint: 'Regenerate it with `airpack profile resolve --lock-file`; do not edit it by hand.',
      details: {
        file,
        problems: parsed.error.issues.slice(0, 20).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
      },
    })
  }
  return parsed.data as Lock
}

export function serializeLock(lock: Lock): string {
  return canonicalJson(lock)
}

export async function writeLock(file: string, lock: Lock): Promise<void> {
  await writeFileAtomic(file, serializeLock(lock))
}

export interface LockChange {
  kind: 'image' | 'chart' | 'file'
  key: string
  /** undefined: only in the new lock. */
  before?: string
  /** undefined: only in the old lock. */
  after?: string
}

/** What differs between two locks, artifact by artifact (digests; the platform as a whole). */
export function diffLocks(before: Lock, after: Lock): LockChange[] {
  const changes: LockChange[] = []
  const compare = (
    kind: LockChange['kind'],
    a: Record<string, {digest?: string; sha256?: string}>,
    b: Record<string, {digest?: string; sha256?: string}>,
  ) => {
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const x = a[key]?.digest ?? a[key]?.sha256
      const y = b[key]?.digest ?? b[key]?.sha256
      if (x !== y) changes.push({kind, key, before: x, after: y})
    }
  }
  compare('image', before.images, after.images)
  compare('chart', before.charts, after.charts)
  compare('file', before.files, after.files)
  return changes
}
