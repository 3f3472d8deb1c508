import {Document} from 'yaml'

import {canonicalOrder, type Fragment} from './merge.js'
import {CLOUD_CONFIG_HEADER} from './validate.js'

// Deterministic YAML: `#cloud-config` first, top-level keys in the reference's order, every other map sorted,
// no line folding, YAML 1.1 quoting (so `yes`, `on` and `0042` stay strings for Go and Python readers alike),
// and nothing that depends on the time, the machine or the input's key order.

export const TOP_LEVEL_ORDER = ['install', 'stylus', 'stages'] as const

export function renderCloudConfig(userData: Fragment, comment?: string): string {
  const doc = new Document(canonicalOrder(userData, TOP_LEVEL_ORDER), {version: '1.1'})
  const body = doc.toString({lineWidth: 0, indent: 2, indentSeq: true})
  const header = comment ? `${CLOUD_CONFIG_HEADER}\n# ${comment}\n` : `${CLOUD_CONFIG_HEADER}\n`
  return header + (body === '{}\n' ? '' : body)
}
