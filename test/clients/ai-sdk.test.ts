/**
 * The Vercel AI SDK's MCP client (`@ai-sdk/mcp`, pinned in devDependencies) through the whole
 * stack, driven through its public API as an application would: `createMCPClient` with an HTTP
 * transport and an `OAuthClientProvider`, its own OAuth implementation (not the MCP SDK's) for
 * discovery, dynamic registration and the code flow, and `auth()` to finish the sign-in:
 *
 *   401 → discovery → registration → sign-in → tools/list → a read tool → the write tool → 403
 *   insufficient_scope → step-up (host code: the AI SDK does not step up by itself) → success.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  auth,
  createMCPClient,
  type MCPClient,
  type OAuthClientInformation,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type OAuthTokens,
} from '@ai-sdk/mcp';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import {
  challengeParams,
  describeExchanges,
  loopbackRedirectUri,
  recordingFetch,
  scopesOf,
  stocksOf,
  textOf,
  User,
} from './journey.ts';

/** An in-memory provider whose "browser" is the scripted user. */
class PlayedUserProvider implements OAuthClientProvider {
  client?: OAuthClientInformation;
  saved?: OAuthTokens;
  verifier?: string;
  readonly states: string[] = [];
  readonly redirectUri: string;
  readonly user: User;
  constructor(redirectUri: string, user: User) {
    this.redirectUri = redirectUri;
    this.user = user;
  }
  get redirectUrl() {
    return this.redirectUri;
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'AI SDK journey',
      redirect_uris: [this.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    const state = crypto.randomUUID();
    this.states.push(state);
    return state;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(information: OAuthClientInformation) {
    this.client = information;
  }
  isClientInformationDynamicallyRegistered() {
    return this.client !== undefined;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }
  async redirectToAuthorization(url: URL) {
    await this.user.open(url);
  }
}

describe('the Vercel AI SDK MCP client, through the whole stack', () => {
  let stack: TestStack;
  let provider: PlayedUserProvider;
  const record = recordingFetch();
  let client: MCPClient | undefined;

  before(async () => {
    stack = await startTestStack();
    provider = new PlayedUserProvider(await loopbackRedirectUri(), new User());
  });
  after(async () => {
    await client?.close();
    await stack.close();
  });

  const connect = () =>
    createMCPClient({
      transport: { type: 'http', url: stack.mcpUrl, authProvider: provider, fetch: record.fetch },
    });

  /** The host's half of a sign-in: the code of the user's callback handed to auth(). */
  const finish = async (scope?: string) => {
    const callback = provider.user.callback;
    assert.equal(callback.searchParams.get('state'), provider.states.at(-1));
    assert.equal(callback.searchParams.get('iss'), stack.issuer);
    const result = await auth(provider, {
      serverUrl: stack.mcpUrl,
      authorizationCode: callback.searchParams.get('code')!,
      callbackState: callback.searchParams.get('state')!,
      callbackIssuer: callback.searchParams.get('iss')!,
      ...(scope ? { scope } : {}),
      fetchFn: record.fetch,
    });
    assert.equal(result, 'AUTHORIZED');
  };

  test('401 → discovery → registration → sign-in, then tools/list and a read tool', async () => {
    await assert.rejects(
      connect(),
      (error: Error) => error.name === 'UnauthorizedError' || /Unauthorized/i.test(String(error)),
    );
    const first = record.exchanges[0]!;
    assert.equal(first.status, 401, describeExchanges(record.exchanges));
    const prm = `${new URL(stack.mcpUrl).origin}/.well-known/oauth-protected-resource/mcp`;
    assert.equal(challengeParams(first.challenge).resource_metadata, prm);
    assert.ok(
      record.exchanges.some((e) => e.url.href === `${stack.issuer}/register` && e.status === 201),
      'it registered (RFC 7591)',
    );
    assert.equal(provider.user.visits.length, 1);
    const authorization = provider.user.visits[0]!.url.searchParams;
    assert.equal(authorization.get('resource'), stack.mcpUrl);
    assert.equal(authorization.get('code_challenge_method'), 'S256');
    await finish();
    assert.ok(provider.tokens()?.access_token);
    assert.equal(provider.tokens()?.refresh_token, undefined, 'a public client gets no refresh token');

    client = await connect();
    const { tools } = await client.listTools();
    assert.ok(tools.some((tool) => tool.name === 'place_order'));
    const listed = await client.callTool({ name: 'list_stocks', arguments: {} });
    assert.notEqual(listed.isError, true, textOf(listed));
    assert.ok(
      stocksOf(listed).every((stock) => stock.region === 'eu'),
      'alice is in the eu region',
    );
  });

  test('the write tool: 403 insufficient_scope, a step-up by the host, then the order', async () => {
    assert.ok(client);
    const order = { symbol: 'SAP', side: 'buy', quantity: 2 };
    await assert.rejects(client.callTool({ name: 'place_order', arguments: order }), (error: Error) =>
      /403/.test(String(error)),
    );
    const refused = record.exchanges.findLast((e) => e.status === 403);
    assert.ok(refused, describeExchanges(record.exchanges));
    const challenge = challengeParams(refused.challenge);
    assert.equal(challenge.error, 'insufficient_scope');
    assert.ok(scopesOf(challenge.scope).has('stocks:trade'));
    await client.close();

    // The host asks for the challenge's scope; the user consents to the new scope only.
    const started = await auth(provider, {
      serverUrl: stack.mcpUrl,
      scope: challenge.scope,
      fetchFn: record.fetch,
    });
    assert.equal(started, 'REDIRECT');
    assert.equal(provider.user.visits.length, 2);
    await finish(challenge.scope);
    assert.ok(scopesOf(provider.tokens()?.scope).has('stocks:trade'));

    client = await connect();
    const placed = await client.callTool({ name: 'place_order', arguments: order });
    assert.notEqual(placed.isError, true, textOf(placed));
    assert.match(textOf(placed), /"quantity":\s*2/);
  });
});
