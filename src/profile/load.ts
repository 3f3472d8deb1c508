// loadProfiles: files named by the user → LoadedProfile[]. Unreadable or malformed input is a UsageError (exit 2)
// naming the file and line; a well-formed document that is not a usable profile is an InvalidInputError (exit 3).

import {createHash} from 'node:crypto'
import {open, stat} from 'node:fs/promises'

import {InvalidInputError, UsageError} from '../errors.js'
import {readDefinitionEntries, type DefinitionEntry} from './definition.js'
import {looksLikeProfile, normalizeProfile} from './normalize.js'
import {LIMITS, TextProblem, decodeText, parseProfileText} from './text.js'
import type {LoadedProfile} from './types.js'

const GZIP_MAGIC = [0x1f, 0x8b]

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function mib(n: number): string {
  return `${Math.round(n / (1024 * 1024))} MiB`
}

async function checkedSize(file: string): Promise<number> {
  let info
  try {
    info = await stat(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new UsageError(
      'PROFILE_UNREADABLE',
      `${file}: ${code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? (err as Error).message})`}`,
      {
        hint: 'Pass the path of a profile exported from Palette (.json or .yaml) or of a cluster definition (.tgz).',
        details: {file},
      },
    )
  }
  if (info.isDirectory()) {
    throw new UsageError('PROFILE_UNREADABLE', `${file}: is a directory, not a profile file`, {
      hint: `Name the profile files themselves, e.g. ${file.replace(/\/$/, '')}/*.json.`,
      details: {file},
    })
  }
  if (!info.isFile()) {
    throw new UsageError('PROFILE_UNREADABLE', `${file}: is not a regular file`, {
      hint: 'Pass a profile file.',
      details: {file},
    })
  }
  return info.size
}

function tooLarge(file: string, size: number, limit: number): UsageError {
  return new UsageError('PROFILE_TOO_LARGE', `${file}: is ${mib(size)}, over the ${mib(limit)} limit for this input`, {
    hint: 'An exported profile is well under 1 MiB and a cluster definition a few; check that this is the right file.',
    details: {file, size, limit},
  })
}

/** Read a file of `size` bytes (as stat said), refusing more than `limit` even if it grows meanwhile. */
async function readBounded(file: string, size: number, limit: number): Promise<Buffer> {
  if (size > limit) throw tooLarge(file, size, limit)
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(size + 1)
    let offset = 0
    for (;;) {
      const {bytesRead} = await handle.read(buffer, offset, buffer.length - offset, offset)
      if (bytesRead === 0) break
      offset += bytesRead
      if (offset >= buffer.length) break
    }
    if (offset > limit) throw tooLarge(file, offset, limit)
    return buffer.subarray(0, offset)
  } finally {
    await handle.close()
  }
}

async function readHead(file: string, bytes: number): Promise<Buffer> {
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(bytes)
    const {bytesRead} = await handle.read(buffer, 0, bytes, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1]
}

function textProblem(where: string, problem: TextProblem): UsageError {
  const place =
    problem.line === undefined ? '' : `:${problem.line}${problem.column === undefined ? '' : `:${problem.column}`}`
  return new UsageError('PROFILE_MALFORMED', `${where}${place}: ${problem.message}`, {
    hint: 'Export the profile again from Palette (Profiles → Export Profile) or fix the file at that line.',
    details: {file: where, ...(problem.line === undefined ? {} : {line: problem.line})},
  })
}

interface Parsed {
  value: unknown
  build: (sha: string) => LoadedProfile
}

function parseOne(bytes: Uint8Array, where: string, name: string, file: string, entry?: string): Parsed {
  let text: string
  let parsed
  try {
    text = decodeText(bytes)
    parsed = parseProfileText(text, name)
  } catch (err) {
    if (err instanceof TextProblem) throw textProblem(where, err)
    throw err
  }
  return {
    value: parsed.value,
    build(sha) {
      const result = normalizeProfile(parsed.value, parsed.positions)
      if (!result.profile) {
        throw new InvalidInputError('PROFILE_SCHEMA', `${where}: is not a valid cluster profile`, {
          hint: 'Use the file Palette writes with Profiles → Export Profile (JSON or YAML); fix the fields listed.',
          details: {file: where, problems: result.problems},
        })
      }
      return {file, ...(entry ? {entry} : {}), sha256: sha, ...result.profile}
    },
  }
}

async function loadDefinition(file: string): Promise<LoadedProfile[]> {
  const entries = await readDefinitionEntries(file)
  const byPath = new Map<string, DefinitionEntry>(entries.map((e) => [e.path, e]))
  const parseEntry = (e: DefinitionEntry) => parseOne(e.bytes, `${file}#${e.path}`, e.path, file, e.path)

  let definitionVars: Record<string, string> | undefined
  const varsEntry = byPath.get('spc/variables.json')
  if (varsEntry) {
    const value = parseEntry(varsEntry).value
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      definitionVars = {}
      for (const [k, v] of Object.entries(value)) if (v !== null && typeof v !== 'object') definitionVars[k] = String(v)
    }
  }

  // Profile order: as spc/metadata.json lists them, then any other profile entry by path.
  const ordered: string[] = []
  const metaEntry = byPath.get('spc/metadata.json')
  if (metaEntry) {
    const meta = parseEntry(metaEntry).value as {profiles?: {file?: unknown}[]} | null
    for (const p of Array.isArray(meta?.profiles) ? meta!.profiles : []) {
      if (typeof p?.file !== 'string') continue
      const path = p.file.startsWith('spc/') ? p.file : `spc/${p.file}`
      if (byPath.has(path) && !ordered.includes(path)) ordered.push(path)
    }
  }
  const candidates = entries
    .map((e) => e.path)
    .filter((p) => /\.(json|ya?ml)$/i.test(p) && p !== 'spc/metadata.json' && p !== 'spc/variables.json')
    .sort()
  for (const p of candidates) if (!ordered.includes(p)) ordered.push(p)

  const profiles: LoadedProfile[] = []
  for (const path of ordered) {
    const e = byPath.get(path)!
    const parsed = parseEntry(e)
    if (!looksLikeProfile(parsed.value)) continue
    const profile = parsed.build(sha256Hex(e.bytes))
    profiles.push(definitionVars ? {...profile, definitionVars} : profile)
  }
  if (profiles.length === 0) {
    throw new InvalidInputError('DEFINITION_EMPTY', `${file}: the cluster definition holds no cluster profile`, {
      hint: 'A cluster definition carries its profiles as spc/profiles/*.json; export it again.',
      details: {file},
    })
  }
  return profiles
}

/** Read and parse profiles (.json, .yaml/.yml, cluster definition .tgz). Unreadable/malformed input → UsageError
 *  (exit 2) naming file and line; a well-formed file that is not a profile → InvalidInputError (exit 3). */
export async function loadProfiles(files: string[]): Promise<LoadedProfile[]> {
  if (files.length === 0) {
    throw new UsageError('NO_PROFILE', 'no profile given', {
      hint: 'Pass one or more exported profiles or a cluster definition .tgz.',
    })
  }
  const profiles: LoadedProfile[] = []
  for (const file of files) {
    const size = await checkedSize(file)
    if (isGzip(await readHead(file, 2)) || /\.(tgz|tar\.gz)$/i.test(file)) {
      if (size > LIMITS.definitionBytes) throw tooLarge(file, size, LIMITS.definitionBytes)
      profiles.push(...(await loadDefinition(file)))
      continue
    }
    const head = await readBounded(file, size, LIMITS.profileBytes)
    const parsed = parseOne(head, file, file, file)
    if (!looksLikeProfile(parsed.value)) {
      throw new InvalidInputError('NOT_A_PROFILE', `${file}: is ${describe(parsed.value)}, not a cluster profile`, {
        hint: 'A profile has metadata.name and spec.template.packs[]; use the file Palette writes with Profiles → Export Profile.',
        details: {file},
      })
    }
    profiles.push(parsed.build(sha256Hex(head)))
  }
  return profiles
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list'
  if (value === null) return 'null'
  if (typeof value !== 'object') return `a ${typeof value}`
  const keys = Object.keys(value).slice(0, 5)
  return keys.length === 0 ? 'an empty object' : `an object with keys ${keys.join(', ')}`
}
