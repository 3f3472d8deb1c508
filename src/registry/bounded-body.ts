import {OverBudgetError, readBounded, type LimitName} from '../limits.js'
import {RegistryError} from './errors.js'

// The one way a server's answer is held in memory (a manifest, a token response, a repository index): counted
// while it arrives (after any gzip is undone), reading stops one byte past the budget of src/limits.ts.

/** A response body, at most its budget; over it, a protocol failure (exit 4) naming the artifact and the limit. */
export async function readRemote(
  body: AsyncIterable<Uint8Array> | null | undefined,
  limit: LimitName,
  what: string,
  host: string,
): Promise<Buffer> {
  try {
    return await readBounded(body, limit, what)
  } catch (error) {
    if (error instanceof OverBudgetError) throw new RegistryError('protocol', `${error.message}. ${error.hint}`, host)
    throw error
  }
}
