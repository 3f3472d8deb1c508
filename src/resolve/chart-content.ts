import type {BlobStore} from '../cache/store.js'
import {chartKey, type Lock} from '../lock/types.js'
import {carriedReferences} from '../profile/content.js'
import {imagesInValues, isCarried} from '../profile/completeness.js'
import {TextProblem, parseYamlDocuments} from '../profile/text.js'
import type {ChartRequest, Finding} from '../profile/types.js'
import {describeError} from '../registry/errors.js'
import {readChartEntries} from './charts.js'

// AP-CONTENT-UNLISTED for charts (issue 10, case 4): the images a chart's values.yaml (and its bundled subcharts')
// names but no content tag lists. The chart archives are read from the cache, where resolving a classic or direct
// chart and fetching any chart already put them, so this downloads nothing; `profile validate` has no network and
// checks only the pack values.

const VALUES_FILE = /^[^/]+\/(?:charts\/[^/]+\/)*values\.yaml$/

export interface ChartContentCheck {
  findings: Finding[]
  /** Charts whose archive is not in the cache (OCI charts before a build fetched them): not checked. */
  unchecked: string[]
}

export async function checkChartContent(
  lock: Lock,
  charts: ChartRequest[],
  images: {reference: string}[],
  store: BlobStore,
): Promise<ChartContentCheck> {
  const carried = carriedReferences(images)
  const result: ChartContentCheck = {findings: [], unchecked: []}
  for (const request of charts) {
    const locked = lock.charts[chartKey(request.repository, request.name, request.version)]
    if (!locked) continue
    const what = `chart ${request.name} ${request.version}`
    if (!(await store.has(locked.digest))) {
      result.unchecked.push(what)
      continue
    }
    let files: Map<string, string>
    try {
      files = await readChartEntries(store.blobPath(locked.digest), (p) => VALUES_FILE.test(p))
    } catch (error) {
      // The chart resolved and was checked against its digest; a values.yaml we cannot read is not worth failing for.
      result.unchecked.push(`${what} (${describeError(error)})`)
      continue
    }
    const seen = new Set<string>()
    for (const [file, text] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      let parsed
      try {
        parsed = parseYamlDocuments(text)
      } catch (error) {
        if (!(error instanceof TextProblem)) throw error
        result.unchecked.push(`${what} ${file} (${error.message})`)
        continue
      }
      for (const named of imagesInValues(parsed.value)) {
        if (isCarried(named.ref, carried) || seen.has(named.text)) continue
        seen.add(named.text)
        const line = parsed.positions.line(named.path)
        const where = `${file}${line === undefined ? '' : ` line ${line}`}, ${named.path.join('.')}`
        result.findings.push({
          code: 'AP-CONTENT-UNLISTED',
          severity: 'warning',
          message: `${what} names image ${named.text} (${where}), but no content tag lists it; the site would lack it unless the pack values override it`,
          hint: `Add \`- image: ${named.text}${named.ref.tag || named.ref.digest ? '' : ':<tag>'}\` to pack.content.images of pack ${request.pack} (or override the image in the pack values).`,
          file: request.file,
          profile: request.profile,
          pack: request.pack,
          ...(request.line === undefined ? {} : {line: request.line}),
          ...(request.fileLine === undefined ? {} : {fileLine: request.fileLine}),
          path: `${file}:${named.path.join('.')}`,
        })
      }
    }
  }
  return result
}
