// Content tags → the list of images and charts a bundle must carry. Reads `pack.content.images[].image` (and the
// known `iamge` typo), `pack.content.charts[]` (`repo` or `repository`), the OS pack's provider image
// (`options.system.uri`) and the agent image (`stylusPackage`, `container://…/stylus-linux-<arch>`).

import {InvalidInputError} from '../errors.js'
import {AGENT_IMAGE_PATTERN} from '../matrix/data.js'
import {
  InvalidReferenceError,
  normalizeReference,
  parseReference,
  stripContainerScheme,
  type ImageReference,
} from '../registry/reference.js'
import {archInName, imagesInValues, isCarried, misplacedContent} from './completeness.js'
import {hasMacro, macroContext, resolveMacros, type MacroContext} from './macros.js'
import type {Arch, ChartRequest, CollectOptions, Finding, ImageRequest, LoadedProfile, PackModel} from './types.js'
import {profileLocation} from './types.js'
import {packFinding, packOption, parseValues, scalarSource, valuesFileLine, type ParsedValues} from './values.js'

export interface ContentScan {
  images: ImageRequest[]
  charts: ChartRequest[]
  findings: Finding[]
  /** Per pack (by profile index and pack name): how many content tags it declares. */
  tagCounts: Map<PackModel, number>
  /** Agent references already reported for a wrong architecture (stylusPackage and its content tag name one image). */
  archReported: Set<string>
  /** Causes already reported per pack (one bad reference or macro reached through options.system.uri and the
   *  content tag that names it is one finding). */
  reported: Set<string>
  /** Packs whose content tags sit at the wrong level (AP-CONTENT-MISPLACED says where they belong). */
  misplaced: Set<PackModel>
}

/** `options.system.uri: "NA"`: the Agent Mode preset of the BYOS pack, which names no provider image (agent mode
 *  installs on the host's own OS). Not an image reference. */
export function isNoProviderImage(uri: string | undefined): boolean {
  return uri !== undefined && /^\s*na\s*$/i.test(uri)
}

/** A repository written without a scheme: a host name with a dot (and an optional port and path), nothing else. */
const SCHEMELESS_REPOSITORY =
  /^(?![a-z][a-z0-9+.-]*:\/\/)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:\d{1,5})?(\/[^\s]*)?$/i

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The architecture embedded in an agent image name, if the reference is one. */
export function agentArch(reference: string): string | undefined {
  const noTag = stripContainerScheme(reference)
    .replace(/@.*$/, '')
    .replace(/:[^/:]*$/, '')
  return AGENT_IMAGE_PATTERN.exec(noTag)?.[1]
}

export function scanContent(profiles: LoadedProfile[], options: CollectOptions): ContentScan {
  const ctx = macroContext(profiles, options.vars ?? {})
  const scan: ContentScan = {
    images: [],
    charts: [],
    findings: [],
    tagCounts: new Map(),
    archReported: new Set(),
    reported: new Set(),
    misplaced: new Set(),
  }
  const seenImages = new Map<string, ImageRequest>()
  const seenCharts = new Set<string>()

  const addImage = (req: ImageRequest) => {
    const prior = seenImages.get(req.reference)
    if (prior) {
      if (prior.kind === 'image' && req.kind !== 'image') prior.kind = req.kind
      return
    }
    seenImages.set(req.reference, req)
    scan.images.push(req)
  }

  for (const profile of profiles) {
    for (const pack of profile.packs) {
      const values = parseValues(pack)
      if (values.error) {
        scan.findings.push(
          packFinding(profile, pack, {
            code: 'AP-VALUES-YAML',
            severity: 'error',
            message: `the pack values do not parse: ${values.error.message}`,
            hint: 'Fix the pack values YAML in Palette (or the exported file) at that line and export again.',
            path: 'values',
            valuesLine: true,
            ...(values.error.line === undefined ? {} : {line: values.error.line}),
          }),
        )
        continue
      }
      scanPack(profile, pack, values, ctx, options.arch, scan, addImage, seenCharts)
    }
  }
  checkValuesImages(profiles, scan)
  return scan
}

