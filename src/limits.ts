import {open} from 'node:fs/promises'

// Every budget for untrusted bytes that airpack holds in memory, in one place. Anything larger than one of these
// is streamed (blobs, layers, bundle entries) or refused: bytes are counted while they are read or decompressed,
// and reading stops at the budget, never after. docs/limits.md explains each one to users.
//
// Each limit can be lowered (or raised) with its environment variable, as Helm does for its own: the tests build
// small hostile inputs against small budgets, and a site with a genuinely larger document can raise one.

const KiB = 1024
const MiB = 1024 * KiB

export interface LimitSpec {
  /** Default in bytes. */
  bytes: number
  /** Environment variable that overrides it (a byte count, or a size such as 8MiB). */
  env: string
  /** What the budget is for, as a message says it: "a manifest". */
  what: string
  /** Why this size: the anchor a user knows. */
  why: string
}

export const LIMITS = {
  manifest: {
    bytes: 4 * MiB,
    env: 'AIRPACK_MAX_MANIFEST_BYTES',
    what: 'an image manifest or index',
    why: 'the distribution registry refuses manifests over 4 MiB, and the OCI distribution spec lets clients do the same',
  },
  imageConfig: {
    bytes: 4 * MiB,
    env: 'AIRPACK_MAX_IMAGE_CONFIG_BYTES',
    what: 'an image config',
    why: 'a config is a few KiB; read into memory only to learn its platform, with the manifest limit',
  },
  tokenResponse: {
    bytes: 1 * MiB,
    env: 'AIRPACK_MAX_TOKEN_RESPONSE_BYTES',
    what: 'a token service response',
    why: 'a bearer token response is a JSON object of a few KiB (a JWT and its lifetime)',
  },
  repositoryIndex: {
    bytes: 64 * MiB,
    env: 'AIRPACK_MAX_REPOSITORY_INDEX_BYTES',
    what: 'a Helm repository index.yaml',
    why: 'the largest public index.yaml files are tens of MiB uncompressed; counted after gzip is undone',
  },
  chartArchive: {
    bytes: 100 * MiB,
    env: 'AIRPACK_MAX_CHART_BYTES',
    what: 'a decompressed chart archive',
    why: "Helm's own MaxDecompressedChartSize (100 MiB): a chart Helm would refuse to load is refused here",
  },
  chartFile: {
    bytes: 5 * MiB,
    env: 'AIRPACK_MAX_CHART_FILE_BYTES',
    what: 'a file inside a chart archive',
    why: "Helm's own MaxDecompressedFileSize (5 MiB)",
  },
  bundleJson: {
    bytes: 64 * MiB,
    env: 'AIRPACK_MAX_BUNDLE_JSON_BYTES',
    what: 'airpack/bundle.json',
    why: 'the inventory lists every entry in about 150 bytes: 64 MiB is several hundred thousand entries',
  },
  bundleJsonEntry: {
    bytes: 4 * MiB,
    env: 'AIRPACK_MAX_BUNDLE_DOCUMENT_BYTES',
    what: 'a JSON document in a bundle (index.json, a manifest)',
    why: 'the same 4 MiB as a manifest in a registry: every manifest in a bundle came from one',
  },
  bundleJsonTotal: {
    bytes: 64 * MiB,
    env: 'AIRPACK_MAX_BUNDLE_DOCUMENTS_BYTES',
    what: 'all JSON documents of a bundle together',
    why: 'verify keeps the manifests to check their references; thousands of images need a few MiB',
  },
  signature: {
    bytes: 64 * KiB,
    env: 'AIRPACK_MAX_SIGNATURE_BYTES',
    what: 'a signature file',
    why: 'an RSA-8192 signature is 1 KiB, Ed25519 and ECDSA far less; anything bigger is not a signature',
  },
  partsFile: {
    bytes: 4 * MiB,
    env: 'AIRPACK_MAX_PARTS_FILE_BYTES',
    what: 'a parts file',
    why: 'at most 1000 parts of about 200 bytes each',
  },
  paxHeader: {
    bytes: 1 * MiB,
    env: 'AIRPACK_MAX_PAX_HEADER_BYTES',
    what: 'a PAX extended header',
    why: "airpack's own are a few hundred bytes (a long path, a size over 8 GiB)",
  },
  profile: {
    bytes: 16 * MiB,
    env: 'AIRPACK_MAX_PROFILE_BYTES',
    what: 'a profile file',
    why: 'an exported profile is well under 1 MiB',
  },
  definition: {
    bytes: 64 * MiB,
    env: 'AIRPACK_MAX_DEFINITION_BYTES',
    what: 'a cluster definition .tgz (compressed)',
    why: 'a cluster definition holds a few profiles; a content bundle passed by mistake is refused at once',
  },
  definitionTar: {
    bytes: 80 * MiB,
    env: 'AIRPACK_MAX_DEFINITION_TAR_BYTES',
    what: 'a decompressed cluster definition',
    why: 'its entries (64 MiB at most) plus tar headers and padding; stops a gzip bomb while it inflates',
  },
  definitionEntries: {
    bytes: 64 * MiB,
    env: 'AIRPACK_MAX_DEFINITION_ENTRIES_BYTES',
    what: 'all entries of a cluster definition together',
    why: 'a cluster definition holds a few profiles',
  },
  definitionEntry: {
    bytes: 16 * MiB,
    env: 'AIRPACK_MAX_DEFINITION_ENTRY_BYTES',
    what: 'one entry of a cluster definition',
    why: 'the same as a profile file',
  },
  textInput: {
    bytes: 16 * MiB,
    env: 'AIRPACK_MAX_INPUT_FILE_BYTES',
    what: 'a local input file (profile, inventory, user-data, registries.yaml, credentials)',
    why: 'these are hand-written or exported files of a few KiB; 16 MiB is far beyond any real one',
  },
} as const satisfies Record<string, LimitSpec>

