// One cold fetch of a lock into a cache directory, in its own process, so that its peak memory is measured alone:
//   node --import tsx bench/fetch-worker.ts LOCK CACHE_DIR CONCURRENCY
// Prints {"seconds":…, "downloadedBytes":…, "maxRssKiB":…} on stdout.
import {BlobStore} from '../src/cache/store.js'
import {fetchLock, readLock} from '../src/resolve/index.js'

const [lockFile, cacheDir, concurrency] = process.argv.slice(2)
const t = process.hrtime.bigint()
const report = await fetchLock(await readLock(lockFile), new BlobStore(cacheDir), {
  concurrency: Number(concurrency ?? 8),
})
const seconds = Number(process.hrtime.bigint() - t) / 1e9
process.stdout.write(
  JSON.stringify({seconds, downloadedBytes: report.downloadedBytes, maxRssKiB: process.resourceUsage().maxRSS}) + '\n',
)
