import {access, constants, rm, stat} from 'node:fs/promises'
import path from 'node:path'

import {writeFileAtomic} from '../util/atomic.js'
import {UsageError} from '../errors.js'
import {sha256File, sha256Hex} from '../util/digest.js'
import {mapLimit} from '../util/pool.js'
import type {UserDataFinding} from './findings.js'
import {requireIsoTool, writeSeedIso} from './iso.js'
import {formatInventoryProblem, invalid, loadInventory, type Inventory} from './inventory.js'
import {mergeFragments, isPlainMap} from './merge.js'
import {renderCloudConfig} from './output.js'
import {loadTemplate, type DeploymentMode} from './templates.js'
import {validateUserData} from './validate.js'

/** File name of the NoCloud seed image beside each site's user-data. */
export const ISO_NAME = 'site-user-data.iso'

export interface RenderedSite {
  name: string
  /** Absolute path of DIR/<site>/user-data. */
  file: string
  /** Hex sha256 of the user-data file. */
  sha256: string
  /** Absolute path of DIR/<site>/site-user-data.iso, with `iso`. */
  iso?: string
  isoSha256?: string
}

export interface RenderOptions {
  sitesFile: string
  mode: DeploymentMode
  outputDir: string
  iso?: boolean
  /** Override of the shipped templates/ directory (tests). */
  templatesDir?: string
  /** PATH searched for the ISO tool (tests); defaults to $PATH. */
  searchPath?: string
}

export interface RenderResult {
  mode: DeploymentMode
  sites: RenderedSite[]
  /** Warnings of every site: the files were written, but these are probably not what was meant. */
  warnings: UserDataFinding[]
}

/** One site's rendered user-data, in memory (validated, not yet written). */
export interface SiteDocument {
  name: string
  text: string
}

/**
 * Render DIR/<site>/user-data for every site of the inventory, or nothing at all: every site is rendered and
 * validated first, and any error of any site fails the whole run with every problem listed
 * (InvalidInputError, exit 3). With `iso`, also DIR/<site>/site-user-data.iso.
 */
export async function renderSites(options: RenderOptions): Promise<RenderResult> {
  const inventory = await loadInventory(options.sitesFile)
  const {documents, warnings} = await buildSiteDocuments(inventory, options.mode, options.templatesDir)
  const tool = options.iso ? await requireIsoTool(options.searchPath) : undefined

  const outputDir = path.resolve(options.outputDir)
  await checkOutputDir(outputDir)
  const sites = await mapLimit(documents, 8, async ({name, text}) => {
    const file = path.join(outputDir, name, 'user-data')
    // An ISO of an earlier run would no longer match this user-data: remove it before writing the new file.
    await rm(path.join(outputDir, name, ISO_NAME), {force: true})
    await writeFileAtomic(file, text)
    return {name, file, sha256: sha256Hex(text)} as RenderedSite
  })
  if (tool) {
    // Two cores: one ISO tool process per core.
    await mapLimit(documents, 2, async ({name, text}, i) => {
      const iso = path.join(outputDir, name, ISO_NAME)
      await writeSeedIso({userData: text, output: iso, tool})
      sites[i].iso = iso
      sites[i].isoSha256 = (await sha256File(iso)).hex
    })
  }
  return {mode: options.mode, sites, warnings}
}

/** The output directory must be a writable directory, or not exist yet (its nearest existing parent is checked). */
async function checkOutputDir(dir: string): Promise<void> {
  let probe = dir
  for (;;) {
    const info = await stat(probe).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined
      throw error
    })
    if (info) {
      const problem = !info.isDirectory()
        ? `${probe} is a file, not a directory`
        : await access(probe, constants.W_OK).then(
            () => undefined,
            () => `${probe} is not writable`,
          )
      if (problem) {
        throw new UsageError('OUTPUT_UNUSABLE', `cannot write user-data under ${dir}: ${problem}`, {
          hint: 'Pass --output a directory you can write to (it is created if missing).',
          details: {output: dir},
        })
      }
      return
    }
    const parent = path.dirname(probe)
    if (parent === probe) return
    probe = parent
  }
}

type SiteFinding = Omit<UserDataFinding, 'site' | 'file'>
type Report = (site: Inventory['sites'][number], f: SiteFinding) => void

/** Every problem of every site, as findings and as one line each for the error message. */
class SiteProblems {
  readonly problems: string[]
  readonly findings: UserDataFinding[]
  readonly warnings: UserDataFinding[] = []

