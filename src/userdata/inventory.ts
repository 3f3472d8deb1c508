import {readFile, stat} from 'node:fs/promises'
import {LineCounter, isNode, parseDocument, type Document} from 'yaml'
import {z} from 'zod'

import {InvalidInputError, UsageError} from '../errors.js'
import {didYouMean, formatPath, type PathSegment} from './findings.js'
import type {Fragment} from './merge.js'
import {YAML_OPTIONS} from './validate.js'

// The site inventory (PRODUCT.md §9): `defaults`, a user-data fragment shared by every site, and `sites`, each
// a unique `name` plus the fragment that differs. Fragments use the installer's own keys (stylus, install,
// stages); their content is checked after the merge, against the user-data schema.

const FRAGMENT_KEYS = ['stylus', 'install', 'stages'] as const
const fragmentMap = z.record(z.string(), z.unknown()).optional()

/** A site name names a folder on every file system a USB stick may carry. */
export const SITE_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/

const siteSchema = z.strictObject({
  name: z.string().regex(SITE_NAME_RE),
  stylus: fragmentMap,
  install: fragmentMap,
  stages: fragmentMap,
})

const inventorySchema = z.strictObject({
  defaults: z.strictObject({stylus: fragmentMap, install: fragmentMap, stages: fragmentMap}).nullish(),
  sites: z.array(siteSchema).min(1),
})

export interface InventorySite {
  name: string
  /** Index in `sites`, for messages. */
  index: number
  fragment: Fragment
}

export interface Inventory {
  file: string
  defaults: Fragment
  sites: InventorySite[]
  /** 1-based line of a key path of a site's merged fragment: the site's own key if it has it, else the default's. */
  lineOf(siteIndex: number, path: readonly PathSegment[]): number | undefined
}

export async function loadInventory(file: string): Promise<Inventory> {
  let text: string
  try {
    const info = await stat(file)
    if (!info.isFile()) throw Object.assign(new Error('not a regular file'), {code: 'EISDIR'})
    text = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new UsageError('SITES_UNREADABLE', `cannot read the site inventory ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (error as Error).message}`, {
      hint: 'Pass the path of a SITES.yaml file to --sites (see examples/sites/sites.yaml).',
      details: {file},
    })
  }
  return parseInventory(text, file)
}

export function parseInventory(text: string, file: string): Inventory {
  const counter = new LineCounter()
  const doc = parseDocument(text, {...YAML_OPTIONS, lineCounter: counter, prettyErrors: false})
  const problems: string[] = []
  if (doc.errors.length) {
    for (const e of doc.errors) problems.push(`${file}:${e.linePos?.[0].line ?? 1}: YAML syntax: ${e.message.split('\n')[0]}`)
    throw invalid(file, problems)
  }
  const raw = doc.toJS({maxAliasCount: 1000}) as unknown
  const parsed = inventorySchema.safeParse(raw ?? {})
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...describe(issue, raw, file, doc, counter))
    throw invalid(file, problems)
  }
  const sites = parsed.data.sites.map((s, index) => {
    const {name, ...fragment} = s
    return {name, index, fragment: dropUndefined(fragment)}
  })
  return {
    file,
    defaults: dropUndefined(parsed.data.defaults ?? {}),
    sites,
    lineOf(siteIndex, path) {
      return lineAt(doc, counter, ['sites', siteIndex, ...path]) ?? lineAt(doc, counter, ['defaults', ...path])
    },
  }
}

function dropUndefined(fragment: Record<string, unknown>): Fragment {
  return Object.fromEntries(Object.entries(fragment).filter(([, v]) => v !== undefined))
}

function invalid(file: string, problems: string[]): InvalidInputError {
  return new InvalidInputError('SITES_INVALID', `the site inventory ${file} is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'}); nothing was written`, {
    hint: 'An inventory is `defaults:` (optional) and `sites:`, a list of entries with a unique `name` and stylus/install/stages keys; see examples/sites/sites.yaml.',
    details: {file, problems},
  })
}

function describe(issue: z.core.$ZodIssue, raw: unknown, file: string, doc: Document, counter: LineCounter): string[] {
  const path = issue.path as PathSegment[]
  const where = (p: PathSegment[]) => {
    const line = lineAt(doc, counter, p)
    return `${file}${line ? `:${line}` : ''}: ${siteLabel(raw, p)}`
  }
  if (issue.code === 'unrecognized_keys') {
    const known = path.length === 0 ? ['defaults', 'sites'] : path[0] === 'defaults' ? [...FRAGMENT_KEYS] : ['name', ...FRAGMENT_KEYS]
    return issue.keys.map((key) => {
      const guess = didYouMean(key, known)
      return `${where([...path, key])}: unknown key${guess ? `; did you mean \`${guess}\`?` : ` (allowed: ${known.join(', ')})`}`
    })
  }
  const leaf = path.at(-1)
  const value = valueAt(raw, path)
  let message = issue.message
  if (leaf === 'name' && path[0] === 'sites') {
    message =
      value === undefined
        ? 'is missing: every site needs a unique name (it names the output folder)'
        : typeof value !== 'string'
          ? `must be a string, not ${JSON.stringify(value)} (quote it)`
          : `'${value}' is not a usable site name: letters, digits, ".", "_" and "-", at most 64, starting and ending with a letter or digit`
  } else if (path.length === 1 && path[0] === 'sites') {
    message = value === undefined ? 'is missing: list the sites to render under `sites:`' : Array.isArray(value) ? 'is empty: list at least one site' : 'must be a list of sites'
  } else if (issue.code === 'invalid_type') {
    message = `must be ${issue.expected === 'record' || issue.expected === 'object' ? 'a map' : issue.expected === 'array' ? 'a list' : issue.expected}`
  }
  return [`${where(path)}: ${message}`]
}

/** `sites[3] (store-0042).stylus` style label of an inventory path. */
function siteLabel(raw: unknown, path: PathSegment[]): string {
  if (path[0] === 'sites' && typeof path[1] === 'number') {
    const name = valueAt(raw, ['sites', path[1], 'name'])
    const head = typeof name === 'string' ? `site ${name}` : `sites[${path[1]}]`
    return path.length > 2 ? `${head}: ${formatPath(path.slice(2))}` : head
  }
  return path.length ? formatPath(path) : 'the inventory'
}

function valueAt(doc: unknown, path: readonly PathSegment[]): unknown {
  let node = doc
  for (const segment of path) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string | number, unknown>)[segment]
  }
  return node
}

function lineAt(doc: Document, counter: LineCounter, path: readonly PathSegment[]): number | undefined {
  const node = doc.getIn(path, true)
  return isNode(node) && node.range ? counter.linePos(node.range[0]).line : undefined
}
