#!/usr/bin/env node
// oclif's entry points by subpath, not the package index: the index also loads the whole semver package (47
// files, for a Node version check) and every other export, which no command needs at start-up.
import {execute} from '@oclif/core/execute'
import {settings} from '@oclif/core/settings'

// Always the compiled commands in dist/: with NODE_ENV=test or development oclif would otherwise try to register
// tsx and map dist/ back to TypeScript sources through tsconfig.json — which fails quietly on Node 20 but succeeds
// on Node 24 and then warns on stderr, so the CLI would behave differently by Node version.
settings.enableAutoTranspile = false

await execute({dir: import.meta.url})
