import {redactText} from './redact.js'
import {escapeControl} from './terminal.js'

// Services log through this interface, never through console or oclif, so they stay free of the CLI layer
// and every line goes to stderr (stdout belongs to results and --json).
export interface Logger {
  info(message: string): void
  warn(message: string): void
  /** Whether stderr is an interactive terminal (progress bars) or a pipe/CI log (periodic plain lines). */
  readonly interactive: boolean
  /** On a terminal: replace the current status line in place (an empty string clears it). Optional. */
  status?(line: string): void
}

export function stderrLogger(options: {quiet?: boolean} = {}): Logger {
  const quiet = options.quiet ?? false
  return {
    // Log lines carry names from files, bundles and servers: control characters escaped, URL passwords masked.
    info(message) {
      if (!quiet) process.stderr.write(escapeControl(redactText(message)) + '\n')
    },
    warn(message) {
      process.stderr.write(`Warning: ${escapeControl(redactText(message))}\n`)
    },
    interactive: Boolean(process.stderr.isTTY) && !process.env.CI && process.env.TERM !== 'dumb',
    status(line) {
      if (!quiet && process.stderr.isTTY) process.stderr.write(`\r\x1b[K${escapeControl(line)}`)
    },
  }
}

export const silentLogger: Logger = {info() {}, warn() {}, interactive: false}
