import {once} from 'node:events'
import type {Readable, Writable} from 'node:stream'

import {LIMITS, limitBytes} from '../limits.js'
import {PIPE_AHEAD, streamHash, type StreamHash} from './hash.js'

// A minimal POSIX (ustar + PAX) tar writer and a streaming reader, written here rather than taken from a
// library because the bytes are part of the bundle's identity: every header field is fixed by this file
// (mode 0644, uid/gid 0, empty user/group names, mtime 0 or SOURCE_DATE_EPOCH), so a library bump can never
// change a bundle. test/unit/bundle-tar.test.ts pins the output with a golden hash.

export const BLOCK = 512
/** A tar record: 20 blocks (10240 bytes); tar pads the archive to a whole number of them. */
const RECORD_BYTES = 20 * BLOCK

const USTAR_NAME_MAX = 100
/** Largest size an 11-digit octal field holds (8 GiB − 1); larger entries get a PAX `size` record. */
const USTAR_SIZE_MAX = 0o77777777777

export interface HeaderOptions {
  /** Seconds since the epoch; 0 unless SOURCE_DATE_EPOCH is set. */
  mtime: number
  mode?: number
}

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  return value.toString(8).padStart(width - 1, '0') + '\0'
}

function rawHeader(name: string, size: number, type: string, options: HeaderOptions): Buffer {
  const header = Buffer.alloc(BLOCK)
  header.write(name, 0, USTAR_NAME_MAX, 'utf8')
  header.write(octal(options.mode ?? 0o644, 8), 100, 'ascii')
  header.write(octal(0, 8), 108, 'ascii')
  header.write(octal(0, 8), 116, 'ascii')
  header.write(octal(size > USTAR_SIZE_MAX ? 0 : size, 12), 124, 'ascii')
  header.write(octal(options.mtime, 12), 136, 'ascii')
  header.write('        ', 148, 'ascii')
  header.write(type, 156, 'ascii')
  header.write('ustar\0', 257, 'ascii')
  header.write('00', 263, 'ascii')
  header.write(octal(0, 8), 329, 'ascii')
  header.write(octal(0, 8), 337, 'ascii')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(octal(sum, 7) + ' ', 148, 'ascii')
  return header
}

function paxRecord(key: string, value: string): string {
  // "LEN key=value\n" where LEN counts the whole record including its own digits.
  const body = ` ${key}=${value}\n`
  let len = Buffer.byteLength(body) + 1
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body)
  return `${len}${body}`
}

/** The header block(s) of one regular file: a PAX extended header first when the name or size needs it. */
export function encodeFileHeader(path: string, size: number, options: HeaderOptions): Buffer {
  const records: string[] = []
  const nameBytes = Buffer.byteLength(path)
  const needsPaxPath = nameBytes > USTAR_NAME_MAX || /[^\u0020-\u007e]/.test(path)
  if (needsPaxPath) records.push(paxRecord('path', path))
  if (size > USTAR_SIZE_MAX) records.push(paxRecord('size', String(size)))
  const main = rawHeader(
    needsPaxPath ? path.slice(0, USTAR_NAME_MAX).replace(/[^\u0020-\u007e]/g, '_') : path,
    size,
    '0',
    options,
  )
  if (records.length === 0) return main
  const pax = Buffer.from(records.join(''), 'utf8')
  return Buffer.concat([rawHeader('PaxHeader', pax.length, 'x', options), pax, padding(pax.length), main])
}

/** A directory entry (mode 0755), used only inside the cluster definition. */
export function encodeDirectoryHeader(path: string, options: HeaderOptions): Buffer {
  const name = path.endsWith('/') ? path : `${path}/`
  if (Buffer.byteLength(name) > USTAR_NAME_MAX) throw new Error(`directory name too long for ustar: ${name}`)
  return rawHeader(name, 0, '5', {mtime: options.mtime, mode: options.mode ?? 0o755})
}

export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK)
}

/** Size in the tar of one regular file entry (headers, body, padding). */
export function entryTarSize(path: string, size: number): number {
  return encodeFileHeader(path, size, {mtime: 0}).length + size + padding(size).length
}

/**
 * Writes regular-file entries one at a time into `out`, respecting its backpressure, and hashes every byte
 * written (the hash of the uncompressed tar is the bundle's identity).
 */
export class TarWriter {
  private readonly hash: StreamHash = streamHash()
  private written = 0

