/**
 * LibreChat's MCP client, played exactly: LibreChat (packages/api/src/mcp/oauth/handler.ts) drives
 * the MCP TypeScript SDK v1's auth functions itself, so this test calls the same functions with the
 * same arguments against the whole stack:
 *
 * - discovery: the protected resource metadata of the MCP URL (RFC 9728), then the authorization
 *   server's metadata (RFC 8414);
 * - registration (RFC 7591) as LibreChat builds it: `client_name` "LibreChat MCP Client", its
 *   callback `${DOMAIN_SERVER}/api/mcp/<serverName>/oauth/callback`, `grant_types`
 *   `authorization_code` plus `refresh_token` when the server lists it, the server's
 *   `response_types_supported`, `client_secret_basic` (its first choice), and `scope` = the
 *   resource's `scopes_supported`;
 * - the code flow with `state` = its flow id and `resource` from the resource metadata, the code
 *   redeemed with `client_secret_basic`;
 * - its refresh (its own form POST, with the registration's `scope`, wider than the grant), a tool
 *   call with the refreshed token, and the reuse of a rotated refresh token: its
 *   one grace use passes (LibreChat refreshes from several requests at once), a further one is
 *   refused and revokes the family, so the latest tokens stop working too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  exchangeAuthorization,
  refreshAuthorization,
  registerClient,
  startAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationFull, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { stocksOf, User } from './journey.ts';

/** LibreChat's server name for the MCP server in `librechat.yaml`, and its callback for it. */
const SERVER_NAME = 'gatehouse';
const DOMAIN_SERVER = 'http://localhost:3080';
const REDIRECT_URI = `${DOMAIN_SERVER}/api/mcp/${SERVER_NAME}/oauth/callback`;

async function listStocks(stack: TestStack, accessToken: string) {
  const client = new Client({ name: 'LibreChat', version: '0.8.0' });
  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
    requestInit: { headers: { authorization: `Bearer ${accessToken}` } },
  });
  await client.connect(transport);
  try {
    return await client.callTool({ name: 'list_stocks', arguments: {} });
  } finally {
    await client.close();
  }
}

describe('LibreChat: registration, code flow with client_secret_basic, refresh, reuse', () => {
  let stack: TestStack;
  let registered: OAuthClientInformationFull;
  let first: OAuthTokens;
  let refreshed: OAuthTokens;
  let metadata: Awaited<ReturnType<typeof discoverAuthorizationServerMetadata>>;

  before(async () => {
    // The defaults: refresh tokens for confidential clients, DCR open.
    stack = await startTestStack();
  });
  after(() => stack.close());

  test('it registers as a confidential client and is given exactly what it asked for', async () => {
    const resource = await discoverOAuthProtectedResourceMetadata(stack.mcpUrl);
    assert.deepEqual(resource.authorization_servers, [stack.issuer]);
    assert.ok(!resource.scopes_supported?.includes('offline_access'), 'SEP-2207: not a resource scope');
    metadata = await discoverAuthorizationServerMetadata(new URL(stack.issuer));
    assert.ok(metadata);
    assert.ok(metadata.grant_types_supported?.includes('refresh_token'), 'the server lists the grant');
    const grantTypes = ['authorization_code'];
    if (metadata.grant_types_supported?.includes('refresh_token')) grantTypes.push('refresh_token');
    registered = await registerClient(stack.issuer, {
      metadata,
      clientMetadata: {
        client_name: 'LibreChat MCP Client',
        redirect_uris: [REDIRECT_URI],
        grant_types: grantTypes,
        response_types: metadata.response_types_supported ?? ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: resource.scopes_supported?.join(' '),
      },
    });
    assert.ok(registered.client_secret, 'a confidential client gets a secret');
    assert.deepEqual(registered.grant_types, ['authorization_code', 'refresh_token']);
    assert.equal(registered.token_endpoint_auth_method, 'client_secret_basic');
  });

  test('the code flow, redeemed with client_secret_basic, gives a refresh token', async () => {
    const resource = await discoverOAuthProtectedResourceMetadata(stack.mcpUrl);
    const scope = resource.scopes_supported?.join(' ');
    const { authorizationUrl, codeVerifier } = await startAuthorization(stack.issuer, {
      metadata,
      clientInformation: registered,
      redirectUrl: REDIRECT_URI,
      ...(scope ? { scope } : {}),
    });
    authorizationUrl.searchParams.set('state', `user-1:${SERVER_NAME}`);
    authorizationUrl.searchParams.set('resource', resource.resource);
    const user = new User();
    await user.open(authorizationUrl);
    assert.equal(user.callback.origin + user.callback.pathname, REDIRECT_URI);
    assert.equal(user.callback.searchParams.get('state'), `user-1:${SERVER_NAME}`);
    const code = user.callback.searchParams.get('code');
    assert.ok(code);
    first = await exchangeAuthorization(stack.issuer, {
      metadata,
      clientInformation: registered,
      authorizationCode: code,
      codeVerifier,
      redirectUri: REDIRECT_URI,
      resource: new URL(resource.resource),
    });
    assert.ok(first.refresh_token, 'a refresh token for the confidential client');
    assert.ok(first.access_token);
    assert.ok(stocksOf(await listStocks(stack, first.access_token)).length > 0);
  });

  test('its own refresh (the registered scope sent along) rotates the token, which calls tools', async () => {
    // LibreChat's refreshOAuthTokens does not use the SDK here: a form POST to the token endpoint
    // with Basic authentication and the stored registration's `scope`, which is wider than what the
    // user granted (`openid` and every MCP scope). It is narrowed to the grant, not refused.
    assert.match(String(registered.scope), /openid/);
    const response = await fetch(String(metadata?.token_endpoint), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        authorization: `Basic ${Buffer.from(`${registered.client_id}:${registered.client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: String(first.refresh_token),
        scope: String(registered.scope),
      }),
    });
    const body = (await response.json()) as OAuthTokens;
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(body.scope, first.scope, 'what the user granted, and no more');
    refreshed = body;
    assert.ok(refreshed.refresh_token);
    assert.notEqual(refreshed.refresh_token, first.refresh_token, 'rotated');
    assert.notEqual(refreshed.access_token, first.access_token);
    assert.ok(stocksOf(await listStocks(stack, refreshed.access_token)).length > 0);
  });

  test('a rotated refresh token used past its one grace use is refused and revokes the family', async () => {
    const reuse = () =>
      refreshAuthorization(stack.issuer, {
        metadata,
        clientInformation: registered,
        refreshToken: String(first.refresh_token),
      });
    // Its one grace use (concurrent refreshes by one client), then theft.
    const grace = await reuse();
    // The SDK turns the invalid_grant answer (RFC 6749 §5.2) into its InvalidGrantError.
    await assert.rejects(reuse(), (error: Error) => error.constructor.name === 'InvalidGrantError');
    for (const tokens of [refreshed, grace]) {
      await assert.rejects(
        refreshAuthorization(stack.issuer, {
          metadata,
          clientInformation: registered,
          refreshToken: String(tokens.refresh_token),
        }),
        (error: Error) => error.constructor.name === 'InvalidGrantError',
        'every refresh token of the family is gone',
      );
      await assert.rejects(listStocks(stack, tokens.access_token), 'and its access tokens');
    }
  });
});

