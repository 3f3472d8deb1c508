// The one builder of exported add-on profiles (Palette's Export Profile shape) for tests, the benchmark and the
// demo: one pack whose values list content images (and optionally a chart). Optional fields are only written
// when given, so each caller's document stays what it was.

export interface AddonProfileOptions {
  name: string
  description?: string
  labels?: Record<string, string>
  /** The pack's name (default: the profile's name). */
  pack?: string
  /** The pack's namespace, as written into the values YAML (quote it yourself if it needs quotes). */
  namespace?: string
  images: string[]
  chart?: {repo: string; name: string; version: string}
  /** The pack's registry block, as Palette exports it. */
  registry?: Record<string, unknown>
  /** Profile variables; written only when given. */
  variables?: unknown[]
}

/** The pack values YAML: `pack.namespace`, `pack.content.images[].image`, `pack.content.charts[]`. */
export function contentValues(o: Pick<AddonProfileOptions, 'namespace' | 'images' | 'chart'>): string {
  return [
    'pack:',
    ...(o.namespace === undefined ? [] : [`  namespace: ${o.namespace}`]),
    '  content:',
    '    images:',
    ...o.images.map((i) => `      - image: ${i}`),
    ...(o.chart
      ? [
          '    charts:',
          `      - repo: ${o.chart.repo}`,
          `        name: ${o.chart.name}`,
          `        version: ${o.chart.version}`,
        ]
      : []),
    '',
  ].join('\n')
}

export function addonProfile(o: AddonProfileOptions): Record<string, unknown> {
  const pack = {
    name: o.pack ?? o.name,
    type: 'spectro',
    layer: 'addon',
    version: '1.0.0',
    tag: '1.0.0',
    values: contentValues(o),
    ...(o.registry ? {registry: o.registry} : {}),
  }
  return {
    metadata: {
      name: o.name,
      ...(o.description === undefined ? {} : {description: o.description}),
      ...(o.labels ? {labels: o.labels} : {}),
    },
    spec: {
      version: '1.0.0',
      template: {type: 'add-on', cloudType: 'all', packs: [pack]},
      ...(o.variables ? {variables: o.variables} : {}),
    },
  }
}
