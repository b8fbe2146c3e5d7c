/**
 * Who gets refresh tokens (`refreshTokens` in the configuration, tokens/refresh-token-policy.ts),
 * against a real authorization server: by default confidential clients that authenticate at the
 * token endpoint (self-registered and pre-registered), never a public one; the registration response
 * and the server's metadata say exactly what can be had (RFC 7591 §3.2.1, RFC 8414 §2); every token
 * of a sign-in ends at the absolute lifetime, however often it rotates; `offline_access` is neither
 * advertised nor needed (MCP SEP-2207).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, basic, postForm, redeemCode } from '../helpers/oauth.ts';

const REDIRECT = 'https://chat.example.com/api/mcp/gatehouse/oauth/callback';
const PRE_REGISTERED = {
  clientId: 'librechat',
  name: 'LibreChat',
  role: 'agent',
  authMethod: 'client_secret_basic',
  secret: 'a-literal-secret-of-at-least-32-characters',
  redirectUris: [REDIRECT],
};

const servers: TestAuthorizationServer[] = [];
after(async () => {
  for (const server of servers) await server.close();
});

async function start(refreshTokens: Record<string, unknown> = {}) {
  const as = await startTestAuthorizationServer({ refreshTokens, clients: [PRE_REGISTERED] });
  servers.push(as);
  return as;
}

async function metadataOf(as: TestAuthorizationServer) {
  return (await (await fetch(`${as.issuer}/.well-known/oauth-authorization-server`)).json()) as {
    grant_types_supported: string[];
    scopes_supported: string[];
  };
}

/** A DCR registration asking for refresh tokens; confidential unless `authMethod` is `none`. */
async function register(as: TestAuthorizationServer, authMethod = 'client_secret_basic') {
  const response = await fetch(`${as.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Policy test',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: authMethod,
    }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  assert.equal(response.status, 201, JSON.stringify(body));
  return {
    clientId: String(body.client_id),
    secret: typeof body.client_secret === 'string' ? body.client_secret : undefined,
    grantTypes: body.grant_types as string[],
  };
}

/** Signs in and redeems the code, authenticating with Basic when the client has a secret. */
async function tokensFor(
  as: TestAuthorizationServer,
  client: { clientId: string; secret: string | undefined },
  scope = 'stocks:read',
) {
  const result = await authorize({
    issuer: as.issuer,
    clientId: client.clientId,
    redirectUri: REDIRECT,
    scope,
    email: 'alice@example.com',
  });
  const code = result.callback.searchParams.get('code');
  assert.ok(code, result.callback.href);
  const token = await redeemCode(
    as.issuer,
    { code, verifier: result.verifier, redirectUri: REDIRECT, clientId: client.clientId },
    client.secret ? { authorization: basic(client.clientId, client.secret) } : {},
  );
  assert.equal(token.status, 200, token.text);
  return token.json;
}

function refresh(as: TestAuthorizationServer, client: { clientId: string; secret: string }, token: unknown) {
  return postForm(
    `${as.issuer}/token`,
    { grant_type: 'refresh_token', refresh_token: String(token) },
    { authorization: basic(client.clientId, client.secret) },
  );
}

describe('refresh tokens under the default policy', () => {
  test('a confidential self-registered client keeps the grant and gets refresh tokens', async () => {
    const as = await start();
    assert.ok((await metadataOf(as)).grant_types_supported.includes('refresh_token'));
    const client = await register(as);
    assert.deepEqual(client.grantTypes, ['authorization_code', 'refresh_token']);
    const tokens = await tokensFor(as, client);
    assert.equal(typeof tokens.refresh_token, 'string');
    const next = await refresh(
      as,
      { clientId: client.clientId, secret: client.secret! },
      tokens.refresh_token,
    );
    assert.equal(next.status, 200, next.text);
    assert.notEqual(next.json.refresh_token, tokens.refresh_token, 'rotated');
  });

  test('a public self-registered client is told it has no refresh_token grant and gets none', async () => {
    const as = await start();
    const client = await register(as, 'none');
    assert.deepEqual(client.grantTypes, ['authorization_code'], 'the response says what it was given');
    const tokens = await tokensFor(as, client);
    assert.equal(tokens.refresh_token, undefined);
  });

  test('a pre-registered confidential agent gets refresh tokens', async () => {
    const as = await start();
    const tokens = await tokensFor(as, { clientId: PRE_REGISTERED.clientId, secret: PRE_REGISTERED.secret });
    assert.equal(typeof tokens.refresh_token, 'string');
  });

  test('offline_access is not advertised, and asking for it changes nothing (SEP-2207)', async () => {
    const as = await start();
    assert.ok(!(await metadataOf(as)).scopes_supported.includes('offline_access'));
    const client = await register(as);
    const tokens = await tokensFor(as, client, 'stocks:read offline_access');
    assert.equal(typeof tokens.refresh_token, 'string');
    assert.equal(tokens.scope, 'stocks:read', 'no offline_access in what was granted');
  });
});

describe("a refresh request's scope", () => {
  test('wider than the grant: narrowed to it (RFC 6749 §3.3), never widened; none of it held: invalid_scope', async () => {
    const as = await start();
    const client = await register(as);
    const secretClient = { clientId: client.clientId, secret: client.secret! };
    const tokens = await tokensFor(as, client, 'stocks:read');
    const wide = await postForm(
      `${as.issuer}/token`,
      {
        grant_type: 'refresh_token',
        refresh_token: String(tokens.refresh_token),
        scope: 'openid stocks:read stocks:trade customers:read',
      },
      { authorization: basic(secretClient.clientId, secretClient.secret) },
    );
    assert.equal(wide.status, 200, wide.text);
    assert.equal(wide.json.scope, 'stocks:read');
    assert.equal(wide.json.id_token, undefined, 'openid was not granted, so no ID token');
    const outside = await postForm(
      `${as.issuer}/token`,
      { grant_type: 'refresh_token', refresh_token: String(wide.json.refresh_token), scope: 'stocks:trade' },
      { authorization: basic(secretClient.clientId, secretClient.secret) },
    );
    assert.equal(outside.status, 400, outside.text);
    assert.equal(outside.json.error, 'invalid_scope');
  });
});

describe('refresh tokens switched off or narrowed', () => {
  test('enabled: false: the grant is advertised to nobody, registered for nobody, issued to nobody', async () => {
    const as = await start({ enabled: false });
    assert.ok(!(await metadataOf(as)).grant_types_supported.includes('refresh_token'));
    const client = await register(as);
    assert.deepEqual(client.grantTypes, ['authorization_code']);
    assert.equal((await tokensFor(as, client)).refresh_token, undefined);
    const pre = await tokensFor(as, { clientId: PRE_REGISTERED.clientId, secret: PRE_REGISTERED.secret });
    assert.equal(pre.refresh_token, undefined);
  });

  test('clients.dynamic: false: self-registered clients lose the grant, pre-registered ones keep it', async () => {
    const as = await start({ clients: { dynamic: false } });
    assert.ok((await metadataOf(as)).grant_types_supported.includes('refresh_token'));
    const client = await register(as);
    assert.deepEqual(client.grantTypes, ['authorization_code']);
    assert.equal((await tokensFor(as, client)).refresh_token, undefined);
    const pre = await tokensFor(as, { clientId: PRE_REGISTERED.clientId, secret: PRE_REGISTERED.secret });
    assert.equal(typeof pre.refresh_token, 'string');
  });
});

describe('the policy changed under stored clients', () => {
  test('refresh tokens switched off: a client registered with refresh_token still signs in, and gets none', async () => {
    const as = await start();
    const client = await register(as);
    assert.deepEqual(client.grantTypes, ['authorization_code', 'refresh_token']);
    await as.restart({ refreshTokens: { enabled: false }, clients: [PRE_REGISTERED] });
    const tokens = await tokensFor(as, client);
    assert.equal(tokens.refresh_token, undefined);
    const metadata = await metadataOf(as);
    assert.ok(!metadata.grant_types_supported.includes('refresh_token'));
  });
});

describe('the absolute lifetime', () => {
  test('rotation does not extend it: past it from the sign-in, the newest refresh token is refused', async () => {
    const as = await start({ absoluteLifetimeSeconds: 3 });
    const client = await register(as);
    const secretClient = { clientId: client.clientId, secret: client.secret! };
    const tokens = await tokensFor(as, client);
    await sleep(1500);
    const rotated = await refresh(as, secretClient, tokens.refresh_token);
    assert.equal(rotated.status, 200, 'within the lifetime');
    assert.ok(
      Number(rotated.json.expires_in) <= 2,
      `its access token ends with the sign-in too (expires_in ${rotated.json.expires_in}, not 900)`,
    );
    await sleep(2000);
    const late = await refresh(as, secretClient, rotated.json.refresh_token);
    assert.equal(late.status, 400, late.text);
    assert.equal(late.json.error, 'invalid_grant');
  });
});
