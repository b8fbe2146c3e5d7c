/**
 * What the authorization-server attack files share: a server whose logs the file's leak check
 * watches, requests that remember every secret they carry or receive, a read-only look at the store
 * (to prove that a refused attack changed nothing), and the assertions every refusal makes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { importJWK, type JWK, SignJWT } from 'jose';
import { DATABASE_FILE } from '../../../src/authorization-server/store/sqlite-store.ts';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../../helpers/authorization-server.ts';
import {
  type AuthorizeOptions,
  type AuthorizeResult,
  authorize,
  Browser,
  basic,
  pkce,
  postForm,
} from '../../helpers/oauth.ts';
import type { SecretLedger } from '../../helpers/secret-leaks.ts';

export type Json = Record<string, unknown>;

export const MCP = 'http://localhost:8000/mcp';
export const STOCKS = 'http://localhost:8000/api/stocks';
export const CUSTOMERS = 'http://localhost:8000/api/customers';
export const GATEWAY = 'gatehouse-gateway';
export const MCP_SERVER = 'gatehouse-mcp-server';
export const WORKLOAD = 'example-workload';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Starts a test authorization server whose logs and development inbox the ledger watches. */
export async function startAttackServer(
  ledger: SecretLedger,
  overrides: Record<string, unknown> = {},
): Promise<TestAuthorizationServer> {
  const as = await startTestAuthorizationServer(overrides);
  ledger.watch(as);
  return as;
}

/** A Basic authorization header, remembered with the secret it carries. */
export function basicAuth(ledger: SecretLedger, clientId: string, secret: string): string {
  const header = basic(clientId, secret);
  ledger.remember(secret, header, header.slice('Basic '.length));
  return header;
}

/** The Basic header of a pre-registered client whose secret the server generated at first start. */
export function clientAuth(ledger: SecretLedger, as: TestAuthorizationServer, clientId: string): string {
  const secret = readFileSync(path.join(as.dataDir, `secrets/${clientId}.secret`), 'utf8').trim();
  return basicAuth(ledger, clientId, secret);
}

export interface Registration {
  status: number;
  headers: Headers;
  body: Json;
}

/** RFC 7591 registration; defaults describe a native public agent on a loopback redirect URI. */
export async function register(
  ledger: SecretLedger,
  issuer: string,
  metadata: Json = {},
  headers: Record<string, string> = {},
): Promise<Registration> {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      client_name: 'Attack test agent',
      redirect_uris: ['http://127.0.0.1/callback'],
      application_type: 'native',
      ...metadata,
    }),
  });
  const text = await response.text();
  let body: Json = {};
  try {
    body = JSON.parse(text) as Json;
  } catch {
    body = { unparsed: text.slice(0, 300) };
  }
  ledger.rememberFields(body);
  return { status: response.status, headers: response.headers, body };
}

/** Registers and insists on 201; returns the registration response. */
export async function registerOk(ledger: SecretLedger, issuer: string, metadata: Json = {}): Promise<Json> {
  const registration = await register(ledger, issuer, metadata);
  assert.equal(registration.status, 201, JSON.stringify(registration.body));
  return registration.body;
}

/** Plays the user through authorization (helpers/oauth.ts) and remembers the code and verifier. */
export async function signIn(ledger: SecretLedger, options: AuthorizeOptions): Promise<AuthorizeResult> {
  const result = await authorize(options);
  ledger.remember(result.callback.searchParams.get('code'), result.verifier);
  await ledger.harvestOneTimeCodes();
  return result;
}

export interface TokenResponse {
  status: number;
  headers: Headers;
  text: string;
  json: Json;
}

/** A POST to an endpoint of the server; request and response secrets are remembered. */
export async function post(
  ledger: SecretLedger,
  url: string,
  fields: Record<string, string | undefined>,
  headers: Record<string, string> = {},
): Promise<TokenResponse> {
  // Every header value is remembered as a secret but the tool name (Gatehouse-Tool), which is not one.
  for (const [name, value] of Object.entries(headers)) if (name !== 'gatehouse-tool') ledger.remember(value);
  ledger.rememberFields(fields);
  const response = await postForm(url, fields, headers);
  ledger.rememberFields(response.json);
  if (response.headers.get('content-type')?.startsWith('application/jwt')) ledger.remember(response.text);
  return response;
}

