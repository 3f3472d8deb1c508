import {LineCounter, isNode, parseDocument, type Document} from 'yaml'
import {z} from 'zod'

import {InvalidInputError} from '../errors.js'
import {didYouMean, formatPath, valueAt, type PathSegment} from './findings.js'
import type {Fragment} from './merge.js'
import {MAX_ALIAS_COUNT, YAML_OPTIONS} from './validate.js'
import {readInputText} from '../util/read-input.js'

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

const defaultsSchema = z.strictObject({stylus: fragmentMap, install: fragmentMap, stages: fragmentMap}).nullish()

const inventorySchema = z.strictObject({
  defaults: z.unknown().optional(),
  sites: z.array(z.unknown()).min(1),
})

export interface InventorySite {
  name: string
  /** Index in `sites`, for messages. */
  index: number
  fragment: Fragment
}

/** A problem of the inventory's own shape (not of the user-data it yields). */
export interface InventoryProblem {
  /** The site's name, when the entry has one. */
  site?: string
  /** `sites[3].naem`, `defaults.stylis`, or the path inside a named site (`stylus`). */
  path: string
  message: string
  line?: number
}

export interface Inventory {
  file: string
  defaults: Fragment
  /** The entries whose shape is valid; entries with problems are left out and listed in `problems`. */
  sites: InventorySite[]
  problems: InventoryProblem[]
  /** 1-based line of a key path of a site's merged fragment: the site's own key if it has it, else the default's. */
  lineOf(siteIndex: number, path: readonly PathSegment[]): number | undefined
}

export async function loadInventory(file: string): Promise<Inventory> {
  const text = await readInputText(file, {
    code: 'SITES_UNREADABLE',
    what: 'the site inventory',
    hint: 'Pass the path of a SITES.yaml file to --sites (see examples/sites/sites.yaml).',
  })
  return parseInventory(text, file)
}

/**
 * Parse an inventory. YAML that does not parse, or a document without a `sites` list, throws
 * (InvalidInputError); a bad `defaults` or site entry is listed in `problems` and the other sites still come
 * back, so that the caller can report every problem of every site at once.
 */
export function parseInventory(text: string, file: string): Inventory {
  const counter = new LineCounter()
  const doc = parseDocument(text, {...YAML_OPTIONS, lineCounter: counter})
  if (doc.errors.length) {
    throw invalid(
      file,
      doc.errors.map(
        (e) =>
          `line ${e.linePos?.[0].line ?? 1}: YAML syntax: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`,
      ),
    )
  }
  let raw: unknown
  try {
    raw = doc.toJS({maxAliasCount: MAX_ALIAS_COUNT})
  } catch (error) {
    // yaml refuses alias bombs (a few lines that expand to gigabytes) with a ReferenceError.
    throw invalid(file, [`YAML: ${(error as Error).message}`])
  }
  const problems: InventoryProblem[] = []
  const collect = (issues: z.core.$ZodIssue[], prefix: PathSegment[]) => {
    for (const issue of issues)
      problems.push(...describe({...issue, path: [...prefix, ...issue.path]} as z.core.$ZodIssue, raw, doc, counter))
  }

  const top = inventorySchema.safeParse(raw ?? {})
  if (!top.success) {
    collect(top.error.issues, [])
    throw invalid(file, problems.map(formatInventoryProblem))
  }

  const defaults = defaultsSchema.safeParse(top.data.defaults)
  if (!defaults.success) collect(defaults.error.issues, ['defaults'])

  const sites: InventorySite[] = []
  for (const [index, entry] of top.data.sites.entries()) {
    const parsed = siteSchema.safeParse(entry)
    if (!parsed.success) {
      collect(parsed.error.issues, ['sites', index])
      continue
    }
    const {name, ...fragment} = parsed.data
    sites.push({name, index, fragment: dropUndefined(fragment)})
  }
  return {
    file,
    defaults: defaults.success ? dropUndefined(defaults.data ?? {}) : {},
    sites,
    problems,
    lineOf(siteIndex, path) {
      return lineAt(doc, counter, ['sites', siteIndex, ...path]) ?? lineAt(doc, counter, ['defaults', ...path])
    },
  }
}

