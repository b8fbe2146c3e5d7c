/**
 * End-to-end proof with a third-party client: the official MCP TypeScript SDK v2
 * (`@modelcontextprotocol/client`), driven only through its public OAuth API — an in-memory
 * `OAuthClientProvider` passed as the transport's `authProvider`, `UnauthorizedError`, and
 * `finishAuth()` with the callback's parameters — against the whole stack:
 *
 *   401 → discovery → registration (DCR, or a client ID metadata document) → code flow →
 *   tools/list → a read tool → the write tool → 403 insufficient_scope → step-up with incremental
 *   consent → success.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  Client,
  IssuerMismatchError,
  type OAuthClientInformationMixed,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  type OAuthTokens,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import {
  challengeParams,
  consentScopes,
  describeExchanges,
  documentFetches,
  loopbackRedirectUri,
  type MetadataDocumentServer,
  orderOf,
  recordingFetch,
  scopesOf,
  serveMetadataDocument,
  stocksOf,
  textOf,
  User,
} from './journey.ts';

/** An in-memory OAuthClientProvider whose "browser" is the scripted user. */
class PlayedUserProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier?: string;
  discovery?: OAuthDiscoveryState;
  /** Every `state` handed out, to check the callback against (the SDK leaves that to the host). */
  readonly states: string[] = [];
  readonly clientMetadataUrl?: string;
  readonly redirectUri: string;
  readonly user: User;

  constructor(redirectUri: string, user: User, options: { clientMetadataUrl?: string } = {}) {
    this.redirectUri = redirectUri;
    this.user = user;
    if (options.clientMetadataUrl) this.clientMetadataUrl = options.clientMetadataUrl;
  }

  get redirectUrl() {
    return this.redirectUri;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'SDK v2 journey',
      redirect_uris: [this.redirectUri],
      grant_types: ['authorization_code'],
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
  saveClientInformation(information: OAuthClientInformationMixed) {
    this.client = information;
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
  saveDiscoveryState(state: OAuthDiscoveryState) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
  async redirectToAuthorization(url: URL) {
    await this.user.open(url);
  }
}

const newClient = () =>
  new Client(
    { name: 'gatehouse-sdk-v2-journey', version: '1.0.0' },
    { versionNegotiation: { mode: 'auto' } },
  );

const ORDER = { symbol: 'SAP', side: 'buy', quantity: 2 } as const;

interface Journey {
  stack: TestStack;
  provider: PlayedUserProvider;
  record: ReturnType<typeof recordingFetch>;
  client: Client;
  transport: StreamableHTTPClientTransport;
  prmUrl: string;
}

/**
 * Steps 1–3: connect without a token (401 → discovery → registration → the user signs in and
 * consents), finishAuth, reconnect, tools/list and the read tool.
 */
async function signInAndRead(
  stack: TestStack,
  provider: PlayedUserProvider,
  record: ReturnType<typeof recordingFetch>,
): Promise<Journey> {
  const { user } = provider;
  const mcpUrl = new URL(stack.mcpUrl);
  const options = { authProvider: provider, fetch: record.fetch };

  // 1. Connect without a token: the SDK meets the 401, discovers, registers, and "opens the browser".
  let transport = new StreamableHTTPClientTransport(mcpUrl, options);
  let client = newClient();
  await assert.rejects(client.connect(transport), UnauthorizedError);

  const first = record.exchanges[0]!;
  assert.equal(first.url.href, mcpUrl.href);
  assert.equal(first.status, 401, describeExchanges(record.exchanges));
  const challenge = challengeParams(first.challenge);
  const prmUrl = `${mcpUrl.origin}/.well-known/oauth-protected-resource/mcp`;
  assert.equal(challenge.resource_metadata, prmUrl, 'the 401 says where the resource metadata is');
  assert.equal(challenge.scope, 'stocks:read customers:read', 'and which scopes to start with');

  // Discovery: the PRM from the challenge, then the authorization server's metadata (RFC 8414 first).
  const gets = record.exchanges.filter((e) => e.method === 'GET').map((e) => e.url.href);
  assert.equal(gets[0], prmUrl, 'the SDK followed resource_metadata from the challenge');
  assert.equal(gets[1], `${stack.issuer}/.well-known/oauth-authorization-server`);

  // One authorization request, for the challenge's scope, bound to the MCP server, with PKCE and state.
  assert.equal(user.visits.length, 1);
  const firstVisit = user.visits[0]!;
  const authorization = firstVisit.url.searchParams;
  assert.equal(firstVisit.url.origin + firstVisit.url.pathname, `${stack.issuer}/authorize`);
  assert.deepEqual(scopesOf(authorization.get('scope')), new Set(['stocks:read', 'customers:read']));
  assert.equal(authorization.get('resource'), stack.mcpUrl);
  assert.equal(authorization.get('code_challenge_method'), 'S256');
  assert.equal(authorization.get('redirect_uri'), provider.redirectUri);
  assert.deepEqual(firstVisit.played.pages, ['email', 'code', 'consent']);
  assert.deepEqual(consentScopes(firstVisit.played.consentHtml).requested.sort(), [
    'customers:read',
    'stocks:read',
  ]);

  // The callback: state is the host's to check; iss is the SDK's (RFC 9207).
  const callback = user.callback;
  assert.equal(callback.searchParams.get('state'), provider.states.at(-1));
  assert.equal(callback.searchParams.get('iss'), stack.issuer);
  assert.equal(callback.origin + callback.pathname, provider.redirectUri);

  // A callback with another issuer's iss is refused before the code is redeemed (mix-up defence).
  const forged = new URLSearchParams(callback.searchParams);
  forged.set('iss', 'https://attacker.example');
  await assert.rejects(transport.finishAuth(forged), IssuerMismatchError);
  assert.equal(provider.tokens(), undefined, 'no token from a forged callback');

  // 2. finishAuth with the real callback, then reconnect (the SDK's documented pattern).
  await transport.finishAuth(callback.searchParams);
  const tokens = provider.tokens();
  assert.ok(tokens?.access_token);
  assert.deepEqual(scopesOf(tokens.scope), new Set(['stocks:read', 'customers:read']));
  const tokenRequest = record.exchanges.findLast((e) => e.url.href === `${stack.issuer}/token`);
  assert.equal(new URLSearchParams(tokenRequest?.requestBody).get('resource'), stack.mcpUrl);
  await transport.close();
  transport = new StreamableHTTPClientTransport(mcpUrl, options);
  client = newClient();
  await client.connect(transport);
  assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28', 'v2 speaks the 2026-07-28 protocol');

  // 3. tools/list and a read tool: alice sees only eu stocks.
  const { tools } = await client.listTools();
  assert.ok(
    tools.some((tool) => tool.name === 'place_order'),
    'tools/list includes the write tool',
  );
  const listed = await client.callTool({ name: 'list_stocks', arguments: {} });
  assert.notEqual(listed.isError, true, textOf(listed));
  const stocks = stocksOf(listed);
  assert.ok(stocks.length > 0);
  assert.ok(
    stocks.every((stock) => stock.region === 'eu'),
    'alice is in the eu region',
  );
  return { stack, provider, record, client, transport, prmUrl };
}

/**
 * Step 4: the write tool with the initial scopes gets 403 insufficient_scope. The SDK steps up on
 * its own (`onInsufficientScope: 'reauthorize'`, the default): it asks the provider to open the
 * browser for the union of the held and the challenged scopes, then throws UnauthorizedError for
 * the host to finish the authorization.
 */
async function writeToolStepsUp({ stack, provider, record, client, prmUrl }: Journey) {
  const before403 = record.exchanges.length;
  await assert.rejects(client.callTool({ name: 'place_order', arguments: { ...ORDER } }), UnauthorizedError);
  const denied = record.exchanges.slice(before403).find((e) => e.status === 403);
  assert.ok(denied, describeExchanges(record.exchanges.slice(before403)));
  const challenge = challengeParams(denied.challenge);
  assert.equal(challenge.error, 'insufficient_scope');
  assert.equal(challenge.scope, 'stocks:trade', 'a 2026-07-28 request is challenged for what it needs only');
  assert.equal(challenge.resource_metadata, prmUrl);

  assert.equal(provider.user.visits.length, 2, 'the SDK sent the user to authorize again');
  const stepUp = provider.user.visits[1]!;
  assert.deepEqual(
    scopesOf(stepUp.url.searchParams.get('scope')),
    new Set(['stocks:read', 'customers:read', 'stocks:trade']),
    'step-up asks for the union of held and challenged scopes (SEP-2350)',
  );
  assert.equal(stepUp.url.searchParams.get('resource'), stack.mcpUrl);
  assert.equal(stepUp.url.searchParams.get('client_id'), provider.client?.client_id);
}

/** Step 5: incremental consent, finishAuth on the same transport, and the order goes through. */
async function stepUpSucceeds({ provider, client, transport }: Journey) {
  const stepUp = provider.user.visits[1]!;
  const { callback } = stepUp.played;
  assert.equal(
    callback.searchParams.get('error'),
    null,
    `the step-up authorization was refused: ${callback.searchParams.get('error')} (${callback.searchParams.get('error_description')})`,
  );
  assert.deepEqual(stepUp.played.pages, ['consent'], 'still signed in: only the consent page');
  assert.deepEqual(
    consentScopes(stepUp.played.consentHtml),
    { requested: ['stocks:trade'], granted: ['stocks:read', 'customers:read'] },
    'incremental consent: only the new scope is asked for',
  );

  assert.equal(callback.searchParams.get('state'), provider.states.at(-1));
  await transport.finishAuth(callback.searchParams);
  assert.deepEqual(
    scopesOf(provider.saved?.scope),
    new Set(['stocks:read', 'customers:read', 'stocks:trade']),
  );
  const placed = await client.callTool({ name: 'place_order', arguments: { ...ORDER } });
  assert.notEqual(placed.isError, true, textOf(placed));
  const order = orderOf(placed);
  assert.equal(order.status, 'accepted');
  assert.equal(order.symbol, ORDER.symbol);
  assert.equal(order.quantity, ORDER.quantity);
  assert.equal(order.client, provider.client?.client_id);

  // The read tool still works with the stepped-up token.
  const again = await client.callTool({ name: 'list_stocks', arguments: {} });
  assert.notEqual(again.isError, true, textOf(again));
}

describe('MCP TypeScript SDK v2 (@modelcontextprotocol/client) against Gatehouse', () => {
  describe('with dynamic client registration', () => {
    let stack: TestStack;
    let journey: Journey | undefined;
    before(async () => {
      stack = await startTestStack();
    });
    after(async () => {
      await journey?.client.close();
      await stack.close();
    });

    test('401 → discovery → DCR → code flow → tools/list → read tool', async () => {
      const record = recordingFetch();
      const provider = new PlayedUserProvider(await loopbackRedirectUri(), new User());
      journey = await signInAndRead(stack, provider, record);

      const registration = record.exchanges.find((e) => e.url.href === `${stack.issuer}/register`);
      assert.equal(registration?.status, 201, 'the SDK registered dynamically');
      const body = JSON.parse(registration.requestBody ?? '{}') as Record<string, unknown>;
      assert.equal(body.application_type, 'native', 'v2 fills application_type from the loopback redirect');
      assert.equal(body.token_endpoint_auth_method, 'none');
      assert.equal(body.scope, 'stocks:read customers:read', 'v2 registers with the scope it asks for first');
      const registered = stack.audit('client.registered').filter((r) => r.outcome === 'success');
      assert.deepEqual(
        registered.map((r) => r.client_id),
        [provider.client?.client_id],
      );
    });

    test('the write tool: 403 insufficient_scope, and the SDK re-authorizes for the union', async () => {
      assert.ok(journey, 'the first step ran');
      await writeToolStepsUp(journey);
    });

    test('step-up with incremental consent, then the order is accepted', async () => {
      assert.ok(journey, 'the first steps ran');
      await stepUpSucceeds(journey);
    });
  });

  describe('with a client ID metadata document', () => {
    let stack: TestStack | undefined;
    let journey: Journey | undefined;
    let document: MetadataDocumentServer | string = 'not started';

    before(async () => {
      document = await serveMetadataDocument('SDK v2 journey (CIMD)');
      if (typeof document === 'string') return;
      stack = await startTestStack({
        authorizationServer: { clientIdMetadataDocuments: { allowLoopbackHttp: true } },
      });
    });
    after(async () => {
      await journey?.client.close();
      await stack?.close();
      if (typeof document !== 'string') await document.close();
    });

    test('401 → discovery → CIMD (no registration) → code flow → tools/list → read tool', async (t) => {
      if (typeof document === 'string' || !stack) {
        t.skip(String(document));
        return;
      }
      const documentUrl = document.url;
      const metadata = (await (
        await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)
      ).json()) as Record<string, unknown>;
      assert.equal(metadata.client_id_metadata_document_supported, true);

      const record = recordingFetch();
      const provider = new PlayedUserProvider(document.redirectUri, new User(), {
        clientMetadataUrl: documentUrl,
      });
      journey = await signInAndRead(stack, provider, record);

      assert.equal(provider.client?.client_id, documentUrl, 'the client_id is the document URL');
      assert.equal(
        record.exchanges.some((e) => e.url.pathname === '/register'),
        false,
        'no dynamic registration',
      );
      assert.equal(stack.audit('client.registered').length, 0);
      assert.deepEqual(stack.audit('client.metadata_document'), [], 'no document was rejected');
      assert.ok(documentFetches(stack.logs, documentUrl).length > 0, 'the authorization server fetched it');
      assert.match(journey.provider.user.visits[0]!.played.consentHtml ?? '', /SDK v2 journey \(CIMD\)/);
    });

    test('the write tool: 403 insufficient_scope, and the SDK re-authorizes for the union', async (t) => {
      if (typeof document === 'string') {
        t.skip(document);
        return;
      }
      assert.ok(journey, 'the first step ran');
      await writeToolStepsUp(journey);
    });

    test('step-up with incremental consent, then the order is accepted', async (t) => {
      if (typeof document === 'string') {
        t.skip(document);
        return;
      }
      assert.ok(journey, 'the first steps ran');
      await stepUpSucceeds(journey);
    });
  });
});
