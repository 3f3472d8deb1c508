import coerce from 'semver/functions/coerce.js'
import gt from 'semver/functions/gt.js'
import lt from 'semver/functions/lt.js'
import satisfies from 'semver/functions/satisfies.js'
import valid from 'semver/functions/valid.js'
import maxSatisfying from 'semver/ranges/max-satisfying.js'
import validRange from 'semver/ranges/valid.js'

/**
 * The semver functions airpack uses, each from its own module of the package: `import semver from 'semver'` loads
 * all 47 of its files at start-up (30–60 ms of every command that reads profiles), these about two dozen.
 */
export const semver = {coerce, gt, lt, satisfies, valid, maxSatisfying, validRange}