  constructor(private readonly inventory: Inventory) {
    this.problems = inventory.problems.map(formatInventoryProblem)
    this.findings = inventory.problems.map((p) => ({
      file: inventory.file,
      ...(p.site ? {site: p.site} : {}),
      path: p.path,
      severity: 'error' as const,
      message: p.message,
      ...(p.line ? {line: p.line} : {}),
    }))
  }

  readonly report: Report = (site, f) => {
    const line = this.inventory.lineOf(site.index, pathSegments(f.path))
    const finding: UserDataFinding = {file: this.inventory.file, site: site.name, ...f, ...(line ? {line} : {})}
    if (f.severity === 'error') {
      this.findings.push(finding)
      this.problems.push(
        `site ${site.name}: ${f.path || '(document)'}: ${f.message}${f.hint ? ` (${f.hint.replace(/\.$/, '')})` : ''}`,
      )
    } else this.warnings.push(finding)
  }
}

/** airpack renders for locally managed hosts only (any other value than local/central is a schema error already). */
function checkManagementMode(site: Inventory['sites'][number], stylus: Record<string, unknown>, report: Report): void {
  if (stylus.managementMode !== undefined && stylus.managementMode !== 'central') return
  report(site, {
    path: 'stylus.managementMode',
    severity: 'error',
    message: `is ${stylus.managementMode === undefined ? 'unset' : `'${String(stylus.managementMode)}'`}; airpack renders user-data for locally managed hosts`,
    hint: 'Remove the override so the template’s `managementMode: local` applies.',
  })
}

/** Host names and Edge host IDs must differ between sites (`$random` excepted). */
function checkUniqueHosts(
  site: Inventory['sites'][number],
  stylus: Record<string, unknown>,
  seen: Record<'hostName' | 'name', Map<string, string>>,
  report: Report,
): void {
  const siteBlock = isPlainMap(stylus.site) ? stylus.site : {}
  for (const key of ['hostName', 'name'] as const) {
    const value = siteBlock[key]
    if (typeof value !== 'string' || value === '$random') continue
    const other = seen[key].get(value.toLowerCase())
    if (other) {
      report(site, {
        path: `stylus.site.${key}`,
        severity: 'error',
        message: `'${value}' is also the ${key === 'hostName' ? 'host name' : 'Edge host ID'} of site ${other}; each host needs its own`,
        hint:
          key === 'hostName'
            ? 'Set stylus.site.hostName per site, not in defaults.'
            : 'Set stylus.site.name per site, or use "$random".',
      })
    } else seen[key].set(value.toLowerCase(), site.name)
  }
}

/** Merge and validate every site in memory; throws with every problem of every site, writes nothing. */
export async function buildSiteDocuments(
  inventory: Inventory,
  mode: DeploymentMode,
  templatesDir?: string,
): Promise<{documents: SiteDocument[]; warnings: UserDataFinding[]}> {
  const template = await loadTemplate(mode, templatesDir)
  const sink = new SiteProblems(inventory)
  const documents: SiteDocument[] = []
  const firstByName = new Map<string, string>()
  const seen = {hostName: new Map<string, string>(), name: new Map<string, string>()}
  for (const site of inventory.sites) {
    const folded = site.name.toLowerCase()
    if (firstByName.has(folded)) {
      const message = `is already used by another site (${firstByName.get(folded)}); site names must be unique, ignoring case, because they name the output folders`
      sink.report(site, {path: 'name', severity: 'error', message})
      continue
    }
    firstByName.set(folded, site.name)
    const userData = mergeFragments(template, inventory.defaults, site.fragment)
    const stylus = isPlainMap(userData.stylus) ? userData.stylus : {}
    checkManagementMode(site, stylus, sink.report)
    checkUniqueHosts(site, stylus, seen, sink.report)
    const text = renderCloudConfig(userData, `site ${site.name}, ${mode} mode, rendered by airpack user-data render`)
    for (const f of validateUserData(text).findings) {
      const {line: _renderedLine, file: _file, ...rest} = f
      sink.report(site, rest)
    }
    documents.push({name: site.name, text})
  }
  if (sink.problems.length) throw invalid(inventory.file, sink.problems, sink.findings)
  return {documents, warnings: sink.warnings}
}

/** `stylus.site.network.interfaces.enp1s0.ipAddress`, `stages.initramfs[0]`, `x["docker.io"]` → segments. */
export function pathSegments(formatted: string): (string | number)[] {
  const out: (string | number)[] = []
  const re = /([^.[\]]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g
  for (const m of formatted.matchAll(re)) {
    if (m[1] !== undefined) out.push(m[1])
    else if (m[2] !== undefined) out.push(Number(m[2]))
    else out.push(JSON.parse(m[3]) as string)
  }
  return out
}
