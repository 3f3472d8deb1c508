import type {BlobStore} from '../cache/store.js'
import {UsageError} from '../errors.js'

/** The cache must be writable before any request is made: say so once, not once per artifact. */
export async function initStore(store: BlobStore): Promise<void> {
  try {
    await store.init()
  } catch (error) {
    throw new UsageError('CACHE_UNWRITABLE', `cannot use the cache directory ${store.root}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      hint: 'Pass --cache-dir with a writable directory, or fix the permissions of this one.',
      details: {cacheDir: store.root},
    })
  }
}