/** AP-CONTENT-UNLISTED: images that a pack's values name (`image:`, `image.repository`, `images:`) but that no
 *  content tag of any profile lists, so the site would lack them. The OS and Kubernetes layers' images come with
 *  the provider image or the agent. */
function checkValuesImages(profiles: LoadedProfile[], scan: ContentScan): void {
  const carried = carriedReferences(scan.images)
  for (const profile of profiles)
    for (const pack of profile.packs) {
      if (pack.layer === 'os' || pack.layer === 'k8s') continue
      // A pack without content tags is AP-CONTENT-MISSING (or AP-CONTENT-MISPLACED): one cause, one finding.
      if ((scan.tagCounts.get(pack) ?? 0) === 0 || scan.misplaced.has(pack)) continue
      const values = parseValues(pack)
      if (!values.data) continue
      // The content tags themselves, and misplaced ones (one cause: AP-CONTENT-MISPLACED), are not "named images".
      const tagPlaces = ['pack.content', ...misplacedContent(values.data)]
      const skip = (path: (string | number)[]) => tagPlaces.includes(path.join('.'))
      const seen = new Set<string>()
      for (const named of imagesInValues(values.data, skip)) {
        if (isCarried(named.ref, carried) || seen.has(named.text)) continue
        seen.add(named.text)
        const line = values.positions.line(named.path)
        scan.findings.push(
          packFinding(profile, pack, {
            code: 'AP-CONTENT-UNLISTED',
            severity: 'warning',
            message: `the values name image ${named.text} at ${named.path.join('.')}, but no content tag lists it; the site would lack it`,
            hint: `Add \`- image: ${named.text}${named.ref.tag || named.ref.digest ? '' : ':<tag>'}\` to pack.content.images (or correct the values).`,
            path: named.path.join('.'),
            valuesLine: true,
            ...(line === undefined ? {} : {line}),
          }),
        )
      }
    }
}

/** The carried images as parsed references (for comparing with images that values or charts name). */
export function carriedReferences(images: {reference: string}[]): ImageReference[] {
  const out: ImageReference[] = []
  for (const i of images) {
    try {
      out.push(parseReference(i.reference))
    } catch {
      // Already reported as AP-IMAGE-REF.
    }
  }
  return out
}

type PackFindingInput = Parameters<typeof packFinding>[2]
const at = (line: number | undefined) => (line === undefined ? {} : {line})

/** One pack's content tags, its OS provider and agent images, read into `scan` (requests and findings). */
class PackScanner {
  private readonly file: string
  private readonly data: Record<string, unknown>
  private readonly content: unknown
  private tags = 0
  private provider: ImageRequest | undefined
  private agent: ImageRequest | undefined
  private providerRaw: string | undefined
  private noProvider = false

  constructor(
    private readonly profile: LoadedProfile,
    private readonly pack: PackModel,
    private readonly values: ParsedValues,
    private readonly ctx: MacroContext,
    private readonly arch: Arch,
    private readonly scan: ContentScan,
  ) {
    this.file = profileLocation(profile)
    this.data = (values.data ?? {}) as Record<string, unknown>
    this.content = isObject(this.data.pack) ? this.data.pack.content : undefined
  }

  private finding(f: PackFindingInput): void {
    this.scan.findings.push(packFinding(this.profile, this.pack, {valuesLine: true, ...f}))
  }

  /** Report a cause once per pack, whichever path reaches it first. */
  private once(cause: string, report: () => void): void {
    const key = `${this.profile.name}\u0000${this.pack.name}\u0000${cause}`
    if (this.scan.reported.has(key)) return
    this.scan.reported.add(key)
    report()
  }

  private resolveRef(raw: string, path: string, line: number | undefined, what: string): string | undefined {
    const r = resolveMacros(raw, this.ctx, this.profile)
    if (r.value !== undefined) return r.value
    for (const problem of r.problems)
      this.once(`macro\u0000${problem}`, () =>
        this.finding({
          code: 'AP-MACRO-UNRESOLVED',
          severity: 'error',
          message: `${what} cannot be resolved: ${problem}`,
          hint: 'Give the variable a value with --var NAME=VALUE, add the missing option to the pack values, or include the profile that holds the pack.',
          path,
          ...at(line),
        }),
      )
    return undefined
  }

