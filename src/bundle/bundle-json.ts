import path from 'node:path'

import {IntegrityError, UsageError} from '../errors.js'
import {OverBudgetError, byteCounter, checkDeclaredSize} from '../limits.js'
import {BUNDLE_JSON, FORMAT_VERSION, SEEKABLE_FORMAT_VERSION, type BundleManifest} from './format.js'
import {PIPE_AHEAD} from './hash.js'
import {openBundleSource, readCompressed, type BundleSource} from './source.js'
import {drained, TarFormatError, TarParser} from './tar.js'
import {startDecompressor} from './zstd.js'

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
  const source = await openBundleSource(input)
  const invalid = (message: string, hint = 'Copy the bundle again from the original, or rebuild it.') =>
    new IntegrityError('BUNDLE_INVALID', `${input}: ${message}`, {hint, details: {bundle: input, problems: [message]}})
  const chunks: Buffer[] = []
  let bytes: Buffer | undefined
  let entries = 0
  const countBytes = byteCounter('bundleJson', BUNDLE_JSON)
  const parser = new TarParser((h) => {
    if (entries++ > 0) return undefined
    if (h.path !== BUNDLE_JSON || h.type !== 'file')
      throw new NotBundleJson(
        `the first entry is ${JSON.stringify(h.path)}, not ${BUNDLE_JSON}: this is not an airpack bundle, or it was repacked`,
      )
    checkDeclaredSize('bundleJson', h.size, BUNDLE_JSON)
    return {
      data: (c) => {
        countBytes(c)
        chunks.push(Buffer.from(c))
      },
      end: () => (bytes = Buffer.concat(chunks)),
    }
  })
  const zstd = startDecompressor()
  let stop = false
  let readError: NodeJS.ErrnoException | undefined
  const feed = (async () => {
    try {
      for await (const chunk of readCompressed(source)) {
        if (stop || zstd.stdin.destroyed) break
        zstd.stdin.write(chunk)
        // A closed pipe means zstd stopped (its exit status says why) or we stopped it: nothing more to feed.
        if (
          zstd.stdin.writableLength > PIPE_AHEAD &&
          !(await drained(zstd.stdin).then(
            () => true,
            () => false,
          ))
        )
          break
      }
    } catch (error) {
      readError = error as NodeJS.ErrnoException
    }
    if (!stop && !zstd.stdin.destroyed) zstd.stdin.end()
  })()
  let failure: unknown
  try {
    for await (const chunk of zstd.stdout! as AsyncIterable<Buffer>) {
      parser.push(chunk)
      if (bytes) break
    }
  } catch (error) {
    failure = error
  }
  stop = true
  const zstdError = bytes ? undefined : await zstd.stop()
  if (bytes) await zstd.stop()
  await feed
  if (readError) {
    throw new UsageError(
      'BUNDLE_UNREADABLE',
      `${input}: cannot read ${readError.path ? path.basename(readError.path) : 'the bundle'} (${readError.code ?? readError.message})`,
      {
        hint: 'Check that every part is present and readable by this user.',
        details: {bundle: input},
      },
    )
  }
  if (failure instanceof OverBudgetError) throw invalid(failure.message, failure.hint)
  if (failure instanceof NotBundleJson || failure instanceof TarFormatError) throw invalid(failure.message)
  if (failure) throw failure
  if (!bytes) {
    if (zstdError)
      throw invalid(
        `the compressed stream is corrupt or cut short: ${String((zstdError as Error).message).replace(/^zstd decompression failed: /, '')}`,
      )
    throw invalid(`the stream holds no complete ${BUNDLE_JSON}`)
  }
  const manifest = parseBundleJson(bytes)
  if (typeof manifest === 'string') throw invalid(manifest)
  return {source, manifest, bytes}
}
