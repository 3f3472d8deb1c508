// Moved to support/bench-content.ts (shared by the tests, bench/ and scripts/); this re-export keeps existing test imports working.
export * from '../../support/bench-content.js'
