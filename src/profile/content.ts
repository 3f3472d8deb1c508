// Content tags → the list of images and charts a bundle must carry. Reads `pack.content.images[].image` (and the
// known `iamge` typo), `pack.content.charts[]` (`repo` or `repository`), the OS pack's provider image
// (`options.system.uri`) and the agent image (`stylusPackage`, `container://…/stylus-linux-<arch>`).

import {InvalidInputError} from '../errors.js'
import {AGENT_IMAGE_PATTERN} from '../matrix/data.js'
import {InvalidReferenceError, normalizeReference, parseReference, stripContainerScheme, type ImageReference} from '../registry/reference.js'
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
const SCHEMELESS_REPOSITORY = /^(?![a-z][a-z0-9+.-]*:\/\/)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:\d{1,5})?(\/[^\s]*)?$/i

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The architecture embedded in an agent image name, if the reference is one. */
export function agentArch(reference: string): string | undefined {
  const noTag = stripContainerScheme(reference).replace(/@.*$/, '').replace(/:[^/:]*$/, '')
  return AGENT_IMAGE_PATTERN.exec(noTag)?.[1]
}

export function scanContent(profiles: LoadedProfile[], options: CollectOptions): ContentScan {
  const ctx = macroContext(profiles, options.vars ?? {})
  const scan: ContentScan = {images: [], charts: [], findings: [], tagCounts: new Map(), archReported: new Set(), reported: new Set(), misplaced: new Set()}
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
  const file = profileLocation(profile)
  const finding = (f: Parameters<typeof packFinding>[2]) => scan.findings.push(packFinding(profile, pack, {valuesLine: true, ...f}))
  /** Report a cause once per pack, whichever path reaches it first. */
  const once = (cause: string, report: () => void) => {
    const key = `${profile.name}\u0000${pack.name}\u0000${cause}`
    if (scan.reported.has(key)) return
    scan.reported.add(key)
    report()
  }
  let tags = 0
  const data = values.data ?? {}
  const content = isObject(data.pack) ? data.pack.content : undefined
  const isOs = pack.layer === 'os'

  const resolveRef = (raw: string, path: string, line: number | undefined, what: string): string | undefined => {
    const r = resolveMacros(raw, ctx, profile)
    if (r.value === undefined) {
      for (const problem of r.problems)
        once(`macro\u0000${problem}`, () =>
          finding({
            code: 'AP-MACRO-UNRESOLVED',
            severity: 'error',
            message: `${what} cannot be resolved: ${problem}`,
            hint: 'Give the variable a value with --var NAME=VALUE, add the missing option to the pack values, or include the profile that holds the pack.',
            path,
            ...(line === undefined ? {} : {line}),
          }),
        )
      return undefined
    }
    return r.value
  }

  const imageRequest = (original: string, path: string, line: number | undefined, forced?: 'os-provider' | 'agent'): ImageRequest | undefined => {
    let reference: string
    try {
      reference = normalizeReference(original)
    } catch (err) {
      if (!(err instanceof InvalidReferenceError)) throw err
      once(`image\u0000${original}`, () =>
        finding({
          code: 'AP-IMAGE-REF',
          severity: 'error',
          message: `image ${JSON.stringify(original)} is not a valid reference: ${err.reason}`,
          hint: 'Write it as [registry/]repository[:tag][@sha256:digest], e.g. docker.io/library/nginx:1.27.',
          path,
          ...(line === undefined ? {} : {line}),
        }),
      )
      return undefined
    }
    const embedded = agentArch(reference)
    const kind = forced ?? (embedded ? 'agent' : 'image')
    if (embedded && embedded !== arch && !scan.archReported.has(reference)) {
      scan.archReported.add(reference)
      finding({
        code: 'AP-AGENT-ARCH',
        severity: 'error',
        message: `agent image ${reference} is for ${embedded}, but the target architecture is ${arch}`,
        hint: `Use stylus-linux-${arch} in stylusPackage and the content tags (or build for --arch ${embedded}).`,
        path,
        ...(line === undefined ? {} : {line}),
      })
    }
    const said = kind === 'image' ? archInName(parseReference(reference)) : undefined
    if (said && said !== arch) {
      once(`arch\u0000${reference}`, () =>
        finding({
          code: 'AP-IMAGE-ARCH',
          severity: 'warning',
          message: `image ${reference} says ${said} in its name, but the target architecture is ${arch}`,
          hint: `Use the ${arch} image (or a multi-architecture one) in the content tag and the values, or build for --arch ${said}.`,
          path,
          ...(line === undefined ? {} : {line}),
        }),
      )
    }
    const fileLine = valuesFileLine(pack, line)
    return {reference, original, kind, profile: profile.name, pack: pack.name, file, ...(line === undefined ? {} : {line}), ...(fileLine === undefined ? {} : {fileLine})}
  }

  // The OS provider image and the agent image of the OS pack.
  let provider: ImageRequest | undefined
  let agent: ImageRequest | undefined
  let providerRaw: string | undefined
  let noProvider = false
  if (isOs) {
    const uri = packOption(values, 'system.uri')
    if (isNoProviderImage(uri.value)) {
      // Agent Mode preset: nothing to carry. Appliance mode reports it (AP-OS-URI-MISSING, validate.ts).
      providerRaw = uri.value
      noProvider = true
    } else if (uri.value !== undefined) {
      providerRaw = uri.value
      const resolved = resolveRef(uri.value, 'options.system.uri', uri.line, 'options.system.uri (the OS provider image)')
      if (resolved !== undefined) provider = imageRequest(resolved, 'options.system.uri', uri.line, 'os-provider')
    }
    const stylus = data.stylusPackage
    if (typeof stylus === 'string' && stylus.trim() !== '') {
      const line = values.positions.line(['stylusPackage'])
      const resolved = resolveRef(stylus, 'stylusPackage', line, 'stylusPackage (the agent image)')
      if (resolved !== undefined) agent = imageRequest(resolved, 'stylusPackage', line, 'agent')
    }
  }

  const misplaced = misplacedContent(data)
  if (misplaced.length > 0) {
    scan.misplaced.add(pack)
    for (const where of misplaced) {
      const line = values.positions.line(where.split('.'))
      finding({
        code: 'AP-CONTENT-MISPLACED',
        severity: 'warning',
        message: `content tags at ${where} are not read (Palette reads only pack.content); ${where === 'content' ? 'content: belongs under pack:' : where.startsWith('pack.') && !where.endsWith('.content') ? `${where.slice('pack.'.length)}: belongs under pack.content:` : 'content: belongs at pack.content, under the top-level pack: key'}`,
        hint: `Move it to pack.content: write \`pack:\` / \`  content:\` / \`    images: [...]\` / \`    charts: [...]\` at the top level of the values.`,
        path: where,
        ...(line === undefined ? {} : {line}),
      })
    }
  }

  const listed: ImageRequest[] = []
  if (content !== undefined && content !== null && !isObject(content)) {
    finding({code: 'AP-CONTENT-MALFORMED', severity: 'error', message: 'pack.content must be a mapping with images and charts', hint: 'Write pack.content.images: [{image: REF}] and pack.content.charts: [{repo, name, version}].', path: 'pack.content', line: values.positions.line(['pack', 'content'])})
  }
  const images = isObject(content) ? content.images : undefined
  if (images !== undefined && images !== null && !Array.isArray(images)) {
    finding({code: 'AP-CONTENT-MALFORMED', severity: 'error', message: 'pack.content.images must be a list of {image: REF}', hint: 'Write each image as a list item: `- image: registry/repo:tag`.', path: 'pack.content.images', line: values.positions.line(['pack', 'content', 'images'])})
  }
  if (Array.isArray(images)) {
    images.forEach((item, i) => {
      const path = `pack.content.images[${i}]`
      const itemPath = ['pack', 'content', 'images', i]
      let key: 'image' | 'iamge' = 'image'
      if (isObject(item) && !('image' in item) && 'iamge' in item) {
        key = 'iamge'
        finding({code: 'AP-CONTENT-TYPO', severity: 'warning', message: `${path} uses the key "iamge"; read as "image"`, hint: 'Rename the key to "image" (a known typo in some packs).', path: `${path}.iamge`, line: values.positions.line([...itemPath, 'iamge'])})
      }
      const raw = isObject(item) ? item[key] : undefined
      const line = values.positions.line(isObject(item) ? [...itemPath, key] : itemPath)
      const text = isObject(item) ? scalarSource(values, [...itemPath, key], raw) : undefined
      if (text === undefined || text.trim() === '') {
        const flowMap = isObject(raw) || Array.isArray(raw)
        finding({
          code: 'AP-CONTENT-MALFORMED',
          severity: 'error',
          message: flowMap ? `${path}.${key} is a YAML ${Array.isArray(raw) ? 'list' : 'mapping'}, not an image reference` : `${path} has no image reference`,
          hint: flowMap ? "Quote a value that starts with {{ (YAML reads {{ as a mapping): `- image: '{{.spectro.…}}'`." : 'Each entry of pack.content.images is `- image: registry/repo:tag`.',
          path,
          ...(line === undefined ? {} : {line}),
        })
        return
      }
      const isProvider = providerRaw !== undefined && (text === providerRaw || (hasMacro(text) && /\.options\.system\.uri\s*\}\}$/.test(text.trim())))
      // The provider image's content tag under the Agent Mode preset names nothing to carry.
      if (isProvider && noProvider) return
      tags++
      const resolved = resolveRef(text, `${path}.image`, line, `content tag ${JSON.stringify(text)}`)
      if (resolved === undefined) return
      const req = imageRequest(resolved, `${path}.image`, line, isProvider ? 'os-provider' : undefined)
      if (req) listed.push(req)
    })
  }

  if (provider && !listed.some((r) => r.reference === provider!.reference)) {
    finding({code: 'AP-OS-PROVIDER-CONTENT', severity: 'warning', message: `the provider image ${provider.reference} (options.system.uri) is not in pack.content.images; airpack bundles it anyway`, hint: "Add `- image: '{{.spectro.pack." + pack.name + ".options.system.uri}}'` as the first content tag so Palette's own tools bundle it too.", path: 'pack.content.images', ...(provider.line === undefined ? {} : {line: provider.line})})
    addImage(provider)
  }
  for (const req of listed) addImage(req)
  if (agent) {
    const listedAgent = listed.find((r) => r.kind === 'agent')
    if (!listed.some((r) => r.reference === agent!.reference)) {
      finding({
        code: 'AP-AGENT-CONTENT',
        severity: 'warning',
        message: listedAgent
          ? `stylusPackage ${agent.reference} differs from the agent image in pack.content.images (${listedAgent.reference})`
          : `the agent image ${agent.reference} (stylusPackage) is not in pack.content.images; airpack bundles it anyway`,
        hint: 'List the agent image in pack.content.images with the same container:// reference as stylusPackage.',
        path: 'stylusPackage',
        ...(agent.line === undefined ? {} : {line: agent.line}),
      })
    }
    addImage(agent)
  }

  const charts = isObject(content) ? content.charts : undefined
  if (charts !== undefined && charts !== null && !Array.isArray(charts)) {
    finding({code: 'AP-CONTENT-MALFORMED', severity: 'error', message: 'pack.content.charts must be a list of {repo, name, version}', hint: 'Write each chart as `- repo: URL` / `name: NAME` / `version: X.Y.Z`.', path: 'pack.content.charts', line: values.positions.line(['pack', 'content', 'charts'])})
  }
  if (Array.isArray(charts)) {
    charts.forEach((item, i) => {
      const path = `pack.content.charts[${i}]`
      const itemPath = ['pack', 'content', 'charts', i]
      const line = values.positions.line(itemPath)
      if (!isObject(item)) {
        finding({code: 'AP-CONTENT-MALFORMED', severity: 'error', message: `${path} is not a {repo, name, version} mapping`, hint: 'Write `- repo: URL` / `name: NAME` / `version: X.Y.Z`.', path, ...(line === undefined ? {} : {line})})
        return
      }
      const repoKey = 'repo' in item ? 'repo' : 'repository'
      const field = (k: string) => scalarSource(values, [...itemPath, k], item[k])?.trim()
      const repo = field(repoKey)
      const name = field('name')
      const version = field('version')
      const missing = [!repo && 'repo', !name && 'name', !version && 'version'].filter(Boolean)
      if (missing.length > 0) {
        finding({code: 'AP-CONTENT-MALFORMED', severity: 'error', message: `${path} lacks ${missing.join(', ')}`, hint: 'Each chart needs repo (or repository), name and version.', path, ...(line === undefined ? {} : {line})})
        return
      }
      tags++
      const r = [repo!, name!, version!].map((t) => resolveRef(t, path, line, `chart ${JSON.stringify(t)}`))
      if (r.some((x) => x === undefined)) return
      let [repository, chartName, chartVersion] = r as [string, string, string]
      if (SCHEMELESS_REPOSITORY.test(repository)) {
        // pack-central's coder pack writes `repo: helm.coder.com/v2`; Helm repositories are served over HTTPS.
        finding({code: 'AP-CHART-SCHEME', severity: 'warning', message: `${path}: chart repository ${JSON.stringify(repository)} has no scheme; read as https://${repository}`, hint: `Write the repository as a URL: https://${repository} (or oci://${repository} for an OCI registry).`, path: `${path}.${repoKey}`, ...(line === undefined ? {} : {line})})
        repository = `https://${repository}`
      }
      if (!/^(https?|oci):\/\/[^\s/]+/.test(repository)) {
        finding({code: 'AP-CHART-REF', severity: 'error', message: `${path}: chart repository ${JSON.stringify(repository)} is not an http(s):// or oci:// URL`, hint: 'Use the Helm repository URL (https://…), an oci:// repository or the chart archive URL.', path: `${path}.${repoKey}`, ...(line === undefined ? {} : {line})})
        return
      }
      if (/\s|\//.test(chartName) || /\s/.test(chartVersion)) {
        finding({code: 'AP-CHART-REF', severity: 'error', message: `${path}: chart name ${JSON.stringify(chartName)} or version ${JSON.stringify(chartVersion)} is malformed`, hint: 'A chart name has no slashes or spaces; the version is the chart version, e.g. 1.2.3.', path, ...(line === undefined ? {} : {line})})
        return
      }
      const key = `${repository}#${chartName}@${chartVersion}`
      if (seenCharts.has(key)) return
      seenCharts.add(key)
      const fileLine = valuesFileLine(pack, line)
      scan.charts.push({repository, name: chartName, version: chartVersion, profile: profile.name, pack: pack.name, file, ...(line === undefined ? {} : {line}), ...(fileLine === undefined ? {} : {fileLine})})
    })
  }
  scan.tagCounts.set(pack, tags + (provider ? 1 : 0) + (agent ? 1 : 0))
}

/** Content tags after macro resolution (vars override defaultValue), deduplicated by reference, in a stable order.
 *  Throws InvalidInputError listing every unresolvable macro / malformed tag (validateProfiles reports the same as findings). */
export function collectContent(profiles: LoadedProfile[], options: CollectOptions): {images: ImageRequest[]; charts: ChartRequest[]} {
  const scan = scanContent(profiles, options)
  const errors = scan.findings.filter((f) => f.severity === 'error')
  if (errors.length > 0) {
    throw new InvalidInputError('CONTENT_INVALID', `${errors.length} content tag problem${errors.length === 1 ? '' : 's'} in the profiles`, {
      hint: 'Run `airpack profile validate` on the same profiles for every finding with its line and fix hint.',
      details: {
        problems: errors.map((f) => `${f.file}${f.fileLine ? `:${f.fileLine}` : ''} pack ${f.pack ?? '-'}${f.line ? ` (values line ${f.line})` : ''}: ${f.message} [${f.code}]`),
        findings: errors,
      },
    })
  }
  return {images: scan.images, charts: scan.charts}
}

