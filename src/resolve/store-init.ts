import path from 'node:path'

import type {BlobStore} from '../cache/store.js'
import {UsageError} from '../errors.js'
import {ensureWritableDir, environmentReason} from '../util/environment.js'

/** The cache must be writable before any request is made: say so once, not once per artifact. */
export async function initStore(store: BlobStore): Promise<void> {
  const hint = 'Pass --cache-dir with a directory this user can read and write, or fix the permissions of this one.'
  try {
    await store.init()
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new UsageError(
      'CACHE_UNWRITABLE',
      `cannot use the cache directory ${store.root}: ${environmentReason(code) ?? code ?? (error as Error).message}`,
      {
        hint,
        details: {cacheDir: store.root},
      },
    )
  }
  // mkdir of directories that exist succeeds even on a read-only mount: write a probe where blobs are staged.
  await ensureWritableDir(path.join(store.root, 'partial'), {
    code: 'CACHE_UNWRITABLE',
    what: 'the cache directory',
    hint,
  })
}
