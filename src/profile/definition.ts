// Reading a cluster definition `.tgz` (Palette's "SPC": a gzipped tar whose entries all start with `spc/`).
// The archive is untrusted: it is inflated (bounded) and read in memory only (never written to disk), and anything that could
// escape or exhaust (`..`, absolute paths, links, devices, too many or too large entries) rejects the archive.

import {readFile} from 'node:fs/promises'
import {promisify} from 'node:util'
import {gunzip} from 'node:zlib'
import type {ReadEntry} from 'tar'

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

/** Why the archive is refused, and what the user can do about it. */
interface Refusal {
  message: string
  hint: string
}

const NOT_A_TGZ_HINT = 'A cluster definition is the .tgz that Palette or `airpack bundle build` writes.'

/** What the entries seen so far add up to: the archive-wide limits are checked against it. */
interface ArchiveTally {
  count: number
  total: number
  names: Set<string>
}

/** Refuses an entry whose name is unsafe or was already seen. */
function checkEntryName(path: string, tally: ArchiveTally): Refusal | undefined {
  const unsafe = unsafeEntryPath(path)
  if (unsafe) {
    return {
      message: `entry ${JSON.stringify(path)} is refused: ${unsafe}`,
      hint: 'Use a cluster definition exported by Palette or written by airpack; do not hand-edit the archive.',
    }
  }
  // Two entries under one name: tar readers disagree on which wins (the last, usually), so a second copy
  // could silently replace the profile a reviewer looked at. Refuse the archive instead of picking one.
  const key = path.replace(/^\.\//, '').replace(/\/+$/, '')
  if (tally.names.has(key)) {
    return {
      message: `entry ${JSON.stringify(path)} appears twice (a duplicate entry)`,
      hint: 'Each file of a cluster definition appears once; re-export it from Palette or rebuild it with `airpack bundle build`.',
    }
  }
  tally.names.add(key)
  return undefined
}

/** Refuses a regular file over the per-entry limit, or one that takes the archive over its total. */
function checkEntrySize(path: string, size: number, tally: ArchiveTally): Refusal | undefined {
  if (size > LIMITS.definitionEntryBytes) {
    return {
      message: `entry ${JSON.stringify(path)} is ${size} bytes, over the ${LIMITS.definitionEntryBytes}-byte limit per entry`,
      hint: 'A profile is well under 1 MiB; check that this is a cluster definition.',
    }
  }
  tally.total += size
  if (tally.total > LIMITS.definitionTotalBytes) {
    return {
      message: `its entries add up to more than ${LIMITS.definitionTotalBytes} bytes`,
      hint: 'A cluster definition is small; check that this is not a content bundle.',
    }
  }
  return undefined
}

/**
 * What to do with one tar entry, in the order the checks must run: count, name, then (for non-directories) type
 * and size. `skip` is a directory (nothing to read), `read` a regular file within the limits.
 */
function checkEntry(entry: ReadEntry, tally: ArchiveTally): Refusal | 'skip' | 'read' {
  tally.count++
  if (tally.count > LIMITS.definitionEntries) {
    return {
      message: `it has more than ${LIMITS.definitionEntries} entries`,
      hint: 'A cluster definition holds a few profiles; rebuild it with `airpack bundle build` or Palette.',
    }
  }
  const nameRefusal = checkEntryName(entry.path, tally)
  if (nameRefusal) return nameRefusal
  if (entry.type === 'Directory') return 'skip'
  if (!FILE_TYPES.has(entry.type)) {
    return {
      message: `entry ${JSON.stringify(entry.path)} is a ${entry.type}, not a regular file (links and devices are refused)`,
      hint: 'A cluster definition holds only regular files under spc/.',
    }
  }
  return checkEntrySize(entry.path, entry.size, tally) ?? 'read'
}

/** Only a plain tar may follow the gzip: node-tar would also inflate a nested gzip/zstd/brotli stream, unbounded. */
function checkPlainTar(tarBytes: Buffer): Refusal | undefined {
  const first = tarBytes.subarray(0, 512)
  const ustar = first.length === 512 && first.subarray(257, 262).toString('latin1') === 'ustar'
  if (ustar || (first.length === 512 && first.every((b) => b === 0))) return undefined
  return {
    message: 'it is not a readable gzipped tar (the inflated data is not a ustar/pax archive)',
    hint: NOT_A_TGZ_HINT,
  }
}

/** Why reading or inflating the file failed: over the inflate bound, not gzip, or not readable at all. */
function readFailure(err: NodeJS.ErrnoException): Refusal {
  if (err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
    return {
      message: `it inflates to more than ${LIMITS.definitionTarBytes} bytes`,
      hint: 'A cluster definition is small; check that this is not a content bundle or a gzip bomb.',
    }
  }
  if (err.code?.startsWith('Z_') || /header|zlib|unexpected end/i.test(err.message))
    return {message: `it is not a readable gzipped tar (${err.message})`, hint: NOT_A_TGZ_HINT}
  return {message: `cannot be read (${err.code ?? err.message})`, hint: 'Check the path and the file permissions.'}
}

export async function readDefinitionEntries(file: string): Promise<DefinitionEntry[]> {
  const entries: DefinitionEntry[] = []
  const tally: ArchiveTally = {count: 0, total: 0, names: new Set<string>()}
  // node-tar is loaded only for a .tgz input, not at the start-up of every command that reads profiles.
  const {Parser} = await import('tar')
  return new Promise((resolve, reject) => {
    const parser = new Parser({strict: true})
    let settled = false
    // The first refusal wins; anything after it (more entries, parser errors) is ignored.
    const fail = ({message, hint}: Refusal) => {
      if (settled) return
      settled = true
      reject(new UsageError('DEFINITION_UNSAFE', `${file}: ${message}`, {hint, details: {file}}))
    }
    parser.on('entry', (entry: ReadEntry) => {
      const verdict = settled ? 'skip' : checkEntry(entry, tally)
      if (verdict === 'skip') entry.resume()
      else if (verdict !== 'read') fail(verdict)
      else {
        const path = entry.path
        const chunks: Buffer[] = []
        entry.on('data', (chunk: Buffer) => {
          if (!settled) chunks.push(chunk)
        })
        entry.on('end', () => {
          if (!settled) entries.push({path: path.replace(/^\.\//, ''), bytes: Buffer.concat(chunks)})
        })
      }
    })
    parser.on('error', (err: Error) =>
      fail({message: `it is not a readable gzipped tar (${err.message})`, hint: NOT_A_TGZ_HINT}),
    )
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
          const notTar = checkPlainTar(tarBytes)
          if (notTar) fail(notTar)
          else parser.end(tarBytes)
        },
        (err: NodeJS.ErrnoException) => fail(readFailure(err)),
      )
  })
}
