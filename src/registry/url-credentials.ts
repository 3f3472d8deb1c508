import type {Credential} from './credentials.js'

// Userinfo in a chart repository or archive URL (`https://user:pass@charts.example.com`) is a credential, used the
// way Helm and curl use it (Basic auth for that host), but never sent inside the URL (fetch refuses it) and never
// printed: every URL that airpack records (lock, report, --json) is masked with redactUrl, which leaves `user:***@`.
// A URL that comes back masked (from a lock) carries no secret: the host's credential is looked up instead.

const REDACTED_PASSWORD = '***'

export interface SplitUrl {
  /** The URL without userinfo: what is requested. */
  url: URL
  /** The credential the URL carried, if it carried a real one. */
  credential?: Credential
}

export function splitUserinfo(url: URL): SplitUrl {
  if (!url.username && !url.password) return {url}
  const clean = new URL(url.href)
  clean.username = ''
  clean.password = ''
  const password = safeDecode(url.password)
  if (password === REDACTED_PASSWORD || encodeURIComponent(password) === encodeURIComponent(REDACTED_PASSWORD))
    return {url: clean}
  return {
    url: clean,
    credential: {username: safeDecode(url.username), password, origin: `the user info of the URL for ${clean.host}`},
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
