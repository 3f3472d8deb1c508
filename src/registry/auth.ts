import {discard, type ResponseHeaders, type RoundTrip} from './http.js'

// WWW-Authenticate challenges (RFC 7235 as registries send them):
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"
//   Basic realm="Registry Realm"

export type Challenge =
  {scheme: 'basic'; realm?: string} | {scheme: 'bearer'; realm: string; service?: string; scope?: string}

export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header)
  if (!match) return undefined
  const scheme = match[1].toLowerCase()
  const params: Record<string, string> = {}
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g
  for (let m = re.exec(match[2]); m; m = re.exec(match[2]))
    params[m[1].toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1')
  if (scheme === 'basic') return {scheme: 'basic', ...(params.realm ? {realm: params.realm} : {})}
  if (scheme === 'bearer' && params.realm) {
    return {
      scheme: 'bearer',
      realm: params.realm,
      ...(params.service ? {service: params.service} : {}),
      ...(params.scope ? {scope: params.scope} : {}),
    }
  }
  return undefined
}

export function basicAuthorization(username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64')
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`
}

/** How one endpoint authorises its requests (the client's credentials, challenges and tokens behind it). */
export interface Authorizer {
  /** The Authorization header of a first attempt; undefined for anonymous. */
  authorization(): Promise<string | undefined>
  /** After a 401 answered to `previous`: one more Authorization to try (from the fresh challenge), or undefined
   *  when another try cannot help. */
  renew(unauthorized: ResponseHeaders, previous: string | undefined): Promise<string | undefined>
  /** The error for a 401 that renewing did not fix. */
  refused(): Promise<Error>
}

/** `rt` authorised by `auth`: a 401 is answered once by renewing from the fresh challenge (a registry may want
 *  other authorisation on some paths), never in a loop. */
export function withAuth(rt: RoundTrip, auth: Authorizer): RoundTrip {
  return async (url, init = {}) => {
    let authorization = await auth.authorization()
    for (let round = 0; ; round++) {
      const res = await rt(url, {...init, authorization})
      if (res.status !== 401) return res
      await discard(res)
      const renewed = round === 0 ? await auth.renew(res.headers, authorization) : undefined
      if (renewed === undefined) throw await auth.refused()
      authorization = renewed
    }
  }
}
