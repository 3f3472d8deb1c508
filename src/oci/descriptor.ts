// The OCI content vocabulary every store and every copy speaks (image-spec descriptor.md): a descriptor names a
// blob by digest and size, with its media type and, in an index, the platform it is for.

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

/** An OCI content descriptor, as found in manifests and index.json. */
export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: Platform & {'os.version'?: string; 'os.features'?: string[]}
  annotations?: Record<string, string>
  artifactType?: string
}

/** The identifying part of a descriptor: what a blob is, without the platform and annotations of where it is named. */
export function plainDescriptor(d: Pick<Descriptor, 'mediaType' | 'digest' | 'size'>): Descriptor {
  return {mediaType: d.mediaType, digest: d.digest, size: d.size}
}

/** The first descriptor for each digest, in order: a blob shared by several manifests is carried once. */
export function uniqueByDigest(descriptors: Iterable<Descriptor>): Descriptor[] {
  const seen = new Map<string, Descriptor>()
  for (const d of descriptors) if (!seen.has(d.digest)) seen.set(d.digest, d)
  return [...seen.values()]
}

/** The documents that describe other content (indexes, manifests) and are read, not just carried. */
export interface ManifestDocument {
  schemaVersion?: number
  mediaType?: string
  config?: Descriptor
  layers?: Descriptor[]
  manifests?: Descriptor[]
}
