import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tokenHash } from '../shared/jwt.ts';
import {
  createTokenExchangeClient,
  exchangeCacheKey,
  type TokenExchangeClientOptions,
  TokenExchangeError,
} from './token-exchange-client.ts';

const STOCKS = 'http://localhost:8000/api/stocks';
const CUSTOMERS = 'http://localhost:8000/api/customers';

interface Sent {
  url: string;
  authorization: string | null;
  headers: Headers;
  form: URLSearchParams;
}

/** A token endpoint stand-in: records requests, answers with `answer`. */
function fakeTokenEndpoint(answer: (form: URLSearchParams, n: number) => Response | Promise<Response>) {
  const sent: Sent[] = [];
  const fetchImpl = async (input: string | URL | Request, init?: RequestInit) => {
    const form = new URLSearchParams(String(init?.body));
    const headers = new Headers(init?.headers);
    sent.push({ url: String(input), authorization: headers.get('authorization'), headers, form });
    return answer(form, sent.length);
  };
  return { sent, fetch: fetchImpl as typeof fetch };
}

const issued = (n: number, expiresIn = 300) =>
  Response.json({
    access_token: `exchanged-${n}`,
    issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    token_type: 'Bearer',
    expires_in: expiresIn,
    scope: 'stocks.read',
  });

function client(overrides: Partial<TokenExchangeClientOptions> & { fetch: typeof fetch }) {
  let clock = 1_000_000;
  const exchangeClient = createTokenExchangeClient({
    tokenEndpoint: 'http://as.example/token',
    clientId: 'gatehouse-mcp-server',
    clientSecret: 'the-secret',
    maxEntries: 100,
    refreshBeforeSeconds: 30,
    timeoutMs: 1000,
    now: () => clock,
    ...overrides,
  });
  return {
    exchangeClient,
    advance: (seconds: number) => {
      clock += seconds;
    },
  };
}

