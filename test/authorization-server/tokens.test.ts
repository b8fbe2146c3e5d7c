/**
 * The token side of the authorization server end to end against a real server: introspection for
 * the gateway (JSON, phantom JWT, RFC 9701), token exchange for the MCP server, client credentials
 * for workloads, revocation and refresh-token rotation, and every rejection they promise. At the end,
 * the logs of every server started here are searched for each token, code, secret and assertion the
 * tests saw.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose';
import { parseConfig } from '../../src/shared/config/load.ts';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, Browser, basic, inbox, postForm, redeemCode, toolHeader } from '../helpers/oauth.ts';

const MCP = 'http://localhost:8000/mcp';
const STOCKS = 'http://localhost:8000/api/stocks';
const CUSTOMERS = 'http://localhost:8000/api/customers';
const REDIRECT = 'http://127.0.0.1/callback';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const GATEWAY = 'gatehouse-gateway';
const MCP_SERVER = 'gatehouse-mcp-server';
const WORKLOAD = 'example-workload';

// ---------------------------------------------------------------------------------------------
// What the log check at the end needs: every server started here and every secret value seen.

const servers: TestAuthorizationServer[] = [];
/** Tokens, codes, secrets and assertions: none may ever appear in a log line. */
const seen = new Set<string>();
/** One-time sign-in codes are six digits: they are searched as whole numbers only. */
const seenOneTimeCodes = new Set<string>();

function remember(...values: unknown[]): void {
  for (const value of values) if (typeof value === 'string' && value.length > 0) seen.add(value);
}

async function startServer(overrides: Record<string, unknown> = {}): Promise<TestAuthorizationServer> {
  const as = await startTestAuthorizationServer(overrides);
  servers.push(as);
  return as;
}

// ---------------------------------------------------------------------------------------------
// Client-side helpers.

/** The secret a pre-registered client's file reference generated at first start. */
function secretOf(as: TestAuthorizationServer, clientId: string): string {
  const secret = readFileSync(path.join(as.dataDir, `secrets/${clientId}.secret`), 'utf8').trim();
  remember(secret, basic(clientId, secret));
  return secret;
}

function basicAuth(clientId: string, secret: string): string {
  const header = basic(clientId, secret);
  remember(secret, header);
  return header;
}

async function register(issuer: string, metadata: Record<string, unknown> = {}) {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Token test agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
      ...metadata,
    }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  assert.equal(response.status, 201, JSON.stringify(body));
  remember(body.registration_access_token, body.client_secret);
  return String(body.client_id);
}

interface UserTokens {
  accessToken: string;
  refreshToken: string | undefined;
  json: Record<string, unknown>;
}

/** A user signs in (or reuses the browser's session) and the agent redeems the code. */
async function userToken(
  as: TestAuthorizationServer,
  options: { clientId: string; browser: Browser; email: string; scope: string },
): Promise<UserTokens> {
  const result = await authorize({
    issuer: as.issuer,
    clientId: options.clientId,
    redirectUri: REDIRECT,
    scope: options.scope,
    email: options.email,
    browser: options.browser,
  });
  for (const message of await inbox(as.issuer)) {
    for (const code of message.text.match(/\b\d{6}\b/g) ?? []) seenOneTimeCodes.add(code);
  }
  const code = result.callback.searchParams.get('code');
  assert.ok(code, `no code in ${result.callback.href}`);
  remember(code, result.verifier);
  const token = await redeemCode(as.issuer, {
    code,
    verifier: result.verifier,
    redirectUri: REDIRECT,
    clientId: options.clientId,
  });
  assert.equal(token.status, 200, token.text);
  remember(token.json.access_token, token.json.refresh_token, token.json.id_token);
  const refreshToken = token.json.refresh_token;
  return {
    accessToken: String(token.json.access_token),
    refreshToken: typeof refreshToken === 'string' ? refreshToken : undefined,
    json: token.json,
  };
}

function introspect(
  as: TestAuthorizationServer,
  token: string,
  authorization: string,
  accept?: string,
  extra: Record<string, string> = {},
) {
  return postForm(
    `${as.issuer}/introspect`,
    { token, ...extra },
    { authorization, ...(accept ? { accept } : {}) },
  );
}

/** Introspection by a client that authenticates with `none` (client_id in the body). */
function introspectAsPublicClient(as: TestAuthorizationServer, token: string, clientId: string) {
  return postForm(`${as.issuer}/introspect`, { token, client_id: clientId });
}

/** The form without the test's own `tool` field (it names the Gatehouse-Tool header). */
const withoutTool = ({ tool: _tool, ...fields }: Record<string, string | undefined>) => fields;

async function exchange(
  as: TestAuthorizationServer,
  fields: Record<string, string | undefined>,
  auth: string,
) {
  const response = await postForm(
    `${as.issuer}/token`,
    { grant_type: TOKEN_EXCHANGE, ...withoutTool(fields) },
    {
      authorization: auth,
      // As the MCP server names the tool a call is for (a `tool` field picks another).
      ...toolHeader(fields.audience ?? fields.resource, fields.tool),
    },
  );
  remember(response.json.access_token);
  return response;
}

function jwksOf(as: TestAuthorizationServer) {
  return createRemoteJWKSet(new URL(`${as.issuer}/jwks`));
}

