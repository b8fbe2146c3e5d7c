/**
 * End-to-end proof with the generation of client most agents ship today: the official MCP TypeScript
 * SDK v1 (`@modelcontextprotocol/sdk` 1.x, what mcp-remote builds on), driven through its public OAuth
 * API — an in-memory `OAuthClientProvider` given to `StreamableHTTPClientTransport` as `authProvider`,
 * `UnauthorizedError`, `finishAuth(code)`, and `auth()` itself — against the whole stack:
 *
 *   401 → discovery → registration (DCR, or a client ID metadata document) → code flow →
 *   tools/list → a read tool → the write tool → 403 insufficient_scope → step-up with incremental
 *   consent → success.
 *
 * v1 speaks a 2025 protocol revision and, on a 403, *replaces* its scope with the challenge's instead
 * of taking the union; Gatehouse answers 2025-era requests with the union of the held and the needed
 * scopes in the challenge, so the replacement keeps read access. v1 also has no way to pass the
 * callback's `iss` to `finishAuth` (no RFC 9207 check).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { auth, type OAuthClientProvider, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
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

type DiscoveryState = Parameters<NonNullable<OAuthClientProvider['saveDiscoveryState']>>[0];

/** An in-memory OAuthClientProvider whose "browser" is the scripted user. */
class PlayedUserProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier?: string;
  discovery?: DiscoveryState;
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
      client_name: 'SDK v1 journey',
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
  saveDiscoveryState(state: DiscoveryState) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
  async redirectToAuthorization(url: URL) {
    await this.user.open(url);
  }
}

const newClient = () => new Client({ name: 'gatehouse-sdk-v1-journey', version: '1.0.0' });

const ORDER = { symbol: 'SAP', side: 'sell', quantity: 1 } as const;

interface Journey {
  stack: TestStack;
  provider: PlayedUserProvider;
  record: ReturnType<typeof recordingFetch>;
  client: Client;
  transport: StreamableHTTPClientTransport;
  prmUrl: string;
}

/**
 * Steps 1–3, as mcp-remote does it: connect, let the transport meet the 401 and run `auth()`
 * (discovery, registration, the browser), `finishAuth(code)`, reconnect with a new transport,
 * tools/list and the read tool.
 */