describe('the token exchange client', () => {
  test('names the tool and the request in headers, for the audit trail; an implausible tool name is not sent', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    await exchangeClient.exchange({
      subjectToken: 'subject.jwt',
      audience: STOCKS,
      tool: 'get_stock',
      requestId: 'request-0001',
    });
    await exchangeClient.exchange({ subjectToken: 'other.jwt', audience: STOCKS, tool: 'bad tool\r\nx: y' });
    assert.equal(endpoint.sent[0]?.headers.get('gatehouse-tool'), 'get_stock');
    assert.equal(endpoint.sent[0]?.headers.get('x-request-id'), 'request-0001');
    assert.equal(endpoint.sent[1]?.headers.get('gatehouse-tool'), null);
  });

  test('asks for an RFC 8693 exchange with its own credentials, for the audience, without scope', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    const token = await exchangeClient.exchange({ subjectToken: 'subject.jwt', audience: STOCKS });
    assert.equal(token.accessToken, 'exchanged-1');
    assert.equal(token.expiresAt, 1_000_300);
    assert.equal(token.scope, 'stocks.read');
    const [request] = endpoint.sent;
    assert.equal(request?.url, 'http://as.example/token');
    assert.equal(
      request?.authorization,
      `Basic ${Buffer.from('gatehouse-mcp-server:the-secret').toString('base64')}`,
    );
    assert.deepEqual(Object.fromEntries(request!.form), {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: 'subject.jwt',
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      audience: STOCKS,
    });
  });

  test('sends a scope when one is asked for', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS, scope: 'stocks.read' });
    assert.equal(endpoint.sent[0]?.form.get('scope'), 'stocks.read');
  });

  test('without the subject claims the cache key is the token hash, audience and scope set: never the token', () => {
    const key = exchangeCacheKey({
      subjectToken: 'subject.jwt',
      audience: STOCKS,
      scope: 'b a',
      tool: 'get_stock',
    });
    assert.equal(key, `token:${tokenHash('subject.jwt')} ${STOCKS} a b`);
    assert.ok(!key.includes('subject.jwt'));
    // The scope is a set (RFC 6749 §3.3): its order does not make another key; nor does another tool
    // needing the same scopes (it may use the same token).
    assert.equal(
      exchangeCacheKey({ subjectToken: 'subject.jwt', audience: STOCKS, scope: 'a b', tool: 'list_stocks' }),
      key,
    );
    assert.notEqual(exchangeCacheKey({ subjectToken: 'subject.jwt', audience: STOCKS, scope: 'a' }), key);
  });

  test('with them, the key is the grant, expiry and scopes: a re-signed phantom token reuses the entry (defect 11)', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n, 300));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    const subject = {
      grantId: 'g1',
      sub: 'alice',
      clientId: 'agent',
      expiresAt: 2_000_000_000,
      scopes: ['stocks:read'],
    };
    const first = await exchangeClient.exchange({
      subjectToken: 'phantom.one.sig',
      audience: STOCKS,
      subject,
    });
    const second = await exchangeClient.exchange({
      subjectToken: 'phantom.two.sig',
      audience: STOCKS,
      subject,
    });
    assert.equal(second.accessToken, first.accessToken);
    assert.equal(endpoint.sent.length, 1, 'one exchange for the two phantom tokens of one grant');
    // Another token of the grant (another expiry) or more scope is another entry.
    await exchangeClient.exchange({
      subjectToken: 'p3',
      audience: STOCKS,
      subject: { ...subject, expiresAt: 2_000_000_100 },
    });
    await exchangeClient.exchange({
      subjectToken: 'p4',
      audience: STOCKS,
      subject: { ...subject, scopes: ['stocks:read', 'stocks:trade'] },
    });
    assert.equal(endpoint.sent.length, 3);
  });

  test('a cached token is reused only while revocations are heard lately', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n, 300));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    let heard = true;
    exchangeClient.trustWhile(() => heard);
    const subject = {
      tokenHash: 'h',
      sub: 'wl',
      clientId: 'wl',
      expiresAt: 2_000_000_000,
      scopes: ['stocks:read'],
    };
    const call = () => exchangeClient.exchange({ subjectToken: 'x', audience: STOCKS, subject });
    await call();
    await call();
    assert.equal(endpoint.sent.length, 1);
    heard = false;
    await call();
    await call();
    assert.equal(endpoint.sent.length, 3, 'unheard: every call exchanges afresh');
    heard = true;
    await call();
    assert.equal(endpoint.sent.length, 3, 'the newest exchanged token is reused again');
  });

  test("a workload token's revocation drops its exchanged tokens only, found by the opaque token's hash", async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n, 300));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    const first = {
      tokenHash: 'h1',
      sub: 'wl',
      clientId: 'wl',
      expiresAt: 2_000_000_000,
      scopes: ['stocks:read'],
    };
    const second = { ...first, tokenHash: 'h2', expiresAt: 2_000_000_050 };
    for (const subject of [first, second])
      await exchangeClient.exchange({ subjectToken: 'x', audience: STOCKS, subject });
    assert.equal(exchangeClient.dropToken('h1'), 1);
    assert.equal(exchangeClient.dropToken('h1'), 0);
    await exchangeClient.exchange({ subjectToken: 'x', audience: STOCKS, subject: second });
    assert.equal(endpoint.sent.length, 2, "the client's other token keeps its exchanged token");
    await exchangeClient.exchange({ subjectToken: 'x', audience: STOCKS, subject: first });
    assert.equal(endpoint.sent.length, 3);
  });

  test('revocation drops the entries of a grant, a client or a subject; suspended, nothing is cached', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n, 300));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    const alice = {
      grantId: 'g1',
      sub: 'alice',
      clientId: 'agent',
      expiresAt: 2_000_000_000,
      scopes: ['stocks:read'],
    };
    const workload = { sub: 'wl', clientId: 'wl', expiresAt: 2_000_000_000, scopes: ['stocks:read'] };
    const call = (subject: typeof alice | typeof workload) =>
      exchangeClient.exchange({ subjectToken: 'x', audience: STOCKS, subject });
    await call(alice);
    await call(workload);
    assert.equal(exchangeClient.dropGrant('g1'), 1);
    assert.equal(exchangeClient.dropClient('wl'), 1);
    await call(alice);
    assert.equal(endpoint.sent.length, 3);
    assert.equal(exchangeClient.dropSubject('alice'), 1);
    exchangeClient.suspend(true);
    await call(alice);
    await call(alice);
    assert.equal(endpoint.sent.length, 5, 'nothing cached while suspended');
    exchangeClient.suspend(false);
    await call(alice);
    await call(alice);
    assert.equal(endpoint.sent.length, 6);
  });

  test('a 429 with a short Retry-After is waited out and retried once; a long one fails at once', async () => {
    let calls = 0;
    const limited = async () => {
      calls += 1;
      return calls === 1
        ? new Response(JSON.stringify({ error: 'temporarily_unavailable' }), {
            status: 429,
            headers: { 'retry-after': '1', 'content-type': 'application/json' },
          })
        : Response.json({ access_token: 'after.wait.sig', expires_in: 300, token_type: 'Bearer' });
    };
    const waited = await client({ fetch: limited as typeof fetch, timeoutMs: 3000 }).exchangeClient.exchange({
      subjectToken: 's',
      audience: STOCKS,
    });
    assert.equal(waited.accessToken, 'after.wait.sig');
    assert.equal(calls, 2);
    const long = async () =>
      new Response('{}', {
        status: 429,
        headers: { 'retry-after': '120', 'content-type': 'application/json' },
      });
    await assert.rejects(
      client({ fetch: long as typeof fetch }).exchangeClient.exchange({
        subjectToken: 's',
        audience: STOCKS,
      }),
      (error: unknown) => error instanceof TokenExchangeError && error.code === 'temporarily_unavailable',
    );
  });

  test('reuses a token per subject, audience and scope until refreshBeforeSeconds before expiry', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n, 300));
    const { exchangeClient, advance } = client({ fetch: endpoint.fetch });
    const first = await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS });
    assert.equal(
      (await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS })).accessToken,
      first.accessToken,
    );
    // Another audience, another scope, another subject: each its own exchange.
    await exchangeClient.exchange({ subjectToken: 's', audience: CUSTOMERS });
    await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS, scope: 'stocks.read' });
    await exchangeClient.exchange({ subjectToken: 'other', audience: STOCKS });
    assert.equal(exchangeClient.exchanges, 4);
    advance(269);
    assert.equal(
      (await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS })).accessToken,
      'exchanged-1',
    );
    advance(1); // 300 - 30 seconds after issue: too close to expiry.
    assert.equal(
      (await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS })).accessToken,
      'exchanged-5',
    );
    assert.equal(exchangeClient.exchanges, 5);
  });

  test('a token living no longer than refreshBeforeSeconds is used once, not cached', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n, 20));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS });
    await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS });
    assert.equal(exchangeClient.exchanges, 2);
    assert.equal(exchangeClient.cacheSize, 0);
  });

  test('the cache is bounded: the least recently used entry goes first', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) => issued(n));
    const { exchangeClient } = client({ fetch: endpoint.fetch, maxEntries: 2 });
    await exchangeClient.exchange({ subjectToken: 'a', audience: STOCKS });
    await exchangeClient.exchange({ subjectToken: 'b', audience: STOCKS });
    await exchangeClient.exchange({ subjectToken: 'a', audience: STOCKS }); // a is now the most recent
    await exchangeClient.exchange({ subjectToken: 'c', audience: STOCKS }); // evicts b
    assert.equal(exchangeClient.cacheSize, 2);
    assert.equal(exchangeClient.exchanges, 3);
    await exchangeClient.exchange({ subjectToken: 'a', audience: STOCKS });
    assert.equal(exchangeClient.exchanges, 3);
    await exchangeClient.exchange({ subjectToken: 'b', audience: STOCKS });
    assert.equal(exchangeClient.exchanges, 4);
  });

  test('concurrent exchanges of the same key share one request', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const endpoint = fakeTokenEndpoint(async (_form, n) => {
      await gate;
      return issued(n);
    });
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    const calls = Array.from({ length: 5 }, () =>
      exchangeClient.exchange({ subjectToken: 's', audience: STOCKS }),
    );
    const other = exchangeClient.exchange({ subjectToken: 's', audience: CUSTOMERS });
    release();
    const tokens = await Promise.all(calls);
    assert.deepEqual(new Set(tokens.map((token) => token.accessToken)), new Set(['exchanged-1']));
    assert.equal((await other).accessToken, 'exchanged-2');
    assert.equal(endpoint.sent.length, 2);
  });

  test('a refusal carries the OAuth error and is not cached', async () => {
    const endpoint = fakeTokenEndpoint((_form, n) =>
      n === 1
        ? Response.json(
            { error: 'invalid_grant', error_description: 'subject_token has expired' },
            { status: 400 },
          )
        : issued(n),
    );
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    await assert.rejects(
      exchangeClient.exchange({ subjectToken: 's', audience: STOCKS }),
      (error: unknown) => {
        assert.ok(error instanceof TokenExchangeError);
        assert.equal(error.code, 'invalid_grant');
        assert.equal(error.status, 400);
        assert.match(error.message, /subject_token has expired/);
        return true;
      },
    );
    assert.equal(
      (await exchangeClient.exchange({ subjectToken: 's', audience: STOCKS })).accessToken,
      'exchanged-2',
    );
  });

  test('an unreachable or silent authorization server is an error of its own', async () => {
    const unreachable = client({
      fetch: (async () => {
        throw new TypeError('fetch failed');
      }) as typeof fetch,
    });
    await assert.rejects(unreachable.exchangeClient.exchange({ subjectToken: 's', audience: STOCKS }), {
      code: 'unreachable',
    });
    const silent = client({
      timeoutMs: 30,
      fetch: ((_input: unknown, init?: RequestInit) =>
        new Promise((_resolve, reject) => {
          init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
        })) as typeof fetch,
    });
    await assert.rejects(silent.exchangeClient.exchange({ subjectToken: 's', audience: STOCKS }), {
      code: 'timeout',
    });
  });

  test('an answer without a token is an error, not a token', async () => {
    const endpoint = fakeTokenEndpoint(() => Response.json({ token_type: 'Bearer' }));
    const { exchangeClient } = client({ fetch: endpoint.fetch });
    await assert.rejects(exchangeClient.exchange({ subjectToken: 's', audience: STOCKS }), {
      code: 'invalid_response',
    });
  });
});