  constructor(
    private readonly out: Writable,
    private readonly options: HeaderOptions,
  ) {}

  get bytesWritten(): number {
    return this.written
  }

  private async write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return
    this.written += chunk.length
    this.out.write(chunk)
    // Keep several MiB queued ahead of the pipe (its own 16 KiB mark would stall us on every chunk), and listen
    // for 'drain' before waiting on anything else, or it could fire unseen.
    const outputDrained = this.out.writableLength > PIPE_AHEAD ? drained(this.out) : undefined
    const hashing = this.hash.write(chunk)
    if (hashing && outputDrained) await Promise.all([hashing, outputDrained])
    else if (hashing) await hashing
    else if (outputDrained) await outputDrained
  }

  /** Stop the identity hasher after a failure. */
  abort(): void {
    this.hash.destroy()
  }

  async addBuffer(path: string, data: Buffer): Promise<void> {
    await this.write(encodeFileHeader(path, data.length, this.options))
    await this.write(data)
    await this.write(padding(data.length))
  }

  /** Streams `size` bytes from `body` as the entry `path`; a body of another length is an error. */
  async addStream(
    path: string,
    size: number,
    body: Readable | AsyncIterable<Buffer>,
    onChunk?: (chunk: Buffer) => void,
  ): Promise<void> {
    await this.write(encodeFileHeader(path, size, this.options))
    let seen = 0
    for await (const chunk of body as AsyncIterable<Buffer>) {
      seen += chunk.length
      if (seen > size) throw new Error(`${path}: source is longer than its recorded ${size} bytes`)
      onChunk?.(chunk)
      await this.write(chunk)
    }
    if (seen !== size) throw new Error(`${path}: source ended after ${seen} of ${size} bytes`)
    await this.write(padding(size))
  }

  /** Writes the two zero blocks that end a tar and returns the sha256 (hex) of everything written. */
  async finish(): Promise<{sha256: string; size: number}> {
    await this.write(Buffer.alloc(2 * BLOCK))
    return {sha256: await this.hash.digest(), size: this.written}
  }
}

/** Resolves on the stream's next 'drain'; rejects if it closes first. Call it right after write() returned false. */
export async function drained(out: Writable): Promise<void> {
  if (out.destroyed) throw new Error('output stream closed early')
  // Reject rather than hang if the consumer (a zstd child) dies while we wait.
  const ac = new AbortController()
  try {
    await Promise.race([
      once(out, 'drain', {signal: ac.signal}),
      once(out, 'close', {signal: ac.signal}).then(() => {
        throw new Error('output stream closed early')
      }),
    ])
  } finally {
    ac.abort()
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reader

export type TarEntryType =
  'file' | 'directory' | 'symlink' | 'hardlink' | 'character-device' | 'block-device' | 'fifo' | 'other'

export interface TarEntryHeader {
  path: string
  size: number
  type: TarEntryType
  /** The raw type flag, for messages. */
  typeFlag: string
  linkName: string
  /** Permission bits and owner as the header records them (PAX records applied): airpack writes 0644, 0:0, no names. */
  mode: number
  uid: number
  gid: number
  uname: string
  gname: string
}

export interface EntrySink {
  data(chunk: Buffer): void
  end(): void
  /** The body is read elsewhere (a format 2 verify hashes it from its frames): a driver may skipBody() it. */
  skip?: boolean
}

export class TarFormatError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TarFormatError'
  }
}

const TYPE_BY_FLAG: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '5': 'directory',
  '2': 'symlink',
  '1': 'hardlink',
  '3': 'character-device',
  '4': 'block-device',
  '6': 'fifo',
}

/** A header block's checksum (its bytes summed, the checksum field counted as spaces) against the one it records. */
function checkHeaderSum(block: Buffer): void {
  let stored = 0
  for (let i = 0; i < BLOCK; i++) stored += i >= 148 && i < 156 ? 0x20 : block[i]
  if (parseOctal(block.subarray(148, 156)) !== stored)
    throw new TarFormatError('tar header checksum mismatch (corrupt bundle)')
}

function parseOctal(field: Buffer): number {
  const text = field.toString('ascii').replace(/\0.*$/s, '').trim()
  if (text === '') return 0
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`bad numeric field ${JSON.stringify(text)} in a tar header`)
  return Number.parseInt(text, 8)
}

