import {isCompressedType} from '../oci/media-types.js'
import type {FrameMode} from '../zstd/seekable-writer.js'
import {BLOCK, encodeFileHeader, padding, type HeaderOptions} from './tar.js'

// Which frames each tar entry of a format 2 bundle gets (PRODUCT.md §4): blobs whose media type says they are
// already compressed are stored in raw frames, since compressing gzip or zstd again costs CPU time and gains
// nothing; everything else (configs, manifests, JSON, uncompressed layers, tar headers) is compressed.

export function frameModeFor(mediaType: string | undefined): FrameMode {
  return isCompressedType(mediaType) ? 'raw' : 'compressed'
}

/**
 * Bytes of one tar entry as TarWriter writes it (header blocks, body, padding): the length of the segment a
 * format 2 writer begins before each entry, so that every entry starts a frame.
 */
export function tarEntryLength(path: string, size: number, options: HeaderOptions): number {
  return encodeFileHeader(path, size, options).length + size + padding(size).length
}

/** The two zero blocks that end a tar (TarWriter.finish), framed as one last compressed segment. */
export const TAR_END_LENGTH = 2 * BLOCK
