// Userinfo in a URL (`https://user:pass@host`) is a credential wherever it was written: a registries.yaml
// endpoint, a chart repository, a proxy variable. It is masked at the source, before a URL becomes part of a
// message, a report, a lock, a --json document or a DEBUG line, so no printer has to remember to do it.

const USERINFO_IN_URL = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@]*)@/gi

/** `https://user:pass@host/x` → `https://user:***@host/x`; a URL with only a user keeps it; anything else unchanged. */
export function redactUrl(url: string): string {
  return redactText(url)
}

/** Masks the password of every URL with userinfo inside free text (error messages, log lines). */
export function redactText(text: string): string {
  return text.replace(USERINFO_IN_URL, (_match, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':')
    return colon === -1 ? `${scheme}${userinfo}@` : `${scheme}${userinfo.slice(0, colon)}:***@`
  })
}
