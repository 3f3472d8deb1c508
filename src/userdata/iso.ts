import {constants} from 'node:fs'
import {access, mkdtemp, rm, utimes, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {UsageError} from '../errors.js'
import {atomicOutput} from '../util/atomic.js'

// Site media (palette-edge-formats.md §7.1): a NoCloud seed ISO, volume id `cidata`, holding `user-data` and
// an empty `meta-data`, made as the Palette docs do it (mkisofs -volid cidata -joliet -rock). xorriso is
// preferred because with SOURCE_DATE_EPOCH it writes the same bytes every time; genisoimage stamps the
// current time into the volume descriptor, so its images differ run to run.

export interface IsoTool {
  name: 'xorriso' | 'genisoimage' | 'mkisofs'
  path: string
  reproducible: boolean
}

const CANDIDATES: IsoTool['name'][] = ['xorriso', 'genisoimage', 'mkisofs']

/** Fixed file and volume time when SOURCE_DATE_EPOCH is unset: 1980-01-01T00:00:00Z. */
export const DEFAULT_EPOCH = 315_532_800

export async function findIsoTool(searchPath = process.env.PATH ?? ''): Promise<IsoTool | undefined> {
  for (const name of CANDIDATES) {
    for (const dir of searchPath.split(path.delimiter).filter(Boolean)) {
      const candidate = path.join(dir, name)
      try {
        await access(candidate, constants.X_OK)
        return {name, path: candidate, reproducible: name === 'xorriso'}
      } catch {
        // not in this directory
      }
    }
  }
  return undefined
}

export async function requireIsoTool(searchPath?: string): Promise<IsoTool> {
  const tool = await findIsoTool(searchPath)
  if (!tool) {
    throw new UsageError(
      'ISO_TOOL_MISSING',
      '--iso needs xorriso or genisoimage to make the site ISO, and neither is on PATH',
      {
        hint: 'Install the Debian/Ubuntu package xorriso (apt-get install xorriso) or genisoimage, or drop --iso.',
      },
    )
  }
  return tool
}

export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number {
  const value = env.SOURCE_DATE_EPOCH
  return value && /^\d+$/.test(value) ? Number(value) : DEFAULT_EPOCH
}

/** Write `output` as a NoCloud seed ISO holding `userData`; the file appears only when complete. */
export async function writeSeedIso(options: {
  userData: string
  output: string
  tool: IsoTool
  epoch?: number
}): Promise<void> {
  const epoch = options.epoch ?? sourceDateEpoch()
  const staging = await mkdtemp(path.join(os.tmpdir(), 'airpack-cidata-'))
  const out = await atomicOutput(options.output)
  try {
    await writeFile(path.join(staging, 'user-data'), options.userData)
    await writeFile(path.join(staging, 'meta-data'), '')
    for (const f of ['user-data', 'meta-data']) await utimes(path.join(staging, f), epoch, epoch)
    const common = ['-output', out.tmpPath, '-volid', 'cidata', '-joliet', '-rock', 'user-data', 'meta-data']
    const args = options.tool.name === 'xorriso' ? ['-as', 'mkisofs', ...common] : ['-quiet', ...common]
    // Loaded here, not at start-up (about 0.1 s): only --iso runs a program.
    const {execa} = await import('execa')
    const result = await execa(options.tool.path, args, {
      cwd: staging,
      env: {SOURCE_DATE_EPOCH: String(epoch)},
      reject: false,
      stdin: 'ignore',
    })
    if (result.exitCode !== 0) {
      throw new Error(
        `${options.tool.name} failed to write ${options.output} (exit ${result.exitCode}): ${String(result.stderr).trim().split('\n').slice(-3).join(' / ')}`,
      )
    }
    await out.commit()
  } catch (error) {
    await out.abort()
    throw error
  } finally {
    await rm(staging, {recursive: true, force: true})
  }
}
