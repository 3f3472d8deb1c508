import {LineCounter, parseDocument, isMap, isNode, type Document} from 'yaml'
import type {z} from 'zod'

import {
  SECRET_KEYS,
  didYouMean,
  formatPath,
  shown,
  typeName,
  valueAt,
  type PathSegment,
  type UserDataFinding,
} from './findings.js'
import {semanticFindings, type RawFinding} from './semantic.js'
import {knownKeysAt, userDataSchema} from './schema.js'

export const CLOUD_CONFIG_HEADER = '#cloud-config'

/** Alias expansions allowed when reading YAML: plenty for anchors in an inventory, far too few for a bomb. */
export const MAX_ALIAS_COUNT = 1000

export interface ValidationResult {
  valid: boolean
  findings: UserDataFinding[]
}

// YAML 1.1, as the Go and Python readers of user-data see it: `0644` is octal, `yes` is a boolean. Exotic
// 1.1 types (timestamps, binary, sets) are left out so that dates and base64 stay plain strings.
export const YAML_OPTIONS = {
  version: '1.1' as const,
  uniqueKeys: true,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- yaml's tag objects, read for `.tag` only
  customTags: (tags: any[]) =>
    tags.filter(
      (t) => !['timestamp', 'binary', 'set', 'omap', 'pairs'].some((name) => String(t.tag).endsWith(`:${name}`)),
    ),
}

/** Check one user-data text (as written to DIR/<site>/user-data or by hand): header, YAML, schema, semantics. */
export function validateUserData(text: string, options: {file?: string} = {}): ValidationResult {
  const findings: UserDataFinding[] = []
  const at = (f: Omit<UserDataFinding, 'file'>): UserDataFinding => ({
    ...(options.file ? {file: options.file} : {}),
    ...f,
  })
  const header = headerFinding(text)
  if (header) findings.push(at(header))
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, {...YAML_OPTIONS, lineCounter})
  const parsed = documentValue(doc)
  if ('findings' in parsed) {
    findings.push(...parsed.findings.map(at))
    return {valid: !findings.some((f) => f.severity === 'error'), findings}
  }
  for (const {segments, ...f} of checkUserDataObject(parsed.value)) {
    findings.push(at({...f, ...lineOf(doc, lineCounter, segments)}))
  }
  // Document order reads best: by line, the header and syntax findings first.
  const sorted = findings
    .map((f, i) => ({f, i}))
    .sort((a, b) => (a.f.line ?? 0) - (b.f.line ?? 0) || a.i - b.i)
    .map(({f: {line, ...rest}}) => (line ? {...rest, line} : rest))
  return {valid: !sorted.some((f) => f.severity === 'error'), findings: sorted}
}

/** The installer ignores user-data whose first line is not `#cloud-config`. */
function headerFinding(text: string): Omit<UserDataFinding, 'file'> | undefined {
  const firstLine = text.split(/\r?\n/, 1)[0]
  if (firstLine.trimEnd() === CLOUD_CONFIG_HEADER) return undefined
  return {
    path: '',
    severity: 'error',
    line: 1,
    message: firstLine.startsWith('\uFEFF')
      ? 'the file starts with a byte-order mark before #cloud-config'
      : `the first line is ${firstLine.trim() ? `'${firstLine.slice(0, 40)}'` : 'empty'}, not '#cloud-config'`,
    hint: 'Put `#cloud-config` alone on the first line; the installer ignores user-data without it.',
  }
}