/** Redeems an authorization code at the token endpoint. */
export function redeem(
  ledger: SecretLedger,
  issuer: string,
  fields: {
    code: string;
    verifier?: string | undefined;
    redirectUri?: string | undefined;
    clientId?: string | undefined;
    resource?: string | undefined;
  },
  headers: Record<string, string> = {},
): Promise<TokenResponse> {
  return post(
    ledger,
    `${issuer}/token`,
    {
      grant_type: 'authorization_code',
      code: fields.code,
      code_verifier: fields.verifier,
      redirect_uri: fields.redirectUri,
      client_id: fields.clientId,
      resource: fields.resource,
    },
    headers,
  );
}

/** Introspection as the gateway: what the rest of the system believes about a token. */
export async function introspect(
  ledger: SecretLedger,
  as: TestAuthorizationServer,
  token: string,
  authorization = clientAuth(ledger, as, GATEWAY),
  accept?: string,
): Promise<TokenResponse> {
  return post(ledger, `${as.issuer}/introspect`, { token }, { authorization, ...(accept ? { accept } : {}) });
}

/** True when the gateway still sees the token as active. */
export async function isActive(ledger: SecretLedger, as: TestAuthorizationServer, token: string) {
  const response = await introspect(ledger, as, token);
  assert.equal(response.status, 200, response.text);
  return response.json.active === true;
}

export interface PageResponse {
  status: number;
  headers: Headers;
  /** The Location header resolved against the request URL, when there is one. */
  location: URL | undefined;
  contentType: string;
  text: string;
}

/** One GET of the authorization endpoint with the given parameters, following nothing. */
export async function authorizationRequest(
  issuer: string,
  params: Record<string, string | undefined>,
  browser: Browser = new Browser(),
): Promise<PageResponse> {
  const url = new URL(`${issuer}/authorize`);
  for (const [key, value] of Object.entries(params))
    if (value !== undefined) url.searchParams.set(key, value);
  const response = await browser.request(url.href);
  return {
    status: response.status,
    headers: response.headers,
    location: response.location ? new URL(response.location) : undefined,
    contentType: response.headers.get('content-type') ?? '',
    text: response.text,
  };
}

/** The usual parameters of a code request with PKCE S256, for `clientId` and `redirectUri`. */
export function codeRequest(clientId: string, redirectUri: string, extra: Record<string, string> = {}) {
  const { verifier, challenge } = pkce();
  return {
    verifier,
    params: {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: 'stocks:read',
      state: `state-${randomUUID()}`,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...extra,
    } as Record<string, string | undefined>,
  };
}

/** A raw HTTP request (node:http), for headers fetch will not send as given, such as Host. */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, {
      method: options.method ?? 'GET',
      headers: options.headers ?? {},
      // No pooled connection: a test may restart the server on the same port.
      agent: false,
    });
    request.on('error', reject);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    request.end(options.body);
  });
}

// ---------------------------------------------------------------------------------------------------
// Assertions every refusal makes
// ---------------------------------------------------------------------------------------------------