export type LimitName = keyof typeof LIMITS

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: KiB,
  kib: KiB,
  kb: 1000,
  m: MiB,
  mib: MiB,
  mb: 1000 ** 2,
  g: 1024 * MiB,
  gib: 1024 * MiB,
  gb: 1000 ** 3,
}

/** The budget in bytes now: the environment variable when it holds a size, the default otherwise. */
export function limitBytes(name: LimitName, env: NodeJS.ProcessEnv = process.env): number {
  const spec = LIMITS[name]
  const raw = env[spec.env]
  if (raw === undefined || raw.trim() === '') return spec.bytes
  const match = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(raw)
  const unit = match ? UNITS[match[2].toLowerCase()] : undefined
  if (!match || unit === undefined || Number(match[1]) * unit <= 0) return spec.bytes
  return Number(match[1]) * unit
}

/** `4 MiB`, `512 KiB`, `1000 bytes`: a size as a message says it. */
export function formatBytes(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`
  return `${bytes} bytes`
}

/** Thrown by the bounded readers; callers turn it into the error of their kind (exit 2, 4 or 5). */
export class OverBudgetError extends Error {
  constructor(
    readonly limit: LimitName,
    readonly bytes: number,
    /** The offending artifact or file, as the message names it. */
    readonly subject: string,
    /** Bytes seen when reading stopped (at least bytes + 1), or the size declared up front. */
    readonly seen?: number,
  ) {
    super(overBudgetMessage(limit, bytes, subject, seen))
    this.name = 'OverBudgetError'
  }

  /** What to do about it, for an error's hint. */
  get hint(): string {
    return `If this input is genuine and trusted, raise the limit for ${LIMITS[this.limit].what} with ${LIMITS[this.limit].env}=<size> (see docs/limits.md); otherwise it is broken or hostile.`
  }
}

function overBudgetMessage(limit: LimitName, bytes: number, subject: string, seen?: number): string {
  const size = seen === undefined ? 'more than' : seen > bytes ? `${formatBytes(seen)}, more than` : 'more than'
  return `${subject} is ${size} the ${formatBytes(bytes)} allowed for ${LIMITS[limit].what} (${LIMITS[limit].env}); refusing to read it`
}

/** Refuses a size known up front (a tar header, a stat) before a byte of it is read. */
export function checkDeclaredSize(name: LimitName, size: number, subject: string, env?: NodeJS.ProcessEnv): void {
  const max = limitBytes(name, env)
  if (size > max) throw new OverBudgetError(name, max, subject, size)
}

/**
 * Reads a stream of untrusted bytes into memory, at most the budget: stops (and cancels the source when it
 * can) as soon as one byte too many arrives.
 */
export async function readBounded(
  source: AsyncIterable<Uint8Array> | null | undefined,
  name: LimitName,
  subject: string,
): Promise<Buffer> {
  if (!source) return Buffer.alloc(0)
  const max = limitBytes(name)
  const chunks: Buffer[] = []
  let total = 0
  const iterator = source[Symbol.asyncIterator]()
  try {
    for (;;) {
      const {value, done} = await iterator.next()
      if (done) break
      total += value.length
      if (total > max) throw new OverBudgetError(name, max, subject)
      chunks.push(Buffer.from(value))
    }
  } catch (error) {
    await iterator.return?.().catch(() => {})
    throw error
  }
  return Buffer.concat(chunks)
}

/** Counts bytes flowing through (decompressed output) and throws once they pass the budget. */
export function byteCounter(name: LimitName, subject: string): (chunk: {length: number}) => void {
  const max = limitBytes(name)
  let total = 0
  return (chunk) => {
    total += chunk.length
    if (total > max) throw new OverBudgetError(name, max, subject)
  }
}

/**
 * A local file's bytes, at most the budget even if the file grows while it is read. Refuses from its size
 * before reading when it is already too large. Only regular files (a FIFO or /dev/zero would never end).
 */
export async function readFileBounded(file: string, name: LimitName, subject: string = file): Promise<Buffer> {
  const max = limitBytes(name)
  const handle = await open(file, 'r')
  try {
    const info = await handle.stat()
    if (!info.isFile())
      throw Object.assign(new Error(`${file} is not a regular file`), {code: info.isDirectory() ? 'EISDIR' : 'ENOTREG'})
    if (info.size > max) throw new OverBudgetError(name, max, subject, info.size)
    const buffer = Buffer.alloc(info.size + 1)
    let length = 0
    for (;;) {
      const {bytesRead} = await handle.read(buffer, length, buffer.length - length, length)
      if (bytesRead === 0) break
      length += bytesRead
      if (length > max) throw new OverBudgetError(name, max, subject)
      if (length === buffer.length) break
    }
    return buffer.subarray(0, length)
  } finally {
    await handle.close()
  }
}
