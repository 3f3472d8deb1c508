import {createHash} from 'node:crypto'
import {stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {Writable} from 'node:stream'

import {readBundleJson} from '../bundle/bundle-json.js'
import {tarChunks} from '../bundle/decompress.js'
import {BLOBS_DIR, BUNDLE_JSON, BUNDLE_SIG, SEEKABLE_FORMAT_VERSION, type BundleManifest} from '../bundle/format.js'
import {hashFile, streamHash} from '../bundle/hash.js'
import {readBundle} from '../bundle/reader.js'
import {openBundleSource} from '../bundle/source.js'
import {TarWriter} from '../bundle/tar.js'
import {openCompressor, type Compressor} from '../bundle/writer.js'
import {zstdVersion} from '../bundle/zstd.js'
import {IntegrityError, UsageError} from '../errors.js'
import {MediaType} from '../oci/media-types.js'
import {atomicOutput, type AtomicOutput} from '../util/atomic.js'
import {sha256Digest, sha256Hex} from '../util/digest.js'
import {ensureWritableDir} from '../util/environment.js'
import {silentLogger, type Logger} from '../util/log.js'
import {readDeltaHead, type DeltaHead} from './head.js'
import {DELTA_ENTRY, DELTA_SIG, type DeltaSide} from './format.js'
import {inventoryFileName, inventoryOf, isInventoryPath, serializeInventory} from './inventory.js'
import {TarPuller} from './tar-pull.js'

// `bundle patch BASE DELTA --output DIR` and the reproduction half of `verify DELTA --base BASE` (PRODUCT.md §11):
// N+1's tar is rebuilt entry by entry from two streams read side by side, the delta's (delta.json, bundle.json,
// the layout, the carried blobs) and the base's (the borrowed blobs), both in digest order, so nothing is held or
// copied to disk but the output. Every entry is checked against bundle.json's sha256 on the way, the base against
// the identity delta.json names, and the rebuilt tar against the target's identity.

export interface RebuildResult {
  tarBytes: number
  /** The rebuilt target's identity: format 1, the sha256 of the tar written; format 2, bundle.json's. */
  identity: string
  base: DeltaSide & {input: string}
}

/** A compressor that discards the tar: `verify --base` only needs it hashed (format 1's identity). */
function discardingSink(mtime: number): Compressor {
  const input = new Writable({write: (_chunk, _encoding, callback) => callback()})
  const writer = new TarWriter(input, {mtime})
  return {
    tar: {
      get bytesWritten() {
        return writer.bytesWritten
      },
      addBuffer: (p, data) => writer.addBuffer(p, data),
      addBlob: () => Promise.reject(new Error('not used')),
      addStream: (p, size, body, _mediaType, onChunk) => writer.addStream(p, size, body, onChunk),
      finish: () => writer.finish(),
      abort: () => writer.abort(),
    },
    close: async () => void input.end(),
    kill: () => input.destroy(),
    stop: async () => void input.destroy(),
    inputError: undefined,
  }
}

function wrongEntry(head: DeltaHead, expected: string, found: string | undefined): IntegrityError {
  const message = `${head.input}: expected entry ${expected} next, found ${found === undefined ? 'the end of the tar' : JSON.stringify(found)}`
  return new IntegrityError('DELTA_INVALID', message, {
    hint: 'The delta was altered or cut short: copy it again from the original.',
    details: {delta: head.input, problems: [message]},
  })
}

/**
 * The base named by `baseInput`, if it is one of the delta's bases (by its bundle.json's sha256); otherwise the
 * refusal naming both sides by name and identity.
 */
export async function matchBase(
  head: DeltaHead,
  baseInput: string,
): Promise<{side: DeltaSide; manifest: BundleManifest}> {
  const read = await readBundleJson(baseInput)
  const sha = sha256Digest(read.bytes)
  const side = head.delta.bases.find((b) => b.bundleJsonSha256 === sha)
  if (side) return {side, manifest: read.manifest}
  // Named by identity (format 1: the sha256 of its tar, one pass over it; only on this refusal path).
  const identity =
    read.manifest.formatVersion === SEEKABLE_FORMAT_VERSION
      ? sha
      : (await readBundle(baseInput, {mode: 'inspect'})).identity
  const wanted = head.delta.bases.map((b) => `${b.name} (identity ${b.identity})`).join(' or ')
  throw new IntegrityError(
    'DELTA_WRONG_BASE',
    `${baseInput} is bundle ${read.manifest.name} (identity ${identity}), but ${head.input} applies to ${wanted}`,
    {
      hint: `Pass the bundle the delta was built against (${head.delta.bases.map((b) => `${b.name}.tar.zst`).join(', ')}), or build a delta against the bundle this site holds.`,
      details: {base: baseInput, baseIdentity: identity, delta: head.input, expected: head.delta.bases},
    },
  )
}

/**
 * N+1's tar, rebuilt from BASE and the delta into `sink` (a compressor, or nothing). Throws naming the first entry
 * that is missing or does not hash to bundle.json's sha256, a base that is not the one delta.json names, or a tar
 * that does not hash to the target identity.
 */
export async function rebuildTarget(
  head: DeltaHead,
  baseInput: string,
  sink: Compressor = discardingSink(head.manifest.sourceDateEpoch ?? 0),
): Promise<RebuildResult> {
  const {side} = await matchBase(head, baseInput)
  const {delta} = head
  const rawFrames = new Set(delta.target.rawFrames ?? [])
  const borrowed = new Set(delta.borrowed.map((b) => `${BLOBS_DIR}${b.digest.slice('sha256:'.length)}`))
  const deltaTar = new TarPuller(tarChunks(head.source))
  const baseHash = streamHash()
  const baseTar = new TarPuller(tarChunks(await openBundleSource(baseInput)), (c) => baseHash.write(c))
  const {tar} = sink
  const problem = patchProblem(head.input, baseInput)

  /** Copies the next entry of `from` into the tar, checking its path, size and sha256. */
  const copy = async (from: TarPuller, entry: {path: string; size: number; sha256: string}, what: string) => {
    const mediaType = rawFrames.has(`sha256:${entry.path.slice(BLOBS_DIR.length)}`) ? MediaType.ociLayerGzip : undefined
    const hash = createHash('sha256')
    await tar.addStream(entry.path, entry.size, from.body(), mediaType, (c) => void hash.update(c))
    const sha = hash.digest('hex')
    if (sha !== entry.sha256)
      throw problem(`${what}: entry ${entry.path} hashes to sha256:${sha}, ${BUNDLE_JSON} says sha256:${entry.sha256}`)
  }
  const expectDelta = async (p: string) => {
    const h = await deltaTar.next()
    if (h?.path !== p) throw wrongEntry(head, p, h?.path)
    return h
  }

  try {
    await copyHeadEntries(head, expectDelta, deltaTar, tar, copy)
    await copyTargetEntries({head, side, baseInput, borrowed, deltaTar, baseTar, copy, problem})
    const extra = await deltaTar.next()
    if (extra) throw problem(`${head.input}: entry ${extra.path} is not listed in ${BUNDLE_JSON}`)
    const written = await tar.finish()
    await baseTar.drain()
    const {identity, baseIdentity} = checkIdentities(
      head,
      side,
      baseInput,
      `sha256:${await baseHash.digest()}`,
      written,
      problem,
    )
    return {tarBytes: written.size, identity, base: {...side, identity: baseIdentity, input: baseInput}}
  } catch (error) {
    tar.abort()
    baseHash.destroy()
    throw error
  } finally {
    await deltaTar.close()
    await baseTar.close()
  }
}

type Problem = (message: string, code?: string) => IntegrityError

/** An integrity failure of a patch, naming the delta and the base. */
function patchProblem(deltaInput: string, baseInput: string): Problem {
  return (message, code = 'DELTA_INVALID') =>
    new IntegrityError(code, message, {
      hint: 'Copy the delta and the base again from the originals; if this persists, rebuild the delta.',
      details: {delta: deltaInput, base: baseInput, problems: [message]},
    })
}

/** delta.json (and its signature) are skipped; N+1's bundle.json and its signature are copied into the tar. */
async function copyHeadEntries(
  head: DeltaHead,
  expectDelta: (p: string) => Promise<{path: string; size: number}>,
  deltaTar: TarPuller,
  tar: Compressor['tar'],
  copy: (from: TarPuller, entry: {path: string; size: number; sha256: string}, what: string) => Promise<void>,
): Promise<void> {
  await expectDelta(DELTA_ENTRY)
  if (head.delta.signature) await expectDelta(DELTA_SIG)
  await expectDelta(BUNDLE_JSON)
  await copy(
    deltaTar,
    {path: BUNDLE_JSON, size: head.bundleJson.length, sha256: sha256Hex(head.bundleJson)},
    head.input,
  )
  if (head.manifest.signature) {
    const h = await expectDelta(BUNDLE_SIG)
    const chunks: Buffer[] = []
    for await (const c of deltaTar.body()) chunks.push(c)
    const sig = Buffer.concat(chunks)
    if (sig.length !== h.size) throw wrongEntry(head, BUNDLE_SIG, h.path)
    await tar.addBuffer(BUNDLE_SIG, sig)
  }
}

/** N+1's entries in bundle.json's order: carried ones from the delta, borrowed ones from the base (skipping the
 *  base's other entries: its blobs are in digest order too). */
async function copyTargetEntries(o: {
  head: DeltaHead
  side: Awaited<ReturnType<typeof matchBase>>['side']
  baseInput: string
  borrowed: Set<string>
  deltaTar: TarPuller
  baseTar: TarPuller
  copy: (from: TarPuller, entry: {path: string; size: number; sha256: string}, what: string) => Promise<void>
  problem: Problem
}): Promise<void> {
  const {head, side, baseInput, borrowed, deltaTar, baseTar, copy, problem} = o
  for (const entry of head.manifest.entries) {
    if (!borrowed.has(entry.path)) {
      const h = await deltaTar.next()
      if (h?.path !== entry.path) throw wrongEntry(head, entry.path, h?.path)
      if (h.size !== entry.size)
        throw problem(`${head.input}: entry ${entry.path} is ${h.size} bytes, ${BUNDLE_JSON} says ${entry.size}`)
      await copy(deltaTar, entry, head.input)
      continue
    }
    // The base's blobs are in digest order too: skip to this one.
    let h = await baseTar.next()
    while (h && !(h.path.startsWith(BLOBS_DIR) && h.path >= entry.path)) h = await baseTar.next()
    if (h?.path !== entry.path)
      throw problem(
        `${baseInput} lacks ${entry.path}, which ${head.input} borrows from it (the base is not bundle ${side.name}, or it was altered)`,
        'DELTA_BASE_INCOMPLETE',
      )
    await copy(baseTar, entry, baseInput)
  }
}

/** The base's identity (format 1: the tar just read must hash to it) and N+1's, which must be delta.json's. */
function checkIdentities(
  head: DeltaHead,
  side: Awaited<ReturnType<typeof matchBase>>['side'],
  baseInput: string,
  baseTarSha: string,
  written: {sha256?: string},
  problem: Problem,
): {identity: string; baseIdentity: string} {
  const {manifest, delta} = head
  const baseIdentity = side.formatVersion === SEEKABLE_FORMAT_VERSION ? side.bundleJsonSha256 : baseTarSha
  if (side.formatVersion !== SEEKABLE_FORMAT_VERSION && baseTarSha !== side.identity)
    throw problem(
      `${baseInput} has identity ${baseTarSha}, but ${head.input} applies to ${side.name} with identity ${side.identity} (same bundle.json, other bytes: the base was altered)`,
      'DELTA_WRONG_BASE',
    )
  const identity =
    manifest.formatVersion === SEEKABLE_FORMAT_VERSION ? sha256Digest(head.bundleJson) : `sha256:${written.sha256}`
  if (identity !== delta.target.identity)
    throw problem(
      `the rebuilt bundle ${manifest.name} has identity ${identity}, but ${DELTA_ENTRY} says ${delta.target.identity}`,
    )
  return {identity, baseIdentity}
}

export interface PatchReport {
  bundle: string
  name: string
  identity: string
  base: RebuildResult['base']
  delta: {input: string; identity: string}
  outputDir: string
  files: string[]
  tarBytes: number
  compressedBytes: number
  /** True when the .tar.zst is byte for byte the whole build's (its sha256 was recorded in the delta). */
  sameFileAsBuild?: boolean
  warnings: string[]
}

export async function patchBundle(options: {
  base: string
  delta: string
  outputDir: string
  logger?: Logger
}): Promise<PatchReport> {
  const logger = options.logger ?? silentLogger
  const head = await readPatchInputs(options.base, options.delta)
  const {manifest, delta} = head
  const outputDir = await writableOutputDir(options.outputDir)
  const warnings: string[] = []
  const outputs: AtomicOutput[] = []
  const bundleFile = delta.target.file
  const out = await atomicOutput(path.join(outputDir, bundleFile))
  outputs.push(out)
  let compressor: Compressor | undefined
  try {
    compressor = await openCompressor(
      manifest.formatVersion,
      manifest.compression.level,
      manifest.sourceDateEpoch ?? 0,
      out.tmpPath,
    )
    logger.info(`Rebuilding ${bundleFile} from ${options.base} and ${options.delta}…`)
    const result = await rebuildTarget(head, options.base, compressor)
    await compressor.close()
    const compressed = await compressedFacts(out.tmpPath)
    const sameFileAsBuild = await carryBuildSignature(
      head,
      compressed.sha256,
      result.identity,
      outputDir,
      outputs,
      warnings,
    )
    outputs.push(await stageInventory(outputDir, manifest, result.identity))
    for (const o of outputs) await o.commit()
    return {
      bundle: path.join(outputDir, bundleFile),
      name: manifest.name,
      identity: result.identity,
      base: result.base,
      delta: {input: options.delta, identity: head.identity},
      outputDir,
      files: outputs.map((o) => path.basename(o.finalPath)),
      tarBytes: result.tarBytes,
      compressedBytes: compressed.size,
      ...(sameFileAsBuild === undefined ? {} : {sameFileAsBuild}),
      warnings,
    }
  } catch (error) {
    await compressor?.stop()
    for (const o of outputs) await o.abort()
    throw error
  }
}

/** The base must be a bundle's bytes (not its inventory) and the delta a delta; its head is read. */
async function readPatchInputs(base: string, deltaInput: string): Promise<DeltaHead> {
  if (isInventoryPath(base))
    throw new UsageError('PATCH_NEEDS_BUNDLE', `${base} is an inventory: patch needs the base bundle's bytes`, {
      hint: 'Pass the base bundle itself (NAME.tar.zst, its first part or NAME.parts.json).',
    })
  const head = await readDeltaHead(deltaInput)
  if (!head)
    throw new UsageError('NOT_A_DELTA', `${deltaInput} is a whole bundle, not a delta (no ${DELTA_ENTRY})`, {
      hint: 'Pass the NAME.delta.tar.zst that `bundle build --delta-from` wrote; a whole bundle needs no patching.',
    })
  return head
}

/** When the patched file is byte for byte the build's, the build's detached signature (recorded in the delta)
 *  applies to it and is written beside it; otherwise a warning says why it does not. */
async function carryBuildSignature(
  head: DeltaHead,
  compressedSha256: string,
  identity: string,
  outputDir: string,
  outputs: AtomicOutput[],
  warnings: string[],
): Promise<boolean | undefined> {
  const {manifest, delta} = head
  const bundleFile = delta.target.file
  const recorded = delta.target.compressed
  let sameFileAsBuild: boolean | undefined
  if (recorded) {
    sameFileAsBuild = recorded.sha256 === compressedSha256
    if (sameFileAsBuild && recorded.detachedSignature) {
      const sig = await atomicOutput(path.join(outputDir, `${bundleFile}.sig`))
      outputs.push(sig)
      await writeFile(sig.tmpPath, Buffer.from(recorded.detachedSignature, 'base64'))
    } else if (!sameFileAsBuild)
      warnings.push(
        `${bundleFile} holds the same tar (identity ${identity}) but is not the build's compressed file${manifest.formatVersion === SEEKABLE_FORMAT_VERSION ? '' : ` (zstd ${await zstdVersion()} here, ${manifest.compression.version} at the build)`}: the build's detached signature does not apply to it; bundle.json's signature still does`,
      )
  }
  return sameFileAsBuild
}

async function writableOutputDir(dir: string): Promise<string> {
  const outputDir = path.resolve(dir)
  await ensureWritableDir(outputDir, {
    code: 'OUTPUT_UNWRITABLE',
    what: 'the output directory',
    hint: 'Choose a directory on a writable file system with --output DIR, or fix its permissions.',
  })
  return outputDir
}

/** NAME.inventory.json of the patched bundle, as a whole build writes it, under a temporary name. */
async function stageInventory(
  outputDir: string,
  manifest: DeltaHead['manifest'],
  identity: string,
): Promise<AtomicOutput> {
  const inventory = await atomicOutput(path.join(outputDir, inventoryFileName(manifest.name)))
  try {
    await writeFile(inventory.tmpPath, serializeInventory(inventoryOf({name: manifest.name, identity, manifest})))
  } catch (error) {
    await inventory.abort()
    throw error
  }
  return inventory
}

async function compressedFacts(file: string): Promise<{size: number; sha256: string}> {
  const {size} = await stat(file)
  return {size, sha256: await hashFile(file, size)}
}
