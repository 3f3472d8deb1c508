import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import path from 'node:path'

import {IntegrityError, UsageError} from '../errors.js'
import {OverBudgetError, readFileBounded} from '../limits.js'
import type {PartsFile} from './format.js'
import {hashFile} from './hash.js'

// Where a bundle's compressed bytes come from: one `.tar.zst`, or the parts of a split bundle named by its
// `.parts.json` (given directly, or found beside the first part or beside a missing `.tar.zst`). The parts are
// read one after another as a single stream; nothing is joined or extracted on disk.

export interface BundleSource {
  /** What the user passed. */
  input: string
  dir: string
  /** `NAME.tar.zst`: the whole file's name (also for a split bundle). */
  bundleFile: string
  files: {path: string; name: string; size: number; sha256?: string}[]
  partsFile?: {path: string; content: PartsFile}
  /** The detached signature beside the bundle, if there is one. */
  detachedSignature?: string
  size: number
}

const PART_RE = /^(.*\.tar\.zst)\.(\d{3,})$/

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p)
    return true
  } catch {
    return false
  }
}

async function readPartsFile(file: string): Promise<PartsFile> {
  let text: string
  try {
    text = (await readFileBounded(file, 'partsFile')).toString('utf8')
  } catch (error) {
    if (error instanceof OverBudgetError)
      throw new IntegrityError('PARTS_FILE_INVALID', error.message, {hint: error.hint, details: {file}})
    throw new UsageError(
      'BUNDLE_UNREADABLE',
      `${file}: cannot read the parts file (${(error as NodeJS.ErrnoException).code ?? error})`,
      {details: {file}},
    )
  }
  let parsed: PartsFile
  try {
    parsed = JSON.parse(text) as PartsFile
  } catch {
    throw new IntegrityError('PARTS_FILE_INVALID', `${file}: not valid JSON`, {details: {file}})
  }
  const bad = Array.isArray(parsed?.parts)
    ? parsed.parts.find(
        (p) => typeof p?.name === 'string' && (path.basename(p.name) !== p.name || p.name.startsWith('.')),
      )
    : undefined
  if (bad) {
    throw new IntegrityError(
      'PARTS_FILE_INVALID',
      `${file}: part name ${JSON.stringify(bad.name)} points outside the bundle's directory (".." or a path)`,
      {
        hint: 'Parts are plain file names beside the parts file; this parts file was altered.',
        details: {file, part: bad.name},
      },
    )
  }
  const ok =
    parsed &&
    typeof parsed.file === 'string' &&
    typeof parsed.sha256 === 'string' &&
    Array.isArray(parsed.parts) &&
    parsed.parts.length > 0 &&
    parsed.parts.every(
      (p) =>
        typeof p?.name === 'string' &&
        typeof p.size === 'number' &&
        typeof p.sha256 === 'string' &&
        path.basename(p.name) === p.name &&
        !p.name.startsWith('.'),
    )
  if (!ok) {
    throw new IntegrityError(
      'PARTS_FILE_INVALID',
      `${file}: not an airpack parts file (needs file, sha256 and parts[{name, size, sha256}])`,
      {details: {file}},
    )
  }
  return parsed
}

function bundleNotFound(input: string): UsageError {
  return new UsageError('BUNDLE_NOT_FOUND', `${input}: no such file`, {
    hint: 'Pass NAME.tar.zst, its first part NAME.tar.zst.000, or NAME.parts.json.',
    details: {file: input},
  })
}