/** Verifies an RFC 9068 access token signed by the authorization server for `audience`. */
async function verifyAccessToken(as: TestAuthorizationServer, jwt: string, audience: string) {
  const { payload, protectedHeader } = await jwtVerify(jwt, jwksOf(as), {
    issuer: as.issuer,
    audience,
    typ: 'at+jwt',
    algorithms: ['ES256'],
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  assert.equal(protectedHeader.alg, 'ES256');
  return payload;
}

async function workloadKey(as: TestAuthorizationServer) {
  const file = path.join(as.dataDir, 'secrets/example-workload.private-key.json');
  assert.equal(as.running.privateKeyFiles[WORKLOAD], file);
  const jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK;
  return { key: await importJWK(jwk, 'ES256'), kid: jwk.kid };
}

/** An RFC 7523 client assertion: iss = sub = client_id, aud = the issuer, a fresh jti, short-lived. */
async function clientAssertion(
  as: TestAuthorizationServer,
  clientId: string,
  signing: { key: CryptoKey | Uint8Array; kid: string | undefined },
  jti: string = randomUUID(),
) {
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', ...(signing.kid ? { kid: signing.kid } : {}) })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(as.issuer)
    .setJti(jti)
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(signing.key);
  remember(assertion);
  return assertion;
}

async function clientCredentials(
  as: TestAuthorizationServer,
  fields: Record<string, string | undefined>,
  headers: Record<string, string> = {},
) {
  const response = await postForm(
    `${as.issuer}/token`,
    { grant_type: 'client_credentials', ...fields },
    headers,
  );
  remember(response.json.access_token);
  return response;
}

function refresh(as: TestAuthorizationServer, clientId: string, refreshToken: string) {
  return postForm(`${as.issuer}/token`, {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: clientId,
  }).then((response) => {
    remember(response.json.access_token, response.json.refresh_token);
    return response;
  });
}

function revoke(as: TestAuthorizationServer, token: string, clientId: string, hint?: string) {
  return postForm(`${as.issuer}/revoke`, { token, client_id: clientId, token_type_hint: hint });
}

const unsignedJwt = (header: Record<string, unknown>, payload: Record<string, unknown>) =>
  `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.`;

const now = () => Math.floor(Date.now() / 1000);

after(async () => {
  for (const as of servers) await as.close();
});

// ---------------------------------------------------------------------------------------------
// One server with the default configuration serves most of the file.

let as: TestAuthorizationServer;
let agent: string;
let gateway: string;
let mcpServer: string;
let alice: UserTokens;
let bob: UserTokens;
const aliceBrowser = new Browser();
const bobBrowser = new Browser();

before(async () => {
  as = await startServer();
  agent = await register(as.issuer);
  gateway = basicAuth(GATEWAY, secretOf(as, GATEWAY));
  mcpServer = basicAuth(MCP_SERVER, secretOf(as, MCP_SERVER));
  alice = await userToken(as, {
    clientId: agent,
    browser: aliceBrowser,
    email: 'alice@example.com',
    scope: 'stocks:read',
  });
  bob = await userToken(as, {
    clientId: agent,
    browser: bobBrowser,
    email: 'bob@example.com',
    scope: 'stocks:read customers:read',
  });
});

describe('introspection (RFC 7662)', () => {
  test('the gateway learns subject, client, scope, audience, lifetime, user and client claims', async () => {
    const response = await introspect(as, alice.accessToken, gateway);
    assert.equal(response.status, 200, response.text);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const body = response.json;
    assert.equal(body.active, true);
    assert.equal(typeof body.sub, 'string');
    assert.ok(String(body.sub).length > 0);
    assert.equal(body.client_id, agent);
    assert.equal(body.scope, 'stocks:read');
    assert.equal(body.aud, MCP);
    assert.equal(body.email, 'alice@example.com');
    assert.equal(body.region, 'eu');
    assert.equal(body.client_type, 'ai-agent');
    assert.equal(body.client_assurance_level, 1, 'a dynamically registered client has the lowest assurance');
    assert.equal(typeof body.iat, 'number');
    assert.equal(typeof body.exp, 'number');
    assert.ok(Math.abs(Number(body.iat) - now()) < 60);
    const lifetime = Number(body.exp) - Number(body.iat);
    assert.ok(lifetime >= 899 && lifetime <= 900, `the MCP token lifetime is 900 s, not ${lifetime}`);
    assert.equal(Number(alice.json.expires_in), 900);
  });

  test("each user's attributes become claims: bob is in the us region", async () => {
    const body = (await introspect(as, bob.accessToken, gateway)).json;
    assert.equal(body.active, true);
    assert.equal(body.email, 'bob@example.com');
    assert.equal(body.region, 'us');
    assert.equal(body.scope, 'stocks:read customers:read');
    const aliceSub = (await introspect(as, alice.accessToken, gateway)).json.sub;
    assert.notEqual(body.sub, aliceSub);
  });

  test('the MCP server client is not the gateway: it learns nothing, and the refusal is audited', async () => {
    const before = as.audit('introspection').length;
    const response = await introspect(as, alice.accessToken, mcpServer);
    assert.equal(response.status, 200);
    assert.deepEqual(response.json, { active: false });
    const records = as.audit('introspection').slice(before);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.outcome, 'denied');
    assert.equal(records[0]!.client_id, MCP_SERVER);
  });

  test("the token's own client learns nothing either, and the refusal is audited", async () => {
    const before = as.audit('introspection').length;
    const response = await introspectAsPublicClient(as, alice.accessToken, agent);
    assert.equal(response.status, 200, response.text);
    assert.deepEqual(response.json, { active: false });
    const records = as.audit('introspection').slice(before);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.outcome, 'denied');
    assert.equal(records[0]!.client_id, agent);
    // The token itself is untouched: the gateway still sees it active.
    assert.equal((await introspect(as, alice.accessToken, gateway)).json.active, true);
  });

  test('an unknown token is inactive', async () => {
    const response = await introspect(as, 'no-such-token-0123456789abcdefghijklmnopq', gateway);
    assert.equal(response.status, 200);
    assert.deepEqual(response.json, { active: false });
  });

  test('a wrong gateway secret is invalid_client (401)', async () => {
    const response = await introspect(
      as,
      alice.accessToken,
      basicAuth(GATEWAY, `wrong-${randomUUID()}-secret`),
    );
    assert.equal(response.status, 401);
    assert.equal(response.json.error, 'invalid_client');
    assert.equal(response.json.active, undefined);
  });
});

