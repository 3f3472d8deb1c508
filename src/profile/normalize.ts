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

export function normalizeProfile(value: unknown, positions: PositionIndex): NormalizeResult {
  const problems: string[] = []
  const at = (path: (string | number)[]) => {
    const line = positions.line(path)
    return line === undefined ? '' : ` (line ${line})`
  }
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

  const packs: PackModel[] = []
  const docPacks: Json[] = []
  ;(template.packs as unknown[]).forEach((raw, i) => {
    const p = `spec.template.packs[${i}]`
    const path = ['spec', 'template', 'packs', i]
    if (!isObject(raw)) {
      problems.push(`${p}${at(path)}: expected an object`)
      return
    }
    const packName = scalarString(raw.name)
    if (!packName) problems.push(`${p}.name${at(path)}: the pack name is missing`)
    const layer = scalarString(raw.layer)
    if (!layer) problems.push(`${p}.layer${at(path)}: missing (os, k8s, cni, csi or addon)`)
    const tag = scalarString(raw.tag)
    const packVersion = scalarString(raw.version) ?? tag
    if (!packVersion) problems.push(`${p}.version${at(path)}: missing (neither version nor tag is set)`)
    let values = ''
    if (raw.values !== undefined && raw.values !== null) {
      if (typeof raw.values === 'string') values = raw.values
      else
        problems.push(
          `${p}.values${at([...path, 'values'])}: must be the pack's values YAML as one string, got ${Array.isArray(raw.values) ? 'a list' : typeof raw.values}`,
        )
    }
    const type = scalarString(raw.type) ?? 'spectro'
    const meta = isObject(raw.registry) && isObject(raw.registry.metadata) ? raw.registry.metadata : undefined
    const registryUid = scalarString(raw.registryUid) ?? scalarString(meta?.uid)
    const registry = {
      ...(registryUid ? {uid: registryUid} : {}),
      ...(scalarString(meta?.name) ? {name: scalarString(meta?.name)} : {}),
      ...(scalarString(meta?.kind) ? {kind: scalarString(meta?.kind)} : {}),
    }
    const manifests = Array.isArray(raw.manifests)
      ? raw.manifests.filter(isObject).map((m, j) => ({
          name: scalarString(m.name) ?? `manifest-${j}`,
          content: typeof m.content === 'string' ? m.content : '',
        }))
      : undefined
    const valuesStart = positions.textStart([...path, 'values'])
    if (packName && layer && packVersion) {
      packs.push({
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
      })
    }
    // The export shape: no pack uid, no registryUid; the registry goes under registry.metadata.
    const {uid: _uid, registryUid: _registryUid, packUid: _packUid, ...rest} = raw
    const docPack: Json = {...rest, type, version: packVersion, ...(tag ? {tag} : {}), values}
    if (registryUid && !meta) docPack.registry = {metadata: {uid: registryUid}}
    else if (registryUid && meta && !meta.uid)
      docPack.registry = {...(raw.registry as Json), metadata: {...meta, uid: registryUid}}
    docPacks.push(docPack)
  })

  const variables: ProfileVariable[] = []
  const rawVars = spec.variables ?? template.variables
  if (rawVars !== undefined && rawVars !== null) {
    if (!Array.isArray(rawVars)) problems.push(`spec.variables${at(['spec', 'variables'])}: expected a list`)
    else
      rawVars.forEach((v, i) => {
        const varName = isObject(v) ? scalarString(v.name) : undefined
        if (!isObject(v) || !varName) {
          problems.push(`spec.variables[${i}]${at(['spec', 'variables', i])}: a variable needs a name`)
          return
        }
        const defaultValue = scalarString(v.defaultValue)
        variables.push({...v, name: varName, ...(defaultValue === undefined ? {} : {defaultValue})} as ProfileVariable)
      })
  }

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
