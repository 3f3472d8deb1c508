// Moved to support/seed.ts (shared by the tests, bench/ and scripts/); this re-export keeps existing test imports working.
export * from '../../support/seed.js'
