// A token issuer for distribution's `auth.token` mode, in test code: an RS256 JWT whose `x5c` header carries a
// self-signed certificate (made with openssl) that the registry trusts through `rootcertbundle`. It serves the
// Docker token protocol (GET realm?service=&scope= with optional Basic auth) and the OAuth2 refresh-token grant
// (POST realm, grant_type=refresh_token), which is what Docker's `identitytoken` uses.

import {execFileSync} from 'node:child_process'
import {createPrivateKey, randomBytes, sign, X509Certificate} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'

export interface TokenIssuer {
  realm: string
  service: string
  issuer: string
  rootCertPem: string
  /** Every token request seen (the user name, or `refresh` for the refresh-token grant; never passwords). */
  requests: {user: string | null; scope: string | null; method: string}[]
  /** Tokens handed out, so tests can check that none leaks. */
  issued: string[]
  /** A token for `scope` (e.g. `repository:team/app:pull,push`), for seeding the registry. */
  mint(subject: string, scope: string): string
  stop(): Promise<void>
}

export interface TokenIssuerOptions {
  /** username → password. */
  users?: Record<string, string>
  /** refresh token → username (for the identitytoken flow). */
  refreshTokens?: Record<string, string>
  /** Give anonymous callers pull access (default false). */
  anonymousPull?: boolean
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url')

export async function startTokenIssuer(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'airpack-token-'))
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'key.pem',
      '-out',
      'cert.pem',
      '-days',
      '2',
      '-subj',
      '/CN=airpack test token issuer',
    ],
    {
      cwd: dir,
      stdio: 'pipe',
    },
  )
  const keyPem = readFileSync(path.join(dir, 'key.pem'), 'utf8')
  const rootCertPem = readFileSync(path.join(dir, 'cert.pem'), 'utf8')
  rmSync(dir, {recursive: true, force: true})
  const key = createPrivateKey(keyPem)
  const certDer = new X509Certificate(rootCertPem).raw
  const service = 'airpack-test-registry'
  const issuer = 'airpack-test-issuer'
  const requests: TokenIssuer['requests'] = []
  const issued: string[] = []

  const mint = (subject: string, scope: string | null): string => {
    const now = Math.floor(Date.now() / 1000)
    const access = (scope ?? '')
      .split(' ')
      .filter(Boolean)
      .map((s) => {
        const [type, name, actions] = s.split(':')
        return {type, name, actions: (actions ?? '').split(',').filter((a) => a === 'pull' || a === 'push')}
      })
    const header = b64url(JSON.stringify({alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')]}))
    const payload = b64url(
      JSON.stringify({
        iss: issuer,
        sub: subject,
        aud: service,
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: randomBytes(8).toString('hex'),
        access,
      }),
    )
    const signature = b64url(sign('sha256', Buffer.from(`${header}.${payload}`), key))
    const token = `${header}.${payload}.${signature}`
    issued.push(token)
    return token
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const deny = () => {
      res.writeHead(401, {'content-type': 'application/json'})
      res.end(JSON.stringify({details: 'bad credentials'}))
    }
    const grant = (subject: string, scope: string | null) => {
      res.writeHead(200, {'content-type': 'application/json'})
      const token = mint(subject, scope)
      res.end(JSON.stringify({token, access_token: token, expires_in: 300, issued_at: new Date().toISOString()}))
    }
    if (req.method === 'POST') {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        const form = new URLSearchParams(body)
        requests.push({user: 'refresh', scope: form.get('scope'), method: 'POST'})
        const user = options.refreshTokens?.[form.get('refresh_token') ?? '']
        if (form.get('grant_type') !== 'refresh_token' || !user) return deny()
        grant(user, form.get('scope'))
      })
      return
    }
    const auth = req.headers.authorization
    let user: string | null = null
    if (auth?.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      user = decoded.slice(0, colon)
      if (options.users?.[user] !== decoded.slice(colon + 1)) {
        requests.push({user, scope: url.searchParams.get('scope'), method: 'GET'})
        return deny()
      }
    }
    requests.push({user, scope: url.searchParams.get('scope'), method: 'GET'})
    if (!user && !options.anonymousPull && url.searchParams.get('scope')) return deny()
    grant(user ?? 'anonymous', url.searchParams.get('scope'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as import('node:net').AddressInfo
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    rootCertPem,
    requests,
    issued,
    mint,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
