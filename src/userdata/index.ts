// Site user-data: the inventory, templates, schema, rendering, validation and site ISO (issue 5).
// `airpack user-data render|validate` and `airpack bundle build --sites` use this module.

export {
  renderSites,
  buildSiteDocuments,
  type RenderedSite,
  type RenderOptions,
  type RenderResult,
  type SiteDocument,
} from './render.js'
export {
  validateUserData,
  checkUserDataObject,
  CLOUD_CONFIG_HEADER,
  type ObjectFinding,
  type ValidationResult,
} from './validate.js'
export type {UserDataFinding, Severity} from './findings.js'
export {loadInventory, parseInventory, type Inventory, type InventorySite} from './inventory.js'
export {mergeFragments} from './merge.js'
export {renderCloudConfig} from './output.js'
export {findIsoTool, requireIsoTool, writeSeedIso, type IsoTool} from './iso.js'
export {loadTemplate, templatePath, DEFAULT_TEMPLATES_DIR, type DeploymentMode} from './templates.js'
export {NOT_EDITABLE_IN_LOCAL_UI, userDataSchema} from './schema.js'