async function signInAndRead(
  stack: TestStack,
  provider: PlayedUserProvider,
  record: ReturnType<typeof recordingFetch>,
): Promise<Journey> {
  const { user } = provider;
  const mcpUrl = new URL(stack.mcpUrl);
  const options = { authProvider: provider, fetch: record.fetch };

  let transport = new StreamableHTTPClientTransport(mcpUrl, options);
  let client = newClient();
  await assert.rejects(client.connect(transport), UnauthorizedError);

  const first = record.exchanges[0]!;
  assert.equal(first.url.href, mcpUrl.href);
  assert.equal(first.status, 401, describeExchanges(record.exchanges));
  const challenge = challengeParams(first.challenge);
  const prmUrl = `${mcpUrl.origin}/.well-known/oauth-protected-resource/mcp`;
  assert.equal(challenge.resource_metadata, prmUrl, 'the 401 says where the resource metadata is');
  assert.equal(challenge.scope, 'stocks:read customers:read');

  const gets = record.exchanges.filter((e) => e.method === 'GET').map((e) => e.url.href);
  assert.equal(gets[0], prmUrl, 'v1 followed resource_metadata from the challenge');
  assert.equal(gets[1], `${stack.issuer}/.well-known/oauth-authorization-server`);

  assert.equal(user.visits.length, 1);
  const firstVisit = user.visits[0]!;
  const authorization = firstVisit.url.searchParams;
  assert.equal(firstVisit.url.origin + firstVisit.url.pathname, `${stack.issuer}/authorize`);
  assert.deepEqual(
    scopesOf(authorization.get('scope')),
    new Set(['stocks:read', 'customers:read']),
    'v1 asks for the challenge scope',
  );
  assert.equal(authorization.get('resource'), stack.mcpUrl);
  assert.equal(authorization.get('code_challenge_method'), 'S256');
  assert.equal(authorization.get('redirect_uri'), provider.redirectUri);
  assert.deepEqual(firstVisit.played.pages, ['email', 'code', 'consent']);

  // The callback carries iss (RFC 9207), but v1's finishAuth only takes the code: the host checks
  // state, and nobody checks iss.
  const callback = user.callback;
  assert.equal(callback.searchParams.get('state'), provider.states.at(-1));
  assert.equal(callback.searchParams.get('iss'), stack.issuer);
  await transport.finishAuth(callback.searchParams.get('code')!);
  const tokens = provider.tokens();
  assert.ok(tokens?.access_token);
  assert.deepEqual(scopesOf(tokens.scope), new Set(['stocks:read', 'customers:read']));
  const tokenRequest = record.exchanges.findLast((e) => e.url.href === `${stack.issuer}/token`);
  assert.equal(new URLSearchParams(tokenRequest?.requestBody).get('resource'), stack.mcpUrl);

  await transport.close();
  transport = new StreamableHTTPClientTransport(mcpUrl, options);
  client = newClient();
  await client.connect(transport);
  assert.equal(transport.protocolVersion, '2025-11-25', 'v1 negotiates a 2025 revision');

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
 * Step 4: the write tool gets 403 insufficient_scope. v1 takes the challenge's `scope` as its new
 * scope (replacement) and runs `auth()`, which sends the user to authorize and makes the call fail
 * with UnauthorizedError. Because this is a 2025-era request, the challenge already holds the union.
 */
async function writeToolStepsUp({ stack, provider, record, client, prmUrl }: Journey) {
  const before403 = record.exchanges.length;
  await assert.rejects(client.callTool({ name: 'place_order', arguments: { ...ORDER } }), UnauthorizedError);
  const denied = record.exchanges.slice(before403).find((e) => e.status === 403);
  assert.ok(denied, describeExchanges(record.exchanges.slice(before403)));
  const challenge = challengeParams(denied.challenge);
  assert.equal(challenge.error, 'insufficient_scope');
  assert.deepEqual(
    scopesOf(challenge.scope),
    new Set(['stocks:read', 'customers:read', 'stocks:trade']),
    'a 2025-era request is challenged for the union of the held and the needed scopes',
  );
  assert.equal(challenge.resource_metadata, prmUrl);

  assert.equal(provider.user.visits.length, 2, 'v1 sent the user to authorize again');
  const stepUp = provider.user.visits[1]!;
  assert.equal(
    stepUp.url.searchParams.get('scope'),
    challenge.scope,
    'v1 asks for exactly the challenged scope (it replaces, it does not merge)',
  );
  assert.equal(stepUp.url.searchParams.get('resource'), stack.mcpUrl);
  assert.equal(stepUp.url.searchParams.get('client_id'), provider.client?.client_id);
}

/** Step 5: incremental consent, finishAuth, the order, and the read tool still works. */
async function stepUpSucceeds({ provider, client, transport }: Journey) {
  const stepUp = provider.user.visits[1]!;
  const { callback } = stepUp.played;
  assert.equal(
    callback.searchParams.get('error'),
    null,
    `the step-up authorization was refused: ${callback.searchParams.get('error')} (${callback.searchParams.get('error_description')})`,
  );
  assert.deepEqual(stepUp.played.pages, ['consent'], 'still signed in: only the consent page');
  const consent = consentScopes(stepUp.played.consentHtml);
  assert.deepEqual(
    consent.requested,
    ['stocks:trade'],
    'incremental consent: only the new scope is asked for',
  );
  assert.deepEqual(consent.granted.sort(), ['customers:read', 'stocks:read']);

  assert.equal(callback.searchParams.get('state'), provider.states.at(-1));
  await transport.finishAuth(callback.searchParams.get('code')!);
  assert.deepEqual(
    scopesOf(provider.saved?.scope),
    new Set(['stocks:read', 'customers:read', 'stocks:trade']),
  );

  const placed = await client.callTool({ name: 'place_order', arguments: { ...ORDER } });
  assert.notEqual(placed.isError, true, textOf(placed));
  const order = orderOf(placed);
  assert.equal(order.status, 'accepted');
  assert.equal(order.side, ORDER.side);
  assert.equal(order.quantity, ORDER.quantity);
  assert.equal(order.client, provider.client?.client_id);

  // The replaced scope was the union, so read access survived the step-up.
  const again = await client.callTool({ name: 'list_stocks', arguments: {} });
  assert.notEqual(again.isError, true, textOf(again));
  assert.ok(stocksOf(again).every((stock) => stock.region === 'eu'));
  const me = await client.callTool({ name: 'get_my_customer_record', arguments: {} });
  assert.notEqual(me.isError, true, textOf(me));
}

describe('MCP TypeScript SDK v1 (@modelcontextprotocol/sdk) against Gatehouse', () => {
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
      assert.equal(registration?.status, 201, 'v1 registered dynamically');
      const body = JSON.parse(registration.requestBody ?? '{}') as Record<string, unknown>;
      assert.equal(body.application_type, undefined, 'v1 sends no application_type');
      assert.equal(body.scope, 'stocks:read customers:read', 'v1 registers with the scope it asks for first');
      const registered = stack.audit('client.registered').filter((r) => r.outcome === 'success');
      assert.deepEqual(
        registered.map((r) => r.client_id),
        [provider.client?.client_id],
      );
    });

    test('the write tool: 403 insufficient_scope, and v1 re-authorizes for the challenged scope', async () => {
      assert.ok(journey, 'the first step ran');
      await writeToolStepsUp(journey);
    });

    test('step-up with incremental consent, the order is accepted, reading still works', async () => {
      assert.ok(journey, 'the first steps ran');
      await stepUpSucceeds(journey);
    });
  });

  describe('with a client ID metadata document', () => {
    let stack: TestStack | undefined;
    let journey: Journey | undefined;
    let document: MetadataDocumentServer | string = 'not started';

    before(async () => {
      document = await serveMetadataDocument('SDK v1 journey (CIMD)');
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
      const record = recordingFetch();
      const provider = new PlayedUserProvider(document.redirectUri, new User(), {
        clientMetadataUrl: document.url,
      });
      journey = await signInAndRead(stack, provider, record);
      assert.equal(provider.client?.client_id, document.url, 'the client_id is the document URL');
      assert.equal(
        record.exchanges.some((e) => e.url.pathname === '/register'),
        false,
        'no dynamic registration',
      );
      assert.equal(stack.audit('client.registered').length, 0);
      assert.deepEqual(stack.audit('client.metadata_document'), [], 'no document was rejected');
      assert.ok(documentFetches(stack.logs, document.url).length > 0, 'the authorization server fetched it');
    });

    test('the write tool: 403 insufficient_scope, and v1 re-authorizes for the challenged scope', async (t) => {
      if (typeof document === 'string') {
        t.skip(document);
        return;
      }
      assert.ok(journey, 'the first step ran');
      await writeToolStepsUp(journey);
    });

    test('step-up with incremental consent, the order is accepted, reading still works', async (t) => {
      if (typeof document === 'string') {
        t.skip(document);
        return;
      }
      assert.ok(journey, 'the first steps ran');
      await stepUpSucceeds(journey);
    });
  });

  describe('auth() called by the host before connecting', () => {
    let stack: TestStack;
    before(async () => {
      stack = await startTestStack();
    });
    after(() => stack.close());

    test('without a challenge v1 asks for every scope the resource lists, and then needs no step-up', async () => {
      const record = recordingFetch();
      const provider = new PlayedUserProvider(await loopbackRedirectUri(), new User());
      const serverUrl = stack.mcpUrl;

      assert.equal(await auth(provider, { serverUrl, fetchFn: record.fetch }), 'REDIRECT');
      // No 401 to point the way: v1 derives the path-inserted PRM URL from the server URL itself.
      const gets = record.exchanges.filter((e) => e.method === 'GET').map((e) => e.url.href);
      assert.equal(gets[0], `${new URL(serverUrl).origin}/.well-known/oauth-protected-resource/mcp`);
      const visit = provider.user.visits[0]!;
      assert.deepEqual(
        scopesOf(visit.url.searchParams.get('scope')),
        new Set(['stocks:read', 'stocks:trade', 'customers:read']),
        'the scope is the PRM scopes_supported (SEP-835 step 2)',
      );
      const registration = record.exchanges.find((e) => e.url.pathname === '/register');
      assert.deepEqual(
        scopesOf((JSON.parse(registration?.requestBody ?? '{}') as { scope?: string }).scope),
        new Set(['stocks:read', 'stocks:trade', 'customers:read']),
      );
      assert.deepEqual(consentScopes(visit.played.consentHtml).requested.sort(), [
        'customers:read',
        'stocks:read',
        'stocks:trade',
      ]);

      const code = provider.user.callback.searchParams.get('code')!;
      assert.equal(
        await auth(provider, { serverUrl, authorizationCode: code, fetchFn: record.fetch }),
        'AUTHORIZED',
      );

      const transport = new StreamableHTTPClientTransport(new URL(serverUrl), {
        authProvider: provider,
        fetch: record.fetch,
      });
      const client = newClient();
      await client.connect(transport);
      const placed = await client.callTool({ name: 'place_order', arguments: { ...ORDER } });
      await client.close();
      assert.notEqual(placed.isError, true, textOf(placed));
      assert.equal(orderOf(placed).status, 'accepted');
      assert.equal(provider.user.visits.length, 1, 'no second authorization');
      assert.equal(
        record.exchanges.some((e) => e.status === 401 || e.status === 403),
        false,
        'never challenged',
      );
    });
  });
});
