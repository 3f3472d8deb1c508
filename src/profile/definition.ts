// Reading a cluster definition `.tgz` (Palette's "SPC": a gzipped tar whose entries all start with `spc/`).
// The archive is untrusted: it is inflated (bounded) and read in memory only (never written to disk), and anything that could
// escape or exhaust (`..`, absolute paths, links, devices, too many or too large entries) rejects the archive.

import {readFile} from 'node:fs/promises'
import {promisify} from 'node:util'
import {gunzip} from 'node:zlib'
import {Parser, type ReadEntry} from 'tar'

import {UsageError} from '../errors.js'
import {LIMITS} from './text.js'

export interface DefinitionEntry {
  /** The entry path, e.g. `spc/profiles/01-k3s.json`. */
  path: string
  bytes: Buffer
}

const gunzipAsync = promisify(gunzip)

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile'])

/** Why an entry path is unsafe, or undefined when it is a plain relative path under spc/. */
export function unsafeEntryPath(path: string): string | undefined {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (path.includes('\0') || /[\u0001-\u001f]/.test(path)) return 'it contains control characters'
  if (path.startsWith('/') || /^[a-zA-Z]:/.test(path) || path.startsWith('\\')) return 'it is an absolute path'
  const parts = path.split(/[\\/]/)
  if (parts.includes('..')) return 'it escapes the archive with ".."'
  const clean = path.replace(/^\.\//, '')
  if (!(clean === 'spc' || clean === 'spc/' || clean.startsWith('spc/')))
    return 'it is outside spc/ (every entry of a cluster definition starts with spc/)'
  return undefined
}

export async function readDefinitionEntries(file: string): Promise<DefinitionEntry[]> {
  const entries: DefinitionEntry[] = []
  const names = new Set<string>()
  let count = 0
  let total = 0
  return new Promise((resolve, reject) => {
    const parser = new Parser({strict: true})
    let settled = false
    const fail = (message: string, hint: string) => {
      if (settled) return
      settled = true
      reject(
        new UsageError('DEFINITION_UNSAFE', `${file}: ${message}`, {
          hint,
          details: {file},
        }),
      )
    }
    parser.on('entry', (entry: ReadEntry) => {
      if (settled) {
        entry.resume()
        return
      }
      count++
      if (count > LIMITS.definitionEntries) {
        fail(
          `it has more than ${LIMITS.definitionEntries} entries`,
          'A cluster definition holds a few profiles; rebuild it with `airpack bundle build` or Palette.',
        )
        return
      }
      const path = entry.path
      const unsafe = unsafeEntryPath(path)
      if (unsafe) {
        fail(
          `entry ${JSON.stringify(path)} is refused: ${unsafe}`,
          'Use a cluster definition exported by Palette or written by airpack; do not hand-edit the archive.',
        )
        return
      }
      // Two entries under one name: tar readers disagree on which wins (the last, usually), so a second copy
      // could silently replace the profile a reviewer looked at. Refuse the archive instead of picking one.
      const key = path.replace(/^\.\//, '').replace(/\/+$/, '')
      if (names.has(key)) {
        fail(
          `entry ${JSON.stringify(path)} appears twice (a duplicate entry)`,
          'Each file of a cluster definition appears once; re-export it from Palette or rebuild it with `airpack bundle build`.',
        )
        return
      }
      names.add(key)
      if (entry.type === 'Directory') {
        entry.resume()
        return
      }
      if (!FILE_TYPES.has(entry.type)) {
        fail(
          `entry ${JSON.stringify(path)} is a ${entry.type}, not a regular file (links and devices are refused)`,
          'A cluster definition holds only regular files under spc/.',
        )
        return
      }
      if (entry.size > LIMITS.definitionEntryBytes) {
        fail(
          `entry ${JSON.stringify(path)} is ${entry.size} bytes, over the ${LIMITS.definitionEntryBytes}-byte limit per entry`,
          'A profile is well under 1 MiB; check that this is a cluster definition.',
        )
        return
      }
      total += entry.size
      if (total > LIMITS.definitionTotalBytes) {
        fail(
          `its entries add up to more than ${LIMITS.definitionTotalBytes} bytes`,
          'A cluster definition is small; check that this is not a content bundle.',
        )
        return
      }
      const chunks: Buffer[] = []
      entry.on('data', (chunk: Buffer) => {
        if (!settled) chunks.push(chunk)
      })
      entry.on('end', () => {
        if (!settled) entries.push({path: path.replace(/^\.\//, ''), bytes: Buffer.concat(chunks)})
      })
    })
    parser.on('error', (err: Error) => {
      fail(
        `it is not a readable gzipped tar (${err.message})`,
        'A cluster definition is the .tgz that Palette or `airpack bundle build` writes.',
      )
    })
    parser.on('end', () => {
      if (settled) return
      settled = true
      resolve(entries)
    })
    // Inflate with a hard bound first (a gzip bomb stops at the limit; data after the tar's end blocks is never
    // parsed), then parse the tar from memory in one write.
    readFile(file)
      .then((compressed) => gunzipAsync(compressed, {maxOutputLength: LIMITS.definitionTarBytes}))
      .then(
        (tarBytes) => {
          if (settled) return
          // Only a plain tar may follow: node-tar would also inflate a nested gzip/zstd/brotli stream, unbounded.
          const first = tarBytes.subarray(0, 512)
          const ustar = first.length === 512 && first.subarray(257, 262).toString('latin1') === 'ustar'
          if (!ustar && !(first.length === 512 && first.every((b) => b === 0))) {
            fail(
              'it is not a readable gzipped tar (the inflated data is not a ustar/pax archive)',
              'A cluster definition is the .tgz that Palette or `airpack bundle build` writes.',
            )
            return
          }
          parser.end(tarBytes)
        },
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
            fail(
              `it inflates to more than ${LIMITS.definitionTarBytes} bytes`,
              'A cluster definition is small; check that this is not a content bundle or a gzip bomb.',
            )
          } else if (err.code?.startsWith('Z_') || /header|zlib|unexpected end/i.test(err.message)) {
            fail(
              `it is not a readable gzipped tar (${err.message})`,
              'A cluster definition is the .tgz that Palette or `airpack bundle build` writes.',
            )
          } else {
            fail(`cannot be read (${err.code ?? err.message})`, 'Check the path and the file permissions.')
          }
        },
      )
  })
}
