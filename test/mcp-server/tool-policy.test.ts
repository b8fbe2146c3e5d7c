/**
 * Tools the user may use, and least privilege per call (issue 13), through the whole stack: agents
 * with opaque tokens at the gateway, the MCP server's tools/list and tools/call, token exchange, and
 * the APIs' own log lines for the tokens they received.
 *
 * The default policy: place_order (stocks:trade) is for `role: trader`; alice is a trader, bob is
 * not. Bob never sees place_order and cannot step up to stocks:trade; alice sees it marked, steps
 * up, and then sees it unmarked. Each call's exchanged token carries exactly the API scopes of its
 * tool and names the tool.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import {
  authorize,
  Browser,
  basic,
  csrfOf,
  openSignedIn,
  pageText,
  postForm,
  redeemCode,
  registerNativeClient,
} from '../helpers/oauth.ts';
import { internalSecret, phantomFor } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const BASE = 'stocks:read customers:read';
const STEP_UP_KEY = 'gatehouse/step-up';
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

interface ListedTool {
  name: string;
  _meta?: Record<string, unknown>;
}

describe('tools the user may use, and least privilege per call', () => {
  let stack: TestStack;
  let clientId: string;
  const browsers = { alice: new Browser(), bob: new Browser() };
  const tokens: Record<string, string> = {};

  /** A token for `email` through sign-in and consent, in that user's browser. */
  async function signIn(email: 'alice' | 'bob', scope: string) {
    const result = await authorize({
      issuer: stack.issuer,
      clientId,
      redirectUri: REDIRECT,
      scope,
      resource: stack.mcpUrl,
      email: `${email}@example.com`,
      browser: browsers[email],
    });
    const token = await redeemCode(stack.issuer, {
      code: result.callback.searchParams.get('code') ?? '',
      verifier: result.verifier,
      redirectUri: REDIRECT,
      clientId,
      resource: stack.mcpUrl,
    });
    assert.equal(token.status, 200, token.text);
    return { result, token: String(token.json.access_token), scope: String(token.json.scope) };
  }

  /** An MCP client on the 2026-07-28 protocol with the agent's opaque token; raw answers recorded. */
  async function connect(token: string, era: '2026-07-28' | '2025-11-25' | '2025-06-18' = '2026-07-28') {
    const raw: Response[] = [];
    const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      fetch: async (input: string | URL, init?: RequestInit) => {
        const response = await fetch(input, init);
        raw.push(response.clone());
        return response;
      },
    });
    const client = new Client(
      { name: 'tool-policy-test', version: '1.0.0' },
      era === '2026-07-28'
        ? { versionNegotiation: { mode: { pin: era } } }
        : { supportedProtocolVersions: [era] },
    );
    await client.connect(transport);
    return { client, raw };
  }

  async function listTools(token: string, era?: '2026-07-28' | '2025-11-25' | '2025-06-18') {
    const { client, raw } = await connect(token, era);
    try {
      const { tools } = await client.listTools();
      return { tools: tools as ListedTool[], raw };
    } finally {
      await client.close();
    }
  }

  /** The APIs' log lines for requests (src/apis/server.ts), newest last. */
  const apiRequests = () =>
    stack.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      // The gateway's request lines name an `upstream`; the APIs' name the `api`.
      .filter(
        (record) => record.message === 'request' && typeof record.api === 'string' && !('upstream' in record),
      );

  before(async () => {
    stack = await startTestStack();
    clientId = await registerNativeClient(stack.issuer, [REDIRECT]);
    tokens.alice = (await signIn('alice', BASE)).token;
    tokens.bob = (await signIn('bob', BASE)).token;
  });
  after(async () => {
    await stack?.close();
  });

  test('alice sees place_order, marked with the scope a step-up adds; her other tools unmarked', async () => {
    const { tools } = await listTools(tokens.alice!);
    assert.deepEqual(
      tools.map((tool) => tool.name),
      ['list_stocks', 'get_stock', 'place_order', 'get_my_customer_record'],
    );
    const placeOrder = tools.find((tool) => tool.name === 'place_order')!;
    assert.deepEqual(placeOrder._meta?.[STEP_UP_KEY], { scopes: ['stocks:trade'] });
    for (const tool of tools.filter((t) => t.name !== 'place_order'))
      assert.equal(tool._meta?.[STEP_UP_KEY], undefined, tool.name);
  });

  test('the list is private to the caller and never fresh (SEP-2549): it follows the token', async () => {
    const { raw } = await listTools(tokens.alice!);
    const bodies = await Promise.all(raw.map((response) => response.text()));
    const list = bodies
      .flatMap((body) => body.split('\n'))
      .map((line) => line.replace(/^data: /, ''))
      .filter((line) => line.includes('"tools"'))
      .map((line) => JSON.parse(line) as { result: Record<string, unknown> })[0];
    assert.ok(list, bodies.join('\n'));
    assert.equal(list.result.cacheScope, 'private');
    assert.equal(list.result.ttlMs, 0);
  });

  test('bob never sees place_order', async () => {
    const { tools } = await listTools(tokens.bob!);
    assert.deepEqual(
      tools.map((tool) => tool.name),
      ['list_stocks', 'get_stock', 'get_my_customer_record'],
    );
  });

  test('bob calling place_order anyway gets the same refusal as an unknown tool, and nothing reaches the API', async () => {
    const before = apiRequests().length;
    const { client } = await connect(tokens.bob!);
    try {
      const refusal = async (name: string) => {
        try {
          const result = await client.callTool({
            name,
            arguments: { symbol: 'ACME', side: 'buy', quantity: 1 },
          });
          return { result };
        } catch (error) {
          const { code, message } = error as { code?: number; message: string };
          return { code, message: message.replaceAll(name, '<tool>') };
        }
      };
      const hidden = await refusal('place_order');
      const unknown = await refusal('no_such_tool');
      assert.deepEqual(hidden, unknown);
      assert.equal(hidden.result, undefined, 'a protocol error, not a tool result');
      assert.equal(hidden.code, -32602, 'JSON-RPC invalid params: Tool <tool> not found');
    } finally {
      await client.close();
    }
    assert.equal(apiRequests().length, before, 'no API call');
  });

  test('bob cannot step up to stocks:trade: a refusal page, then access_denied for his application', async () => {
    const url = new URL(`${stack.issuer}/authorize`);
    const { challenge } = { challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM' };
    for (const [key, value] of Object.entries({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: `${BASE} stocks:trade`,
      resource: stack.mcpUrl,
      state: 'step-up-state',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }))
      url.searchParams.set(key, value);
    let response = await browsers.bob.request(url.href);
    for (let hop = 0; hop < 5 && response.location?.startsWith(stack.issuer); hop += 1)
      response = await browsers.bob.request(response.location);
    assert.equal(response.status, 403, response.text.slice(0, 300));
    const text = pageText(response.text);
    assert.match(text, /Not available to your account/);
    assert.match(text, /stocks:trade/);
    assert.match(text, /bob@example\.com/);
    assert.doesNotMatch(response.text, /value="allow"/, 'nothing to allow');
    const action = /action="(\/interaction\/[^"]+\/consent)"/.exec(response.text)?.[1];
    assert.ok(action);
    const back = await browsers.bob.request(`${stack.issuer}${action}`, {
      form: { csrf: csrfOf(response.text), decision: 'refused' },
    });
    let redirect = back;
    for (let hop = 0; hop < 5 && redirect.location?.startsWith(stack.issuer); hop += 1)
      redirect = await browsers.bob.request(redirect.location);
    const callback = new URL(redirect.location!);
    assert.equal(callback.origin + callback.pathname, REDIRECT);
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    assert.equal(callback.searchParams.get('state'), 'step-up-state');
    assert.equal(callback.searchParams.get('code'), null);
    const refused = stack.audit('consent').at(-1);
    assert.equal(refused?.outcome, 'denied');
    assert.equal(refused?.scope, 'stocks:trade');
  });

  test('bob asking for everything at first sign-in is given what he may have, and told what he may not', async () => {
    const other = await registerNativeClient(stack.issuer, [REDIRECT]);
    const first = await authorize({
      issuer: stack.issuer,
      clientId: other,
      redirectUri: REDIRECT,
      scope: `${BASE} stocks:trade`,
      resource: stack.mcpUrl,
      email: 'bob@example.com',
    });
    assert.deepEqual(first.pages, ['email', 'code', 'consent']);
    const consent = first.consentHtml!;
    const requested = consent.split('Not available to your account')[0]!;
    assert.doesNotMatch(requested, /stocks:trade/, 'not offered');
    assert.match(consent, /<ul class="scopes unavailable"><li>[^<]*<code>stocks:trade<\/code>/);
    const token = await redeemCode(stack.issuer, {
      code: first.callback.searchParams.get('code') ?? '',
      verifier: first.verifier,
      redirectUri: REDIRECT,
      clientId: other,
      resource: stack.mcpUrl,
    });
    assert.equal(token.status, 200, token.text);
    assert.deepEqual(
      new Set(String(token.json.scope).split(' ')),
      new Set(['stocks:read', 'customers:read']),
    );
    // The same request again (clients that always ask for every scope): no page about it any more.
    const again = await authorize({
      issuer: stack.issuer,
      clientId: other,
      redirectUri: REDIRECT,
      scope: `${BASE} stocks:trade`,
      resource: stack.mcpUrl,
      browser: first.browser,
    });
    assert.ok(again.callback.searchParams.get('code'), 'signed in, without stocks:trade');
    assert.doesNotMatch(again.consentHtml ?? '', /stocks:trade/);
  });

  test('a token exchange for a tool the user may not use is refused, whatever the MCP server asks', async () => {
    const phantom = await phantomFor(stack, tokens.bob!);
    const exchange = await postForm(
      `${stack.issuer}/token`,
      {
        grant_type: EXCHANGE,
        subject_token: phantom,
        subject_token_type: JWT_TYPE,
        audience: `${stack.gatewayUrl}/api/stocks`,
        scope: 'stocks.read',
      },
      {
        authorization: basic('gatehouse-mcp-server', internalSecret(stack, 'gatehouse-mcp-server')),
        'gatehouse-tool': 'place_order',
      },
    );
    assert.equal(exchange.status, 400, exchange.text);
    assert.equal(exchange.json.error, 'invalid_grant');
    assert.equal(exchange.json.access_token, undefined);
  });

  test('each tool call carries exactly its API scopes, and names its tool, at the API', async () => {
    const { client } = await connect(tokens.alice!);
    try {
      for (const [tool, args, api, scope] of [
        ['list_stocks', {}, 'stocks', 'stocks.read'],
        ['get_stock', { symbol: 'SAP' }, 'stocks', 'stocks.read'],
        ['get_my_customer_record', {}, 'customers', 'customers.read'],
      ] as const) {
        const result = await client.callTool({ name: tool, arguments: args });
        assert.notEqual(result.isError, true, JSON.stringify(result));
        const seen = apiRequests().at(-1)!;
        assert.equal(seen.api, api);
        // The tool the token was exchanged for: get_stock reuses list_stocks' token (same API, same
        // scopes: the exchange cache is keyed by grant, audience and scope set).
        assert.equal(seen.tool, tool === 'get_stock' ? 'list_stocks' : tool);
        assert.equal(seen.scope, scope);
        assert.equal(seen.status, 200);
      }
    } finally {
      await client.close();
    }
  });

  test('alice steps up: place_order is then unmarked, and its token carries stocks.trade only', async () => {
    const stepUp = await signIn('alice', `${BASE} stocks:trade`);
    assert.deepEqual(stepUp.result.pages, ['consent'], 'signed in already: consent for stocks:trade only');
    const { tools } = await listTools(stepUp.token);
    const placeOrder = tools.find((tool) => tool.name === 'place_order');
    assert.ok(placeOrder);
    assert.equal(placeOrder._meta?.[STEP_UP_KEY], undefined);
    const { client } = await connect(stepUp.token);
    try {
      const result = await client.callTool({
        name: 'place_order',
        arguments: { symbol: 'SAP', side: 'buy', quantity: 2 },
      });
      assert.notEqual(result.isError, true, JSON.stringify(result));
    } finally {
      await client.close();
    }
    const seen = apiRequests().at(-1)!;
    assert.equal(seen.path, '/stocks/orders');
    assert.equal(seen.tool, 'place_order');
    assert.equal(seen.scope, 'stocks.trade');
    assert.equal(seen.status, 201);
  });

  test("an administrator opens place_order to every user, then resets it: bob's access follows both", async () => {
    const admin = await openSignedIn(stack.issuer, '/admin/tools', 'admin@example.com');
    assert.equal(admin.status, 200);
    const text = pageText(admin.text);
    assert.match(text, /place_order .*stocks:trade .*role=trader .*configuration/);
    const opened = await admin.browser.request(`${stack.issuer}/admin/tools/set`, {
      form: { csrf: csrfOf(admin.text), tool: 'place_order', rule: '' },
    });
    assert.equal(opened.status, 303);
    assert.equal(stack.audit('admin.tool_rule.set').at(-1)?.actor, 'admin@example.com');

    // The admin API says the same.
    const adminToken = await postForm(
      `${stack.issuer}/token`,
      { grant_type: 'client_credentials', scope: 'admin' },
      { authorization: basic('gatehouse-admin', internalSecret(stack, 'gatehouse-admin')) },
    );
    const listed = await fetch(`${stack.issuer}/admin/api/tools`, {
      headers: { authorization: `Bearer ${adminToken.json.access_token}` },
    });
    const tools = ((await listed.json()) as { tools: Array<Record<string, unknown>> }).tools;
    const entry = tools.find((tool) => tool.name === 'place_order')!;
    assert.equal(entry.rule, null);
    assert.deepEqual(entry.configured_rule, { role: ['trader'] });
    assert.equal(entry.source, 'administrator');

    // Bob, in a new client: place_order is listed for him now, and his step-up is a consent.
    const carol = await registerNativeClient(stack.issuer, [REDIRECT]);
    const viaClient = async (scope: string, browser: Browser) => {
      const result = await authorize({
        issuer: stack.issuer,
        clientId: carol,
        redirectUri: REDIRECT,
        scope,
        resource: stack.mcpUrl,
        email: 'bob@example.com',
        browser,
      });
      const token = await redeemCode(stack.issuer, {
        code: result.callback.searchParams.get('code') ?? '',
        verifier: result.verifier,
        redirectUri: REDIRECT,
        clientId: carol,
        resource: stack.mcpUrl,
      });
      assert.equal(token.status, 200, token.text);
      return { result, token: String(token.json.access_token), scope: String(token.json.scope) };
    };
    const browser = new Browser();
    const base = await viaClient(BASE, browser);
    assert.ok((await listTools(base.token)).tools.some((tool) => tool.name === 'place_order'));
    const stepUp = await viaClient(`${BASE} stocks:trade`, browser);
    assert.deepEqual(stepUp.result.pages, ['consent']);
    assert.ok(stepUp.scope.split(' ').includes('stocks:trade'));

    // Back to the configuration: his remembered consent no longer gives stocks:trade.
    const reset = await admin.browser.request(`${stack.issuer}/admin/tools/reset`, {
      form: { csrf: csrfOf(admin.text), tool: 'place_order' },
    });
    assert.equal(reset.status, 303);
    const after = await viaClient(`${BASE} stocks:trade`, browser);
    assert.ok(!after.scope.split(' ').includes('stocks:trade'), after.scope);
    assert.ok(!(await listTools(after.token)).tools.some((tool) => tool.name === 'place_order'));
  });

  test('the console refuses a rule that is not one, and a tool that does not exist', async () => {
    const admin = await openSignedIn(stack.issuer, '/admin/tools', 'admin@example.com');
    for (const [tool, rule, expected] of [
      ['place_order', 'role', /Not done: .*is not name=value/],
      ['no_such_tool', 'role=trader', /Not done: there is no tool (&quot;|")no_such_tool/],
    ] as const) {
      const answer = await admin.browser.request(`${stack.issuer}/admin/tools/set`, {
        form: { csrf: csrfOf(admin.text), tool, rule },
      });
      assert.equal(answer.status, 303);
      const page = await admin.browser.request(answer.location!);
      assert.match(pageText(page.text), expected);
    }
  });

  test('the 2025-era protocols list the same tools as 2026-07-28, step-up mark included', async () => {
    for (const era of ['2025-11-25', '2025-06-18'] as const) {
      const bob = await listTools(tokens.bob!, era);
      assert.ok(!bob.tools.some((tool) => tool.name === 'place_order'), `bob, ${era}`);
      const alice = await listTools(tokens.alice!, era);
      const placeOrder = alice.tools.find((tool) => tool.name === 'place_order');
      assert.deepEqual(placeOrder?._meta?.[STEP_UP_KEY], { scopes: ['stocks:trade'] }, `alice, ${era}`);
    }
  });

  test('another spelling of the MCP resource (a trailing slash) is held to the same policy', async () => {
    const other = await registerNativeClient(stack.issuer, [REDIRECT]);
    const first = await authorize({
      issuer: stack.issuer,
      clientId: other,
      redirectUri: REDIRECT,
      scope: `${BASE} stocks:trade`,
      resource: `${stack.mcpUrl}/`,
      email: 'bob@example.com',
    });
    assert.match(first.consentHtml ?? '', /<ul class="scopes unavailable">/);
    const token = await redeemCode(stack.issuer, {
      code: first.callback.searchParams.get('code') ?? '',
      verifier: first.verifier,
      redirectUri: REDIRECT,
      clientId: other,
      resource: `${stack.mcpUrl}/`,
    });
    assert.equal(token.status, 200, token.text);
    assert.ok(!String(token.json.scope).split(' ').includes('stocks:trade'), String(token.json.scope));
  });

  test("a user's token is exchanged only for a named tool they may use, capped at its API scopes", async () => {
    const phantom = await phantomFor(stack, tokens.alice!);
    const exchangeAs = (fields: Record<string, string>, headers: Record<string, string>) =>
      postForm(
        `${stack.issuer}/token`,
        { grant_type: EXCHANGE, subject_token: phantom, subject_token_type: JWT_TYPE, ...fields },
        {
          authorization: basic('gatehouse-mcp-server', internalSecret(stack, 'gatehouse-mcp-server')),
          ...headers,
        },
      );
    const stocks = `${stack.gatewayUrl}/api/stocks`;
    const unnamed = await exchangeAs({ audience: stocks }, {});
    assert.equal(unnamed.status, 400);
    assert.equal(unnamed.json.error, 'invalid_grant', 'no tool named: nothing for a user');
    const otherApi = await exchangeAs({ audience: stocks }, { 'gatehouse-tool': 'get_my_customer_record' });
    assert.equal(otherApi.json.error, 'invalid_grant', 'a tool of another API');
    const wider = await exchangeAs(
      { audience: stocks, scope: 'stocks.trade' },
      { 'gatehouse-tool': 'list_stocks' },
    );
    assert.equal(wider.json.error, 'invalid_scope', "more than the tool's API scopes");
    const exact = await exchangeAs({ audience: stocks }, { 'gatehouse-tool': 'list_stocks' });
    assert.equal(exact.status, 200, exact.text);
    assert.equal(exact.json.scope, 'stocks.read');
    assert.ok(
      stack
        .audit('token.exchange')
        .some((record) => record.outcome === 'denied' && record.reason === 'tool not named'),
    );
  });

  test('a refresh after the policy closed a scope does not bring it back', async () => {
    // A confidential client, which gets refresh tokens (refreshTokens.clients.dynamic).
    const registered = await fetch(`${stack.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        redirect_uris: ['https://agent.example/callback'],
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      }),
    });
    const client = (await registered.json()) as { client_id: string; client_secret: string };
    assert.equal(registered.status, 201);
    const auth = { authorization: basic(client.client_id, client.client_secret) };
    const admin = await openSignedIn(stack.issuer, '/admin/tools', 'admin@example.com');
    const setRule = (rule: string | undefined) =>
      admin.browser.request(`${stack.issuer}/admin/tools/${rule === undefined ? 'reset' : 'set'}`, {
        form: { csrf: csrfOf(admin.text), tool: 'place_order', ...(rule === undefined ? {} : { rule }) },
      });
    assert.equal((await setRule('')).status, 303);
    try {
      const signedIn = await authorize({
        issuer: stack.issuer,
        clientId: client.client_id,
        redirectUri: 'https://agent.example/callback',
        scope: `${BASE} stocks:trade`,
        resource: stack.mcpUrl,
        email: 'bob@example.com',
      });
      const token = await redeemCode(
        stack.issuer,
        {
          code: signedIn.callback.searchParams.get('code') ?? '',
          verifier: signedIn.verifier,
          redirectUri: 'https://agent.example/callback',
          clientId: client.client_id,
          resource: stack.mcpUrl,
        },
        auth,
      );
      assert.equal(token.status, 200, token.text);
      assert.ok(String(token.json.scope).split(' ').includes('stocks:trade'));
      assert.ok(token.json.refresh_token, 'a refresh token');
      assert.equal((await setRule(undefined)).status, 303);
      const refreshed = await postForm(
        `${stack.issuer}/token`,
        {
          grant_type: 'refresh_token',
          refresh_token: String(token.json.refresh_token),
          resource: stack.mcpUrl,
        },
        auth,
      );
      assert.equal(refreshed.status, 200, refreshed.text);
      assert.ok(
        !String(refreshed.json.scope).split(' ').includes('stocks:trade'),
        String(refreshed.json.scope),
      );
      assert.ok(
        !(await listTools(String(refreshed.json.access_token))).tools.some((t) => t.name === 'place_order'),
      );
    } finally {
      await setRule(undefined);
    }
  });
});
