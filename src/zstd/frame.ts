// The pieces of a Zstandard frame (RFC 8878) that airpack writes and reads itself: the frame header, and frames
// made only of Raw blocks. Already-compressed data (gzip or zstd layers, Helm chart archives) is stored in raw
// frames: `zstd -d` copies their bytes out unchanged, and writing them costs a 3-byte header per 128 KiB block
// instead of a compressor pass.

/** Magic_Number of a Zstandard frame (little-endian on disk: 28 B5 2F FD). */
export const ZSTD_MAGIC = 0xfd2fb528
/** Skippable frames use any magic in 0x184D2A50–0x184D2A5F; the seekable format's seek table uses ...5E. */
export const SKIPPABLE_MAGIC_MIN = 0x184d2a50
export const SKIPPABLE_MAGIC_MAX = 0x184d2a5f

/** Block_Maximum_Size: min(Window_Size, 128 KiB). Raw frames cut their content into blocks of exactly this. */
export const MAX_BLOCK_SIZE = 128 * 1024
/**
 * Window_Size of raw frames. A raw frame must carry a Window_Descriptor rather than set Single_Segment: with
 * Single_Segment the window is the whole content, and `zstd -d` refuses any frame whose window exceeds 128 MiB
 * ("Window size larger than maximum"). 1 MiB (descriptor 0x50) is small enough for any decoder and larger than
 * a block, which is all a frame of Raw blocks needs.
 */
export const RAW_WINDOW_LOG = 20
const RAW_WINDOW_DESCRIPTOR = (RAW_WINDOW_LOG - 10) << 3
export const BLOCK_HEADER_SIZE = 3

export type BlockType = 'raw' | 'rle' | 'compressed' | 'reserved'
const BLOCK_TYPES: BlockType[] = ['raw', 'rle', 'compressed', 'reserved']

export interface FrameHeader {
  /** Bytes from the magic number to the first block header. */
  headerSize: number
  singleSegment: boolean
  contentChecksum: boolean
  dictionaryId: number
  /** Undefined when the frame does not record it. */
  contentSize?: number
  windowSize: number
}

/** Frame_Content_Size as the smallest field that holds it (the 1-byte field needs Single_Segment, unused here). */
function contentSizeField(size: number): {flag: number; bytes: Buffer} {
  if (size >= 256 && size < 256 + 65536) {
    const b = Buffer.alloc(2)
    b.writeUInt16LE(size - 256)
    return {flag: 1, bytes: b}
  }
  if (size < 2 ** 32) {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(size)
    return {flag: 2, bytes: b}
  }
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(BigInt(size))
  return {flag: 3, bytes: b}
}

/**
 * The header of a frame of Raw blocks holding `contentSize` bytes: magic, descriptor (Frame_Content_Size present,
 * no Single_Segment, no checksum, no dictionary), the 1 MiB Window_Descriptor, Frame_Content_Size. Recording the
 * content size costs 2–4 bytes and lets a reader check each frame against the seek table.
 */
export function rawFrameHeader(contentSize: number): Buffer {
  const fcs = contentSizeField(contentSize)
  const head = Buffer.alloc(6)
  head.writeUInt32LE(ZSTD_MAGIC, 0)
  head[4] = fcs.flag << 6
  head[5] = RAW_WINDOW_DESCRIPTOR
  return Buffer.concat([head, fcs.bytes])
}

export function blockHeader(size: number, type: BlockType, last: boolean): Buffer {
  const out = Buffer.alloc(BLOCK_HEADER_SIZE)
  writeBlockHeader(out, 0, size, type, last)
  return out
}

/** Writes a block header into `out` at `offset`; returns the offset after it. */
export function writeBlockHeader(out: Buffer, offset: number, size: number, type: BlockType, last: boolean): number {
  const value = (size << 3) | (BLOCK_TYPES.indexOf(type) << 1) | (last ? 1 : 0)
  out[offset] = value & 0xff
  out[offset + 1] = (value >>> 8) & 0xff
  out[offset + 2] = (value >>> 16) & 0xff
  return offset + BLOCK_HEADER_SIZE
}

export function parseBlockHeader(bytes: Buffer, offset = 0): {size: number; type: BlockType; last: boolean} {
  const value = bytes[offset] | (bytes[offset + 1] << 8) | (bytes[offset + 2] << 16)
  return {size: value >>> 3, type: BLOCK_TYPES[(value >>> 1) & 3], last: (value & 1) === 1}
}

/** Number of blocks of a raw frame: an empty frame still has one (empty, last) block. */
export function rawBlockCount(contentSize: number): number {
  return Math.max(1, Math.ceil(contentSize / MAX_BLOCK_SIZE))
}

/** Total bytes of a raw frame of `contentSize` bytes. */
export function rawFrameSize(contentSize: number): number {
  return rawFrameHeader(contentSize).length + rawBlockCount(contentSize) * BLOCK_HEADER_SIZE + contentSize
}

/** Where block `index` of a raw frame starts, from the frame's first byte, and how much content it holds. */
export function rawBlockLocation(
  contentSize: number,
  headerSize: number,
  index: number,
): {offset: number; size: number; last: boolean} {
  const count = rawBlockCount(contentSize)
  return {
    offset: headerSize + index * (BLOCK_HEADER_SIZE + MAX_BLOCK_SIZE),
    size: index === count - 1 ? contentSize - index * MAX_BLOCK_SIZE : MAX_BLOCK_SIZE,
    last: index === count - 1,
  }
}

/** Longest frame header: magic 4, descriptor 1, window 1, dictionary id 4, content size 8. */
export const MAX_FRAME_HEADER_SIZE = 18

/** Parses the header of a Zstandard frame at the start of `bytes`; throws a plain Error saying what is wrong. */
export function parseFrameHeader(bytes: Buffer): FrameHeader {
  if (bytes.length < 6) throw new Error('too short for a frame header')
  const magic = bytes.readUInt32LE(0)
  if (magic !== ZSTD_MAGIC) throw new Error(`no zstd frame magic (found 0x${magic.toString(16).padStart(8, '0')})`)
  const descriptor = bytes[4]
  const fcsFlag = descriptor >>> 6
  const singleSegment = (descriptor & 0x20) !== 0
  if ((descriptor & 0x08) !== 0) throw new Error('reserved bit of the frame header descriptor is set')
  const contentChecksum = (descriptor & 0x04) !== 0
  const dictFlag = descriptor & 3
  let pos = 5
  let windowSize = 0
  if (!singleSegment) {
    const wd = bytes[pos++]
    const windowLog = 10 + (wd >>> 3)
    const base = 2 ** windowLog
    windowSize = base + (base / 8) * (wd & 7)
  }
  const dictBytes = [0, 1, 2, 4][dictFlag]
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]
  if (bytes.length < pos + dictBytes + fcsBytes) throw new Error('too short for its frame header')
  let dictionaryId = 0
  for (let i = 0; i < dictBytes; i++) dictionaryId += bytes[pos + i] * 2 ** (8 * i)
  pos += dictBytes
  let contentSize: number | undefined
  if (fcsBytes === 1) contentSize = bytes[pos]
  else if (fcsBytes === 2) contentSize = bytes.readUInt16LE(pos) + 256
  else if (fcsBytes === 4) contentSize = bytes.readUInt32LE(pos)
  else if (fcsBytes === 8) contentSize = Number(bytes.readBigUInt64LE(pos))
  pos += fcsBytes
  if (singleSegment) windowSize = contentSize ?? 0
  return {headerSize: pos, singleSegment, contentChecksum, dictionaryId, contentSize, windowSize}
}
