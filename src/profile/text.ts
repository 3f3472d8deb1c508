// Turning untrusted bytes into a JSON value with line numbers: size and encoding checks, JSON and YAML parsing
// with bounded alias expansion, and a position index so that findings can name the line they come from.

import {limitBytes} from '../limits.js'
import {
  LineCounter,
  parseAllDocuments,
  parseDocument,
  Scalar,
  isAlias,
  isNode,
  isMap,
  type Document,
  type Node,
} from 'yaml'

/** Limits for untrusted input. A real exported profile is well under 1 MiB. */
export const LIMITS = {
  // The byte budgets are named, explained and overridable in src/limits.ts with the others.
  /** A profile file (.json / .yaml). */
  get profileBytes() {
    return limitBytes('profile')
  },
  /** A cluster definition .tgz, compressed. */
  get definitionBytes() {
    return limitBytes('definition')
  },
  /** All entries of a cluster definition, uncompressed. */
  get definitionTotalBytes() {
    return limitBytes('definitionEntries')
  },
  /** One entry of a cluster definition. */
  get definitionEntryBytes() {
    return limitBytes('definitionEntry')
  },
  definitionEntries: 1000,
  /** The decompressed tar stream of a cluster definition (entries plus headers and padding). */
  get definitionTarBytes() {
    return limitBytes('definitionTar')
  },
  /** Alias expansions allowed when a YAML document is turned into data (a "billion laughs" stops here). */
  yamlAliases: 100,
  /** JSON files up to this size get line numbers (indexed through the YAML parser, which is slower than JSON.parse). */
  jsonPositionBytes: 4 * 1024 * 1024,
  /** Nesting of macros inside macro values (system.uri composed of other options). */
  macroDepth: 8,
} as const

export class TextProblem extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message)
    this.name = 'TextProblem'
  }
}

/** Decode bytes as UTF-8 text, refusing binary content (NUL bytes or invalid UTF-8). */
export function decodeText(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0)
  if (nul !== -1) throw new TextProblem(`it is a binary file, not text (NUL byte at offset ${nul})`)
  try {
    const text = new TextDecoder('utf-8', {fatal: true}).decode(bytes)
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
  } catch {
    throw new TextProblem('it is not UTF-8 text (binary content)')
  }
}

export function lineColumnAt(text: string, offset: number): {line: number; column: number} {
  let line = 1
  let lastBreak = -1
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++
      lastBreak = i
    }
  }
  return {line, column: offset - lastBreak}
}

/** Positions of nodes in a parsed document, by path. For pack values of several YAML documents, a path is looked up
 *  in the document that provides its top-level key (the first one that has it), as the merged data reads it. */
export class PositionIndex {
  private readonly docs: Document[]

  constructor(
    doc: Document | Document[] | undefined,
    private readonly lines: LineCounter | undefined,
  ) {
    this.docs = doc === undefined ? [] : Array.isArray(doc) ? doc : [doc]
  }

  node(path: (string | number)[]): Node | undefined {
    for (const doc of this.docs) {
      let node: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true)
      if (isAlias(node)) node = node.resolve(doc)
      if (isNode(node)) return node
      if (path.length === 0) return undefined
      // The first document holding the top-level key is the one the merged data took it from.
      if (isMap(doc.contents) && doc.contents.has(path[0])) return undefined
    }
    return undefined
  }

  /** 1-based line where the node at `path` starts. */
  line(path: (string | number)[]): number | undefined {
    const node = this.node(path)
    if (!node?.range || !this.lines) return undefined
    return this.lines.linePos(node.range[0]).line
  }

  /** Where a YAML string's own line 1 sits in the file. Exact for block scalars (`|`, `>`); otherwise the line
   *  of the scalar itself (a quoted JSON string holds all its lines on one line of the file). */
  textStart(path: (string | number)[]): {line: number; block: boolean} | undefined {
    const node = this.node(path)
    if (!node?.range || !this.lines) return undefined
    const line = this.lines.linePos(node.range[0]).line
    const block = node instanceof Scalar && (node.type === Scalar.BLOCK_LITERAL || node.type === Scalar.BLOCK_FOLDED)
    return block ? {line: line + 1, block: true} : {line, block: false}
  }
}

export interface ParsedText {
  value: unknown
  positions: PositionIndex
}

