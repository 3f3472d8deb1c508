// A pack's `values` is one YAML string inside the profile. It is parsed here, once per pack, with line numbers
// (so findings can point at the line Palette's pack editor shows) and bounded alias expansion.

import {Scalar} from 'yaml'

import {PositionIndex, TextProblem, parseYamlDocuments} from './text.js'
import type {Finding, LoadedProfile, PackModel} from './types.js'
import {profileLocation} from './types.js'

export interface ParsedValues {
  /** The values as data; undefined when they do not parse (see error). */
  data?: Record<string, unknown>
  positions: PositionIndex
  error?: {message: string; line?: number}
}

const cache = new WeakMap<PackModel, ParsedValues>()
const NO_POSITIONS = new PositionIndex(undefined, undefined)

export function parseValues(pack: PackModel): ParsedValues {
  const hit = cache.get(pack)
  if (hit) return hit
  let result: ParsedValues
  if (pack.values.trim() === '') {
    result = {data: {}, positions: NO_POSITIONS}
  } else {
    try {
      const parsed = parseYamlDocuments(pack.values)
      const value = parsed.value
      if (value === null || value === undefined) result = {data: {}, positions: parsed.positions}
      else if (typeof value !== 'object' || Array.isArray(value)) {
        result = {positions: parsed.positions, error: {message: 'the values are not a YAML mapping', line: 1}}
      } else result = {data: value as Record<string, unknown>, positions: parsed.positions}
    } catch (err) {
      if (!(err instanceof TextProblem)) throw err
      result = {positions: NO_POSITIONS, error: {message: err.message, line: err.line}}
    }
  }
  cache.set(pack, result)
  return result
}

/** The source text of a scalar as written (so `version: 1.10` stays "1.10", not the number 1.1). */
export function scalarSource(values: ParsedValues, path: (string | number)[], value: unknown): string | undefined {
  const node = values.positions.node(path)
  if (node instanceof Scalar && typeof node.source === 'string' && typeof value !== 'string') return node.source
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return undefined
}

/** An `options` value of a pack: keys such as `system.uri` are literal dotted keys; nested maps work too. */
export function packOption(values: ParsedValues, key: string): {value?: string; line?: number} {
  const options = values.data?.options
  if (typeof options !== 'object' || options === null) return {}
  const opts = options as Record<string, unknown>
  if (key in opts) {
    const v = opts[key]
    return {value: scalarSource(values, ['options', key], v), line: values.positions.line(['options', key])}
  }
  const parts = key.split('.')
  let cur: unknown = opts
  for (const part of parts) {
    if (typeof cur !== 'object' || cur === null || !(part in (cur as object))) return {}
    cur = (cur as Record<string, unknown>)[part]
  }
  return {value: scalarSource(values, ['options', ...parts], cur), line: values.positions.line(['options', ...parts])}
}

/** The file line of line N of a pack's values, where the mapping is exact (YAML block scalar); otherwise the
 *  line of the `values` key (a JSON string holds all its lines on one line of the file). */
export function valuesFileLine(pack: PackModel, line: number | undefined): number | undefined {
  if (pack.valuesFileLine === undefined) return pack.fileLine
  if (line !== undefined && pack.valuesIsBlock) return pack.valuesFileLine + line - 1
  return pack.valuesFileLine
}

/** A finding about a pack, with the values line mapped to the file line where that is exact. */
export function packFinding(
  profile: LoadedProfile,
  pack: PackModel | undefined,
  f: Omit<Finding, 'file' | 'profile' | 'pack' | 'fileLine'> & {valuesLine?: boolean},
): Finding {
  const {valuesLine, ...rest} = f
  let fileLine: number | undefined
  if (pack) {
    fileLine = valuesLine ? valuesFileLine(pack, rest.line) : pack.fileLine
  }
  const line = valuesLine ? rest.line : (rest.line ?? fileLine)
  return {
    ...rest,
    file: profileLocation(profile),
    profile: profile.name,
    ...(pack ? {pack: pack.name} : {}),
    ...(line === undefined ? {} : {line}),
    ...(fileLine === undefined ? {} : {fileLine}),
  }
}
