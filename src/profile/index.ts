// The profile model: read exported Palette profiles and cluster definitions, validate them against the supported
// matrix, and list the content (images, charts) a bundle must carry. Imported by `profile validate`, the registry
// resolver and the bundle writer; no oclif here.

export type {
  Arch,
  ChartRequest,
  CollectOptions,
  DeploymentMode,
  Finding,
  ImageRequest,
  LoadedProfile,
  PackModel,
  ProfileVariable,
  ValidateOptions,
  ValidationReport,
} from './types.js'
export {profileLocation} from './types.js'
export {loadProfiles} from './load.js'
export {validateProfiles} from './validate.js'
export {collectContent, scanContent, agentArch} from './content.js'
export {RULES, RULE_CODES, type Rule} from './rules.js'
export {LIMITS} from './text.js'
export {parseValues, packOption} from './values.js'
export {resolveMacros, macroContext} from './macros.js'
export {unsafeEntryPath} from './definition.js'
export {renderFinding, renderReport} from './render.js'
