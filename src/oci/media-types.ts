// The media types airpack reads and writes: OCI image spec and Docker distribution schema 2 manifests, the Helm
// chart types of HIP-0017, the cluster-definition artifact and cosign's supply-chain artifacts. Schema 1 is only
// named to be refused: it cannot be stored byte-for-byte with a stable digest.

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  helmConfig: 'application/vnd.cncf.helm.config.v1+json',
  helmChart: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
  helmProvenance: 'application/vnd.cncf.helm.chart.provenance.v1.prov',
  definitionArtifact: 'application/vnd.spectrocloud.cluster-definition.v1',
  /** cosign's signed payload (a `.sig` tag's layers): the Red Hat simple-signing JSON naming the image digest. */
  cosignSimpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  /** cosign 3's signatures and attestations as OCI 1.1 referrers. */
  sigstoreBundle: 'application/vnd.dev.sigstore.bundle.v0.3+json',
} as const

/** Accept header for manifest requests: every type we can store, indexes first. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.dockerList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
].join(', ')

/** An image index or Docker manifest list: its children are manifests for platforms. */
export function isIndexType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerList
}

/** A single image (or artifact) manifest: its children are a config and layers. */
export function isManifestType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest
}

/** Either kind of document that names other content by digest. */
export function isGraphType(mediaType: string | undefined): boolean {
  return isIndexType(mediaType) || isManifestType(mediaType)
}

/**
 * Blobs already compressed by their producer (gzip, zstd layers, Helm chart archives): a second compressor gains
 * next to nothing on them, which is what a seekable bundle format stores raw.
 */
export function isCompressedType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && /[+.](gzip|zstd)$/.test(mediaType)
}