/** An OAuth error answer (RFC 6749 §5.2): this status and code, and nothing issued in the body. */
export function assertOAuthError(response: TokenResponse, status: number, error: string): void {
  assert.equal(response.status, status, response.text.slice(0, 500));
  assert.equal(response.json.error, error, response.text.slice(0, 500));
  for (const field of ['access_token', 'refresh_token', 'id_token', 'issued_token_type', 'active']) {
    assert.equal(response.json[field], undefined, `no ${field} in a refusal`);
  }
  assert.doesNotMatch(response.text, /\bat (?:async )?\S+ \(/, 'no stack trace in the body');
}

/**
 * The authorization endpoint refused the request itself: a 400 error page naming the OAuth error
 * and no redirect (redirecting to an unverified redirect_uri would make an open redirector).
 */
export function assertErrorPage(response: PageResponse, error: string): void {
  assert.equal(response.status, 400, response.text.slice(0, 300));
  assert.equal(response.location, undefined, 'the browser must not be redirected');
  assert.match(response.contentType, /text\/html/);
  assert.ok(response.text.includes(`Error: ${error}`), `the error page names ${error}`);
  assert.doesNotMatch(response.text, /[?&]code=/, 'no code on the error page');
}

/** The authorization response carried an error to the client (RFC 6749 §4.1.2.1, RFC 9207 iss). */
export function assertRedirectedError(
  location: URL | undefined,
  expected: { error: string; state?: string | undefined; issuer: string; redirectUri: string },
): void {
  assert.ok(location, 'a redirect back to the client');
  assert.equal(`${location.origin}${location.pathname}`, expected.redirectUri);
  assert.equal(location.searchParams.get('error'), expected.error, location.href);
  assert.equal(location.searchParams.get('code'), null, 'no code with an error');
  assert.equal(location.searchParams.get('iss'), expected.issuer);
  if (expected.state !== undefined) assert.equal(location.searchParams.get('state'), expected.state);
}

// ---------------------------------------------------------------------------------------------------
// The store, read-only: what a refused attack must not have changed
// ---------------------------------------------------------------------------------------------------

export interface StoreView {
  /** Rows of one oidc-provider model (AccessToken, Grant, Client, AuthorizationCode, ...). */
  count(model: string): number;
  payload(model: string, id: string): Json | undefined;
  /** Remembered consents: user, client and grant. */
  consents(): Array<{ sub: string; client_id: string; grant_id: string }>;
}

export function storeOf(as: TestAuthorizationServer): StoreView {
  const read = <T>(query: (db: DatabaseSync) => T): T => {
    const db = new DatabaseSync(path.join(as.dataDir, DATABASE_FILE), { readOnly: true });
    try {
      return query(db);
    } finally {
      db.close();
    }
  };
  return {
    count: (model) =>
      read((db) =>
        Number(
          (db.prepare('SELECT count(*) AS n FROM oidc_models WHERE model = ?').get(model) as { n: number }).n,
        ),
      ),
    payload: (model, id) =>
      read((db) => {
        const row = db.prepare('SELECT payload FROM oidc_models WHERE model = ? AND id = ?').get(model, id) as
          | { payload: string }
          | undefined;
        return row ? (JSON.parse(row.payload) as Json) : undefined;
      }),
    consents: () =>
      read(
        (db) =>
          db
            .prepare('SELECT sub, client_id, grant_id FROM consent_grants ORDER BY sub, client_id')
            .all() as Array<{
            sub: string;
            client_id: string;
            grant_id: string;
          }>,
      ),
  };
}

/** Counts of the models a token request can create, to compare before and after an attack. */
export function issuedCounts(as: TestAuthorizationServer) {
  const store = storeOf(as);
  return {
    AccessToken: store.count('AccessToken'),
    RefreshToken: store.count('RefreshToken'),
    ClientCredentials: store.count('ClientCredentials'),
    Grant: store.count('Grant'),
    Client: store.count('Client'),
  };
}

// ---------------------------------------------------------------------------------------------------
// private_key_jwt (RFC 7523)
// ---------------------------------------------------------------------------------------------------

export interface SigningKey {
  key: CryptoKey | Uint8Array;
  kid: string | undefined;
}

/** The example workload's private key, generated by the server at first start. */
export async function workloadKey(as: TestAuthorizationServer): Promise<SigningKey> {
  const file = as.running.privateKeyFiles[WORKLOAD];
  assert.ok(file, 'the example workload has a generated key');
  const jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK;
  return { key: await importJWK(jwk, 'ES256'), kid: jwk.kid };
}

/** A client assertion; by default iss = sub = clientId, aud = audience, a fresh jti, 60 s. */
export async function clientAssertion(
  ledger: SecretLedger,
  signing: SigningKey,
  claims: { clientId: string; audience: string | string[]; lifetimeSeconds?: number; jti?: string },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', ...(signing.kid ? { kid: signing.kid } : {}) })
    .setIssuer(claims.clientId)
    .setSubject(claims.clientId)
    .setAudience(claims.audience)
    .setJti(claims.jti ?? randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.lifetimeSeconds ?? 60))
    .sign(signing.key);
  ledger.remember(assertion);
  return assertion;
}