describe('LibreChat with an oauth: block (pre-registered, shown as Verified)', () => {
  const CLIENT_ID = 'librechat';
  const SECRET = 'librechat-secret-of-at-least-32-characters';
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack({
      authorizationServer: {
        clients: [
          {
            clientId: CLIENT_ID,
            name: 'LibreChat',
            role: 'agent',
            authMethod: 'client_secret_basic',
            secret: SECRET,
            redirectUris: [REDIRECT_URI],
          },
        ],
      },
    });
  });
  after(() => stack.close());

  test('authorization_url, token_url, client_id, client_secret, scope: sign-in, Verified, tokens, its refresh', async () => {
    // LibreChat builds the metadata from the block (its defaults for the rest) and sends no `resource`.
    const scope = 'stocks:read customers:read';
    const metadata = {
      issuer: stack.mcpUrl,
      authorization_endpoint: `${stack.issuer}/authorize`,
      token_endpoint: `${stack.issuer}/token`,
      scopes_supported: scope.split(' '),
      grant_types_supported: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256', 'plain'],
    };
    const clientInformation = {
      client_id: CLIENT_ID,
      client_secret: SECRET,
      redirect_uris: [REDIRECT_URI],
      scope,
    };
    const { authorizationUrl, codeVerifier } = await startAuthorization(stack.mcpUrl, {
      metadata,
      clientInformation,
      redirectUrl: REDIRECT_URI,
      scope,
    });
    authorizationUrl.searchParams.set('state', `user-2:${SERVER_NAME}`);
    const user = new User();
    await user.open(authorizationUrl);
    const consent = user.visits.at(-1)?.played.consentHtml ?? '';
    assert.match(
      consent,
      /<span class="badge verified">Verified<\/span>/,
      'a pre-registered client is Verified',
    );
    const code = user.callback.searchParams.get('code');
    assert.ok(code);
    const tokens = await exchangeAuthorization(stack.mcpUrl, {
      metadata,
      clientInformation,
      authorizationCode: code,
      codeVerifier,
      redirectUri: REDIRECT_URI,
    });
    assert.ok(tokens.refresh_token, 'a pre-registered confidential agent gets refresh tokens');
    assert.ok(
      stocksOf(await listStocks(stack, tokens.access_token)).length > 0,
      'the MCP server is the default audience',
    );
    // Its refresh with the block's settings: Basic, and the configured scope.
    const response = await fetch(metadata.token_endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${SECRET}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, scope }),
    });
    const refreshed = (await response.json()) as OAuthTokens;
    assert.equal(response.status, 200, JSON.stringify(refreshed));
    assert.ok(stocksOf(await listStocks(stack, refreshed.access_token)).length > 0);
  });
});
