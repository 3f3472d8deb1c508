// One finding of the user-data checks, and the helpers every check uses to name where it is: the key path in
// the installer's own dotted notation (stylus.site.network.interfaces.enp1s0.ipAddress, stages.initramfs[0]…).

export type Severity = 'error' | 'warning'

export interface UserDataFinding {
  file?: string
  site?: string
  /** Key path, e.g. `stylus.site.network.interfaces.enp1s0.ipAddress`; `` for the document itself. */
  path: string
  severity: Severity
  message: string
  hint?: string
  /** 1-based line in the file the finding comes from, when known. */
  line?: number
}

export type PathSegment = string | number

export function formatPath(path: readonly PathSegment[]): string {
  let out = ''
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out ? `.${segment}` : segment
    else out += `[${JSON.stringify(segment)}]`
  }
  return out
}

/** The closest candidate to a mistyped key, if it is close enough to be what was meant. */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const lower = input.toLowerCase()
  const exactCase = candidates.find((c) => c.toLowerCase() === lower)
  if (exactCase) return exactCase
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const d = levenshtein(lower, candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  const tolerance = Math.max(2, Math.floor(input.length / 3))
  return bestDistance <= tolerance ? best : undefined
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({length: b.length + 1}, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]
}

/** A value as it may appear in a message: short, quoted, and never a secret. */
export function shown(value: unknown): string {
  if (typeof value === 'string') {
    const text = value.length > 60 ? `${value.slice(0, 57)}...` : value
    return `'${text}'`
  }
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a map'
  return String(value)
}

export function typeName(value: unknown): string {
  if (value === null || value === undefined) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a map'
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number'
  if (typeof value === 'boolean') return 'a boolean'
  return 'a string'
}

/** Keys whose values are secrets: their values never appear in a message. */
export const SECRET_KEYS = new Set(['password', 'passwd', 'edgeHostToken', 'encodedPassword'])

/** The value at a key path of a parsed document, or undefined where the path leaves it. */
export function valueAt(doc: unknown, path: readonly PathSegment[]): unknown {
  let node = doc
  for (const segment of path) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string | number, unknown>)[segment]
  }
  return node
}
