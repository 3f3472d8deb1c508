import type {BundleManifest} from '../bundle/format.js'
import {IntegrityError, UsageError} from '../errors.js'
import {OverBudgetError, readFileBounded} from '../limits.js'
import {canonicalJson} from '../util/canonical-json.js'
import {sha256Digest} from '../util/digest.js'

// NAME.inventory.json (PRODUCT.md §3): what a later build needs to know about bundle NAME to build a delta
// against it, without keeping the multi-GB bundle. It is the bundle's identity plus its bundle.json verbatim
// (as a JSON value), which already lists every blob by digest and size and every artifact by reference and digest.
// Nothing in it comes from transport or credentials: bundle.json holds neither, so the inventory does not either.

export const INVENTORY_KIND = 'airpack-inventory'
/** Version of the inventory file's own shape (not of the bundle format, which bundleJson.formatVersion gives). */
export const INVENTORY_VERSION = 1
export const INVENTORY_SUFFIX = '.inventory.json'

export interface BundleInventory {
  kind: typeof INVENTORY_KIND
  inventoryVersion: typeof INVENTORY_VERSION
  /** The bundle's name (NAME of NAME.tar.zst). */
  name: string
  /** `sha256:<hex>` of the bundle's uncompressed tar, as `build`, `inspect` and `verify` print it. */
  identity: string
  /** The bundle's file name, for messages ("build the delta against site-v1.tar.zst"). */
  bundleFile: string
  /** `sha256:<hex>` of airpack/bundle.json's bytes in the tar: canonical JSON of `bundleJson`. */
  bundleJsonSha256: string
  bundleJson: BundleManifest
}

export function inventoryFileName(name: string): string {
  return `${name}${INVENTORY_SUFFIX}`
}

/** Whether a path names an inventory rather than a bundle (a bundle is .tar.zst, a part, or .parts.json). */
export function isInventoryPath(file: string): boolean {
  return file.endsWith('.json') && !file.endsWith('.parts.json')
}

export function inventoryOf(bundle: {name: string; identity: string; manifest: BundleManifest}): BundleInventory {
  return {
    kind: INVENTORY_KIND,
    inventoryVersion: INVENTORY_VERSION,
    name: bundle.name,
    identity: bundle.identity,
    bundleFile: `${bundle.name}.tar.zst`,
    bundleJsonSha256: sha256Digest(canonicalJson(bundle.manifest)),
    bundleJson: bundle.manifest,
  }
}

/** The bytes written to NAME.inventory.json: canonical JSON, so equal bundles give byte-identical inventories. */
export function serializeInventory(inventory: BundleInventory): string {
  return canonicalJson(inventory)
}

/**
 * Reads and checks an inventory file: exit 2 when it cannot be read or was written by a newer airpack, exit 5
 * when it is not an inventory or was altered (its bundleJson no longer hashes to bundleJsonSha256).
 */
export async function readInventory(file: string): Promise<BundleInventory> {
  const text = await readInventoryText(file)
  const invalid = (
    why: string,
    hint = `Use the NAME${INVENTORY_SUFFIX} exactly as \`airpack bundle build\` wrote it, or the bundle itself.`,
  ) => new IntegrityError('INVENTORY_INVALID', `${file}: ${why}`, {hint, details: {file}})
  let parsed: Partial<BundleInventory>
  try {
    parsed = JSON.parse(text)
  } catch {
    throw invalid('not valid JSON')
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.kind !== INVENTORY_KIND) {
    throw invalid(`not an airpack inventory (its "kind" is not "${INVENTORY_KIND}")`)
  }
  if (
    typeof parsed.inventoryVersion !== 'number' ||
    parsed.inventoryVersion > INVENTORY_VERSION ||
    parsed.inventoryVersion < 1
  ) {
    throw new UsageError(
      'INVENTORY_VERSION',
      `${file}: inventory version ${JSON.stringify(parsed.inventoryVersion)}; this airpack reads version ${INVENTORY_VERSION}`,
      {
        hint: 'Use the airpack release that built the bundle, or a newer one.',
        details: {file},
      },
    )
  }
  for (const field of ['name', 'identity', 'bundleFile', 'bundleJsonSha256'] as const) {
    if (typeof parsed[field] !== 'string') throw invalid(`the field "${field}" is missing or not a string`)
  }
  if (!/^sha256:[a-f0-9]{64}$/.test(parsed.identity!)) throw invalid(`"identity" is not a sha256 digest`)
  if (parsed.bundleJson === null || typeof parsed.bundleJson !== 'object')
    throw invalid('the field "bundleJson" is missing')
  const actual = sha256Digest(canonicalJson(parsed.bundleJson))
  if (actual !== parsed.bundleJsonSha256) {
    throw invalid(
      `its bundleJson hashes to ${actual}, but bundleJsonSha256 says ${parsed.bundleJsonSha256} (the file was edited)`,
    )
  }
  if (parsed.bundleJson.name !== parsed.name)
    throw invalid(
      `"name" is ${JSON.stringify(parsed.name)} but its bundleJson names ${JSON.stringify(parsed.bundleJson.name)}`,
    )
  return parsed as BundleInventory
}

/** The inventory's text, within bundle.json's size budget: exit 2 when it cannot be read, 5 when over budget. */
async function readInventoryText(file: string): Promise<string> {
  try {
    // An inventory is bundle.json plus a few hundred bytes: the same budget.
    return (await readFileBounded(file, 'bundleJson', file)).toString('utf8')
  } catch (error) {
    if (error instanceof OverBudgetError)
      throw new IntegrityError('INVENTORY_INVALID', error.message, {hint: error.hint, details: {file}})
    const code = (error as NodeJS.ErrnoException).code
    throw new UsageError(
      code === 'ENOENT' ? 'INVENTORY_NOT_FOUND' : 'INVENTORY_UNREADABLE',
      `${file}: cannot read the inventory (${code ?? (error as Error).message})`,
      {
        hint: `Pass a bundle (NAME.tar.zst, NAME.tar.zst.000, NAME.parts.json) or the NAME${INVENTORY_SUFFIX} its build wrote.`,
        details: {file},
      },
    )
  }
}
