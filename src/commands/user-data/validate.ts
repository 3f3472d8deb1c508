import * as Args from '@oclif/core/args'

import {BaseCommand} from '../../base-command.js'
import {validateUserData, type UserDataFinding} from '../../userdata/index.js'
import {readInputText} from '../../util/read-input.js'

export interface ValidateFileResult {
  file: string
  valid: boolean
  errors: number
  warnings: number
}

export interface UserDataValidateResult {
  valid: boolean
  files: ValidateFileResult[]
  findings: UserDataFinding[]
}

export default class UserDataValidate extends BaseCommand<UserDataValidateResult> {
  static summary = 'Check hand-written or rendered user-data files against the user-data schema.'

  static description = [
    'Checks each FILE: the #cloud-config header, YAML syntax, and the stylus, install and stages keys (types, enums, addresses and masks, gateways inside their subnet, PEM certificates, ports, names, SSH keys). Unknown keys under stylus are errors, with a did-you-mean hint; deprecated keys such as stylus.installationMode are warnings naming their replacement.',
    'Exits 0 when no file has an error (warnings are printed), 3 when any file has one; every finding is printed with its file, line and key path.',
  ].join('\n\n')

  static examples = [
    '<%= config.bin %> user-data validate out/user-data/store-0042/user-data',
    '<%= config.bin %> user-data validate out/user-data/*/user-data --json',
  ]

  static strict = false

  static args = {
    file: Args.string({description: 'user-data file(s) to check', required: true}),
  }

  async run(): Promise<UserDataValidateResult> {
    const {argv} = await this.parse(UserDataValidate)
    const files = argv as string[]
    const texts = await Promise.all(files.map((file) => readText(file)))
    const result: UserDataValidateResult = {valid: true, files: [], findings: []}
    for (const [i, file] of files.entries()) {
      const {valid, findings} = validateUserData(texts[i], {file})
      result.files.push({
        file,
        valid,
        errors: findings.filter((f) => f.severity === 'error').length,
        warnings: findings.filter((f) => f.severity === 'warning').length,
      })
      result.findings.push(...findings)
      if (!valid) result.valid = false
    }

    for (const f of result.findings) {
      const where = `${f.file}${f.line ? `:${f.line}` : ''}`
      const line = `${where}: ${f.severity}: ${f.path || '(document)'}: ${f.message}${f.hint ? `\n    hint: ${f.hint}` : ''}`
      // Findings are diagnostics (stderr); the per-file verdict below is the result (stdout).
      this.logToStderr(line)
    }
    for (const f of result.files) {
      this.log(
        `${f.file}: ${f.valid ? 'valid' : 'INVALID'} (${f.errors} error${f.errors === 1 ? '' : 's'}, ${f.warnings} warning${f.warnings === 1 ? '' : 's'})`,
      )
    }
    if (!result.valid) this.finishWith(result, 3)
    return result
  }
}

function readText(file: string): Promise<string> {
  return readInputText(file, {
    code: 'USER_DATA_UNREADABLE',
    what: 'the user-data file',
    hint: 'Pass the path of a user-data file (e.g. out/user-data/store-0042/user-data).',
  })
}
