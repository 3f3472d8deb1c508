import {readFile} from 'node:fs/promises'
import {z} from 'zod'

import {UsageError} from '../errors.js'
import {writeFileAtomic} from '../util/atomic.js'
import {canonicalJson} from '../util/canonical-json.js'
import {SUPPLY_CHAIN_KINDS} from '../supply/cosign.js'
import type {Lock} from './types.js'

// Reading, writing and comparing the lock of PRODUCT.md §5. It is written as canonical JSON (sorted keys, fixed
// indent) and atomically, so equal resolutions give equal bytes and a crash never leaves half a lock.

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 hex digits>')
const PlatformSchema = z.object({os: z.string(), architecture: z.string(), variant: z.string().optional()})
const DescriptorSchema = z.object({
  mediaType: z.string(),
  digest,
  size: z.number().int().nonnegative(),
  platform: PlatformSchema.extend({
    'os.version': z.string().optional(),
    'os.features': z.array(z.string()).optional(),
  }).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  artifactType: z.string().optional(),
})

export const LockSchema = z.object({
  lockVersion: z.literal(1),
  platform: PlatformSchema,
  images: z.record(
    z.string(),
    z.object({
      reference: z.string(),
      digest,
      mediaType: z.string(),
      size: z.number().int().nonnegative(),
      platformManifest: DescriptorSchema,
      blobs: z.array(DescriptorSchema),
      omittedPlatforms: z.array(PlatformSchema),
      supplyChain: z
        .array(
          z.object({
            kind: z.enum(SUPPLY_CHAIN_KINDS),
            subject: digest,
            tag: z.string().optional(),
            manifest: DescriptorSchema,
            blobs: z.array(DescriptorSchema),
            listed: z.boolean().optional(),
          }),
        )
        .optional(),
      // Locks before issue 9 recorded the serving endpoint (`source`) and each profile's path (`file`); both are
      // read and dropped (zod strips unknown keys), so an old lock still works and is rewritten canonically.
    }),
  ),
  charts: z.record(
    z.string(),
    z.object({
      repository: z.string(),
      name: z.string(),
      version: z.string(),
      digest,
      size: z.number().int().nonnegative(),
      manifest: DescriptorSchema,
      blobs: z.array(DescriptorSchema),
      reference: z.string(),
      url: z.string().optional(),
      ociRepository: z.string().optional(),
    }),
  ),
  files: z.record(z.string(), z.object({url: z.string(), sha256: digest, size: z.number().int().nonnegative()})),
  profiles: z.array(z.object({name: z.string(), version: z.string(), sha256: z.string()})),
})

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
