// The closed set of errors airpack raises on purpose. Each carries a stable code (searchable, ERR_AIRPACK_*),
// the exit code of PRODUCT.md §2, and a hint that tells the user how to fix it. Anything else that escapes a
// command is a bug (exit 1).

export const ExitCode = {
  ok: 0,
  bug: 1,
  usage: 2,
  invalid: 3,
  unresolved: 4,
  integrity: 5,
} as const
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export interface ErrorOptions {
  hint?: string
  /** Extra machine-readable facts (file, field, artifact, problems). Never credentials. */
  details?: Record<string, unknown>
  cause?: unknown
}

export abstract class AirpackError extends Error {
  abstract readonly exitCode: ExitCodeValue
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

export function toEnvelope(err: unknown): ErrorEnvelope {
  if (isAirpackError(err)) {
    return {
      status: 'error',
      exitCode: err.exitCode,
      code: err.code,
      message: err.message,
      ...(err.hint ? {hint: err.hint} : {}),
      ...(err.details ? {details: err.details} : {}),
    }
  }
  const message = err instanceof Error ? err.message : String(err)
  return {
    status: 'error',
    exitCode: ExitCode.bug,
    code: 'ERR_AIRPACK_UNEXPECTED',
    message,
    hint: 'This is a bug in airpack. Re-run with DEBUG=airpack* for a stack trace and report it.',
  }
}
