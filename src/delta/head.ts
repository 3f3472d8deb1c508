import {DELTA_ENTRY, parseBundleJson, readHeadEntries} from '../bundle/bundle-json.js'
import {BUNDLE_JSON, type BundleManifest} from '../bundle/format.js'
import type {BundleSource} from '../bundle/source.js'
import {IntegrityError} from '../errors.js'
import {sha256Digest} from '../util/digest.js'
import {DELTA_SIG, deltaProblems, parseDeltaJson, type DeltaManifest} from './format.js'

// The head of a delta: airpack/delta.json, its signature, and the target's airpack/bundle.json, read from the
// start of the stream without touching the blobs. What inspect shows, and what verify and patch check first.

export interface DeltaHead {
  input: string
  source: BundleSource
  delta: DeltaManifest
  deltaJson: Buffer
  deltaSig?: Buffer
  manifest: BundleManifest
  bundleJson: Buffer
  /** The delta's identity: the sha256 of delta.json, which pins bundle.json and so every entry. */
  identity: string
  /** delta.json's borrowed blobs as bundle.json lists them: path → size, sha256. */
  absent: Map<string, {size: number; sha256: string}>
}

/**
 * The head of `input` when it is a delta; undefined when it is a whole bundle (its first entry is bundle.json).
 * Exit 5 when the head is malformed or does not fit together (delta.json against bundle.json).
 */
export async function readDeltaHead(input: string): Promise<DeltaHead | undefined> {
  let isDelta = false
  // A bundle's head is bundle.json alone (the read stops after it); a delta's: delta.json, [its signature], bundle.json.
  const head = await readHeadEntries(input, (p, index) => {
    if (index === 0) isDelta = p === DELTA_ENTRY
    if (index === 0 && (p === DELTA_ENTRY || p === BUNDLE_JSON)) return undefined
    if (index === 1 && (p === DELTA_SIG || p === BUNDLE_JSON)) return undefined
    if (index === 2 && p === BUNDLE_JSON) return undefined
    return `entry ${JSON.stringify(p)} at position ${index + 1}: a bundle starts with ${BUNDLE_JSON}, a delta with ${DELTA_ENTRY}, its signature and ${BUNDLE_JSON}`
  })
  if (!isDelta) return undefined
  const invalid = (problems: string[]) =>
    new IntegrityError('DELTA_INVALID', `${input}: ${problems[0]}`, {
      hint: 'This delta was altered or is not from airpack: copy it again from the original, or rebuild it.',
      details: {delta: input, problems},
    })
  const deltaJson = head.entries.get(DELTA_ENTRY)!
  const bundleJson = head.entries.get(BUNDLE_JSON)!
  const delta = parseDeltaJson(deltaJson)
  if (typeof delta === 'string') throw invalid([delta])
  const manifest = parseBundleJson(bundleJson)
  if (typeof manifest === 'string') throw invalid([manifest])
  const deltaSig = head.entries.get(DELTA_SIG)
  const {problems, absent} = deltaProblems(delta, manifest, bundleJson)
  if (delta.signature && !deltaSig)
    problems.push(`${DELTA_ENTRY} says the delta is signed, but ${DELTA_SIG} is missing`)
  if (!delta.signature && deltaSig) problems.push(`${DELTA_SIG} is present but ${DELTA_ENTRY} declares no signature`)
  if (problems.length > 0) throw invalid(problems)
  return {
    input,
    source: head.source,
    delta,
    deltaJson,
    ...(deltaSig ? {deltaSig} : {}),
    manifest,
    bundleJson,
    identity: sha256Digest(deltaJson),
    absent,
  }
}