describe('phantom token (introspection with Accept: application/jwt)', () => {
  test('an RFC 9068 JWT for the same token, signed by the authorization server', async () => {
    const json = (await introspect(as, alice.accessToken, gateway)).json;
    const response = await introspect(as, alice.accessToken, gateway, 'application/jwt');
    assert.equal(response.status, 200, response.text);
    assert.match(response.headers.get('content-type') ?? '', /^application\/jwt/);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    const jwt = response.text;
    remember(jwt);
    assert.equal(jwt.split('.').length, 3);
    const header = decodeProtectedHeader(jwt);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'ES256');
    assert.ok(header.kid);
    const payload = await verifyAccessToken(as, jwt, MCP);
    assert.equal(payload.iss, as.issuer);
    assert.equal(payload.aud, MCP);
    assert.equal(payload.sub, json.sub);
    assert.equal(payload.client_id, json.client_id);
    assert.equal(payload.client_id, agent);
    assert.equal(payload.scope, json.scope);
    assert.equal(payload.exp, json.exp);
    assert.equal(payload.region, 'eu');
    assert.equal(payload.email, 'alice@example.com');
    assert.equal(payload.client_type, 'ai-agent');
    assert.equal(payload.client_assurance_level, 1);
    assert.equal(typeof payload.jti, 'string');
    // Introspection response fields are not claims of the token.
    assert.equal(payload.active, undefined);
    assert.equal(payload.token_type, undefined);
  });

  test('an inactive token stays JSON {active: false}, never a JWT', async () => {
    const response = await introspect(
      as,
      'no-such-token-0123456789abcdefghijklmnopq',
      gateway,
      'application/jwt',
    );
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(response.json, { active: false });
  });

  test('a client that is not the gateway gets {active: false} as JSON with Accept: application/jwt too', async () => {
    const response = await introspect(as, alice.accessToken, mcpServer, 'application/jwt');
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(response.json, { active: false });
  });

  test('Accept: application/token-introspection+jwt gets an RFC 9701 signed response', async () => {
    const response = await introspect(as, alice.accessToken, gateway, 'application/token-introspection+jwt');
    assert.equal(response.status, 200, response.text);
    assert.match(response.headers.get('content-type') ?? '', /^application\/token-introspection\+jwt/);
    remember(response.text);
  });
});

