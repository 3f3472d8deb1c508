import {constants} from 'node:fs'
import {access, stat} from 'node:fs/promises'

import {UsageError} from '../errors.js'
import {LIMITS, OverBudgetError, formatBytes, limitBytes, readFileBounded} from '../limits.js'

// Reading a small text input (a site inventory, a user-data file) the same way everywhere: a regular file, at
// most `limit` bytes even if it grows while being read, or one UsageError (exit 2) that names the file and says why.

export interface InputSpec {
  /** Error code stem, e.g. SITES_UNREADABLE. */
  code: string
  /** What the file is, for messages: "the site inventory". */
  what: string
  hint: string
}

/** The file is there, a regular file and readable by this user, or a UsageError (exit 2) naming it. Returns its size. */
export async function checkInputFile(file: string, spec: InputSpec): Promise<number> {
  const fail = (why: string) =>
    new UsageError(spec.code, `cannot read ${spec.what} ${file}: ${why}`, {hint: spec.hint, details: {file}})
  try {
    const info = await stat(file)
    if (info.isDirectory()) throw fail('it is a directory')
    if (!info.isFile()) throw fail('it is not a regular file')
    await access(file, constants.R_OK)
    return info.size
  } catch (error) {
    if (error instanceof UsageError) throw error
    const code = (error as NodeJS.ErrnoException).code
    throw fail(
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : code === 'ENOTDIR'
            ? 'a parent of it is not a directory'
            : (error as Error).message,
    )
  }
}

export async function readInputText(file: string, spec: InputSpec): Promise<string> {
  const limit = limitBytes('textInput')
  const fail = (why: string, hint = spec.hint, extra: Record<string, unknown> = {}) =>
    new UsageError(spec.code, `cannot read ${spec.what} ${file}: ${why}`, {hint, details: {file, ...extra}})
  const size = await checkInputFile(file, spec)
  const tooLarge = () =>
    fail(
      `it is over the ${formatBytes(limit)} limit for this input (${LIMITS.textInput.env})`,
      `${spec.hint} A real one is a few KiB; check that this is the right file.`,
      {limit},
    )
  if (size > limit) throw tooLarge()
  try {
    return (await readFileBounded(file, 'textInput')).toString('utf8')
  } catch (error) {
    if (error instanceof OverBudgetError) throw tooLarge()
    const code = (error as NodeJS.ErrnoException).code
    throw fail(code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (error as Error).message)
  }
}
