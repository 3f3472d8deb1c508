// The profile model shared by validation (issue 2), the registry resolver (issue 3) and the bundle writer (issue 4).
// A profile is read once (load.ts) into this neutral shape; everything downstream works on it, never on raw JSON.

export interface ProfileVariable {
  name: string
  defaultValue?: string
  format?: string
  required?: boolean
  isSensitive?: boolean
  [k: string]: unknown
}

export interface PackModel {
  name: string
  type: string
  layer: 'os' | 'k8s' | 'cni' | 'csi' | 'addon' | string
  version: string
  tag?: string
  /** The raw values YAML string. */
  values: string
  registry?: {uid?: string; name?: string; kind?: string}
  /** 1-based line of this pack's object in the profile file, when known. */
  fileLine?: number
  /** 1-based line in the file where the values text starts, when it is a YAML block scalar (so that line N of the
   *  values is line valuesFileLine + N - 1 of the file); otherwise the line of the `values` key. */
  valuesFileLine?: number
  /** Whether valuesFileLine maps values lines one to one (YAML block scalar). */
  valuesIsBlock?: boolean
  /** The Kubernetes manifests of a manifest layer (`type: manifest`, Palette's "Add Manifest"), as written. */
  manifests?: {name: string; content: string}[]
}

export interface LoadedProfile {
  /** Path as given by the user (for messages). */
  file: string
  /** For a profile read out of a cluster definition .tgz: the entry path inside it (`spc/profiles/01-x.json`). */
  entry?: string
  /** sha256 (hex) of the file bytes (for a cluster definition entry: of that entry). */
  sha256: string
  name: string
  version: string
  type: 'cluster' | 'infra' | 'add-on' | 'system'
  cloudType: string
  packs: PackModel[]
  variables: ProfileVariable[]
  /** Variable values stored in the cluster definition this profile came from (`spc/variables.json`). */
  definitionVars?: Record<string, string>
  /** 1-based lines in the file of profile-level fields, when known (for findings). */
  fileLines?: {type?: number; cloudType?: number; variables?: number[]}
  /** The profile in Palette's export/import JSON shape, normalised (create-API `uid`/`registryUid` shape
   *  converted), ready to embed in a cluster definition. */
  document: Record<string, unknown>
}

export interface ImageRequest {
  /** Normalised, e.g. docker.io/library/nginx:1.27 (container:// stripped). */
  reference: string
  /** As written in the profile, after macro resolution. */
  original: string
  /** os-provider = options.system.uri of the OS pack; agent = stylus-linux-<arch>. */
  kind: 'image' | 'os-provider' | 'agent'
  profile: string
  pack: string
  file: string
  /** Line in the pack's values YAML. */
  line?: number
  /** Line in the file, when known (exact for YAML block scalars, the `values` key's line for JSON). */
  fileLine?: number
}

export interface ChartRequest {
  repository: string
  name: string
  version: string
  profile: string
  pack: string
  file: string
  /** Line in the pack's values YAML. */
  line?: number
  fileLine?: number
}

export interface Finding {
  /** Stable rule code, e.g. 'AP-K8S-MODE' (the list is RULES in rules.ts). */
  code: string
  severity: 'error' | 'warning'
  message: string
  hint: string
  /** The file (for a cluster definition entry: `definition.tgz#spc/profiles/01-x.json`). */
  file?: string
  profile?: string
  pack?: string
  /** 1-based line in the pack's values YAML when the finding concerns values (the line Palette's pack editor
   *  shows); otherwise the line in the file. */
  line?: number
  /** 1-based line in the file, when known. */
  fileLine?: number
  /** Where in the document or values: `spec.template.packs[2].layer`, `pack.content.images[0].image`. */
  path?: string
}

export interface ValidationReport {
  valid: boolean
  errors: number
  warnings: number
  findings: Finding[]
  profiles: {file: string; name: string; version: string; type: string}[]
}

export type Arch = 'amd64' | 'arm64'
export type DeploymentMode = 'appliance' | 'agent'

export interface ValidateOptions {
  arch: Arch
  mode: DeploymentMode
  vars?: Record<string, string>
}

export interface CollectOptions {
  arch: Arch
  vars?: Record<string, string>
}

/** Where a profile came from, for messages: the file, or `definition.tgz#spc/profiles/01-x.json`. */
export function profileLocation(profile: Pick<LoadedProfile, 'file' | 'entry'>): string {
  return profile.entry ? `${profile.file}#${profile.entry}` : profile.file
}