describe('token exchange (RFC 8693)', () => {
  const exchangeFor = (subject: string, fields: Record<string, string | undefined> = {}) =>
    exchange(
      as,
      {
        subject_token: subject,
        subject_token_type: ACCESS_TOKEN_TYPE,
        audience: STOCKS,
        ...fields,
      },
      mcpServer,
    );

  async function expectError(
    response: Awaited<ReturnType<typeof exchange>>,
    error: string,
    status = 400,
  ): Promise<void> {
    assert.equal(response.status, status, response.text);
    assert.equal(response.json.error, error, response.text);
    assert.equal(response.json.access_token, undefined);
  }

  test('an opaque agent token becomes a JWT for the stocks API with mapped scopes and an act claim', async () => {
    const subject = (await introspect(as, alice.accessToken, gateway)).json;
    const response = await exchangeFor(alice.accessToken);
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.issued_token_type, ACCESS_TOKEN_TYPE);
    assert.equal(response.json.token_type, 'Bearer');
    assert.equal(response.json.scope, 'stocks.read');
    assert.equal(response.json.refresh_token, undefined);
    const jwt = String(response.json.access_token);
    const header = decodeProtectedHeader(jwt);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'ES256');
    const payload = await verifyAccessToken(as, jwt, STOCKS);
    assert.equal(payload.iss, as.issuer);
    assert.equal(payload.aud, STOCKS);
    assert.equal(payload.sub, subject.sub);
    assert.equal(payload.client_id, agent, "client_id stays the agent's");
    assert.equal(payload.scope, 'stocks.read');
    assert.deepEqual(payload.act, { sub: MCP_SERVER });
    assert.equal(payload.region, 'eu');
    assert.equal(payload.email, 'alice@example.com');
    assert.equal(payload.client_type, 'ai-agent');
    assert.equal(payload.client_assurance_level, 1);
    assert.ok(Number(payload.exp) <= Number(subject.exp), 'never outlives the subject token');
    assert.ok(Number(payload.exp) - Number(payload.iat) <= 300, 'the stocks API token lifetime');
    assert.ok(Number(response.json.expires_in) <= 300);
    assert.ok(Math.abs(Number(payload.iat) + Number(response.json.expires_in) - Number(payload.exp)) <= 1);
  });

  test('the phantom JWT the gateway forwards works as a subject token (token type jwt)', async () => {
    const phantom = (await introspect(as, bob.accessToken, gateway, 'application/jwt')).text;
    remember(phantom);
    const phantomClaims = await verifyAccessToken(as, phantom, MCP);
    const response = await exchange(
      as,
      { subject_token: phantom, subject_token_type: JWT_TOKEN_TYPE, audience: CUSTOMERS },
      mcpServer,
    );
    assert.equal(response.status, 200, response.text);
    const payload = await verifyAccessToken(as, String(response.json.access_token), CUSTOMERS);
    assert.equal(payload.sub, phantomClaims.sub);
    assert.equal(payload.client_id, agent);
    assert.equal(payload.scope, 'customers.read');
    assert.equal(payload.region, 'us');
    assert.deepEqual(payload.act, { sub: MCP_SERVER });
    assert.ok(Number(payload.exp) <= Number(phantomClaims.exp));
  });

  test('the phantom JWT is also accepted with subject_token_type access_token', async () => {
    const phantom = (await introspect(as, alice.accessToken, gateway, 'application/jwt')).text;
    remember(phantom);
    const response = await exchangeFor(phantom);
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.scope, 'stocks.read');
  });

  test('resource= names the target as well as audience=', async () => {
    const response = await exchangeFor(alice.accessToken, { audience: undefined, resource: STOCKS });
    assert.equal(response.status, 200, response.text);
    const payload = await verifyAccessToken(as, String(response.json.access_token), STOCKS);
    assert.equal(payload.aud, STOCKS);
  });

  test('an explicit scope within the mapping is granted as asked', async () => {
    const response = await exchangeFor(bob.accessToken, { scope: 'stocks.read' });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.scope, 'stocks.read');
  });

  test('a scope wider than the subject token is invalid_scope', async () => {
    const before = as.audit('token.exchange').filter((r) => r.outcome === 'denied').length;
    await expectError(await exchangeFor(alice.accessToken, { scope: 'stocks.trade' }), 'invalid_scope');
    await expectError(
      await exchangeFor(alice.accessToken, { scope: 'stocks.read stocks.trade' }),
      'invalid_scope',
    );
    const denied = as.audit('token.exchange').filter((r) => r.outcome === 'denied');
    assert.equal(denied.length, before + 2);
    assert.equal(denied.at(-1)!.actor, MCP_SERVER);
    assert.equal(denied.at(-1)!.audience, STOCKS);
  });

  test('an audience that is not configured is invalid_target', async () => {
    await expectError(
      await exchangeFor(alice.accessToken, { audience: 'http://localhost:8000/api/unknown' }),
      'invalid_target',
    );
    // The MCP server itself is not an exchange target either.
    await expectError(await exchangeFor(alice.accessToken, { audience: MCP }), 'invalid_target');
    // Nor is a missing target.
    await expectError(await exchangeFor(alice.accessToken, { audience: undefined }), 'invalid_target');
  });

  test('a subject whose scopes map to nothing for the API is invalid_scope', async () => {
    await expectError(await exchangeFor(alice.accessToken, { audience: CUSTOMERS }), 'invalid_scope');
  });

  test('the gateway client may not exchange: unauthorized_client', async () => {
    const response = await exchange(
      as,
      { subject_token: alice.accessToken, subject_token_type: ACCESS_TOKEN_TYPE, audience: STOCKS },
      gateway,
    );
    // The gateway is not allowed the grant type at all: RFC 6749 §5.2 unauthorized_client.
    await expectError(response, 'unauthorized_client');
    const denied = as.audit('token.issued').at(-1)!;
    assert.equal(denied.outcome, 'failure');
    assert.equal(denied.client_id, GATEWAY);
    assert.equal(denied.grant_type, TOKEN_EXCHANGE);
  });

  test('the agent itself may not exchange its own token', async () => {
    const response = await postForm(`${as.issuer}/token`, {
      grant_type: TOKEN_EXCHANGE,
      client_id: agent,
      subject_token: alice.accessToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: STOCKS,
    });
    await expectError(response, 'unauthorized_client');
  });

  test('a missing subject_token is invalid_request', async () => {
    await expectError(await exchangeFor(''), 'invalid_request');
    await expectError(
      await exchange(as, { subject_token_type: ACCESS_TOKEN_TYPE, audience: STOCKS }, mcpServer),
      'invalid_request',
    );
  });

  test('a bad or missing subject_token_type is invalid_request', async () => {
    await expectError(
      await exchangeFor(alice.accessToken, {
        subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      }),
      'invalid_request',
    );
    await expectError(
      await exchangeFor(alice.accessToken, { subject_token_type: undefined }),
      'invalid_request',
    );
  });

  test('a garbage subject token is invalid_grant', async () => {
    await expectError(await exchangeFor('not-a-token-at-all'), 'invalid_grant');
    await expectError(await exchangeFor('a.b.c', { subject_token_type: JWT_TOKEN_TYPE }), 'invalid_grant');
  });

  test('a JWT subject signed by another key is invalid_grant, even with the server key id', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const serverKid = decodeProtectedHeader(
      (await introspect(as, alice.accessToken, gateway, 'application/jwt')).text,
    ).kid;
    const claims = (await introspect(as, alice.accessToken, gateway)).json as JWTPayload;
    const forged = await new SignJWT({ ...claims, active: undefined, iss: undefined })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: serverKid })
      .setIssuer(as.issuer)
      .setAudience(MCP)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    remember(forged);
    await expectError(await exchangeFor(forged, { subject_token_type: JWT_TOKEN_TYPE }), 'invalid_grant');
  });

  test('an unsigned (alg none) JWT subject is invalid_grant', async () => {
    const claims = (await introspect(as, alice.accessToken, gateway)).json;
    const forged = unsignedJwt(
      { alg: 'none', typ: 'at+jwt' },
      {
        iss: as.issuer,
        aud: MCP,
        sub: claims.sub,
        client_id: agent,
        scope: 'stocks:read stocks:trade',
        exp: now() + 300,
        iat: now(),
      },
    );
    await expectError(await exchangeFor(forged, { subject_token_type: JWT_TOKEN_TYPE }), 'invalid_grant');
  });

  test('a JWT signed by the server for another audience is invalid_grant', async () => {
    // The RFC 9701 introspection response is signed by the server, for the gateway.
    const signedResponse = (
      await introspect(as, alice.accessToken, gateway, 'application/token-introspection+jwt')
    ).text;
    remember(signedResponse);
    await expectError(
      await exchangeFor(signedResponse, { subject_token_type: JWT_TOKEN_TYPE }),
      'invalid_grant',
    );
  });

  test('an API token (exchanged JWT) is not a subject token: wrong audience, invalid_grant', async () => {
    const first = await exchangeFor(bob.accessToken);
    assert.equal(first.status, 200, first.text);
    const apiToken = String(first.json.access_token);
    await expectError(await exchangeFor(apiToken, { subject_token_type: JWT_TOKEN_TYPE }), 'invalid_grant');
    await expectError(
      await exchangeFor(apiToken, { subject_token_type: JWT_TOKEN_TYPE, audience: CUSTOMERS }),
      'invalid_grant',
    );
  });

  test('a revoked subject token is invalid_grant', async () => {
    // A client of its own: revoking an access token revokes every access token of its grant.
    const token = await userToken(as, {
      clientId: await register(as.issuer, { client_name: 'Revoking agent' }),
      browser: aliceBrowser,
      email: 'alice@example.com',
      scope: 'stocks:read',
    });
    assert.equal((await exchangeFor(token.accessToken)).status, 200);
    const revoked = await revoke(
      as,
      token.accessToken,
      String((await introspect(as, token.accessToken, gateway)).json.client_id),
    );
    assert.equal(revoked.status, 200, revoked.text);
    assert.deepEqual((await introspect(as, token.accessToken, gateway)).json, { active: false });
    await expectError(await exchangeFor(token.accessToken), 'invalid_grant');
  });

  test('the exchanges are audited with actor, subject and audience', () => {
    const records = as.audit('token.exchange');
    const success = records.find((r) => r.outcome === 'success' && r.audience === STOCKS);
    assert.ok(success, 'a successful exchange is audited');
    assert.equal(success.actor, MCP_SERVER);
    assert.equal(success.client_id, agent);
    assert.equal(typeof success.sub, 'string');
    assert.ok(records.some((r) => r.outcome === 'denied'));
  });
});

