import {open, type FileHandle} from 'node:fs/promises'

import type {GrowingBlob} from '../cache/store.js'

// A cold build frames each blob while the fetch is still writing it into the cache, instead of waiting for the
// whole blob and reading it back afterwards: the writer's turn comes to blobs in digest order, and with several
// downloads sharing the link the next one in that order is usually still arriving. What the writer reads is the
// cache's partial file, up to the bytes the fetch has written; the blob is verified when its download ends, before
// the writer moves past it, and the bundle is only published after every blob was verified.

/** Bytes of a growing blob read at a time (the frame writer's file chunk), unless the blob ends sooner. */
const FOLLOW_STEP = 1024 * 1024

/**
 * The download of a blob being framed started over (its partial file was discarded: a server that ignored a
 * Range request, a digest mismatch): what was framed may not be the blob's bytes, so the bundle is written again
 * from the cache once the fetch is done.
 */
export class BlobRestartedError extends Error {
  constructor(readonly digest: string) {
    super(`the download of ${digest} started over while it was being written into the bundle`)
    this.name = 'BlobRestartedError'
  }
}

/** Frames `size` bytes of `file`: `upTo(position)` resolves with how many bytes of it are written, once more than
 *  `position` are. */
export type FrameGrowing = (file: FileHandle, upTo: (position: number) => Promise<number>) => Promise<void>

/**
 * Frames a blob as the fetch writes it: `growing` resolves when its download starts in this process, `ready` once
 * it is verified and published (rejects if it could not be fetched). Returns false, having framed nothing, when
 * the blob was ready first (cached already, or downloaded by another process) or its partial file is already
 * gone: the caller copies it from the cache. Throws BlobRestartedError if the download started over meanwhile.
 */
export async function followBlob(
  digest: string,
  size: number,
  growing: Promise<GrowingBlob>,
  ready: Promise<void>,
  frame: FrameGrowing,
): Promise<boolean> {
  let settled = false
  const end = ready.then(
    () => void (settled = true),
    () => void (settled = true),
  )
  const blob = await Promise.race([growing, end.then(() => undefined)])
  // The partial file exists once its first bytes are written.
  while (blob && blob.available <= 0 && !settled) await Promise.race([blob.changed(), end])
  if (!blob || settled) return false
  const generation = blob.generation
  let file: FileHandle
  try {
    file = await open(blob.path, 'r')
  } catch (error) {
    // Published (renamed) between the start and now: the cache has it.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
  const upTo = async (position: number): Promise<number> => {
    for (;;) {
      if (blob.generation !== generation) throw new BlobRestartedError(digest)
      if (blob.available >= Math.min(size, position + FOLLOW_STEP)) return blob.available
      if (settled) {
        await ready // the fetch's failure, if it failed
        if (blob.available > position) return blob.available
        throw new BlobRestartedError(digest)
      }
      await Promise.race([blob.changed(), end])
    }
  }
  try {
    await frame(file, upTo)
  } finally {
    await file.close()
  }
  await ready
  if (blob.generation !== generation || blob.available !== size) throw new BlobRestartedError(digest)
  return true
}
