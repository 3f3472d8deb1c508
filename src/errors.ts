import {redactText} from './util/redact.js'

// The closed set of errors airpack raises on purpose. Each carries a stable code (searchable, ERR_AIRPACK_*),
// the exit code of PRODUCT.md §2, and a hint that tells the user how to fix it. Anything else that escapes a
// command is a bug (exit 1).

export enum ExitCode {
  ok = 0,
  bug = 1,
  usage = 2,
  invalid = 3,
  unresolved = 4,
  integrity = 5,
}

export interface ErrorOptions {
  hint?: string
  /** Extra machine-readable facts (file, field, artifact, problems). Never credentials. */
  details?: Record<string, unknown>
  cause?: unknown
}

export abstract class AirpackError extends Error {
  abstract readonly exitCode: ExitCode
  readonly code: string
  readonly hint?: string
  readonly details?: Record<string, unknown>

  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = new.target.name
    this.code = code.startsWith('ERR_AIRPACK_') ? code : `ERR_AIRPACK_${code}`
    this.hint = options.hint
    this.details = options.details
  }
}

/** Bad usage or unreadable input (exit 2). */
export class UsageError extends AirpackError {
  readonly exitCode = ExitCode.usage
}

/** A profile, inventory or user-data file is invalid against its schema or the supported matrix (exit 3). */
export class InvalidInputError extends AirpackError {
  readonly exitCode = ExitCode.invalid
}

/** An artifact could not be resolved or fetched (exit 4). */
export class ResolveError extends AirpackError {
  readonly exitCode = ExitCode.unresolved
}

/** Digest mismatch, bad signature, tampered or incomplete bundle (exit 5). */
export class IntegrityError extends AirpackError {
  readonly exitCode = ExitCode.integrity
}

/** Content whose bytes do not hash to the digest that names it (exit 5). */
export function digestMismatch(
  message: string,
  options: ErrorOptions & {expected?: string; actual?: string} = {},
): IntegrityError {
  const {expected, actual, ...rest} = options
  const details = expected !== undefined || actual !== undefined ? {expected, actual, ...rest.details} : rest.details
  return new IntegrityError('DIGEST_MISMATCH', message, {...rest, ...(details ? {details} : {})})
}

/** --name that is not a portable file name (exit 2). */
export function badBundleName(name: string): UsageError {
  return new UsageError('BAD_NAME', `--name ${JSON.stringify(name)} is not a valid bundle name`, {
    hint: 'Use letters, digits, ".", "_" and "-" (at most 100), starting with a letter or digit.',
  })
}

/**
 * Profiles with validation errors, refused before `outcome` (e.g. "nothing was downloaded") could happen (exit 3).
 * `problems` are the rendered error findings; `findings` what --json carries.
 */
export function invalidProfiles(
  problems: string[],
  outcome: string,
  options: {hint: string; findings: unknown[]},
): InvalidInputError {
  const n = problems.length
  return new InvalidInputError('PROFILE_INVALID', `the profiles have ${n} error${n === 1 ? '' : 's'}; ${outcome}`, {
    hint: options.hint,
    details: {problems, findings: options.findings},
  })
}

export function isAirpackError(err: unknown): err is AirpackError {
  return err instanceof AirpackError
}

/** The JSON shape of an error on stdout under --json, and the source of the human rendering. */
export interface ErrorEnvelope {
  status: 'error'
  exitCode: number
  code: string
  message: string
  hint?: string
  details?: Record<string, unknown>
}

/** Every string inside `value` with URL passwords masked (a last guard: messages are redacted where they are made). */
function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redactText(value) as T
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T
  return value
}

export function toEnvelope(err: unknown): ErrorEnvelope {
  if (isAirpackError(err)) {
    return {
      status: 'error',
      exitCode: err.exitCode,
      code: err.code,
      message: redactText(err.message),
      ...(err.hint ? {hint: redactText(err.hint)} : {}),
      ...(err.details ? {details: redactDeep(err.details)} : {}),
    }
  }
  const message = redactText(err instanceof Error ? err.message : String(err))
  return {
    status: 'error',
    exitCode: ExitCode.bug,
    code: 'ERR_AIRPACK_UNEXPECTED',
    message,
    hint: 'This is a bug in airpack. Re-run with DEBUG=airpack* for a stack trace and report it.',
  }
}
