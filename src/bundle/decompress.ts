import path from 'node:path'

import {IntegrityError, UsageError} from '../errors.js'
import {PIPE_AHEAD} from './hash.js'
import {readCompressed, type BundleSource} from './source.js'
import {drained} from './tar.js'
import {startDecompressor} from './zstd.js'

// The uncompressed tar of a bundle or delta as a stream of chunks, pulled by the consumer: the parts chained into a
// `zstd -dc` child (format 2 is one plain zstd file too, so this reads both formats). Leaving the loop early stops
// the child and reads no more of the file: what the readers of bundle.json alone, `bundle patch` and
// `verify --base` (two streams merged in digest order) need.

/**
 * Yields the tar in chunks. Throws BUNDLE_UNREADABLE (exit 2) when a part cannot be read, BUNDLE_INVALID (exit 5)
 * when the compressed stream is corrupt or cut short, once the stream has been read to its end.
 */
export async function* tarChunks(source: BundleSource): AsyncGenerator<Buffer> {
  const zstd = await startDecompressor()
  let stop = false
  let readError: NodeJS.ErrnoException | undefined
  const feed = (async () => {
    try {
      for await (const chunk of readCompressed(source)) {
        if (stop || zstd.stdin.destroyed) break
        zstd.stdin.write(chunk)
        // A closed pipe means zstd stopped (its exit status says why) or we stopped it: nothing more to feed.
        if (
          zstd.stdin.writableLength > PIPE_AHEAD &&
          !(await drained(zstd.stdin).then(
            () => true,
            () => false,
          ))
        )
          break
      }
    } catch (error) {
      readError = error as NodeJS.ErrnoException
    }
    if (!stop && !zstd.stdin.destroyed) zstd.stdin.end()
  })()
  let complete = false
  try {
    for await (const chunk of zstd.stdout! as AsyncIterable<Buffer>) yield chunk
    complete = true
  } finally {
    if (!complete) {
      stop = true
      await zstd.stop()
      await feed
    }
  }
  const zstdError = await zstd.done.then(
    () => undefined,
    (error: unknown) => error,
  )
  await feed
  if (readError) {
    throw new UsageError(
      'BUNDLE_UNREADABLE',
      `${source.input}: cannot read ${readError.path ? path.basename(readError.path) : 'the bundle'} (${readError.code ?? readError.message})`,
      {hint: 'Check that every part is present and readable by this user.', details: {bundle: source.input}},
    )
  }
  if (zstdError) {
    const message = `the compressed stream is corrupt or cut short: ${String((zstdError as Error).message).replace(/^zstd decompression failed: /, '')}`
    throw new IntegrityError('BUNDLE_INVALID', `${source.input}: ${message}`, {
      hint: 'Copy the bundle again from the original, or rebuild it.',
      details: {bundle: source.input, problems: [message]},
    })
  }
}
