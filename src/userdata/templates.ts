import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseDocument} from 'yaml'

import {isPlainMap, type Fragment} from './merge.js'
import {YAML_OPTIONS} from './validate.js'

// The per-mode base documents in templates/ (shipped with the package): valid #cloud-config files that the
// inventory's defaults and each site are merged over.

export type DeploymentMode = 'appliance' | 'agent'

/** templates/ at the package root, both from src/userdata (tests) and dist/userdata (the CLI). */
export const DEFAULT_TEMPLATES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'templates')

export function templatePath(mode: DeploymentMode, templatesDir = DEFAULT_TEMPLATES_DIR): string {
  return path.join(templatesDir, `${mode}.yaml`)
}

export async function loadTemplate(mode: DeploymentMode, templatesDir = DEFAULT_TEMPLATES_DIR): Promise<Fragment> {
  const file = templatePath(mode, templatesDir)
  const doc = parseDocument(await readFile(file, 'utf8'), YAML_OPTIONS)
  // A broken template is a defect of the installation, not of the user's input: fail loudly (exit 1).
  if (doc.errors.length) throw new Error(`template ${file} is not valid YAML: ${doc.errors[0].message}`)
  const value = doc.toJS() as unknown
  if (!isPlainMap(value)) throw new Error(`template ${file} is not a map of user-data keys`)
  return value
}
