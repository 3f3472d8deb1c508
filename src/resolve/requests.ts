// The content requests `collectContent` (src/profile) produces. Declared structurally here so the resolver does
// not depend on the profile model's internals; src/profile's ImageRequest and ChartRequest fit these shapes.

export interface ImageRequestLike {
  /** Normalised reference (`docker.io/library/nginx:1.27`). */
  reference: string
  original?: string
  kind: 'image' | 'os-provider' | 'agent'
  profile?: string
  pack?: string
  file?: string
  /** Line in the pack's values YAML. */
  line?: number
  /** Line in the profile file, when known. */
  fileLine?: number
}

export interface ChartRequestLike {
  /** `https://…` classic repository, `oci://host/path`, or a direct `.tgz` URL. */
  repository: string
  name: string
  version: string
  profile?: string
  pack?: string
  file?: string
  line?: number
  fileLine?: number
}

/** "profile › pack (file:line)" — where a request came from, for error lists. */
export function origin(r: {profile?: string; pack?: string; file?: string; line?: number; fileLine?: number}): string {
  const where = [r.profile, r.pack].filter(Boolean).join(' › ')
  const file = r.file
    ? `${r.file}${r.fileLine ? `:${r.fileLine}` : ''}${r.line && r.line !== r.fileLine ? `${r.fileLine ? ', ' : ' '}values line ${r.line}` : ''}`
    : ''
  return [where, file && `(${file})`].filter(Boolean).join(' ')
}
