// Palette writes profiles in two shapes: the export/import entity (`packs[].registry.metadata.uid`, `version`) and
// the create-API entity (`packs[].uid`, `registryUid`, `tag` only). Both become one LoadedProfile, and `document`
// is always the export shape, which is what a cluster definition embeds.

import type {LoadedProfile, PackModel, ProfileVariable} from './types.js'
import type {PositionIndex} from './text.js'

export const PROFILE_TYPES = ['cluster', 'infra', 'add-on', 'system'] as const

type Json = Record<string, unknown>

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Whether a parsed document looks like a cluster profile at all (as opposed to some other JSON/YAML file). */
export function looksLikeProfile(value: unknown): boolean {
  return (
    isObject(value) && isObject(value.spec) && isObject(value.spec.template) && Array.isArray(value.spec.template.packs)
  )
}

function scalarString(v: unknown): string | undefined {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  return undefined
}

export interface NormalizeResult {
  profile?: Omit<LoadedProfile, 'file' | 'sha256' | 'entry'>
  /** Schema problems, each `path: what is wrong` — the profile is unusable if there is any. */
  problems: string[]
}

/** Renders ` (line N)` for a document path, or nothing when the position index does not know it. */
type LineSuffix = (path: (string | number)[]) => string

function lineSuffixFor(positions: PositionIndex): LineSuffix {
  return (path) => {
    const line = positions.line(path)
    return line === undefined ? '' : ` (line ${line})`
  }
}

interface ProfileHeader {
  name?: string
  version?: string
  rawType?: string
  cloudType?: string
}

/** The profile's identity fields: name, version, template type and cloud type, each reported when missing or wrong. */
function readProfileHeader(
  metadata: Json,
  spec: Json,
  template: Json,
  at: LineSuffix,
  problems: string[],
): ProfileHeader {
  const name = typeof metadata.name === 'string' ? metadata.name : undefined
  if (metadata.name !== undefined && metadata.name !== null && typeof metadata.name !== 'string') {
    problems.push(
      `metadata.name${at(['metadata', 'name'])}: expected a string, got ${typeof metadata.name} ${JSON.stringify(metadata.name)} (quote it in YAML)`,
    )
  } else if (!name || name.trim() === '') problems.push(`metadata.name${at(['metadata'])}: the profile name is missing`)
  const version = scalarString(spec.version)
  if (version === undefined || version === '')
    problems.push(`spec.version${at(['spec'])}: the profile version is missing`)
  const rawType = scalarString(template.type)
  if (!rawType || !(PROFILE_TYPES as readonly string[]).includes(rawType)) {
    problems.push(
      `spec.template.type${at(['spec', 'template', 'type'])}: ${rawType === undefined ? 'missing' : JSON.stringify(rawType)}; expected one of ${PROFILE_TYPES.join(', ')}`,
    )
  }
  const cloudType = scalarString(template.cloudType)
  if (!cloudType)
    problems.push(`spec.template.cloudType${at(['spec', 'template'])}: missing (edge profiles say "edge-native")`)
  return {name, version, rawType, cloudType}
}

/** A pack's values YAML: must be one string (Palette stores it so); anything else is a problem and counts as empty. */
function readPackValues(raw: Json, p: string, path: (string | number)[], at: LineSuffix, problems: string[]): string {
  if (raw.values === undefined || raw.values === null) return ''
  if (typeof raw.values === 'string') return raw.values
  problems.push(
    `${p}.values${at([...path, 'values'])}: must be the pack's values YAML as one string, got ${Array.isArray(raw.values) ? 'a list' : typeof raw.values}`,
  )
  return ''
}

/** The pack's registry, from either shape: `registryUid` (create API) wins over `registry.metadata.uid` (export). */
function readPackRegistry(raw: Json): {
  meta?: Json
  registryUid?: string
  registry: NonNullable<PackModel['registry']>
} {
  const meta = isObject(raw.registry) && isObject(raw.registry.metadata) ? raw.registry.metadata : undefined
  const registryUid = scalarString(raw.registryUid) ?? scalarString(meta?.uid)
  const registry = {
    ...(registryUid ? {uid: registryUid} : {}),
    ...(scalarString(meta?.name) ? {name: scalarString(meta?.name)} : {}),
    ...(scalarString(meta?.kind) ? {kind: scalarString(meta?.kind)} : {}),
  }
  return {meta, registryUid, registry}
}

/** Manifests attached to a pack; a nameless one gets a stable name from its position. */
function readPackManifests(raw: Json): PackModel['manifests'] {
  return Array.isArray(raw.manifests)
    ? raw.manifests.filter(isObject).map((m, j) => ({
        name: scalarString(m.name) ?? `manifest-${j}`,
        content: typeof m.content === 'string' ? m.content : '',
      }))
    : undefined
}

/** The export shape of a pack: no pack uid, no registryUid; the registry goes under registry.metadata. */
function exportShapePack(
  raw: Json,
  fields: {type: string; packVersion?: string; tag?: string; values: string; registryUid?: string; meta?: Json},
): Json {
  const {type, packVersion, tag, values, registryUid, meta} = fields
  const {uid: _uid, registryUid: _registryUid, packUid: _packUid, ...rest} = raw
  const docPack: Json = {...rest, type, version: packVersion, ...(tag ? {tag} : {}), values}
  if (registryUid && !meta) docPack.registry = {metadata: {uid: registryUid}}
  else if (registryUid && meta && !meta.uid)
    docPack.registry = {...(raw.registry as Json), metadata: {...meta, uid: registryUid}}
  return docPack
}

