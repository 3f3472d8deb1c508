// Moved to support/registry.ts (shared by the tests, bench/ and scripts/); this re-export keeps existing test imports working.
export * from '../../support/registry.js'
