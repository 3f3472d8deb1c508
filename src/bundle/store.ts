import path from 'node:path'
import {Readable} from 'node:stream'

import {digestMismatch, IntegrityError, ResolveError, UsageError} from '../errors.js'
import {checkDeclaredSize, limitBytes, OverBudgetError} from '../limits.js'
import type {Descriptor} from '../oci/descriptor.js'
import type {RangeReadableStore, RangedBody, ResolvingStore} from '../store/types.js'
import {verifiedStream} from '../store/verify.js'
import {isDigest, sha256Hex} from '../util/digest.js'
import {frameAt} from '../zstd/seek-table.js'
import {hasSeekTable, SeekableReader} from '../zstd/seekable-reader.js'
import {parseBundleJson} from './bundle-json.js'
import {
  BLOBS_DIR,
  BUNDLE_JSON,
  BUNDLE_SIG,
  entryReference,
  INDEX_JSON,
  SEEKABLE_FORMAT_VERSION,
  type BundleManifest,
} from './format.js'
import {openBundleSource} from './source.js'
import {encodeFileHeader, entryTarSize, TarFormatError, TarParser} from './tar.js'

// A format 2 bundle as a read-only, resolving store (src/store/types.ts), read in place through the seek table:
// nothing is extracted or joined, whatever the bundle's size. bundle.json pins every entry's path, size and
// sha256, so an entry's place in the tar follows from the entries before it (tar.ts fixes every header's bytes),
// and every byte read is checked: an entry's header against the one the writer writes, its content against its
// sha256. `bundle serve` answers the distribution API from it; `bundle push` copies from it.

/** Where one tar entry sits in the decompressed stream. */
interface EntryLocation {
  path: string
  /** Offset of its (first) header block. */
  offset: number
  /** Offset of its first content byte. */
  dataOffset: number
  size: number
  sha256: string
}

/** One name index.json gives an artifact: its full reference (`HOST/PATH:TAG`) and the descriptor it names. */
export interface NamedDescriptor {
  reference: string
  descriptor: Descriptor
}

function bundleInvalid(bundle: string, problem: string): IntegrityError {
  return new IntegrityError('BUNDLE_INVALID', `${bundle}: ${problem}`, {
    hint: 'Run `airpack bundle verify` on it; copy it again from the original, or rebuild it.',
    details: {bundle, problems: [problem]},
  })
}

/** Reads entries of the tar in place, checking each one's header and content as it streams. */
class EntryReader {
  constructor(
    readonly reader: SeekableReader,
    private readonly input: string,
    /** The one time in the tar's headers (SOURCE_DATE_EPOCH at build, else 0). */
    private readonly mtime: number,
  ) {}

  /** The header block(s) at the entry's offset are the ones the writer writes for its path and size. */
  async checkHeader(entry: EntryLocation): Promise<void> {
    const expected = encodeFileHeader(entry.path, entry.size, {mtime: this.mtime})
    const actual = await this.reader.readBuffer(entry.offset, expected.length)
    if (!actual.equals(expected))
      throw bundleInvalid(this.input, `the tar header at offset ${entry.offset} is not the one of ${entry.path}`)
  }

  /** The entry's content, checked against its size and sha256 as it streams (IntegrityError at the end). */
  verified(entry: EntryLocation, d: Descriptor = entryDescriptor(entry)): Readable {
    return verifiedStream(this.range(entry, 0, entry.size), d, path.basename(this.input))
  }

  async *range(entry: EntryLocation, start: number, end: number): AsyncGenerator<Buffer> {
    await this.checkHeader(entry)
    yield* this.reader.read(entry.dataOffset + start, end - start)
  }

  /** A small document whole, verified, at most the budget for JSON documents in a bundle. */
  async bytes(entry: EntryLocation): Promise<Buffer> {
    try {
      checkDeclaredSize('bundleJsonEntry', entry.size, entry.path)
    } catch (error) {
      if (error instanceof OverBudgetError) throw bundleInvalid(this.input, error.message)
      throw error
    }
    const chunks: Buffer[] = []
    for await (const piece of this.verified(entry)) chunks.push(piece as Buffer)
    return Buffer.concat(chunks)
  }
}

function entryDescriptor(entry: EntryLocation): Descriptor {
  return {mediaType: 'application/octet-stream', digest: `sha256:${entry.sha256}`, size: entry.size}
}

export class BundleStore implements RangeReadableStore, ResolvingStore {
  readonly name: string
  private readonly byDigest = new Map<string, EntryLocation>()
  private readonly byReference = new Map<string, Descriptor>()

  private constructor(
    private readonly entries: EntryReader,
    readonly input: string,
    readonly manifest: BundleManifest,
    /** bundle.json's sha256: a format 2 bundle's identity. */
    readonly identity: string,
    /** index.json exactly as stored. */
    readonly indexBytes: Buffer,
    located: EntryLocation[],
    /** Every artifact index.json names, by its full reference. */
    readonly references: readonly NamedDescriptor[],
  ) {
    this.name = `bundle ${path.basename(input)}`
    for (const e of located) {
      if (e.path.startsWith(BLOBS_DIR)) this.byDigest.set(`sha256:${e.path.slice(BLOBS_DIR.length)}`, e)
    }
    for (const r of references) this.byReference.set(r.reference, r.descriptor)
  }