  private normalized(original: string, path: string, line: number | undefined): string | undefined {
    try {
      return normalizeReference(original)
    } catch (err) {
      if (!(err instanceof InvalidReferenceError)) throw err
      this.once(`image\u0000${original}`, () =>
        this.finding({
          code: 'AP-IMAGE-REF',
          severity: 'error',
          message: `image ${JSON.stringify(original)} is not a valid reference: ${err.reason}`,
          hint: 'Write it as [registry/]repository[:tag][@sha256:digest], e.g. docker.io/library/nginx:1.27.',
          path,
          ...at(line),
        }),
      )
      return undefined
    }
  }

  private imageRequest(
    original: string,
    path: string,
    line: number | undefined,
    forced?: 'os-provider' | 'agent',
  ): ImageRequest | undefined {
    const reference = this.normalized(original, path, line)
    if (reference === undefined) return undefined
    const {arch, scan} = this
    const embedded = agentArch(reference)
    const kind = forced ?? (embedded ? 'agent' : 'image')
    if (embedded && embedded !== arch && !scan.archReported.has(reference)) {
      scan.archReported.add(reference)
      this.finding({
        code: 'AP-AGENT-ARCH',
        severity: 'error',
        message: `agent image ${reference} is for ${embedded}, but the target architecture is ${arch}`,
        hint: `Use stylus-linux-${arch} in stylusPackage and the content tags (or build for --arch ${embedded}).`,
        path,
        ...at(line),
      })
    }
    const said = kind === 'image' ? archInName(parseReference(reference)) : undefined
    if (said && said !== arch) {
      this.once(`arch\u0000${reference}`, () =>
        this.finding({
          code: 'AP-IMAGE-ARCH',
          severity: 'warning',
          message: `image ${reference} says ${said} in its name, but the target architecture is ${arch}`,
          hint: `Use the ${arch} image (or a multi-architecture one) in the content tag and the values, or build for --arch ${said}.`,
          path,
          ...at(line),
        }),
      )
    }
    const fileLine = valuesFileLine(this.pack, line)
    return {
      reference,
      original,
      kind,
      profile: this.profile.name,
      pack: this.pack.name,
      file: this.file,
      ...at(line),
      ...(fileLine === undefined ? {} : {fileLine}),
    }
  }

  /** The OS provider image and the agent image of the OS pack. */
  private osImages(): void {
    if (this.pack.layer !== 'os') return
    const {values} = this
    const uri = packOption(values, 'system.uri')
    if (isNoProviderImage(uri.value)) {
      // Agent Mode preset: nothing to carry. Appliance mode reports it (AP-OS-URI-MISSING, validate.ts).
      this.providerRaw = uri.value
      this.noProvider = true
    } else if (uri.value !== undefined) {
      this.providerRaw = uri.value
      const resolved = this.resolveRef(
        uri.value,
        'options.system.uri',
        uri.line,
        'options.system.uri (the OS provider image)',
      )
      if (resolved !== undefined)
        this.provider = this.imageRequest(resolved, 'options.system.uri', uri.line, 'os-provider')
    }
    const stylus = this.data.stylusPackage
    if (typeof stylus === 'string' && stylus.trim() !== '') {
      const line = values.positions.line(['stylusPackage'])
      const resolved = this.resolveRef(stylus, 'stylusPackage', line, 'stylusPackage (the agent image)')
      if (resolved !== undefined) this.agent = this.imageRequest(resolved, 'stylusPackage', line, 'agent')
    }
  }

