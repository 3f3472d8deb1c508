import {createHash} from 'node:crypto'
import {Readable, Transform} from 'node:stream'

import {digestMismatch, IntegrityError} from '../errors.js'
import type {Descriptor} from '../oci/descriptor.js'

// What every store's `fetch` promises (./types.ts): the bytes it streams are those of the descriptor, or the
// stream errors. Hashes while passing the bytes through; too many bytes fail at once, too few or wrong ones at
// the end, before the consumer sees the stream end cleanly.

/** `body` checked against `d` (size and sha256); `where` names the store in the error. */
export function verifiedStream(body: Readable | AsyncIterable<Uint8Array>, d: Descriptor, where: string): Readable {
  const hash = createHash('sha256')
  let size = 0
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length
      if (size > d.size) {
        callback(
          new IntegrityError('BLOB_TOO_LARGE', `${where}: blob ${d.digest} is larger than its ${d.size} bytes`, {
            details: {digest: d.digest},
          }),
        )
        return
      }
      hash.update(chunk)
      callback(null, chunk)
    },
    flush(callback) {
      const actual = `sha256:${hash.digest('hex')}`
      if (size !== d.size || actual !== d.digest) {
        callback(
          digestMismatch(`${where}: blob ${d.digest} is ${size} bytes hashing to ${actual}, not ${d.size} bytes`, {
            expected: d.digest,
            actual,
          }),
        )
        return
      }
      callback()
    },
  })
  const source = body instanceof Readable ? body : Readable.from(body, {objectMode: false})
  source.on('error', (error) => check.destroy(error))
  check.on('close', () => {
    if (!source.destroyed) source.destroy()
  })
  return source.pipe(check)
}