export function formatInventoryProblem(p: InventoryProblem): string {
  return `${p.site ? `site ${p.site}: ` : ''}${p.path ? `${p.path}: ` : ''}${p.message}`
}

function dropUndefined(fragment: Record<string, unknown>): Fragment {
  return Object.fromEntries(Object.entries(fragment).filter(([, v]) => v !== undefined))
}

export function invalid(file: string, problems: string[], findings?: unknown[]): InvalidInputError {
  return new InvalidInputError(
    'SITES_INVALID',
    `${problems.length} problem${problems.length === 1 ? '' : 's'} in the site inventory ${file}; no user-data was written`,
    {
      hint: 'Fix each key in the inventory (in the site entry or in defaults), then render again; see examples/sites/sites.yaml for the layout.',
      details: {file, problems, ...(findings ? {findings} : {})},
    },
  )
}

function describe(issue: z.core.$ZodIssue, raw: unknown, doc: Document, counter: LineCounter): InventoryProblem[] {
  const path = issue.path as PathSegment[]
  const make = (p: PathSegment[], message: string): InventoryProblem => {
    const line = lineAt(doc, counter, p)
    return {...siteLabel(raw, p), message, ...(line ? {line} : {})}
  }
  if (issue.code === 'unrecognized_keys') {
    const known =
      path.length === 0
        ? ['defaults', 'sites']
        : path[0] === 'defaults'
          ? [...FRAGMENT_KEYS]
          : ['name', ...FRAGMENT_KEYS]
    return issue.keys.map((key) => {
      const guess = didYouMean(key, known)
      return make(
        [...path, key],
        `is not an inventory key${guess ? `; did you mean \`${guess}\`?` : ` (allowed here: ${known.join(', ')})`}`,
      )
    })
  }
  const leaf = path.at(-1)
  const value = valueAt(raw, path)
  let message = issue.message
  if (leaf === 'name' && path[0] === 'sites' && path.length === 3) {
    message =
      value === undefined
        ? 'is missing: every site needs a unique name (it names the output folder)'
        : typeof value !== 'string'
          ? `must be a string, not ${JSON.stringify(value)} (quote it)`
          : `'${value}' is not a usable site name: letters, digits, ".", "_" and "-", at most 64, starting and ending with a letter or digit`
  } else if (path.length === 1 && path[0] === 'sites') {
    message =
      value === undefined
        ? 'is missing: list the sites to render under `sites:`'
        : Array.isArray(value)
          ? 'is empty: list at least one site'
          : 'must be a list of sites'
  } else if (issue.code === 'invalid_type') {
    const expected =
      issue.expected === 'record' || issue.expected === 'object'
        ? 'a map'
        : issue.expected === 'array'
          ? 'a list'
          : issue.expected
    message = value === undefined ? `is missing (${expected})` : `must be ${expected}`
  }
  return [make(path, message)]
}

/** Which site a path is in (by name when it has one), and the path inside it. */
function siteLabel(raw: unknown, path: PathSegment[]): {site?: string; path: string} {
  if (path[0] === 'sites' && typeof path[1] === 'number') {
    const name = valueAt(raw, ['sites', path[1], 'name'])
    if (typeof name === 'string' && name) return {site: name, path: formatPath(path.slice(2))}
    return {path: formatPath(path)}
  }
  return {path: path.length ? formatPath(path) : '(inventory)'}
}

function lineAt(doc: Document, counter: LineCounter, path: readonly PathSegment[]): number | undefined {
  const node = doc.getIn(path, true)
  return isNode(node) && node.range ? counter.linePos(node.range[0]).line : undefined
}
