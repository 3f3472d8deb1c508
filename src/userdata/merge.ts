// The inventory merge rule (PRODUCT.md §9): maps merge key by key; scalars and lists of the more specific
// fragment replace the general one's; an explicit `null` removes the key (so a site can drop a default).

export type Fragment = Record<string, unknown>

export function isPlainMap(value: unknown): value is Fragment {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function mergeFragments(...layers: (Fragment | undefined)[]): Fragment {
  let result: Fragment = {}
  for (const layer of layers) if (layer) result = mergeInto(result, layer)
  return result
}

function mergeInto(base: Fragment, over: Fragment): Fragment {
  const out: Fragment = {...base}
  for (const [key, value] of Object.entries(over)) {
    if (value === null) delete out[key]
    else if (isPlainMap(value) && isPlainMap(out[key])) out[key] = mergeInto(out[key] as Fragment, value)
    else out[key] = structuredClone(value)
  }
  return out
}

// Keys that say which thing a map is come first in it (a list entry reads `- name: …`, an interface `type: …`).
const IDENTITY_KEYS = ['name', 'domain', 'type']

/**
 * Keys sorted at every level (top level in the installer reference's order, identity keys first), so the
 * output never depends on the input's key order.
 */
export function canonicalOrder(value: unknown, topLevel: readonly string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v) => canonicalOrder(v))
  if (!isPlainMap(value)) return value
  const first = topLevel.length ? topLevel : IDENTITY_KEYS
  const rank = (k: string) => (first.includes(k) ? first.indexOf(k) : first.length)
  const keys = Object.keys(value).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
  const out: Fragment = {}
  for (const key of keys) out[key] = canonicalOrder(value[key])
  return out
}