/**
 * One entry of spec.template.packs: its problems go to `problems`; `pack` is there only when name, layer and version
 * are, `docPack` whenever the entry is an object (the document keeps even an incomplete pack, in export shape).
 */
function normalizePack(
  raw: unknown,
  i: number,
  positions: PositionIndex,
  at: LineSuffix,
  problems: string[],
): {pack?: PackModel; docPack?: Json} {
  const p = `spec.template.packs[${i}]`
  const path = ['spec', 'template', 'packs', i]
  if (!isObject(raw)) {
    problems.push(`${p}${at(path)}: expected an object`)
    return {}
  }
  const packName = scalarString(raw.name)
  if (!packName) problems.push(`${p}.name${at(path)}: the pack name is missing`)
  const layer = scalarString(raw.layer)
  if (!layer) problems.push(`${p}.layer${at(path)}: missing (os, k8s, cni, csi or addon)`)
  const tag = scalarString(raw.tag)
  const packVersion = scalarString(raw.version) ?? tag
  if (!packVersion) problems.push(`${p}.version${at(path)}: missing (neither version nor tag is set)`)
  const values = readPackValues(raw, p, path, at, problems)
  const type = scalarString(raw.type) ?? 'spectro'
  const {meta, registryUid, registry} = readPackRegistry(raw)
  const manifests = readPackManifests(raw)
  const valuesStart = positions.textStart([...path, 'values'])
  const docPack = exportShapePack(raw, {type, packVersion, tag, values, registryUid, meta})
  if (!(packName && layer && packVersion)) return {docPack}
  const pack: PackModel = {
    name: packName,
    type,
    layer,
    version: packVersion,
    ...(tag ? {tag} : {}),
    values,
    ...(Object.keys(registry).length > 0 ? {registry} : {}),
    ...(positions.line(path) === undefined ? {} : {fileLine: positions.line(path)}),
    ...(valuesStart ? {valuesFileLine: valuesStart.line, valuesIsBlock: valuesStart.block} : {}),
    ...(manifests ? {manifests} : {}),
  }
  return {pack, docPack}
}

/** Profile variables (spec.variables, or template.variables in older exports); each needs a name. */
function readVariables(spec: Json, template: Json, at: LineSuffix, problems: string[]): ProfileVariable[] {
  const variables: ProfileVariable[] = []
  const rawVars = spec.variables ?? template.variables
  if (rawVars === undefined || rawVars === null) return variables
  if (!Array.isArray(rawVars)) {
    problems.push(`spec.variables${at(['spec', 'variables'])}: expected a list`)
    return variables
  }
  rawVars.forEach((v, i) => {
    const varName = isObject(v) ? scalarString(v.name) : undefined
    if (!isObject(v) || !varName) {
      problems.push(`spec.variables[${i}]${at(['spec', 'variables', i])}: a variable needs a name`)
      return
    }
    const defaultValue = scalarString(v.defaultValue)
    variables.push({...v, name: varName, ...(defaultValue === undefined ? {} : {defaultValue})} as ProfileVariable)
  })
  return variables
}

export function normalizeProfile(value: unknown, positions: PositionIndex): NormalizeResult {
  const problems: string[] = []
  const at = lineSuffixFor(positions)
  if (!looksLikeProfile(value)) {
    return {
      problems: [
        'expected a cluster profile: an object with metadata.name and spec.template.packs[] (Palette "Export Profile" format)',
      ],
    }
  }
  const root = value as Json
  const spec = root.spec as Json
  const template = spec.template as Json
  const metadata = isObject(root.metadata) ? root.metadata : {}

  const {name, version, rawType, cloudType} = readProfileHeader(metadata, spec, template, at, problems)
  const packs: PackModel[] = []
  const docPacks: Json[] = []
  ;(template.packs as unknown[]).forEach((raw, i) => {
    const {pack, docPack} = normalizePack(raw, i, positions, at, problems)
    if (pack) packs.push(pack)
    if (docPack) docPacks.push(docPack)
  })
  const variables = readVariables(spec, template, at, problems)

  if (problems.length > 0) return {problems}
  const document: Json = {
    ...root,
    metadata: {...metadata, name},
    spec: {
      ...spec,
      version,
      template: {...template, type: rawType, cloudType, packs: docPacks},
      ...(variables.length > 0 ? {variables} : {}),
    },
  }
  return {
    problems,
    profile: {
      name: name!,
      version: version!,
      type: rawType as LoadedProfile['type'],
      cloudType: cloudType!,
      packs,
      variables,
      document,
      fileLines: {
        type: positions.line(['spec', 'template', 'type']),
        cloudType: positions.line(['spec', 'template', 'cloudType']),
        variables: variables.map((_, i) => positions.line(['spec', 'variables', i]) ?? 0),
      },
    },
  }
}
