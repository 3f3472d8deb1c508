// oclif by subpath, not the package index (which loads the whole semver package and every export): start-up time.
import {Command} from '@oclif/core/command'
import * as Errors from '@oclif/core/errors'
import type * as Interfaces from '@oclif/core/interfaces'
import {format} from 'node:util'

import {ExitCode, UsageError, toEnvelope, type ErrorEnvelope} from './errors.js'
import {stderrLogger, type Logger} from './util/log.js'
import {environmentError} from './util/environment.js'
import {redactText} from './util/redact.js'
import {escapeControl} from './util/terminal.js'

export type Flags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type Args<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/**
 * Every airpack command extends this. It owns three things so that no command has to:
 * - `--json`: the typed value returned by `run()` is the one JSON document on stdout; logs go to stderr.
 * - the error envelope: an AirpackError becomes `{status:"error", code, message, hint, details}` under
 *   `--json`, or a short human message on stderr (a stack trace only with DEBUG set);
 * - the exit codes of PRODUCT.md §2, in both modes (oclif's own JSON path would turn them all into 1).
 */
export abstract class BaseCommand<T> extends Command {
  static enableJsonFlag = true

  // Human output: every string a command prints may hold text from a file, a bundle or a server, so control
  // characters are shown escaped here, once, rather than at each call site.
  log(message = '', ...args: unknown[]): void {
    super.log(escapeControl(format(message, ...args)))
  }

  logToStderr(message = '', ...args: unknown[]): void {
    super.logToStderr(escapeControl(format(message, ...args)))
  }

  warn(input: Error | string): Error | string {
    return super.warn(typeof input === 'string' ? escapeControl(input) : input)
  }

  /** A logger for services: stderr only, so stdout stays clean for results and --json. */
  protected get logger(): Logger {
    return stderrLogger({quiet: false})
  }

  /**
   * End the command with `result` as its output and a non-zero exit code, for outcomes that are a report
   * rather than a crash (e.g. validation findings with errors, exit 3). Human rendering is the caller's.
   */
  protected finishWith(result: T, exitCode: number): never {
    if (this.jsonEnabled()) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    throw new Errors.ExitError(exitCode)
  }

  /**
   * One shape for every command's success under --json: `{"status": "ok", ...the command's result}`, the
   * counterpart of the error envelope's `"status": "error"`.
   */
  protected toSuccessJson(result: unknown): unknown {
    if (result === null || typeof result !== 'object' || Array.isArray(result)) return {status: 'ok', result}
    return {status: 'ok', ...result}
  }

  protected async catch(err: Error & {oclif?: {exit?: number}; exitCode?: number}): Promise<unknown> {
    if (err instanceof Errors.ExitError) throw err
    const mapped =
      environmentError(err) ??
      (isOclifUsageError(err)
        ? new UsageError('USAGE', err.message.replace(/^Error: /, ''), {
            hint: `Run \`airpack ${this.id?.replaceAll(':', ' ') ?? ''} --help\` for the flags and examples.`,
          })
        : err)
    const envelope = toEnvelope(mapped)
    if (this.jsonEnabled()) {
      process.stdout.write(JSON.stringify(envelope, null, 2) + '\n')
    } else {
      process.stderr.write(renderError(envelope))
    }
    if (process.env.DEBUG && err.stack) process.stderr.write(escapeControl(redactText(err.stack)) + '\n')
    process.exitCode = envelope.exitCode
    throw new Errors.ExitError(envelope.exitCode)
  }
}

function isOclifUsageError(err: Error & {oclif?: {exit?: number}}): boolean {
  // Flag and argument parsing errors from oclif carry exit 2 and are CLIErrors, not AirpackErrors.
  return err instanceof Errors.CLIError && err.oclif?.exit === ExitCode.usage
}

export function renderError(envelope: ErrorEnvelope): string {
  const lines = [`Error: ${envelope.message}`]
  const problems = envelope.details?.problems
  if (Array.isArray(problems)) for (const p of problems) lines.push(`  - ${String(p)}`)
  if (envelope.hint) lines.push(`Hint: ${envelope.hint}`)
  lines.push(`(${envelope.code}, exit ${envelope.exitCode})`)
  return escapeControl(lines.join('\n')) + '\n'
}