export async function openBundleSource(input: string): Promise<BundleSource> {
  const abs = path.resolve(input)
  const dir = path.dirname(abs)
  const base = path.basename(abs)
  let partsPath: string | undefined
  let bundleFile: string
  if (base.endsWith('.parts.json')) {
    partsPath = abs
    bundleFile = `${base.slice(0, -'.parts.json'.length)}.tar.zst`
  } else if (PART_RE.test(base)) {
    bundleFile = PART_RE.exec(base)![1]
    partsPath = path.join(dir, `${bundleFile.slice(0, -'.tar.zst'.length)}.parts.json`)
    if (!(await exists(partsPath))) {
      // A part that is not there either is a wrong path (exit 2), not a split bundle missing its parts file.
      if (!(await exists(abs))) throw bundleNotFound(input)
      throw new IntegrityError(
        'PARTS_FILE_MISSING',
        `${input} is a part of a split bundle, but ${path.basename(partsPath)} is not beside it`,
        {
          hint: 'Copy NAME.parts.json together with all NAME.tar.zst.NNN parts, and pass any of them.',
          details: {file: partsPath},
        },
      )
    }
  } else {
    bundleFile = base
    if (!(await exists(abs))) {
      const candidate = base.endsWith('.tar.zst')
        ? path.join(dir, `${base.slice(0, -'.tar.zst'.length)}.parts.json`)
        : undefined
      if (candidate && (await exists(candidate))) partsPath = candidate
      else throw bundleNotFound(input)
    }
  }

  const sigPath = path.join(dir, `${bundleFile}.sig`)
  const detachedSignature = (await exists(sigPath)) ? sigPath : undefined

  if (!partsPath) {
    const s = await stat(abs)
    if (!s.isFile()) throw new UsageError('BUNDLE_NOT_FILE', `${input} is not a file`, {details: {file: input}})
    return {input, dir, bundleFile, files: [{path: abs, name: base, size: s.size}], detachedSignature, size: s.size}
  }
  const content = await readPartsFile(partsPath)
  const files = content.parts.map((p) => ({path: path.join(dir, p.name), name: p.name, size: p.size, sha256: p.sha256}))
  return {
    input,
    dir,
    bundleFile: content.file || bundleFile,
    files,
    partsFile: {path: partsPath, content},
    detachedSignature,
    size: files.reduce((s, f) => s + f.size, 0),
  }
}

/**
 * Checks every part is present with its recorded size and sha256, before anything else is read. Returns one
 * problem per bad part ("part NAME.tar.zst.002 is missing").
 */
export async function checkParts(source: BundleSource): Promise<string[]> {
  if (!source.partsFile) return []
  const problems: string[] = []
  // Sizes and file types from stat, before a byte is read: a part that is a device or a FIFO (a symlink to
  // /dev/zero "of 0 bytes") would otherwise be read forever.
  const declared = source.files.reduce((sum, f) => sum + f.size, 0)
  if (declared !== source.partsFile.content.size) {
    problems.push(
      `${path.basename(source.partsFile.path)} says the whole file is ${source.partsFile.content.size} bytes, but its parts add up to ${declared}`,
    )
  }
  for (const f of source.files) {
    let size: number
    try {
      const info = await stat(f.path)
      if (!info.isFile()) {
        problems.push(
          `part ${f.name} is not a regular file (${info.isDirectory() ? 'a directory' : 'a device, FIFO or socket'}); parts are plain files`,
        )
        continue
      }
      size = info.size
    } catch {
      problems.push(`part ${f.name} is missing`)
      continue
    }
    if (size !== f.size) {
      problems.push(`part ${f.name} is ${size} bytes, the parts file says ${f.size} (truncated or wrong file)`)
      continue
    }
    const actual = await hashFile(f.path, size)
    if (actual !== f.sha256)
      problems.push(`part ${f.name} is corrupt: sha256 ${actual}, the parts file says ${f.sha256}`)
  }
  return problems
}

/** The compressed bytes of the whole bundle, parts chained in order. */
export async function* readCompressed(source: BundleSource): AsyncGenerator<Buffer> {
  for (const f of source.files) {
    // Exactly the size recorded (stat, or the parts file): a file that grows meanwhile adds nothing unchecked.
    if (f.size === 0) continue
    for await (const chunk of createReadStream(f.path, {highWaterMark: 1 << 20, start: 0, end: f.size - 1}))
      yield chunk as Buffer
  }
}
