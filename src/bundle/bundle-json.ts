import {IntegrityError} from '../errors.js'
import {OverBudgetError, byteCounter, checkDeclaredSize} from '../limits.js'
import {tarChunks} from './decompress.js'
import {BUNDLE_JSON, FORMAT_VERSION, SEEKABLE_FORMAT_VERSION, type BundleManifest} from './format.js'
import {openBundleSource, type BundleSource} from './source.js'
import {TarFormatError, TarParser} from './tar.js'

// A bundle's airpack/bundle.json alone, without the rest of the stream: what `bundle diff` and the delta tools
// compare. (readBundle in reader.ts reads it as the first step of its one full pass.)

/** Not an airpack bundle.json, or not the first entry: the bundle is refused (exit 5). */
class NotBundleJson extends Error {}

/**
 * bundle.json's bytes as a manifest, or why they are not one: the checks readBundle (reader.ts) also makes on the
 * first entry. Formats 1 and 2 hold the same bundle.json shape (a format 2 file is still one plain zstd file, so
 * readBundleJson below reads both).
 */
export function parseBundleJson(bytes: Buffer): BundleManifest | string {
  let manifest: BundleManifest
  try {
    manifest = JSON.parse(bytes.toString('utf8')) as BundleManifest
  } catch {
    return `${BUNDLE_JSON} is not valid JSON`
  }
  const version = manifest?.formatVersion
  if (version !== FORMAT_VERSION && version !== SEEKABLE_FORMAT_VERSION)
    return `${BUNDLE_JSON} has formatVersion ${JSON.stringify(version)}; this airpack reads formats 1 and 2`
  if (!Array.isArray(manifest.entries)) return `${BUNDLE_JSON} has no entries list`
  return manifest
}

export interface BundleJsonRead {
  source: BundleSource
  manifest: BundleManifest
  /** bundle.json exactly as stored in the tar. */
  bytes: Buffer
}

/**
 * Only `airpack/bundle.json`, the first entry: decompresses until it is parsed, then stops reading (the
 * multi-GB rest of the bundle is never touched). It checks nothing beyond bundle.json: for `bundle diff` and the
 * delta tools, which compare inventories; `verify` is what proves the rest of the bundle matches it.
 */
export async function readBundleJson(input: string): Promise<BundleJsonRead> {
  const head = await readHeadEntries(input, (path, index) => {
    if (index === 0 && path === BUNDLE_JSON) return undefined
    if (index === 0 && path === DELTA_ENTRY)
      return `the first entry is ${DELTA_ENTRY}: this is a day-2 delta, not a whole bundle; pass the bundle (or its NAME.inventory.json) instead, or use \`airpack bundle patch\` to make the whole bundle from its base`
    return `the first entry is ${JSON.stringify(path)}, not ${BUNDLE_JSON}: this is not an airpack bundle, or it was repacked`
  })
  const bytes = head.entries.get(BUNDLE_JSON)!
  const manifest = parseBundleJson(bytes)
  if (typeof manifest === 'string') throw bundleInvalid(input, manifest)
  return {source: head.source, manifest, bytes}
}

/** A day-2 delta's first entry (PRODUCT.md §11; its shape is src/delta/format.ts). */
export const DELTA_ENTRY = 'airpack/delta.json'

function bundleInvalid(
  input: string,
  message: string,
  hint = 'Copy the bundle again from the original, or rebuild it.',
): IntegrityError {
  return new IntegrityError('BUNDLE_INVALID', `${input}: ${message}`, {
    hint,
    details: {bundle: input, problems: [message]},
  })
}

/**
 * The entries at the start of a bundle or delta, up to and including airpack/bundle.json, each held in memory
 * (all within bundle.json's budget together); the rest of the stream is never read. `refuse` says why an entry
 * at that position is not allowed there (the read stops, exit 5), or undefined to keep it.
 */
export async function readHeadEntries(
  input: string,
  refuse: (path: string, index: number) => string | undefined,
): Promise<{source: BundleSource; entries: Map<string, Buffer>}> {
  const source = await openBundleSource(input)
  const invalid = (message: string, hint?: string) => bundleInvalid(input, message, hint)
  const entries = new Map<string, Buffer>()
  let done = false
  let index = 0
  const countBytes = byteCounter('bundleJson', BUNDLE_JSON)
  const parser = new TarParser((h) => {
    // The rest of the chunk that held bundle.json's end is parsed too: past the head, nothing is kept.
    if (done) return undefined
    const why = h.type === 'file' ? refuse(h.path, index++) : `entry ${JSON.stringify(h.path)} is not a regular file`
    if (why) throw new NotBundleJson(why)
    checkDeclaredSize('bundleJson', h.size, h.path)
    const chunks: Buffer[] = []
    return {
      data: (c) => {
        countBytes(c)
        chunks.push(Buffer.from(c))
      },
      end: () => {
        entries.set(h.path, Buffer.concat(chunks))
        if (h.path === BUNDLE_JSON) done = true
      },
    }
  })
  try {
    for await (const chunk of tarChunks(source)) {
      parser.push(chunk)
      if (done) break
    }
  } catch (error) {
    if (error instanceof OverBudgetError) throw invalid(error.message, error.hint)
    if (error instanceof NotBundleJson || error instanceof TarFormatError) throw invalid(error.message)
    throw error
  }
  if (!done) throw invalid(`the stream holds no complete ${BUNDLE_JSON}`)
  return {source, entries}
}