  /**
   * Opens a format 2 bundle (its `.tar.zst`, first part or `.parts.json`): the seek table, bundle.json, index.json.
   * A format 1 bundle is refused (exit 2): without a seek table, reaching one blob means decompressing everything
   * before it, so it cannot be served or pushed without extracting it first.
   */
  static async open(input: string): Promise<BundleStore> {
    const source = await openBundleSource(input)
    const paths = source.files.map((f) => f.path)
    if (!(await hasSeekTable(paths).catch(() => false))) {
      throw new UsageError(
        'BUNDLE_NOT_SEEKABLE',
        `${input} is a format 1 bundle: it has no seek table to read it in place`,
        {
          hint: 'Rebuild it with `airpack bundle build … --format 2` (with its lock and --locked the content is the same), or unpack it with `zstd -d` and copy images with `skopeo copy oci-archive:…`.',
          details: {bundle: input},
        },
      )
    }
    // Frame headers are checked as each frame is first read, not all at once: opening stays instant.
    const reader = await SeekableReader.open(paths, {name: input, checkFrames: false})
    try {
      return await BundleStore.load(reader, input)
    } catch (error) {
      await reader.close()
      throw error
    }
  }

  private static async load(reader: SeekableReader, input: string): Promise<BundleStore> {
    const head = await readHead(reader, input)
    const manifest = head.manifest
    if (manifest.formatVersion !== SEEKABLE_FORMAT_VERSION)
      throw bundleInvalid(
        input,
        `the file ends with a seek table (format 2), but ${BUNDLE_JSON} says formatVersion ${manifest.formatVersion}`,
      )
    const located = locateEntries(reader, input, manifest, head.end)
    const indexEntry = located.find((e) => e.path === INDEX_JSON)
    if (!indexEntry) throw bundleInvalid(input, `${BUNDLE_JSON} lists no ${INDEX_JSON}`)
    const entries = new EntryReader(reader, input, manifest.sourceDateEpoch ?? 0)
    const indexBytes = await entries.bytes(indexEntry)
    const identity = sha256Hex(head.bundleJson)
    return new BundleStore(entries, input, manifest, identity, indexBytes, located, indexReferences(input, indexBytes))
  }

  async close(): Promise<void> {
    await this.entries.reader.close()
  }

  /** The descriptor a full reference (`HOST/PATH:TAG`, as index.json names it) or a digest held here points at. */
  async resolve(reference: string): Promise<Descriptor> {
    const named = this.byReference.get(reference)
    if (named) return named
    if (isDigest(reference)) {
      const root = this.references.find((r) => r.descriptor.digest === reference)
      if (root) return root.descriptor
      const entry = this.byDigest.get(reference)
      if (entry) return {mediaType: 'application/octet-stream', digest: reference, size: entry.size}
    }
    const held = this.references.map((r) => r.reference)
    throw new ResolveError('NOT_IN_BUNDLE', `${reference} is not in ${this.name}`, {
      hint: `The bundle holds: ${held.slice(0, 10).join(', ') || 'nothing'}${held.length > 10 ? ', …' : ''}.`,
      details: {bundle: this.input, reference},
    })
  }

  async exists(d: Descriptor): Promise<boolean> {
    return this.byDigest.has(d.digest)
  }

  /** Size of the blob `digest` when the bundle holds it. */
  sizeOf(digest: string): number | undefined {
    return this.byDigest.get(digest)?.size
  }

  /** The bytes of `d`, checked against its header, size and digest as they stream (IntegrityError at the end). */
  async fetch(d: Descriptor): Promise<Readable> {
    return this.entries.verified(this.entryFor(d), d)
  }

  /** The bytes of `d` from `offset` on, unchecked (whoever stores them checks the whole; see fetchRange). */
  async fetchFrom(d: Descriptor, offset: number): Promise<RangedBody> {
    return {body: this.fetchRange(d, offset, d.size), start: offset}
  }

  /** A small document (a manifest, an index) whole and verified. */
  async fetchBytes(d: Descriptor): Promise<Buffer> {
    return this.entries.bytes(this.entryFor(d))
  }

  /**
   * Bytes [start, end) of the blob `d`, for HTTP Range requests: the header is checked, but a part of a blob cannot
   * be checked against its digest (the client that asked for a range checks the whole once it has it).
   */
  fetchRange(d: Descriptor, start: number, end: number): Readable {
    const entry = this.entryFor(d)
    if (start < 0 || end > entry.size || start > end)
      throw new RangeError(`range ${start}-${end} is outside the ${entry.size} bytes of ${d.digest}`)
    return Readable.from(this.entries.range(entry, start, end), {objectMode: false})
  }