describe('token exchange never outlives a short-lived subject token', () => {
  let short: TestAuthorizationServer;
  before(async () => {
    short = await startServer({ resources: { mcp: { accessTokenTtlSeconds: 60 } } });
  });

  test('a 60-second MCP token exchanges into a token that expires with it, not 300 s later', async () => {
    const clientId = await register(short.issuer);
    const token = await userToken(short, {
      clientId,
      browser: new Browser(),
      email: 'alice@example.com',
      scope: 'stocks:read',
    });
    assert.ok(Number(token.json.expires_in) <= 60);
    const subject = (await introspect(short, token.accessToken, basicAuth(GATEWAY, secretOf(short, GATEWAY))))
      .json;
    assert.ok(Number(subject.exp) - Number(subject.iat) <= 60);
    const response = await exchange(
      short,
      { subject_token: token.accessToken, subject_token_type: ACCESS_TOKEN_TYPE, audience: STOCKS },
      basicAuth(MCP_SERVER, secretOf(short, MCP_SERVER)),
    );
    assert.equal(response.status, 200, response.text);
    const payload = await verifyAccessToken(short, String(response.json.access_token), STOCKS);
    assert.ok(Number(payload.exp) <= Number(subject.exp), `${payload.exp} > subject ${subject.exp}`);
    assert.ok(Number(payload.exp) - Number(payload.iat) <= 60, 'capped well below the API TTL of 300');
    assert.ok(Number(response.json.expires_in) <= 60);
  });
});