  private misplacedTags(): void {
    const misplaced = misplacedContent(this.data)
    if (misplaced.length === 0) return
    this.scan.misplaced.add(this.pack)
    for (const where of misplaced) {
      const line = this.values.positions.line(where.split('.'))
      this.finding({
        code: 'AP-CONTENT-MISPLACED',
        severity: 'warning',
        message: `content tags at ${where} are not read (Palette reads only pack.content); ${where === 'content' ? 'content: belongs under pack:' : where.startsWith('pack.') && !where.endsWith('.content') ? `${where.slice('pack.'.length)}: belongs under pack.content:` : 'content: belongs at pack.content, under the top-level pack: key'}`,
        hint: `Move it to pack.content: write \`pack:\` / \`  content:\` / \`    images: [...]\` / \`    charts: [...]\` at the top level of the values.`,
        path: where,
        ...at(line),
      })
    }
  }

  /** pack.content.images, each resolved and checked. */
  private listedImages(): ImageRequest[] {
    const {content, values} = this
    const listed: ImageRequest[] = []
    if (content !== undefined && content !== null && !isObject(content)) {
      this.finding({
        code: 'AP-CONTENT-MALFORMED',
        severity: 'error',
        message: 'pack.content must be a mapping with images and charts',
        hint: 'Write pack.content.images: [{image: REF}] and pack.content.charts: [{repo, name, version}].',
        path: 'pack.content',
        line: values.positions.line(['pack', 'content']),
      })
    }
    const images = isObject(content) ? content.images : undefined
    if (images !== undefined && images !== null && !Array.isArray(images)) {
      this.finding({
        code: 'AP-CONTENT-MALFORMED',
        severity: 'error',
        message: 'pack.content.images must be a list of {image: REF}',
        hint: 'Write each image as a list item: `- image: registry/repo:tag`.',
        path: 'pack.content.images',
        line: values.positions.line(['pack', 'content', 'images']),
      })
    }
    if (Array.isArray(images)) {
      images.forEach((item, i) => {
        const req = this.listedImage(item, i)
        if (req) listed.push(req)
      })
    }
    return listed
  }

