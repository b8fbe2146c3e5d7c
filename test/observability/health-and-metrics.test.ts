/**
 * Operations (issue 9): every component's liveness, readiness and Prometheus metrics, after real
 * traffic through the whole chain, and who may read the metrics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { registerNativeClient, userToken } from '../helpers/oauth.ts';
import { callGetStock, until } from '../helpers/revocation.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';

/** The value of the series `name` whose labels include all of `labels`; undefined when there is none. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const set = match[2] ?? '';
    if (Object.entries(labels).every(([key, value]) => set.includes(`${key}="${value}"`)))
      return Number(match[3]);
  }
  return undefined;
}

async function scrape(base: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/metrics`, { headers });
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
}

describe('health, readiness and metrics of every component', () => {
  let stack: TestStack;
  let components: Record<string, string>;
  before(async () => {
    stack = await startTestStack();
    components = {
      'authorization-server': stack.issuer,
      gateway: stack.gatewayUrl,
      'mcp-server': stack.mcpServerUrl,
      apis: stack.apisUrl,
    };
  });
  after(() => stack.close());

  test('every component is live, and ready once what it depends on answers, saying what that is', async () => {
    for (const [name, base] of Object.entries(components)) {
      const live = await fetch(`${base}/healthz`);
      assert.equal(live.status, 200, name);
      assert.deepEqual(await live.json(), { status: 'ok' });
      await until(async () => (await fetch(`${base}/readyz`)).status === 200, `${name} ready`);
    }
    type Check = { ok?: boolean; connected?: boolean; via?: string; jwks_uri?: string };
    const ready = async (base: string) =>
      (await (await fetch(`${base}/readyz`)).json()) as { status: string } & Record<string, Check>;
    const as = await ready(stack.issuer);
    assert.equal(as.status, 'ready');
    assert.equal(as.store?.ok, true);
    assert.equal(as.keys?.ok, true, 'the key set is the one it started with');
    assert.deepEqual(as.mail, { ok: true, via: 'development inbox' });
    assert.equal((await ready(stack.gatewayUrl)).revocations?.connected, true);
    const mcp = await ready(stack.mcpServerUrl);
    assert.equal(mcp.revocations?.connected, true);
    assert.equal(mcp.signing_keys?.ok, true);
    assert.equal(mcp.signing_keys?.jwks_uri, `${stack.issuer}/jwks`);
    assert.equal((await ready(stack.apisUrl)).signing_keys?.ok, true);
  });

  test('the metrics count real traffic: requests by route and status, caches, refusals, tool calls, live tokens', async () => {
    const clientId = await registerNativeClient(stack.issuer, [REDIRECT_URI]);
    const { token } = await userToken({
      issuer: stack.issuer,
      clientId,
      redirectUri: REDIRECT_URI,
      scope: 'stocks:read',
      resource: stack.mcpUrl,
    });
    const accessToken = String(token.json.access_token);
    for (let i = 0; i < 2; i++) {
      const call = await callGetStock(stack.gatewayUrl, accessToken);
      assert.equal(call.status, 200);
      assert.match(await call.text(), /SAP/);
    }
    const bogus = await callGetStock(stack.gatewayUrl, 'x'.repeat(43));
    assert.equal(bogus.status, 401);
    await bogus.text();

    const gateway = await scrape(stack.gatewayUrl);
    assert.equal(gateway.status, 200);
    assert.match(gateway.type ?? '', /^text\/plain; version=0\.0\.4/);
    const g = (name: string, labels?: Record<string, string>) => metric(gateway.text, name, labels);
    assert.equal(
      g('gatehouse_http_requests_total', { route: 'mcp-server', status: '200', component: 'gateway' }),
      2,
    );
    assert.equal(g('gatehouse_http_requests_total', { route: 'mcp-server', status: '401' }), 1);
    assert.equal(g('gatehouse_gateway_introspection_cache_total', { result: 'miss' }), 1);
    assert.equal(g('gatehouse_gateway_introspection_cache_total', { result: 'hit' }), 1);
    assert.equal(g('gatehouse_gateway_credentials_total', { outcome: 'phantom' }), 2);
    assert.equal(g('gatehouse_gateway_credentials_total', { outcome: 'not-issued' }), 1);
    assert.equal(g('gatehouse_revocation_channel_connected'), 1);
    assert.equal(g('gatehouse_gateway_introspection_cache_entries'), 1);
    assert.ok((g('gatehouse_http_request_duration_seconds_count', { route: 'mcp-server' }) ?? 0) >= 3);
    assert.ok((g('gatehouse_process_cpu_seconds_total') ?? 0) > 0, 'default process metrics');
    // A request for a made-up token is refused by the MCP server's challenge, not by the gateway.
    assert.equal(g('gatehouse_gateway_refusals_total'), undefined);

    const mcp = await scrape(stack.mcpServerUrl);
    const m = (name: string, labels?: Record<string, string>) => metric(mcp.text, name, labels);
    assert.equal(m('gatehouse_mcp_exchange_cache_total', { result: 'miss' }), 1);
    assert.equal(m('gatehouse_mcp_exchange_cache_total', { result: 'hit' }), 1);
    assert.equal(m('gatehouse_audit_events_total', { event: 'mcp.tool_call', outcome: 'success' }), 2);
    assert.equal(m('gatehouse_mcp_refusals_total', { reason: 'no_token' }), 1);
    assert.equal(m('gatehouse_http_requests_total', { route: 'mcp', status: '200' }), 2);

    const as = await scrape(stack.issuer);
    const a = (name: string, labels?: Record<string, string>) => metric(as.text, name, labels);
    assert.equal(
      a('gatehouse_audit_events_total', {
        event: 'token.issued',
        outcome: 'success',
        component: 'authorization-server',
      }) !== undefined,
      true,
    );
    assert.ok((a('gatehouse_audit_events_total', { event: 'token.exchange', outcome: 'success' }) ?? 0) >= 1);
    assert.ok((a('gatehouse_live_tokens', { kind: 'AccessToken' }) ?? 0) >= 1);
    assert.ok((a('gatehouse_registered_clients') ?? 0) >= 1);
    assert.equal(a('gatehouse_revocation_listeners'), 2);
    assert.ok((a('gatehouse_http_requests_total', { route: 'token', status: '200' }) ?? 0) >= 2);
    assert.ok((a('gatehouse_http_requests_total', { route: 'interaction', status: '200' }) ?? 0) >= 1);
    assert.ok((a('gatehouse_http_requests_total', { route: 'registration', status: '201' }) ?? 0) >= 1);

    const apis = await scrape(stack.apisUrl);
    // Each tool call reached the API (the exchanged token is cached, the call is not).
    assert.equal(metric(apis.text, 'gatehouse_http_requests_total', { route: 'stocks', status: '200' }), 2);
    const noToken = await fetch(`${stack.apisUrl}/stocks/SAP`);
    assert.equal(noToken.status, 401);
    await noToken.text();
    const badToken = await fetch(`${stack.apisUrl}/stocks/SAP`, {
      headers: { authorization: 'Bearer x.y.z' },
    });
    assert.equal(badToken.status, 401);
    await badToken.text();
    const again = await scrape(stack.apisUrl);
    assert.equal(
      metric(again.text, 'gatehouse_api_refusals_total', { api: 'stocks', reason: 'unauthorized' }),
      1,
    );
    assert.equal(
      metric(again.text, 'gatehouse_api_refusals_total', { api: 'stocks', reason: 'invalid_token' }),
      1,
    );
    // Random paths are one series, not one each.
    await (await fetch(`${stack.gatewayUrl}/random-${Date.now()}`)).text();
    const scan = await scrape(stack.gatewayUrl);
    assert.equal(
      metric(scan.text, 'gatehouse_http_requests_total', { route: 'not_found', status: '404' }),
      1,
    );
    assert.doesNotMatch(scan.text, /random-/);
  });

  test('no metric carries a token, a secret or an email', async () => {
    for (const base of Object.values(components)) {
      const { text } = await scrape(base);
      assert.doesNotMatch(text, /@example\.com|Bearer|eyJ/);
    }
  });

  test('metrics are refused to a caller that came through a proxy, whatever its address', async () => {
    const proxied: Array<Record<string, string>> = [
      { 'x-forwarded-for': '203.0.113.7' },
      { forwarded: 'for=203.0.113.7' },
    ];
    for (const header of proxied) {
      const refused = await scrape(stack.gatewayUrl, header);
      assert.equal(refused.status, 403);
      assert.doesNotMatch(refused.text, /gatehouse_/);
      assert.match(refused.text, /metrics\.allowFrom/);
    }
  });
});

describe('metrics for scrapers elsewhere: an address list and a bearer token', () => {
  const token = 'a-metrics-token-of-at-least-32-characters';
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack({ metrics: { allowFrom: ['10.0.0.0/8'], token } });
  });
  after(() => stack.close());

  test('a loopback caller outside allowFrom is refused; the token lets it in; a wrong token does not', async () => {
    for (const base of [stack.issuer, stack.gatewayUrl, stack.mcpServerUrl, stack.apisUrl]) {
      assert.equal((await scrape(base)).status, 403, base);
      assert.equal((await scrape(base, { authorization: `Bearer ${token}x` })).status, 403);
      const allowed = await scrape(base, { authorization: `Bearer ${token}` });
      assert.equal(allowed.status, 200);
      assert.match(allowed.text, /gatehouse_http_requests_total/);
      // Through a proxy, the token still counts: it does not depend on the address.
      assert.equal(
        (await scrape(base, { authorization: `Bearer ${token}`, 'x-forwarded-for': '203.0.113.7' })).status,
        200,
      );
    }
  });
});