describe('client credentials for workloads', () => {
  test('example-workload with private_key_jwt gets an opaque token for the MCP server', async () => {
    const signing = await workloadKey(as);
    const response = await clientCredentials(as, {
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(as, WORKLOAD, signing),
      scope: 'stocks:read',
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.token_type, 'Bearer');
    assert.equal(response.json.scope, 'stocks:read');
    assert.equal(response.json.refresh_token, undefined);
    const token = String(response.json.access_token);
    assert.equal(token.split('.').length, 1, 'opaque, not a JWT');

    const body = (await introspect(as, token, gateway)).json;
    assert.equal(body.active, true);
    assert.equal(body.client_id, WORKLOAD);
    assert.equal(body.sub, WORKLOAD, 'a workload token is about the workload itself');
    assert.equal(body.aud, MCP);
    assert.equal(body.scope, 'stocks:read');
    assert.equal(body.client_type, 'workload');
    assert.equal(body.client_assurance_level, 4);
    assert.equal(body.email, undefined);
    assert.equal(body.region, undefined);

    // Its phantom token carries the same classification, with sub = the client.
    const phantom = (await introspect(as, token, gateway, 'application/jwt')).text;
    remember(phantom);
    const claims = await verifyAccessToken(as, phantom, MCP);
    assert.equal(claims.sub, WORKLOAD);
    assert.equal(claims.client_type, 'workload');
    assert.equal(claims.client_assurance_level, 4);

    const audited = as
      .audit('token.issued')
      .find(
        (r) => r.outcome === 'success' && r.grant_type === 'client_credentials' && r.client_id === WORKLOAD,
      );
    assert.ok(audited, 'client credentials issuance is audited');
  });

  test('a scope the workload is not allowed is invalid_scope', async () => {
    const response = await clientCredentials(as, {
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(as, WORKLOAD, await workloadKey(as)),
      scope: 'stocks:trade',
    });
    assert.equal(response.status, 400, response.text);
    assert.equal(response.json.error, 'invalid_scope');
  });

  test('an assertion signed by another key is invalid_client', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const { kid } = await workloadKey(as);
    const response = await clientCredentials(as, {
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(as, WORKLOAD, { key: privateKey, kid }),
      scope: 'stocks:read',
    });
    assert.equal(response.status, 401, response.text);
    assert.equal(response.json.error, 'invalid_client');
  });

  test('a replayed assertion (same jti) is refused', async () => {
    const assertion = await clientAssertion(as, WORKLOAD, await workloadKey(as));
    const fields = { client_assertion_type: JWT_BEARER, client_assertion: assertion, scope: 'stocks:read' };
    const first = await clientCredentials(as, fields);
    assert.equal(first.status, 200, first.text);
    const replay = await clientCredentials(as, fields);
    assert.equal(replay.status, 401, replay.text);
    assert.equal(replay.json.error, 'invalid_client');
    assert.equal(replay.json.access_token, undefined);
  });

  test('the same jti in a freshly signed assertion is refused too', async () => {
    const signing = await workloadKey(as);
    const jti = randomUUID();
    const fields = async () => ({
      client_assertion_type: JWT_BEARER,
      client_assertion: await clientAssertion(as, WORKLOAD, signing, jti),
      scope: 'stocks:read',
    });
    assert.equal((await clientCredentials(as, await fields())).status, 200);
    const replay = await clientCredentials(as, await fields());
    assert.equal(replay.status, 401, replay.text);
    assert.equal(replay.json.error, 'invalid_client');
  });

  test('a workload without an assertion is invalid_client', async () => {
    const response = await clientCredentials(as, { client_id: WORKLOAD, scope: 'stocks:read' });
    assert.equal(response.status, 401, response.text);
    assert.equal(response.json.error, 'invalid_client');
  });

  test('an agent registered by DCR may not use client credentials', async () => {
    const response = await clientCredentials(as, { client_id: agent, scope: 'stocks:read' });
    assert.equal(response.status, 400, response.text);
    // RFC 6749 §5.2: a grant type the client may not use is unauthorized_client.
    assert.equal(response.json.error, 'unauthorized_client');
    assert.equal(response.json.access_token, undefined);
  });

  describe('a workload with client_secret_basic', () => {
    const BATCH_SECRET = 'batch-job-secret-0123456789abcdefghijklm';
    let batch: TestAuthorizationServer;
    before(async () => {
      assert.equal(BATCH_SECRET.length, 40);
      remember(BATCH_SECRET, basic('batch-job', BATCH_SECRET));
      batch = await startServer({
        clients: [
          // The override replaces the list, so the default clients come first.
          ...parseConfig({}).authorizationServer.clients,
          {
            clientId: 'batch-job',
            name: 'Batch',
            role: 'workload',
            authMethod: 'client_secret_basic',
            secret: BATCH_SECRET,
            scopes: ['customers:read'],
          },
        ],
      });
    });

    test('gets an opaque token for the MCP server that the gateway sees as a workload', async () => {
      const response = await clientCredentials(
        batch,
        { scope: 'customers:read' },
        { authorization: basic('batch-job', BATCH_SECRET) },
      );
      assert.equal(response.status, 200, response.text);
      assert.equal(response.json.scope, 'customers:read');
      const token = String(response.json.access_token);
      assert.equal(token.split('.').length, 1);
      const body = (await introspect(batch, token, basicAuth(GATEWAY, secretOf(batch, GATEWAY)))).json;
      assert.equal(body.active, true);
      assert.equal(body.client_id, 'batch-job');
      assert.equal(body.aud, MCP);
      assert.equal(body.client_type, 'workload');
      assert.equal(body.client_assurance_level, 4);
    });

    test('a wrong secret is invalid_client, a scope outside its list invalid_scope', async () => {
      const wrong = await clientCredentials(
        batch,
        { scope: 'customers:read' },
        { authorization: basicAuth('batch-job', `x${BATCH_SECRET.slice(1)}`) },
      );
      assert.equal(wrong.status, 401);
      assert.equal(wrong.json.error, 'invalid_client');
      const wider = await clientCredentials(
        batch,
        { scope: 'stocks:read' },
        { authorization: basic('batch-job', BATCH_SECRET) },
      );
      assert.equal(wider.status, 400, wider.text);
      assert.equal(wider.json.error, 'invalid_scope');
    });

    test('the workload token exchanges into an API token acting for the workload', async () => {
      const issued = await clientCredentials(
        batch,
        { scope: 'customers:read' },
        { authorization: basic('batch-job', BATCH_SECRET) },
      );
      const response = await exchange(
        batch,
        {
          subject_token: String(issued.json.access_token),
          subject_token_type: ACCESS_TOKEN_TYPE,
          audience: CUSTOMERS,
        },
        basicAuth(MCP_SERVER, secretOf(batch, MCP_SERVER)),
      );
      assert.equal(response.status, 200, response.text);
      const payload = await verifyAccessToken(batch, String(response.json.access_token), CUSTOMERS);
      assert.equal(payload.sub, 'batch-job');
      assert.equal(payload.client_id, 'batch-job');
      assert.equal(payload.scope, 'customers.read');
      assert.equal(payload.client_type, 'workload');
      assert.deepEqual(payload.act, { sub: MCP_SERVER });
    });
  });
});

