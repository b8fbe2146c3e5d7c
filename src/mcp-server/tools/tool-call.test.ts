import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AuthInfo, CallToolResult } from '@modelcontextprotocol/server';
import { parseConfig } from '../../shared/config/load.ts';
import { createLogger } from '../../shared/logging.ts';
import { resolveApiScopes } from '../settings.ts';
import { type TokenExchangeClient, TokenExchangeError } from '../token-exchange-client.ts';
import { buildCatalogue } from './catalogue.ts';
import { describeExchangeFailure, runToolCall } from './tool-call.ts';

const apis = new Map([
  [
    'stocks',
    { name: 'stocks', baseUrl: 'http://api.test/stocks', audience: 'http://localhost:8000/api/stocks' },
  ],
  ['customers', { name: 'customers', baseUrl: 'http://api.test/customers', audience: 'http://c' }],
]);
const getStock = buildCatalogue(resolveApiScopes(parseConfig({})), apis).find(
  (tool) => tool.name === 'get_stock',
)!;

const authInfo: AuthInfo = {
  token: 'subject.phantom.jwt',
  clientId: 'agent-1',
  scopes: ['stocks:read'],
  expiresAt: Math.floor(Date.now() / 1000) + 600,
  extra: { principal: { sub: 'alice', clientId: 'agent-1', grantId: 'grant-1' } },
};

function harness(exchange: TokenExchangeClient['exchange'], answer = () => Response.json({ ok: true })) {
  const lines: Array<Record<string, unknown>> = [];
  const calls: Array<{ url: string; authorization: string | null }> = [];
  const deps = {
    tokenExchange: { exchange, exchanges: 0, cacheSize: 0 },
    logger: createLogger('test', { level: 'debug', write: (line) => lines.push(JSON.parse(line)) }),
    upstreamTimeoutMs: 1000,
    fetch: (async (input: string | URL | Request, init?: RequestInit) => {
      calls.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') });
      return answer();
    }) as typeof fetch,
  };
  const audits = () => lines.filter((line) => line.event === 'mcp.tool_call');
  return { deps, calls, audits, lines };
}

describe('a tool call', () => {
  test('exchanges the subject token for the API audience and calls the API with the result', async () => {
    const asked: unknown[] = [];
    const { deps, calls, audits } = harness(async (request) => {
      asked.push(request);
      return { accessToken: 'exchanged.for.stocks', expiresAt: 0, scope: 'stocks.read' };
    });
    const result = (await runToolCall(getStock, { symbol: 'ACME' }, authInfo, deps)) as CallToolResult;
    assert.equal(result.isError, undefined);
    assert.deepEqual(asked, [
      {
        subjectToken: 'subject.phantom.jwt',
        audience: 'http://localhost:8000/api/stocks',
        // Least privilege per call: exactly what get_stock needs at the API, not all stocks:* maps to.
        scope: 'stocks.read',
        // Named to the authorization server: in the token (mcp_tool) and its audit trail.
        tool: 'get_stock',
        // What the token stands for: the exchange cache key, stable across re-introspections.
        subject: {
          grantId: 'grant-1',
          sub: 'alice',
          clientId: 'agent-1',
          expiresAt: authInfo.expiresAt,
          scopes: ['stocks:read'],
        },
      },
    ]);
    assert.deepEqual(calls, [
      { url: 'http://api.test/stocks/ACME', authorization: 'Bearer exchanged.for.stocks' },
    ]);
    const [audit] = audits();
    assert.equal(audit?.outcome, 'success');
    assert.equal(audit?.sub, 'alice');
    assert.equal(audit?.client_id, 'agent-1');
    assert.equal(audit?.upstream_status, 200);
  });

  test("the request's id goes into the exchange request and the audit line", async () => {
    const asked: Array<{ requestId?: string }> = [];
    const { deps, audits } = harness(async (request) => {
      asked.push(request);
      return { accessToken: 'exchanged.for.stocks', expiresAt: 0, scope: 'stocks.read' };
    });
    const withId: AuthInfo = { ...authInfo, extra: { ...authInfo.extra, requestId: 'req-0123456789' } };
    await runToolCall(getStock, { symbol: 'ACME' }, withId, deps);
    assert.equal(asked[0]?.requestId, 'req-0123456789');
    assert.equal(audits()[0]?.request_id, 'req-0123456789');
  });

  test('a refused exchange is a tool error saying what to do, and the API is not called', async () => {
    const { deps, calls, audits, lines } = harness(async () => {
      throw new TokenExchangeError(
        'invalid_grant',
        'refused (invalid_grant: subject_token has expired)',
        400,
      );
    });
    const result = (await runToolCall(getStock, { symbol: 'ACME' }, authInfo, deps)) as CallToolResult;
    assert.equal(result.isError, true);
    assert.match((result.content[0] as { text: string }).text, /Sign in again and retry/);
    assert.equal(calls.length, 0);
    assert.equal(audits()[0]?.reason, 'token_exchange:invalid_grant');
    assert.ok(!JSON.stringify(lines).includes('subject.phantom.jwt'));
  });

  test('an unexpected failure is a plain tool error, its message only in the log', async () => {
    const { deps, audits } = harness(async () => {
      throw new Error('Cannot read properties of undefined (at exchange.ts:12)');
    });
    const result = (await runToolCall(getStock, { symbol: 'ACME' }, authInfo, deps)) as CallToolResult;
    assert.equal(result.isError, true);
    assert.doesNotMatch((result.content[0] as { text: string }).text, /exchange\.ts|undefined/);
    assert.equal(audits()[0]?.reason, 'internal_error');
  });

  test('without authentication nothing is exchanged or called', async () => {
    const { deps, calls } = harness(async () => assert.fail('no exchange without a token'));
    const result = await runToolCall(getStock, { symbol: 'ACME' }, undefined, deps);
    assert.equal(result.isError, true);
    assert.equal(calls.length, 0);
  });

  test('exchange failures are explained by cause', () => {
    const message = (code: string) => describeExchangeFailure('stocks', new TokenExchangeError(code, code));
    assert.match(message('invalid_scope'), /has not granted/);
    assert.match(message('timeout'), /Try again later/);
    assert.match(message('unreachable'), /Try again later/);
    assert.match(
      message('unauthorized_client'),
      /configuration problem.*\(unauthorized_client\)|\(unauthorized_client\).*configuration problem/,
    );
  });
});