function cString(field: Buffer): string {
  const nul = field.indexOf(0)
  return field.subarray(0, nul === -1 ? field.length : nul).toString('utf8')
}

/** Mode and owner as tar would restore them: a PAX record overrides the header field (a non-number stays NaN, never 0). */
function ownerOf(
  block: Buffer,
  pax: Record<string, string> | undefined,
): Pick<TarEntryHeader, 'mode' | 'uid' | 'gid' | 'uname' | 'gname'> {
  const ustar = block.subarray(257, 263).toString('ascii').startsWith('ustar')
  return {
    mode: parseOctal(block.subarray(100, 108)),
    uid: pax?.uid !== undefined ? Number(pax.uid) : parseOctal(block.subarray(108, 116)),
    gid: pax?.gid !== undefined ? Number(pax.gid) : parseOctal(block.subarray(116, 124)),
    uname: pax?.uname ?? (ustar ? cString(block.subarray(265, 297)) : ''),
    gname: pax?.gname ?? (ustar ? cString(block.subarray(297, 329)) : ''),
  }
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {}
  let pos = 0
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos)
    if (space === -1) throw new TarFormatError('malformed PAX header')
    const len = Number.parseInt(data.subarray(pos, space).toString('ascii'), 10)
    if (!Number.isFinite(len) || len <= 0 || pos + len > data.length)
      throw new TarFormatError('malformed PAX record length')
    const record = data.subarray(space + 1, pos + len - 1).toString('utf8')
    const eq = record.indexOf('=')
    if (eq === -1) throw new TarFormatError('malformed PAX record')
    out[record.slice(0, eq)] = record.slice(eq + 1)
    pos += len
  }
  return out
}

/**
 * A push parser: feed it the uncompressed tar in chunks of any size; it calls `onEntry` for each entry (PAX
 * headers applied, not reported) and streams that entry's body into the returned sink. Bodies are never
 * buffered here, so memory stays bounded whatever the entry sizes.
 */
export class TarParser {
  private buffer: Buffer = Buffer.alloc(0)
  private state: 'header' | 'body' | 'padding' | 'pax' | 'end' = 'header'
  private remaining = 0
  private pad = 0
  private sink: EntrySink | undefined
  private pax: Record<string, string> | undefined
  private paxChunks: Buffer[] = []
  private zeroBlocks = 0
  private ended = false
  /** Bytes of the archive consumed so far. */
  private position = 0
  /** Where the record holding the end marker ends. */
  private recordEnd = 0

  constructor(private readonly onEntry: (header: TarEntryHeader) => EntrySink | undefined) {}

  /** True once the end-of-archive marker was read. */
  get complete(): boolean {
    return this.ended
  }

  /** Bytes of the archive consumed so far (inside onEntry: where the entry's body starts). */
  get offset(): number {
    return this.position
  }

  /**
   * Bytes the parser takes before its state changes: the rest of a body, PAX record or padding, or of a header
   * block. A driver that reads by ranges (a seekable bundle) reads this much next.
   */
  get nextNeed(): number {
    if (this.state === 'body' || this.state === 'pax') return this.remaining
    if (this.state === 'padding') return this.pad
    return BLOCK - this.buffer.length
  }

  /** Inside the body of an entry whose sink does not want its bytes (none, or one that says skip). */
  get skipping(): boolean {
    return this.state === 'body' && (this.sink === undefined || this.sink.skip === true)
  }

  /** Passes over the rest of such a body without its bytes (the sink's end() still runs); returns how many. */
  skipBody(): number {
    if (!this.skipping) throw new Error('skipBody outside a skipped body')
    const n = this.remaining
    this.position += n
    this.remaining = 0
    this.finishBody()
    return n
  }