function yamlProblem(doc: Document, lines: LineCounter, single: boolean): TextProblem | undefined {
  const first = doc.errors[0]
  if (!first) return undefined
  const pos = first.linePos?.[0] ?? lines.linePos(first.pos[0])
  const what =
    first.code === 'MULTIPLE_DOCS' && single
      ? 'it holds several YAML documents; a profile is one document'
      : /call stack/i.test(first.message)
        ? 'it nests too deeply to be a profile'
        : first.message.split('\n')[0]!
  return new TextProblem(`malformed YAML: ${what}`, pos?.line, pos?.col)
}

function toData(doc: Document): unknown {
  try {
    return doc.toJS({maxAliasCount: LIMITS.yamlAliases})
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) {
      throw new TextProblem(`YAML alias expansion exceeds the limit of ${LIMITS.yamlAliases} (an alias bomb?)`)
    }
    throw new TextProblem(`malformed YAML: ${(err as Error).message}`)
  }
}

/** Parse a YAML document (one only), with line numbers and bounded alias expansion. */
export function parseYamlText(text: string): ParsedText {
  const lines = new LineCounter()
  const doc = parseDocument(text, {lineCounter: lines, prettyErrors: false, uniqueKeys: true})
  const problem = yamlProblem(doc, lines, true)
  if (problem) throw problem
  return {value: toData(doc), positions: new PositionIndex(doc, lines)}
}

/** Parse a pack's values, which may be several YAML documents (`---`): Palette reads them all, so the values are
 *  their top-level keys together (the first document that has a key gives it; Palette's Edge troubleshooting page
 *  adds Kairos `stages` in a second document after the BYOS values). Line numbers count from the start of the
 *  whole text, so they stay right in every document. A document that is not a mapping is refused. */
export function parseYamlDocuments(text: string): ParsedText {
  const lines = new LineCounter()
  const docs = parseAllDocuments(text, {lineCounter: lines, prettyErrors: false, uniqueKeys: true})
  const list = Array.isArray(docs) ? docs : []
  if (list.length <= 1) {
    const doc = list[0]
    if (!doc) return {value: null, positions: new PositionIndex(undefined, lines)}
    const problem = yamlProblem(doc, lines, false)
    if (problem) throw problem
    return {value: toData(doc), positions: new PositionIndex(doc, lines)}
  }
  const merged: Record<string, unknown> = {}
  for (const doc of list) {
    const problem = yamlProblem(doc, lines, false)
    if (problem) throw problem
    const value = toData(doc)
    if (value === null || value === undefined) continue
    if (typeof value !== 'object' || Array.isArray(value)) {
      const start = doc.contents?.range ? lines.linePos(doc.contents.range[0]) : undefined
      throw new TextProblem('a YAML document of the values is not a mapping', start?.line, start?.col)
    }
    // defineProperty, not assignment: a `__proto__` key stays a plain key.
    for (const [k, v] of Object.entries(value)) {
      if (!Object.hasOwn(merged, k))
        Object.defineProperty(merged, k, {value: v, enumerable: true, writable: true, configurable: true})
    }
  }
  return {value: merged, positions: new PositionIndex(list, lines)}
}

/** Parse JSON strictly (JSON.parse), then index positions through the YAML parser (JSON is YAML). */
export function parseJsonText(text: string): ParsedText {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    const message = (err as Error).message
    const at = /at position (\d+)/.exec(message)
    const pos = at
      ? lineColumnAt(text, Number(at[1]))
      : text.trim() === ''
        ? undefined
        : lineColumnAt(text, text.length)
    throw new TextProblem(
      `malformed JSON: ${message.replace(/ in JSON at position \d+.*$/, '').replace(/ \(line \d+ column \d+\)$/, '')}`,
      pos?.line,
      pos?.column,
    )
  }
  // Line numbers cost a second, slower parse; past a size no real export reaches, findings go without them.
  if (text.length > LIMITS.jsonPositionBytes) return {value, positions: new PositionIndex(undefined, undefined)}
  const lines = new LineCounter()
  const doc = parseDocument(text, {lineCounter: lines, prettyErrors: false, uniqueKeys: false})
  return {value, positions: new PositionIndex(doc.errors.length === 0 ? doc : undefined, lines)}
}

/** JSON when the name says so or the text starts like a JSON object; YAML otherwise. */
export function parseProfileText(text: string, name: string): ParsedText {
  if (text.trim() === '') throw new TextProblem('it is empty')
  const json = /\.json$/i.test(name) || (!/\.ya?ml$/i.test(name) && /^\s*[{[]/.test(text))
  return json ? parseJsonText(text) : parseYamlText(text)
}
