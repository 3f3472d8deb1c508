import {z} from 'zod'

// The shape of a K3s registries.yaml (registries-config.ts reads it), in a module of its own so that zod is loaded
// only by the runs that read a --registries file.

const AuthSchema = z
  .object({
    username: z.string().optional(),
    password: z.string().optional(),
    auth: z.string().optional(),
    identity_token: z.string().optional(),
  })
  .strict()

const TlsSchema = z
  .object({
    ca_file: z.string().optional(),
    cert_file: z.string().optional(),
    key_file: z.string().optional(),
    insecure_skip_verify: z.boolean().optional(),
  })
  .strict()

export const RegistriesSchema = z
  .object({
    mirrors: z
      .record(
        z.string(),
        z
          .object({
            endpoint: z.array(z.string()).optional(),
            rewrite: z.record(z.string(), z.string()).optional(),
          })
          .strict(),
      )
      .optional(),
    configs: z
      .record(z.string(), z.object({auth: AuthSchema.optional(), tls: TlsSchema.optional()}).strict())
      .optional(),
  })
  .strict()

export type RegistriesFile = z.infer<typeof RegistriesSchema>
