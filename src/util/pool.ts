// A bound on parallel work: at most `limit` tasks run at once; results keep input order. The first failure
// does not stop tasks already running, but all failures are reported together (settleAll) or the first one
// is thrown after the others finish (mapLimit), so no request is left dangling.

export async function settleAll<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      try {
        results[i] = {status: 'fulfilled', value: await fn(items[i], i)}
      } catch (error) {
        results[i] = {status: 'rejected', reason: error}
      }
    }
  }
  await Promise.all(Array.from({length: Math.max(1, Math.min(limit, items.length))}, worker))
  return results
}

export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const settled = await settleAll(items, limit, fn)
  const failed = settled.find((r) => r.status === 'rejected')
  if (failed) throw (failed as PromiseRejectedResult).reason
  return settled.map((r) => (r as PromiseFulfilledResult<R>).value)
}