  push(chunk: Buffer): void {
    let offset = 0
    while (offset < chunk.length) {
      if (this.state === 'body' || this.state === 'pax') {
        const take = Math.min(this.remaining, chunk.length - offset)
        const piece = chunk.subarray(offset, offset + take)
        if (this.state === 'body') this.sink?.data(piece)
        else this.paxChunks.push(Buffer.from(piece))
        offset += take
        this.position += take
        this.remaining -= take
        if (this.remaining === 0) this.finishBody()
        continue
      }
      if (this.state === 'padding') {
        const take = Math.min(this.pad, chunk.length - offset)
        // Zeros, as every tar writer pads: other bytes there are covered by no digest (and format 2 verify hashes
        // entries, not the whole tar).
        if (chunk.subarray(offset, offset + take).some((b) => b !== 0))
          throw new TarFormatError('bytes other than zeros in the padding after an entry (corrupt bundle)')
        offset += take
        this.position += take
        this.pad -= take
        if (this.pad === 0) this.state = 'header'
        continue
      }
      // header or end: collect whole blocks
      const need = BLOCK - this.buffer.length
      const take = Math.min(need, chunk.length - offset)
      this.buffer =
        this.buffer.length === 0 && take === BLOCK
          ? chunk.subarray(offset, offset + BLOCK)
          : Buffer.concat([this.buffer, chunk.subarray(offset, offset + take)])
      offset += take
      if (this.buffer.length === BLOCK) {
        const block = this.buffer
        this.buffer = Buffer.alloc(0)
        this.position += BLOCK
        this.onBlock(block)
      }
    }
  }

  /** Call at end of input: throws if the archive was cut short. */
  end(): void {
    if (this.state === 'body' || this.state === 'pax' || this.state === 'padding' || this.buffer.length > 0) {
      throw new TarFormatError('the tar stream ends in the middle of an entry (truncated bundle)')
    }
    if (!this.ended) throw new TarFormatError('the tar stream has no end-of-archive marker (truncated bundle)')
  }

  private onBlock(block: Buffer): void {
    const isZero = block.every((b) => b === 0)
    if (this.state === 'end') {
      if (!isZero) throw new TarFormatError('data follows the end-of-archive marker')
      // tar pads an archive with zeros to a whole record (20 blocks); beyond that, bytes after the end are bytes
      // that no digest covers (and a way to make a reader spend minutes on nothing).
      if (this.position > this.recordEnd)
        throw new TarFormatError(
          `more than a record of zero padding follows the end-of-archive marker (bytes no digest covers)`,
        )
      return
    }
    if (isZero) {
      this.zeroBlocks++
      if (this.zeroBlocks === 2) {
        this.state = 'end'
        this.ended = true
        this.recordEnd = Math.ceil(this.position / RECORD_BYTES) * RECORD_BYTES
      }
      return
    }
    if (this.zeroBlocks > 0) throw new TarFormatError('a lone zero block inside the tar')
    checkHeaderSum(block)
    const typeFlag = String.fromCharCode(block[156])
    let size = parseOctal(block.subarray(124, 136))
    if (typeFlag === 'x') {
      // PAX headers are held in memory while parsed.
      const maxPax = limitBytes('paxHeader')
      if (size > maxPax)
        throw new TarFormatError(
          `a PAX extended header of ${size} bytes (more than ${maxPax}, ${LIMITS.paxHeader.env}): not a bundle airpack wrote`,
        )
      this.state = 'pax'
      this.remaining = size
      this.pad = padding(size).length
      this.paxChunks = []
      if (size === 0) this.finishBody()
      return
    }
    let name = cString(block.subarray(0, 100))
    const magic = block.subarray(257, 263).toString('ascii')
    if (magic.startsWith('ustar')) {
      const prefix = cString(block.subarray(345, 500))
      if (prefix) name = `${prefix}/${name}`
    }
    const pax = this.pax
    this.pax = undefined
    if (pax?.path !== undefined) name = pax.path
    if (pax?.size !== undefined) {
      if (!/^\d{1,15}$/.test(pax.size))
        throw new TarFormatError(`a PAX size record ${JSON.stringify(pax.size.slice(0, 40))} is not a byte count`)
      size = Number(pax.size)
    }
    const linkName = pax?.linkpath ?? cString(block.subarray(157, 257))
    const type = TYPE_BY_FLAG[typeFlag] ?? 'other'
    // Only regular files carry a body we stream; others' sizes still have to be skipped.
    this.sink = this.onEntry({path: name, size, type, typeFlag, linkName, ...ownerOf(block, pax)})
    this.remaining = size
    this.pad = padding(size).length
    if (size === 0) this.finishBody()
    else this.state = 'body'
  }

  private finishBody(): void {
    if (this.state === 'pax') {
      this.pax = parsePax(Buffer.concat(this.paxChunks))
      this.paxChunks = []
    } else {
      this.sink?.end()
      this.sink = undefined
    }
    this.state = this.pad > 0 ? 'padding' : 'header'
  }
}