/** The document as a map of keys, or why it cannot be checked further (syntax, alias bombs, empty, not a map). */
function documentValue(
  doc: ReturnType<typeof parseDocument>,
): {value: Record<string, unknown>} | {findings: Omit<UserDataFinding, 'file'>[]} {
  if (doc.errors.length > 0) {
    return {
      findings: doc.errors.map((error) => ({
        path: '',
        severity: 'error' as const,
        line: error.linePos?.[0].line,
        message: `YAML syntax: ${error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
    }
  }
  let value: unknown
  try {
    value = doc.toJS({maxAliasCount: MAX_ALIAS_COUNT})
  } catch (error) {
    // yaml refuses alias bombs (a few lines that expand to gigabytes) with a ReferenceError.
    const message = `YAML: ${(error as Error).message}`
    return {
      findings: [
        {
          path: '',
          severity: 'error',
          message,
          hint: 'Write the values out instead of through many nested aliases (*name).',
        },
      ],
    }
  }
  if (value === null || value === undefined) {
    return {
      findings: [
        {
          path: '',
          severity: 'warning',
          message: 'holds no keys; the agent runs with its defaults (central management)',
          hint: 'Add `stylus.managementMode: local` for a locally managed host.',
        },
      ],
    }
  }
  if (!isMap(doc.contents))
    return {
      findings: [
        {path: '', severity: 'error', line: 2, message: `the document is ${typeName(value)}, not a map of keys`},
      ],
    }
  return {value: value as Record<string, unknown>}
}

/** A finding on a parsed document: its path both formatted and as segments (to find its line). */
export interface ObjectFinding extends Omit<UserDataFinding, 'file' | 'line'> {
  segments: PathSegment[]
}

/** Check a parsed user-data document: the schema's findings, then those of the cross-field checks. */
export function checkUserDataObject(doc: Record<string, unknown>): ObjectFinding[] {
  const raw: RawFinding[] = []
  const parsed = userDataSchema.safeParse(doc)
  if (!parsed.success) for (const issue of parsed.error.issues) raw.push(...fromZodIssue(issue, doc))
  raw.push(...semanticFindings(doc))
  return raw.map((r) => ({
    segments: r.path,
    path: formatPath(r.path),
    severity: r.severity,
    message: r.message,
    ...(r.hint ? {hint: r.hint} : {}),
  }))
}

function fromZodIssue(issue: z.core.$ZodIssue, doc: unknown): RawFinding[] {
  const path = issue.path as PathSegment[]
  const value = valueAt(doc, path)
  const leaf = path.at(-1)
  const secret = typeof leaf === 'string' && SECRET_KEYS.has(leaf)
  const got = secret ? typeName(value) : `${typeName(value)} (${shown(value)})`
  const error = (message: string, hint?: string): RawFinding => ({
    path,
    severity: 'error',
    message,
    ...(hint ? {hint} : {}),
  })

  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeysAt(path)
      const where = path.length ? formatPath(path) : 'the document'
      return issue.keys.map((key) => {
        const guess = didYouMean(key, known)
        return {
          path: [...path, key],
          severity: 'error',
          message: `is not a key of ${where}; the agent would ignore it`,
          hint: guess ? `Did you mean \`${guess}\`?` : `Keys of ${where}: ${known.join(', ')}.`,
        }
      })
    }
    case 'invalid_type':
      return [error(...invalidType(issue.expected, value, got))]
    case 'invalid_value':
      return [error(`${secret ? 'the value' : shown(value)} is not one of ${issue.values.map(String).join(', ')}`)]
    case 'invalid_union':
      return [error(`expected a string or a number, got ${got}`)]
    case 'too_small':
    case 'too_big': {
      const bound =
        issue.code === 'too_small' ? `at least ${String(issue.minimum)}` : `at most ${String(issue.maximum)}`
      const isPort = typeof leaf === 'string' && /port$/i.test(leaf)
      return [
        error(
          `is ${secret ? 'out of range' : shown(value)}; it must be ${bound}`,
          isPort ? 'A TCP port is 1-65535.' : undefined,
        ),
      ]
    }
    case 'invalid_key':
      return issue.issues.flatMap((inner) =>
        fromZodIssue({...inner, path: [...path, ...inner.path]} as z.core.$ZodIssue, doc),
      )
    case 'custom': {
      const hint = (issue.params as {hint?: string} | undefined)?.hint
      return [error(issue.message, hint)]
    }
    default:
      return [error(issue.message)]
  }
}

/** A value of the wrong type: what was expected and found, and how YAML's reading of it is fixed. */
function invalidType(expected: string, value: unknown, got: string): [string, string?] {
  if (value === undefined) return [`is required (${expectedName(expected)})`]
  let hint: string | undefined
  if (expected === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
    hint = `Quote the value so YAML keeps it a string${typeof value === 'number' ? ' (unquoted, 0042 is read as a number)' : ' (unquoted, yes and on are read as true)'}.`
  } else if (expected === 'boolean' && typeof value === 'string') {
    hint = 'Write true or false without quotes.'
  } else if ((expected === 'number' || expected === 'int') && typeof value === 'string') {
    hint = 'Write the number without quotes.'
  }
  // A number where a string belongs is shown by type only: YAML already changed it (0042 reads as 34).
  const gotText = value === null ? 'null' : expected === 'string' && typeof value === 'number' ? typeName(value) : got
  return [`expected ${expectedName(expected)}, got ${gotText}`, hint]
}

function expectedName(expected: string): string {
  switch (expected) {
    case 'string':
      return 'a string'
    case 'boolean':
      return 'true or false'
    case 'int':
      return 'a whole number'
    case 'number':
      return 'a number'
    case 'array':
      return 'a list'
    case 'object':
    case 'record':
      return 'a map'
    default:
      return expected
  }
}

/** The line of the deepest node of `path` that exists in the document. */
function lineOf(doc: Document, counter: LineCounter, path: readonly PathSegment[]): {line?: number} {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true)
    if (isNode(node) && node.range) return {line: counter.linePos(node.range[0]).line}
  }
  return {}
}