describe('revocation (RFC 7009)', () => {
  test('a client revoking its own access token: 200, then the token is inactive', async () => {
    const token = await userToken(as, {
      clientId: agent,
      browser: bobBrowser,
      email: 'bob@example.com',
      scope: 'stocks:read',
    });
    assert.equal((await introspect(as, token.accessToken, gateway)).json.active, true);
    const response = await revoke(as, token.accessToken, agent, 'access_token');
    assert.equal(response.status, 200, response.text);
    assert.deepEqual((await introspect(as, token.accessToken, gateway)).json, { active: false });
    // Revoking again, or an unknown token, is still 200 (RFC 7009 §2.2).
    assert.equal((await revoke(as, token.accessToken, agent)).status, 200);
    assert.equal((await revoke(as, 'no-such-token-0123456789abcdefghijklmnopq', agent)).status, 200);
    const audited = as
      .audit('token.revoked')
      .find((r) => r.outcome === 'success' && r.kind === 'access_token' && r.client_id === agent);
    assert.ok(audited, 'revocation is audited');
  });

  test("another client cannot revoke an agent's token", async () => {
    const owner = await register(as.issuer, { client_name: 'Owner agent' });
    const token = await userToken(as, {
      clientId: owner,
      browser: aliceBrowser,
      email: 'alice@example.com',
      scope: 'stocks:read',
    });
    // A public client: RFC 7009 §2.1 lets the server answer 200 and do nothing.
    const other = await register(as.issuer, { client_name: 'Another agent' });
    const byPublic = await revoke(as, token.accessToken, other);
    assert.equal(byPublic.status, 200, byPublic.text);
    assert.equal((await introspect(as, token.accessToken, gateway)).json.active, true);
    // An authenticated client is told it may not.
    const byConfidential = await postForm(
      `${as.issuer}/revoke`,
      { token: token.accessToken },
      { authorization: mcpServer },
    );
    assert.equal(byConfidential.status, 400, byConfidential.text);
    assert.equal(byConfidential.json.error, 'invalid_request');
    assert.equal((await introspect(as, token.accessToken, gateway)).json.active, true);
  });

  test('a wrong client secret on revocation is invalid_client', async () => {
    const response = await postForm(
      `${as.issuer}/revoke`,
      { token: alice.accessToken },
      { authorization: basicAuth(MCP_SERVER, `wrong-${randomUUID()}-secret`) },
    );
    assert.equal(response.status, 401);
    assert.equal(response.json.error, 'invalid_client');
  });
});

