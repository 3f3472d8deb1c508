// Palette's template macros inside values: `{{.spectro.pack.<pack>.options.<key>}}`,
// `{{.spectro.system.kubernetes.version}}` and `{{.spectro.var.<name>}}`, with or without spaces inside the braces.
// They must be resolved before an image list is final (the OS provider image is usually composed of them).

import {LIMITS} from './text.js'
import type {LoadedProfile, PackModel} from './types.js'
import {packOption, parseValues} from './values.js'

export const MACRO_RE = /\{\{\s*([^{}]*?)\s*\}\}/g
const PACK_OPTION = /^\.spectro\.pack\.([A-Za-z0-9_][A-Za-z0-9_.-]*?)\.options\.(\S+)$/
const K8S_VERSION = /^\.spectro\.system\.kubernetes\.version$/
const VAR = /^\.spectro\.var\.([A-Za-z0-9_.-]+)$/

export function hasMacro(text: string): boolean {
  MACRO_RE.lastIndex = 0
  return MACRO_RE.test(text)
}

export interface MacroContext {
  /** Every pack of every profile, by name (a macro names a pack, not a profile). */
  packs: Map<string, {pack: PackModel; profile: LoadedProfile}>
  /** The version of the Kubernetes layer (the first one, when a faulty set has several; validation reports that). */
  kubernetesVersion?: string
  profiles: LoadedProfile[]
  /** --var values (they override definition values and defaultValue). */
  vars: Record<string, string>
}

export function macroContext(profiles: LoadedProfile[], vars: Record<string, string> = {}): MacroContext {
  const packs = new Map<string, {pack: PackModel; profile: LoadedProfile}>()
  const k8s: string[] = []
  for (const profile of profiles)
    for (const pack of profile.packs) {
      if (!packs.has(pack.name)) packs.set(pack.name, {pack, profile})
      if (pack.layer === 'k8s') k8s.push(pack.version)
    }
  return {packs, profiles, vars, ...(k8s.length > 0 ? {kubernetesVersion: k8s[0]} : {})}
}

/** A variable's value: --var, then the cluster definition's stored value, then defaultValue (own profile first). */
export function variableValue(
  ctx: MacroContext,
  profile: LoadedProfile,
  name: string,
): {value?: string; declared: boolean} {
  if (name in ctx.vars) return {value: ctx.vars[name], declared: true}
  if (profile.definitionVars && name in profile.definitionVars)
    return {value: profile.definitionVars[name], declared: true}
  const own = profile.variables.find((v) => v.name === name)
  const other = own ?? ctx.profiles.flatMap((p) => p.variables).find((v) => v.name === name)
  return {value: other?.defaultValue, declared: other !== undefined}
}

export interface Resolution {
  value?: string
  /** One line per macro that could not be resolved, naming the macro and why. */
  problems: string[]
}

export function resolveMacros(text: string, ctx: MacroContext, profile: LoadedProfile, depth = 0): Resolution {
  const problems: string[] = []
  if (depth > LIMITS.macroDepth)
    return {problems: [`macros nest deeper than ${LIMITS.macroDepth} levels (a cycle?) in ${JSON.stringify(text)}`]}
  const value = text.replace(MACRO_RE, (whole, expr: string) => {
    const resolved = resolveOne(expr, whole, ctx, profile, depth)
    problems.push(...resolved.problems)
    return resolved.value ?? whole
  })
  return problems.length > 0 ? {problems} : {value, problems}
}

function resolveOne(expr: string, whole: string, ctx: MacroContext, profile: LoadedProfile, depth: number): Resolution {
  let m = PACK_OPTION.exec(expr)
  if (m) {
    const [, packName, key] = m as unknown as [string, string, string]
    const target = ctx.packs.get(packName)
    if (!target) return {problems: [`${whole}: no pack named "${packName}" in the profiles given`]}
    const values = parseValues(target.pack)
    if (values.error) return {problems: [`${whole}: the values of pack "${packName}" do not parse`]}
    const option = packOption(values, key)
    if (option.value === undefined)
      return {problems: [`${whole}: pack "${packName}" has no options."${key}"${option.line ? '' : ' in its values'}`]}
    return resolveMacros(option.value, ctx, target.profile, depth + 1)
  }
  if (K8S_VERSION.test(expr)) {
    if (ctx.kubernetesVersion === undefined)
      return {problems: [`${whole}: no profile has a Kubernetes layer whose version it could take`]}
    return {value: ctx.kubernetesVersion, problems: []}
  }
  m = VAR.exec(expr)
  if (m) {
    const name = m[1]!
    const v = variableValue(ctx, profile, name)
    if (v.value === undefined) {
      return {
        problems: [
          v.declared
            ? `${whole}: variable "${name}" has no value (no defaultValue); pass --var ${name}=VALUE`
            : `${whole}: variable "${name}" is not declared in any profile; declare it or pass --var ${name}=VALUE`,
        ],
      }
    }
    return resolveMacros(v.value, ctx, profile, depth + 1)
  }
  return {
    problems: [
      `${whole}: airpack cannot resolve this macro (it resolves .spectro.pack.<pack>.options.<key>, .spectro.system.kubernetes.version and .spectro.var.<name>)`,
    ],
  }
}
