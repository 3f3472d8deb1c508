import {UsageError} from '../errors.js'
import {readFileBounded, OverBudgetError} from '../limits.js'
import {DIGEST_RE} from '../util/digest.js'
import type {BorrowedBlob} from './format.js'

// `verify DELTA --site-content FILE`: what the site's containerd holds, as `ctr -n k8s.io content ls -q` prints it
// (one digest a line) or as the full `ctr content ls` table (DIGEST SIZE AGE LABELS, digest first). The preflight
// before `ctr images import`: containerd 1.6 fails the import with "content digest …: not found" for any borrowed
// blob it lacks, after creating names; this lists them before anything is imported.

/** The digests a `ctr content ls` listing names, or the line that is not one (pure). */
export function parseSiteContent(text: string): {digests: Set<string>} | {badLine: number; line: string} {
  const digests = new Set<string>()
  const lines = text.split(/\r?\n/)
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim()
    if (line === '') continue
    const first = line.split(/\s+/)[0]!
    if (DIGEST_RE.test(first)) digests.add(first)
    else if (!(i === 0 && first === 'DIGEST')) return {badLine: i + 1, line: line.slice(0, 120)}
  }
  return {digests}
}

/** The borrowed blobs a site lacks (pure). */
export function missingAtSite(borrowed: readonly BorrowedBlob[], site: Set<string>): BorrowedBlob[] {
  return borrowed.filter((b) => !site.has(b.digest))
}

export async function readSiteContent(file: string): Promise<Set<string>> {
  let text: string
  try {
    // One line per blob of the site: bounded like bundle.json, which lists as many.
    text = (await readFileBounded(file, 'bundleJson', file)).toString('utf8')
  } catch (error) {
    if (error instanceof OverBudgetError)
      throw new UsageError('SITE_CONTENT_UNREADABLE', error.message, {hint: error.hint, details: {file}})
    throw new UsageError(
      'SITE_CONTENT_UNREADABLE',
      `--site-content ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      {hint: 'Write it on the site with `ctr -n k8s.io content ls -q > FILE`.', details: {file}},
    )
  }
  const parsed = parseSiteContent(text)
  if ('badLine' in parsed)
    throw new UsageError(
      'SITE_CONTENT_INVALID',
      `--site-content ${file}: line ${parsed.badLine} (${JSON.stringify(parsed.line)}) does not start with a sha256 digest`,
      {
        hint: 'Pass the output of `ctr -n k8s.io content ls -q` (or of `ctr -n k8s.io content ls`) unchanged.',
        details: {file, line: parsed.badLine},
      },
    )
  return parsed.digests
}