describe('refresh tokens (rotation with reuse detection)', () => {
  const refreshPolicy = (reuseGraceSeconds: number) => ({
    // The suite's agents are public clients, which get refresh tokens only when allowed.
    refreshTokens: { reuseGraceSeconds, clients: { publicClients: true } },
  });

  async function setUp(server: TestAuthorizationServer) {
    const clientId = await register(server.issuer, { grant_types: ['authorization_code', 'refresh_token'] });
    const token = await userToken(server, {
      clientId,
      browser: new Browser(),
      email: 'alice@example.com',
      scope: 'stocks:read',
    });
    return { clientId, token, gateway: basicAuth(GATEWAY, secretOf(server, GATEWAY)) };
  }

  test('no refresh token by default, even when the client asks for the grant', async () => {
    const clientId = await register(as.issuer, {
      client_name: 'Wants refresh',
      grant_types: ['authorization_code', 'refresh_token'],
    });
    const token = await userToken(as, {
      clientId,
      browser: aliceBrowser,
      email: 'alice@example.com',
      scope: 'stocks:read',
    });
    assert.equal(token.refreshToken, undefined);
  });

  describe('without a grace window', () => {
    let strict: TestAuthorizationServer;
    before(async () => {
      strict = await startServer(refreshPolicy(0));
    });

    test('a refresh token is issued and rotated; reusing a consumed one revokes the grant', async () => {
      const { clientId, token, gateway: gw } = await setUp(strict);
      assert.ok(token.refreshToken, 'a refresh token is issued when policy allows');
      const first = await refresh(strict, clientId, token.refreshToken);
      assert.equal(first.status, 200, first.text);
      const rotated = String(first.json.refresh_token);
      assert.ok(rotated);
      assert.notEqual(rotated, token.refreshToken, 'the refresh token rotates');
      const newest = String(first.json.access_token);
      assert.notEqual(newest, token.accessToken);
      assert.equal((await introspect(strict, newest, gw)).json.active, true);
      assert.equal((await introspect(strict, newest, gw)).json.scope, 'stocks:read');

      const reused = await refresh(strict, clientId, token.refreshToken);
      assert.equal(reused.status, 400, reused.text);
      assert.equal(reused.json.error, 'invalid_grant');
      assert.equal(reused.json.access_token, undefined);

      // Reuse means theft: the whole grant is gone.
      assert.deepEqual((await introspect(strict, newest, gw)).json, { active: false });
      assert.deepEqual((await introspect(strict, token.accessToken, gw)).json, { active: false });
      const again = await refresh(strict, clientId, rotated);
      assert.equal(again.status, 400, again.text);
      assert.equal(again.json.error, 'invalid_grant');
    });
  });

  describe('with a 1-second grace window', () => {
    let brief: TestAuthorizationServer;
    before(async () => {
      brief = await startServer(refreshPolicy(1));
    });

    test('the window counts from the first use: a reuse after it revokes the family (defect 8)', async () => {
      const { clientId, token, gateway: gw } = await setUp(brief);
      assert.ok(token.refreshToken);
      const first = await refresh(brief, clientId, token.refreshToken);
      assert.equal(first.status, 200, first.text);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const late = await refresh(brief, clientId, token.refreshToken);
      assert.equal(late.status, 400, late.text);
      assert.equal(late.json.error, 'invalid_grant');
      assert.deepEqual((await introspect(brief, String(first.json.access_token), gw)).json, {
        active: false,
      });
    });
  });

  describe('with a 10-second grace window', () => {
    let lenient: TestAuthorizationServer;
    before(async () => {
      lenient = await startServer(refreshPolicy(10));
    });

    test('two concurrent refreshes with the same token both succeed and the grant survives', async () => {
      const { clientId, token, gateway: gw } = await setUp(lenient);
      assert.ok(token.refreshToken);
      const [one, two] = await Promise.all([
        refresh(lenient, clientId, token.refreshToken),
        refresh(lenient, clientId, token.refreshToken),
      ]);
      assert.equal(one.status, 200, one.text);
      assert.equal(two.status, 200, two.text);
      for (const response of [one, two]) {
        assert.notEqual(response.json.refresh_token, token.refreshToken);
        assert.equal((await introspect(lenient, String(response.json.access_token), gw)).json.active, true);
      }
      // The newest refresh tokens keep working.
      const next = await refresh(lenient, clientId, String(two.json.refresh_token));
      assert.equal(next.status, 200, next.text);
    });

    test('five concurrent refreshes with one token: two pass, the rest are reuse and revoke the family, announced', async () => {
      const { clientId, token, gateway: gw } = await setUp(lenient);
      assert.ok(token.refreshToken);
      const revokedBefore = lenient.audit('grant.revoked').length;
      const responses = await Promise.all(
        Array.from({ length: 5 }, () => refresh(lenient, clientId, String(token.refreshToken))),
      );
      const passed = responses.filter((response) => response.status === 200);
      assert.equal(passed.length, 2, JSON.stringify(responses.map((response) => response.status)));
      for (const response of responses.filter((r) => r.status !== 200)) {
        assert.equal(response.status, 400, response.text);
        assert.equal(response.json.error, 'invalid_grant');
      }
      for (const issued of passed)
        assert.deepEqual((await introspect(lenient, String(issued.json.access_token), gw)).json, {
          active: false,
        });
      assert.ok(lenient.audit('grant.revoked').length > revokedBefore, 'the revocation is an event');
    });

    test('a rotated token works once more inside the window, and a third use revokes the family (defect 8)', async () => {
      const { clientId, token, gateway: gw } = await setUp(lenient);
      assert.ok(token.refreshToken);
      const first = await refresh(lenient, clientId, token.refreshToken);
      assert.equal(first.status, 200, first.text);
      const grace = await refresh(lenient, clientId, token.refreshToken);
      assert.equal(grace.status, 200, 'one more use inside the window');
      const third = await refresh(lenient, clientId, token.refreshToken);
      assert.equal(third.status, 400, third.text);
      assert.equal(third.json.error, 'invalid_grant');
      assert.equal(third.json.access_token, undefined);
      // Reuse past the one grace use is theft: every token of the grant is gone.
      for (const issued of [first, grace]) {
        assert.deepEqual((await introspect(lenient, String(issued.json.access_token), gw)).json, {
          active: false,
        });
        const later = await refresh(lenient, clientId, String(issued.json.refresh_token));
        assert.equal(later.status, 400, later.text);
      }
    });

    test("revoking a refresh token revokes the grant's access tokens", async () => {
      const { clientId, token, gateway: gw } = await setUp(lenient);
      assert.ok(token.refreshToken);
      const refreshed = await refresh(lenient, clientId, token.refreshToken);
      assert.equal(refreshed.status, 200, refreshed.text);
      const latest = String(refreshed.json.refresh_token);
      const accessTokens = [token.accessToken, String(refreshed.json.access_token)];
      for (const accessToken of accessTokens) {
        assert.equal((await introspect(lenient, accessToken, gw)).json.active, true);
      }
      const response = await revoke(lenient, latest, clientId, 'refresh_token');
      assert.equal(response.status, 200, response.text);
      for (const accessToken of accessTokens) {
        assert.deepEqual((await introspect(lenient, accessToken, gw)).json, { active: false });
      }
      const after = await refresh(lenient, clientId, latest);
      assert.equal(after.status, 400);
      assert.equal(after.json.error, 'invalid_grant');
      assert.ok(lenient.audit('grant.revoked').length > 0);
    });
  });
});

describe('logs', () => {
  test('no token, code, secret or assertion seen by this file appears in any log line', () => {
    assert.ok(seen.size > 30, `only ${seen.size} values collected`);
    assert.ok(seenOneTimeCodes.size > 0);
    const lines = servers.flatMap((server) => server.logs);
    assert.ok(lines.length > 20);
    for (const line of lines) {
      for (const value of seen) {
        assert.ok(!line.includes(value), `a secret value appears in a log line: ${line.slice(0, 200)}`);
      }
      for (const code of seenOneTimeCodes) {
        assert.ok(
          !new RegExp(`(^|\\D)${code}(\\D|$)`).test(line),
          `a one-time code appears in a log line: ${line.slice(0, 200)}`,
        );
      }
    }
  });

  test('token issuance and exchange are audited, successes and refusals alike', () => {
    const issued = as.audit('token.issued');
    assert.ok(
      issued.some(
        (r) => r.outcome === 'success' && r.grant_type === 'authorization_code' && r.client_id === agent,
      ),
    );
    assert.ok(issued.some((r) => r.outcome === 'success' && r.grant_type === 'client_credentials'));
    const exchanges = as.audit('token.exchange');
    assert.ok(exchanges.some((r) => r.outcome === 'success'));
    assert.ok(exchanges.some((r) => r.outcome === 'denied'));
    for (const record of [...issued, ...exchanges]) {
      assert.ok(['success', 'failure', 'denied'].includes(String(record.outcome)));
    }
  });
});
