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

/** Merge and validate every site in memory; throws with every problem of every site, writes nothing. */
export async function buildSiteDocuments(
  inventory: Inventory,
  mode: DeploymentMode,
  templatesDir?: string,
): Promise<{documents: SiteDocument[]; warnings: UserDataFinding[]}> {
  const template = await loadTemplate(mode, templatesDir)
  const problems: string[] = inventory.problems.map(formatInventoryProblem)
  const findings: UserDataFinding[] = inventory.problems.map((p) => ({
    file: inventory.file,
    ...(p.site ? {site: p.site} : {}),
    path: p.path,
    severity: 'error' as const,
    message: p.message,
    ...(p.line ? {line: p.line} : {}),
  }))
  const warnings: UserDataFinding[] = []
  const documents: SiteDocument[] = []
  const report = (site: string, siteIndex: number, f: Omit<UserDataFinding, 'site' | 'file'>) => {
    const segments = pathSegments(f.path)
    const line = inventory.lineOf(siteIndex, segments)
    const finding: UserDataFinding = {file: inventory.file, site, ...f, ...(line ? {line} : {})}
    if (f.severity === 'error') {
      findings.push(finding)
      problems.push(`site ${site}: ${f.path || '(document)'}: ${f.message}${f.hint ? ` (${f.hint.replace(/\.$/, '')})` : ''}`)
    } else warnings.push(finding)
  }

  const firstByName = new Map<string, string>()
  const hostNames = new Map<string, string>()
  const hostIds = new Map<string, string>()
  for (const site of inventory.sites) {
    const folded = site.name.toLowerCase()
    if (firstByName.has(folded)) {
      report(site.name, site.index, {
        path: 'name',
        severity: 'error',
        message: `is already used by another site (${firstByName.get(folded)}); site names must be unique, ignoring case, because they name the output folders`,
      })
      continue
    }
    firstByName.set(folded, site.name)

    const userData = mergeFragments(template, inventory.defaults, site.fragment)
    const stylus = isPlainMap(userData.stylus) ? userData.stylus : {}
    // Any other value than local/central is already an enum error of the schema.
    if (stylus.managementMode === undefined || stylus.managementMode === 'central') {
      report(site.name, site.index, {
        path: 'stylus.managementMode',
        severity: 'error',
        message: `is ${stylus.managementMode === undefined ? 'unset' : `'${String(stylus.managementMode)}'`}; airpack renders user-data for locally managed hosts`,
        hint: 'Remove the override so the template’s `managementMode: local` applies.',
      })
    }
    const siteBlock = isPlainMap(stylus.site) ? stylus.site : {}
    for (const [key, seen] of [
      ['hostName', hostNames],
      ['name', hostIds],
    ] as const) {
      const value = siteBlock[key]
      if (typeof value !== 'string' || value === '$random') continue
      const other = seen.get(value.toLowerCase())
      if (other) {
        report(site.name, site.index, {
          path: `stylus.site.${key}`,
          severity: 'error',
          message: `'${value}' is also the ${key === 'hostName' ? 'host name' : 'Edge host ID'} of site ${other}; each host needs its own`,
          hint: key === 'hostName' ? 'Set stylus.site.hostName per site, not in defaults.' : 'Set stylus.site.name per site, or use "$random".',
        })
      } else seen.set(value.toLowerCase(), site.name)
    }

    const text = renderCloudConfig(userData, `site ${site.name}, ${mode} mode, rendered by airpack user-data render`)
    for (const f of validateUserData(text).findings) {
      const {line: _renderedLine, file: _file, ...rest} = f
      report(site.name, site.index, rest)
    }
    documents.push({name: site.name, text})
  }

  if (problems.length) throw invalid(inventory.file, problems, findings)
  return {documents, warnings}
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