  private listedImage(item: unknown, i: number): ImageRequest | undefined {
    const {values} = this
    const path = `pack.content.images[${i}]`
    const itemPath = ['pack', 'content', 'images', i]
    let key: 'image' | 'iamge' = 'image'
    if (isObject(item) && !('image' in item) && 'iamge' in item) {
      key = 'iamge'
      this.finding({
        code: 'AP-CONTENT-TYPO',
        severity: 'warning',
        message: `${path} uses the key "iamge"; read as "image"`,
        hint: 'Rename the key to "image" (a known typo in some packs).',
        path: `${path}.iamge`,
        line: values.positions.line([...itemPath, 'iamge']),
      })
    }
    const raw = isObject(item) ? item[key] : undefined
    const line = values.positions.line(isObject(item) ? [...itemPath, key] : itemPath)
    const text = isObject(item) ? scalarSource(values, [...itemPath, key], raw) : undefined
    if (text === undefined || text.trim() === '') {
      const flowMap = isObject(raw) || Array.isArray(raw)
      this.finding({
        code: 'AP-CONTENT-MALFORMED',
        severity: 'error',
        message: flowMap
          ? `${path}.${key} is a YAML ${Array.isArray(raw) ? 'list' : 'mapping'}, not an image reference`
          : `${path} has no image reference`,
        hint: flowMap
          ? "Quote a value that starts with {{ (YAML reads {{ as a mapping): `- image: '{{.spectro.…}}'`."
          : 'Each entry of pack.content.images is `- image: registry/repo:tag`.',
        path,
        ...at(line),
      })
      return undefined
    }
    const isProvider =
      this.providerRaw !== undefined &&
      (text === this.providerRaw || (hasMacro(text) && /\.options\.system\.uri\s*\}\}$/.test(text.trim())))
    // The provider image's content tag under the Agent Mode preset names nothing to carry.
    if (isProvider && this.noProvider) return undefined
    this.tags++
    const resolved = this.resolveRef(text, `${path}.image`, line, `content tag ${JSON.stringify(text)}`)
    if (resolved === undefined) return undefined
    return this.imageRequest(resolved, `${path}.image`, line, isProvider ? 'os-provider' : undefined)
  }

  /** The listed images, with the provider first and the agent last when the content tags forgot them. */
  private addImages(listed: ImageRequest[], addImage: (r: ImageRequest) => void): void {
    const {provider, agent, pack} = this
    if (provider && !listed.some((r) => r.reference === provider.reference)) {
      this.finding({
        code: 'AP-OS-PROVIDER-CONTENT',
        severity: 'warning',
        message: `the provider image ${provider.reference} (options.system.uri) is not in pack.content.images; airpack bundles it anyway`,
        hint:
          "Add `- image: '{{.spectro.pack." +
          pack.name +
          ".options.system.uri}}'` as the first content tag so Palette's own tools bundle it too.",
        path: 'pack.content.images',
        ...at(provider.line),
      })
      addImage(provider)
    }
    for (const req of listed) addImage(req)
    if (!agent) return
    const listedAgent = listed.find((r) => r.kind === 'agent')
    if (!listed.some((r) => r.reference === agent.reference)) {
      this.finding({
        code: 'AP-AGENT-CONTENT',
        severity: 'warning',
        message: listedAgent
          ? `stylusPackage ${agent.reference} differs from the agent image in pack.content.images (${listedAgent.reference})`
          : `the agent image ${agent.reference} (stylusPackage) is not in pack.content.images; airpack bundles it anyway`,
        hint: 'List the agent image in pack.content.images with the same container:// reference as stylusPackage.',
        path: 'stylusPackage',
        ...at(agent.line),
      })
    }
    addImage(agent)
  }

  /** pack.content.charts, each resolved and checked, deduplicated across packs by `seenCharts`. */
  private charts(seenCharts: Set<string>): void {
    const charts = isObject(this.content) ? this.content.charts : undefined
    if (charts !== undefined && charts !== null && !Array.isArray(charts)) {
      this.finding({
        code: 'AP-CONTENT-MALFORMED',
        severity: 'error',
        message: 'pack.content.charts must be a list of {repo, name, version}',
        hint: 'Write each chart as `- repo: URL` / `name: NAME` / `version: X.Y.Z`.',
        path: 'pack.content.charts',
        line: this.values.positions.line(['pack', 'content', 'charts']),
      })
    }
    if (Array.isArray(charts)) charts.forEach((item, i) => this.chart(item, i, seenCharts))
  }

  /** The chart's repo, name and version, present and resolved; undefined (reported) otherwise. */
  private chartFields(
    item: unknown,
    path: string,
    itemPath: (string | number)[],
    line: number | undefined,
  ): {repoKey: string; fields: [string, string, string]} | undefined {
    if (!isObject(item)) {
      this.finding({
        code: 'AP-CONTENT-MALFORMED',
        severity: 'error',
        message: `${path} is not a {repo, name, version} mapping`,
        hint: 'Write `- repo: URL` / `name: NAME` / `version: X.Y.Z`.',
        path,
        ...at(line),
      })
      return undefined
    }
    const repoKey = 'repo' in item ? 'repo' : 'repository'
    const field = (k: string) => scalarSource(this.values, [...itemPath, k], item[k])?.trim()
    const repo = field(repoKey)
    const name = field('name')
    const version = field('version')
    const missing = [!repo && 'repo', !name && 'name', !version && 'version'].filter(Boolean)
    if (missing.length > 0) {
      this.finding({
        code: 'AP-CONTENT-MALFORMED',
        severity: 'error',
        message: `${path} lacks ${missing.join(', ')}`,
        hint: 'Each chart needs repo (or repository), name and version.',
        path,
        ...at(line),
      })
      return undefined
    }
    this.tags++
    const r = [repo!, name!, version!].map((t) => this.resolveRef(t, path, line, `chart ${JSON.stringify(t)}`))
    if (r.some((x) => x === undefined)) return undefined
    return {repoKey, fields: r as [string, string, string]}
  }

  private chart(item: unknown, i: number, seenCharts: Set<string>): void {
    const path = `pack.content.charts[${i}]`
    const itemPath = ['pack', 'content', 'charts', i]
    const line = this.values.positions.line(itemPath)
    const got = this.chartFields(item, path, itemPath, line)
    if (!got) return
    const {repoKey} = got
    let [repository, chartName, chartVersion] = got.fields
    if (SCHEMELESS_REPOSITORY.test(repository)) {
      // pack-central's coder pack writes `repo: helm.coder.com/v2`; Helm repositories are served over HTTPS.
      this.finding({
        code: 'AP-CHART-SCHEME',
        severity: 'warning',
        message: `${path}: chart repository ${JSON.stringify(repository)} has no scheme; read as https://${repository}`,
        hint: `Write the repository as a URL: https://${repository} (or oci://${repository} for an OCI registry).`,
        path: `${path}.${repoKey}`,
        ...at(line),
      })
      repository = `https://${repository}`
    }
    if (!/^(https?|oci):\/\/[^\s/]+/.test(repository)) {
      this.finding({
        code: 'AP-CHART-REF',
        severity: 'error',
        message: `${path}: chart repository ${JSON.stringify(repository)} is not an http(s):// or oci:// URL`,
        hint: 'Use the Helm repository URL (https://…), an oci:// repository or the chart archive URL.',
        path: `${path}.${repoKey}`,
        ...at(line),
      })
      return
    }
    if (/\s|\//.test(chartName) || /\s/.test(chartVersion)) {
      this.finding({
        code: 'AP-CHART-REF',
        severity: 'error',
        message: `${path}: chart name ${JSON.stringify(chartName)} or version ${JSON.stringify(chartVersion)} is malformed`,
        hint: 'A chart name has no slashes or spaces; the version is the chart version, e.g. 1.2.3.',
        path,
        ...at(line),
      })
      return
    }
    const key = `${repository}#${chartName}@${chartVersion}`
    if (seenCharts.has(key)) return
    seenCharts.add(key)
    const fileLine = valuesFileLine(this.pack, line)
    this.scan.charts.push({
      repository,
      name: chartName,
      version: chartVersion,
      profile: this.profile.name,
      pack: this.pack.name,
      file: this.file,
      ...at(line),
      ...(fileLine === undefined ? {} : {fileLine}),
    })
  }

  run(addImage: (r: ImageRequest) => void, seenCharts: Set<string>): void {
    this.osImages()
    this.misplacedTags()
    this.addImages(this.listedImages(), addImage)
    this.charts(seenCharts)
    this.scan.tagCounts.set(this.pack, this.tags + (this.provider ? 1 : 0) + (this.agent ? 1 : 0))
  }
}

