import {z} from 'zod'

import {SUPPLY_CHAIN_KINDS} from '../supply/cosign.js'

// The lock of PRODUCT.md §5 as readLock (io.ts) checks it, in a module of its own so that zod is loaded only by the
// runs that read a lock.

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 hex digits>')
const PlatformSchema = z.object({os: z.string(), architecture: z.string(), variant: z.string().optional()})
const DescriptorSchema = z.object({
  mediaType: z.string(),
  digest,
  size: z.number().int().nonnegative(),
  platform: PlatformSchema.extend({
    'os.version': z.string().optional(),
    'os.features': z.array(z.string()).optional(),
  }).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  artifactType: z.string().optional(),
})

export const LockSchema = z.object({
  lockVersion: z.literal(1),
  platform: PlatformSchema,
  images: z.record(
    z.string(),
    z.object({
      reference: z.string(),
      digest,
      mediaType: z.string(),
      size: z.number().int().nonnegative(),
      platformManifest: DescriptorSchema,
      blobs: z.array(DescriptorSchema),
      omittedPlatforms: z.array(PlatformSchema),
      supplyChain: z
        .array(
          z.object({
            kind: z.enum(SUPPLY_CHAIN_KINDS),
            subject: digest,
            tag: z.string().optional(),
            manifest: DescriptorSchema,
            blobs: z.array(DescriptorSchema),
            listed: z.boolean().optional(),
          }),
        )
        .optional(),
      // Locks before issue 9 recorded the serving endpoint (`source`) and each profile's path (`file`); both are
      // read and dropped (zod strips unknown keys), so an old lock still works and is rewritten canonically.
    }),
  ),
  charts: z.record(
    z.string(),
    z.object({
      repository: z.string(),
      name: z.string(),
      version: z.string(),
      digest,
      size: z.number().int().nonnegative(),
      manifest: DescriptorSchema,
      blobs: z.array(DescriptorSchema),
      reference: z.string(),
      url: z.string().optional(),
      ociRepository: z.string().optional(),
    }),
  ),
  files: z.record(z.string(), z.object({url: z.string(), sha256: digest, size: z.number().int().nonnegative()})),
  profiles: z.array(z.object({name: z.string(), version: z.string(), sha256: z.string()})),
})
