#!/usr/bin/env node
import {execute, settings} from '@oclif/core'

// Always the compiled commands in dist/: with NODE_ENV=test or development oclif would otherwise try to register
// tsx and map dist/ back to TypeScript sources through tsconfig.json — which fails quietly on Node 20 but succeeds
// on Node 24 and then warns on stderr, so the CLI would behave differently by Node version.
settings.enableAutoTranspile = false

await execute({dir: import.meta.url})
