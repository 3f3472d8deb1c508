// Values many tests share: the target platforms airpack builds for.

import type {Platform} from '../../src/oci/descriptor.js'

export const amd64: Platform = {os: 'linux', architecture: 'amd64'}
export const arm64: Platform = {os: 'linux', architecture: 'arm64'}
