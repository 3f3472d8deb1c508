// Starts a loopback registry seeded with the bench content and keeps it up until interrupted, printing the host and
// the profile: for profiling one build at a time by hand (`bench/run.ts` starts and stops its own registry).
//
//   node --import tsx bench/hold-content.ts --size 1G --dir /tmp/hold
import {writeFile, mkdir} from 'node:fs/promises'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {benchProfile, parseSize, seedBenchContent} from '../support/bench-content.js'
import {startRegistry} from '../support/registry.js'

const {values: args} = parseArgs({
  options: {
    size: {type: 'string', default: '1G'},
    dir: {type: 'string', default: '/tmp/airpack-bench-hold'},
    platforms: {type: 'string', default: 'amd64,arm64'},
  },
})

await mkdir(args.dir!, {recursive: true})
const registry = await startRegistry()
const content = await seedBenchContent(registry, {
  bytesPerPlatform: parseSize(args.size!),
  platforms: args.platforms!.split(','),
  images: 4,
  layersPerImage: 2,
  baseFraction: 0.3,
  log: (m: string) => console.error(m),
})
const profile = path.join(args.dir!, 'bench-profile.json')
await writeFile(profile, JSON.stringify(benchProfile(content.images.map((i) => i.reference)), null, 2))
console.log(JSON.stringify({host: registry.host, profile}))
const stop = async () => {
  await registry.stop()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
setInterval(() => {}, 1 << 30)