function scanPack(
  profile: LoadedProfile,
  pack: PackModel,
  values: ParsedValues,
  ctx: MacroContext,
  arch: Arch,
  scan: ContentScan,
  addImage: (r: ImageRequest) => void,
  seenCharts: Set<string>,
): void {
  new PackScanner(profile, pack, values, ctx, arch, scan).run(addImage, seenCharts)
}

/** Content tags after macro resolution (vars override defaultValue), deduplicated by reference, in a stable order.
 *  Throws InvalidInputError listing every unresolvable macro / malformed tag (validateProfiles reports the same as findings). */
export function collectContent(
  profiles: LoadedProfile[],
  options: CollectOptions,
): {images: ImageRequest[]; charts: ChartRequest[]} {
  const scan = scanContent(profiles, options)
  const errors = scan.findings.filter((f) => f.severity === 'error')
  if (errors.length > 0) {
    throw new InvalidInputError(
      'CONTENT_INVALID',
      `${errors.length} content tag problem${errors.length === 1 ? '' : 's'} in the profiles`,
      {
        hint: 'Run `airpack profile validate` on the same profiles for every finding with its line and fix hint.',
        details: {
          problems: errors.map(
            (f) =>
              `${f.file}${f.fileLine ? `:${f.fileLine}` : ''} pack ${f.pack ?? '-'}${f.line ? ` (values line ${f.line})` : ''}: ${f.message} [${f.code}]`,
          ),
          findings: errors,
        },
      },
    )
  }
  return {images: scan.images, charts: scan.charts}
}
