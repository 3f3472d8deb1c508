// The seek table of the Zstandard seekable format (facebook/zstd contrib/seekable_format, version 0.1.0): a
// skippable frame at the very end of the file listing every frame's compressed and decompressed size, so that a
// reader can go from an uncompressed offset to the frame that holds it without decompressing anything before.
//
//   Skippable_Magic_Number 0x184D2A5E (4) | Frame_Size (4) | entries | Number_Of_Frames (4) |
//   Seek_Table_Descriptor (1) | Seekable_Magic_Number 0x8F92EAB1 (4)
//
// Each entry is Compressed_Size (4) and Decompressed_Size (4), plus a Checksum (4) when the descriptor's bit 7 is
// set. airpack writes no checksums: every tar entry's sha256 is pinned in bundle.json, which is the integrity
// check; an XXH64 pass over every byte would cost CPU time the copy-speed writer exists to save.

export const SEEK_TABLE_MAGIC = 0x184d2a5e
export const SEEKABLE_MAGIC = 0x8f92eab1
export const SEEK_TABLE_FOOTER_SIZE = 9
/** Skippable_Magic_Number and Frame_Size. */
export const SKIPPABLE_HEADER_SIZE = 8
/** The reference implementation's limit on Number_Of_Frames (ZSTD_SEEKABLE_MAXFRAMES). */
export const MAX_FRAMES = 0x8000000
const CHECKSUM_FLAG = 0x80
const RESERVED_BITS = 0x7c

export interface SeekTableFrame {
  compressedSize: number
  decompressedSize: number
  /** Present only in tables written with checksums (not by airpack). */
  checksum?: number
}

/** A frame with where it starts, in the compressed file and in the decompressed stream. */
export interface LocatedFrame extends SeekTableFrame {
  index: number
  compressedOffset: number
  decompressedOffset: number
}

export interface SeekTable {
  frames: LocatedFrame[]
  /** Bytes of all frames before the seek table. */
  compressedSize: number
  decompressedSize: number
  /** Size of the skippable frame holding the table, header included. */
  tableSize: number
  checksums: boolean
}

export function seekTableSize(frameCount: number, checksums = false): number {
  return SKIPPABLE_HEADER_SIZE + frameCount * (checksums ? 12 : 8) + SEEK_TABLE_FOOTER_SIZE
}

/** The skippable frame holding the seek table of `frames` (written without checksums). */
export function encodeSeekTable(frames: readonly SeekTableFrame[]): Buffer {
  if (frames.length > MAX_FRAMES)
    throw new Error(`${frames.length} frames: the seekable format allows at most ${MAX_FRAMES}`)
  const out = Buffer.alloc(seekTableSize(frames.length))
  out.writeUInt32LE(SEEK_TABLE_MAGIC, 0)
  out.writeUInt32LE(out.length - SKIPPABLE_HEADER_SIZE, 4)
  let pos = SKIPPABLE_HEADER_SIZE
  for (const f of frames) {
    out.writeUInt32LE(f.compressedSize, pos)
    out.writeUInt32LE(f.decompressedSize, pos + 4)
    pos += 8
  }
  out.writeUInt32LE(frames.length, pos)
  out[pos + 4] = 0
  out.writeUInt32LE(SEEKABLE_MAGIC, pos + 5)
  return out
}

/** What the footer (the file's last 9 bytes) says, or the reason it is not a seek table footer. */
export function parseSeekTableFooter(footer: Buffer): {frameCount: number; checksums: boolean} | {problem: string} {
  if (footer.length !== SEEK_TABLE_FOOTER_SIZE) return {problem: 'is too short to end with a seek table'}
  const magic = footer.readUInt32LE(5)
  if (magic !== SEEKABLE_MAGIC) {
    return {
      problem: `does not end with a seek table (last 4 bytes 0x${magic.toString(16).padStart(8, '0')}, not the seekable magic 0x8f92eab1): a format 1 bundle, or a truncated one`,
    }
  }
  const descriptor = footer[4]
  if ((descriptor & RESERVED_BITS) !== 0)
    return {problem: `seek table descriptor 0x${descriptor.toString(16)} sets reserved bits`}
  const frameCount = footer.readUInt32LE(0)
  if (frameCount > MAX_FRAMES)
    return {problem: `seek table claims ${frameCount} frames, more than the format allows (${MAX_FRAMES})`}
  return {frameCount, checksums: (descriptor & CHECKSUM_FLAG) !== 0}
}

/**
 * Parses and validates the seek table frame `table` (the file's last `table.length` bytes) of a file of
 * `fileSize` bytes: magic numbers, Frame_Size, and that the frames' compressed sizes add up to exactly the bytes
 * before the table. Returns the frames with their offsets, or throws a plain Error naming what is wrong.
 */
export function parseSeekTable(table: Buffer, fileSize: number): SeekTable {
  const footer = parseSeekTableFooter(table.subarray(table.length - SEEK_TABLE_FOOTER_SIZE))
  if ('problem' in footer) throw new Error(footer.problem)
  const tableSize = seekTableSize(footer.frameCount, footer.checksums)
  if (table.length !== tableSize)
    throw new Error(`seek table of ${footer.frameCount} frames must be ${tableSize} bytes, got ${table.length}`)
  if (tableSize > fileSize)
    throw new Error(
      `seek table claims ${footer.frameCount} frames (${tableSize} bytes) but the file has only ${fileSize} bytes: truncated or tampered`,
    )
  const magic = table.readUInt32LE(0)
  if (magic !== SEEK_TABLE_MAGIC) {
    throw new Error(
      `seek table frame starts with 0x${magic.toString(16).padStart(8, '0')}, not the skippable magic 0x184d2a5e: its frame count or the file was altered`,
    )
  }
  const frameSize = table.readUInt32LE(4)
  if (frameSize !== tableSize - SKIPPABLE_HEADER_SIZE)
    throw new Error(`seek table Frame_Size is ${frameSize}, expected ${tableSize - SKIPPABLE_HEADER_SIZE}`)
  const entrySize = footer.checksums ? 12 : 8
  const frames: LocatedFrame[] = []
  let compressedOffset = 0
  let decompressedOffset = 0
  for (let i = 0; i < footer.frameCount; i++) {
    const pos = SKIPPABLE_HEADER_SIZE + i * entrySize
    const compressedSize = table.readUInt32LE(pos)
    const decompressedSize = table.readUInt32LE(pos + 4)
    if (compressedSize === 0) throw new Error(`seek table frame ${i} has a compressed size of 0`)
    frames.push({
      index: i,
      compressedSize,
      decompressedSize,
      compressedOffset,
      decompressedOffset,
      ...(footer.checksums ? {checksum: table.readUInt32LE(pos + 8)} : {}),
    })
    compressedOffset += compressedSize
    decompressedOffset += decompressedSize
  }
  if (compressedOffset !== fileSize - tableSize) {
    throw new Error(
      `seek table frames add up to ${compressedOffset} compressed bytes, but ${fileSize - tableSize} bytes precede the table: truncated or tampered`,
    )
  }
  return {
    frames,
    compressedSize: compressedOffset,
    decompressedSize: decompressedOffset,
    tableSize,
    checksums: footer.checksums,
  }
}

/** The frame holding uncompressed byte `offset` (binary search), or undefined past the end. */
export function frameAt(table: SeekTable, offset: number): LocatedFrame | undefined {
  const {frames} = table
  let lo = 0
  let hi = frames.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const f = frames[mid]
    if (offset < f.decompressedOffset) hi = mid - 1
    else if (offset >= f.decompressedOffset + f.decompressedSize) lo = mid + 1
    else return f
  }
  return undefined
}