  private entryFor(d: Descriptor): EntryLocation {
    const entry = this.byDigest.get(d.digest)
    if (!entry)
      throw new ResolveError('NOT_IN_BUNDLE', `${d.digest} is not in ${this.name}`, {
        hint: 'The bundle does not carry it (another platform, or content it never held).',
        details: {bundle: this.input, digest: d.digest},
      })
    if (d.size !== entry.size) {
      throw digestMismatch(
        `${this.name}: ${d.digest} is ${entry.size} bytes in the bundle, its descriptor says ${d.size}`,
        {
          expected: d.digest,
          details: {bundle: this.input},
        },
      )
    }
    return entry
  }
}

/** bundle.json (and its signature when present), the first entries, and the offset where the next one starts. */
async function readHead(
  reader: SeekableReader,
  input: string,
): Promise<{bundleJson: Buffer; manifest: BundleManifest; end: number}> {
  const found: {path: string; size: number; bytes?: Buffer}[] = []
  const parser = new TarParser((h) => {
    if (found.length === 0 && (h.path !== BUNDLE_JSON || h.type !== 'file'))
      throw new TarFormatError(
        `the first entry is ${JSON.stringify(h.path)}, not ${BUNDLE_JSON}: this is not an airpack bundle, or it was repacked`,
      )
    checkDeclaredSize('bundleJson', h.size, h.path)
    const entry: {path: string; size: number; bytes?: Buffer} = {path: h.path, size: h.size}
    found.push(entry)
    const chunks: Buffer[] = []
    return {data: (c) => void chunks.push(Buffer.from(c)), end: () => void (entry.bytes = Buffer.concat(chunks))}
  })
  const max = limitBytes('bundleJson') * 2
  let manifest: BundleManifest | string | undefined
  try {
    // The generator decodes a frame only when asked for it: stopping early leaves the content unread.
    for await (const chunk of reader.read(0, Math.min(reader.size, max))) {
      parser.push(chunk)
      if (found[0]?.bytes && manifest === undefined) manifest = parseBundleJson(found[0].bytes)
      if (typeof manifest === 'string') throw bundleInvalid(input, manifest)
      if (manifest && (manifest.signature === undefined || found[1]?.bytes)) break
    }
  } catch (error) {
    if (error instanceof TarFormatError || error instanceof OverBudgetError) throw bundleInvalid(input, error.message)
    throw error
  }
  const json = found[0]
  if (!json?.bytes || typeof manifest !== 'object')
    throw bundleInvalid(input, `the stream holds no complete ${BUNDLE_JSON}`)
  let end = entryTarSize(BUNDLE_JSON, json.size)
  const sig = found[1]
  if (sig?.bytes) {
    if (sig.path !== BUNDLE_SIG)
      throw bundleInvalid(input, `the entry after ${BUNDLE_JSON} is ${sig.path}, not ${BUNDLE_SIG}`)
    end += entryTarSize(BUNDLE_SIG, sig.size)
  }
  return {bundleJson: json.bytes, manifest, end}
}

/** Every entry bundle.json lists, placed one after the other from `start`; each must begin a frame. */
function locateEntries(
  reader: SeekableReader,
  input: string,
  manifest: BundleManifest,
  start: number,
): EntryLocation[] {
  const out: EntryLocation[] = []
  let offset = start
  for (const e of manifest.entries) {
    if (typeof e?.path !== 'string' || !Number.isSafeInteger(e.size) || e.size < 0 || !/^[a-f0-9]{64}$/.test(e.sha256))
      throw bundleInvalid(input, `${BUNDLE_JSON} lists an entry without a path, size and sha256`)
    const headerSize = encodeFileHeader(e.path, e.size, {mtime: 0}).length
    const total = entryTarSize(e.path, e.size)
    if (offset + total > reader.size)
      throw bundleInvalid(input, `${e.path} would end past the end of the ${reader.size}-byte tar: truncated`)
    // The writer starts a new frame at every entry: an entry elsewhere means the bundle is not what bundle.json says.
    if (frameAt(reader.table, offset)?.decompressedOffset !== offset)
      throw bundleInvalid(
        input,
        `${e.path} does not start a zstd frame at tar offset ${offset}: the seek table does not match ${BUNDLE_JSON}`,
      )
    out.push({path: e.path, offset, dataOffset: offset + headerSize, size: e.size, sha256: e.sha256})
    offset += total
  }
  return out
}

/** The artifacts index.json names, by their full reference. */
function indexReferences(input: string, bytes: Buffer): NamedDescriptor[] {
  let index: {manifests?: Descriptor[]}
  try {
    index = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw bundleInvalid(input, `${INDEX_JSON} is not valid JSON`)
  }
  if (!Array.isArray(index?.manifests)) throw bundleInvalid(input, `${INDEX_JSON} has no manifests list`)
  const out: NamedDescriptor[] = []
  for (const d of index.manifests) {
    const reference = entryReference(d?.annotations)
    if (!reference || !isDigest(d.digest) || typeof d.mediaType !== 'string' || !Number.isSafeInteger(d.size)) continue
    out.push({reference, descriptor: d})
  }
  return out
}
