import type {FrameMode} from '../zstd/seekable-writer.js'

// Which frames each tar entry of a format 2 bundle gets (PRODUCT.md §4): blobs whose media type says they are
// already compressed are stored in raw frames, since compressing gzip or zstd again costs CPU time and gains
// nothing; everything else (configs, manifests, JSON, uncompressed layers, tar headers) is compressed.

/** `+gzip`, `.gzip`, `+zstd`, `.zstd` suffixes: OCI and Docker layers, Helm chart archives (`…tar+gzip`). */
const COMPRESSED_SUFFIX = /[+.](gzip|zstd)$/

export function isCompressedMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && COMPRESSED_SUFFIX.test(mediaType)
}

export function frameModeFor(mediaType: string | undefined): FrameMode {
  return isCompressedMediaType(mediaType) ? 'raw' : 'compressed'
}
