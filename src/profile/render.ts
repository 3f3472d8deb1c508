// Human rendering of a validation report: one line per finding (severity, code, file:line, pack, message, hint),
// then a summary. Plain text, no colour codes, so it reads the same in a terminal and a CI log.

import type {Finding, ValidationReport} from './types.js'

export function renderFinding(f: Finding): string {
  const where = f.file ? `${f.file}${f.fileLine === undefined ? '' : `:${f.fileLine}`}` : '(flags)'
  const pack = f.pack ? ` pack ${f.pack}` : ''
  const valuesLine = f.pack && f.line !== undefined && f.line !== f.fileLine ? ` (values line ${f.line})` : ''
  return `${f.severity === 'error' ? 'error  ' : 'warning'} ${f.code} ${where}${pack}${valuesLine}: ${f.message}\n        hint: ${f.hint}`
}

export function renderReport(report: ValidationReport): string {
  const lines = report.findings.map(renderFinding)
  const names = report.profiles.map((p) => `${p.name}@${p.version} (${p.type})`).join(', ')
  const verdict = report.valid ? 'valid' : 'INVALID'
  lines.push(
    `${verdict}: ${report.errors} error${report.errors === 1 ? '' : 's'}, ${report.warnings} warning${report.warnings === 1 ? '' : 's'} in ${report.profiles.length} profile${report.profiles.length === 1 ? '' : 's'}: ${names}`,
  )
  return lines.join('\n')
}
