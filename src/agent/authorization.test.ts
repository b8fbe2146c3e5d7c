import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type { AuthorizationServerMetadata, FetchLike } from '@modelcontextprotocol/client';
import { authorizeWithCode, type SignInLink, signInLinkMessage } from './authorization.ts';
import type { Discovered } from './discovery.ts';
import { AgentError, UnknownClientError } from './errors.ts';

const ISSUER = 'https://auth.example.com';
const RESOURCE = 'https://mcp.example.com/mcp';

function discovered(extra: Record<string, unknown> = {}): Discovered {
  const metadata = {
    issuer: ISSUER,
    authorization_endpoint: `${ISSUER}/authorize`,
    token_endpoint: `${ISSUER}/token`,
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['none'],
    authorization_response_iss_parameter_supported: true,
    ...extra,
  } as AuthorizationServerMetadata;
  return { issuer: ISSUER, resource: RESOURCE, metadata, resourceMetadata: { resource: RESOURCE } };
}

/** An authorization server's back channel: records each request, answers from `answer`. */
function backChannel(answer: (url: string, body: URLSearchParams) => Response) {
  const requests: Array<{ url: string; body: URLSearchParams }> = [];
  const fetchFn: FetchLike = async (input, init) => {
    const body = new URLSearchParams(String(init?.body ?? ''));
    requests.push({ url: String(input), body });
    return answer(String(input), body);
  };
  return { fetchFn, requests };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const tokens = () => json(200, { access_token: 'at', token_type: 'Bearer', expires_in: 60, scope: 'a b' });

/** Plays a browser that comes back to the loopback redirect with `params` (state copied unless given). */
function browserReturning(params: Record<string, string | undefined>, seen: URL[] = []) {
  return async (url: string) => {
    const authorization = new URL(url);
    seen.push(authorization);
    const callback = new URL(authorization.searchParams.get('redirect_uri')!);
    const state = authorization.searchParams.get('state')!;
    for (const [key, value] of Object.entries({ state, ...params })) {
      if (value !== undefined) callback.searchParams.set(key, value);
    }
    await fetch(callback).then((response) => response.text());
  };
}

const flow = (
  fetchFn: FetchLike,
  openUrl: (url: string) => Promise<void>,
  extra: Record<string, unknown> = {},
) =>
  authorizeWithCode({
    discovered: discovered(extra),
    client: { kind: 'dynamic', clientId: 'agent-1', authMethod: 'none' },
    scope: 'a b',
    openUrl,
    fetchFn,
    timeoutMs: 5000,
  });

describe('the authorization code flow', () => {
  test('PKCE S256, resource and state on the request; iss checked; code, verifier and resource on the token request', async () => {
    const { fetchFn, requests } = backChannel(() => tokens());
    const seen: URL[] = [];
    const result = await flow(fetchFn, browserReturning({ code: 'the-code', iss: ISSUER }, seen));
    assert.equal(result.access_token, 'at');
    const authorization = seen[0]!;
    assert.equal(authorization.origin + authorization.pathname, `${ISSUER}/authorize`);
    assert.equal(authorization.searchParams.get('code_challenge_method'), 'S256');
    assert.match(authorization.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(authorization.searchParams.get('resource'), RESOURCE);
    assert.equal(authorization.searchParams.get('scope'), 'a b');
    assert.equal(authorization.searchParams.get('client_id'), 'agent-1');
    assert.match(
      authorization.searchParams.get('redirect_uri') ?? '',
      /^http:\/\/127\.0\.0\.1:\d+\/callback$/,
    );
    assert.ok((authorization.searchParams.get('state') ?? '').length >= 32);
    assert.equal(requests.length, 1);
    const token = requests[0]!.body;
    assert.equal(token.get('grant_type'), 'authorization_code');
    assert.equal(token.get('code'), 'the-code');
    assert.ok(token.get('code_verifier'));
    assert.equal(token.get('resource'), RESOURCE);
    assert.equal(token.get('redirect_uri'), authorization.searchParams.get('redirect_uri'));
  });

  test('an iss that is not the authorization server’s is refused before the code is used (RFC 9207)', async () => {
    const { fetchFn, requests } = backChannel(() => tokens());
    await assert.rejects(
      flow(fetchFn, browserReturning({ code: 'the-code', iss: 'https://evil.example.com' })),
      (error: Error) => error.name === 'IssuerMismatchError',
    );
    assert.equal(requests.length, 0, 'no token request');
  });

  test('a missing iss is refused when the server advertises it, accepted when it does not', async () => {
    const first = backChannel(() => tokens());
    await assert.rejects(
      flow(first.fetchFn, browserReturning({ code: 'c' })),
      (error: Error) => error.name === 'IssuerMismatchError',
    );
    assert.equal(first.requests.length, 0);
    const second = backChannel(() => tokens());
    const result = await flow(second.fetchFn, browserReturning({ code: 'c' }), {
      authorization_response_iss_parameter_supported: undefined,
    });
    assert.equal(result.access_token, 'at');
  });

  test('an error response is reported after its iss is checked; invalid_client means the client is unknown', async () => {
    const { fetchFn } = backChannel(() => tokens());
    await assert.rejects(
      flow(fetchFn, browserReturning({ error: 'access_denied', iss: ISSUER })),
      /access_denied/,
    );
    await assert.rejects(
      flow(fetchFn, browserReturning({ error: 'invalid_client', iss: ISSUER })),
      UnknownClientError,
    );
    await assert.rejects(
      flow(fetchFn, browserReturning({ error: 'access_denied', iss: 'https://evil.example.com' })),
      (error: Error) => error.name === 'IssuerMismatchError',
    );
  });

  test('invalid_client at the token endpoint means the client is unknown', async () => {
    const { fetchFn } = backChannel(() =>
      json(401, { error: 'invalid_client', error_description: 'client authentication failed' }),
    );
    await assert.rejects(flow(fetchFn, browserReturning({ code: 'c', iss: ISSUER })), UnknownClientError);
  });

  test('with pushed authorization requests: the browser gets only client_id and request_uri', async () => {
    const par = `${ISSUER}/par`;
    const { fetchFn, requests } = backChannel((url) =>
      url === par
        ? json(201, { request_uri: 'urn:ietf:params:oauth:request_uri:abc', expires_in: 60 })
        : tokens(),
    );
    const seen: URL[] = [];
    let redirect = '';
    let state = '';
    const openUrl = async (url: string) => {
      seen.push(new URL(url));
      // The browser would learn redirect_uri and state from the pushed request.
      const pushed = requests[0]!.body;
      redirect = pushed.get('redirect_uri')!;
      state = pushed.get('state')!;
      await fetch(`${redirect}?code=c&state=${state}&iss=${encodeURIComponent(ISSUER)}`).then((r) =>
        r.text(),
      );
    };
    await flow(fetchFn, openUrl, { pushed_authorization_request_endpoint: par });
    assert.deepEqual([...seen[0]!.searchParams.keys()].sort(), ['client_id', 'request_uri']);
    const pushed = requests[0]!.body;
    assert.equal(pushed.get('resource'), RESOURCE);
    assert.equal(pushed.get('code_challenge_method'), 'S256');
    assert.equal(pushed.get('client_id'), 'agent-1');
  });

  test('an unknown client is refused at the pushed authorization endpoint, before the browser opens', async () => {
    const par = `${ISSUER}/par`;
    const { fetchFn } = backChannel(() =>
      json(401, { error: 'invalid_client', error_description: 'client authentication failed' }),
    );
    let opened = false;
    await assert.rejects(
      flow(
        fetchFn,
        async () => {
          opened = true;
        },
        { pushed_authorization_request_endpoint: par },
      ),
      UnknownClientError,
    );
    assert.equal(opened, false);
  });

  test('the first link text says how long it is valid; a replacement says the earlier one expired', () => {
    const first = signInLinkMessage('https://a/x', { number: 1, of: 3, lifetimeMs: 300_000 }, false);
    assert.match(first, /valid for about 5 minutes/);
    const second = signInLinkMessage('https://a/y', { number: 2, of: 3, lifetimeMs: 300_000 }, true);
    // The words of the authorization server's dead-end page (views/error-page.ts).
    assert.match(second, /has expired, so here is a new one \(link 2 of at most 3/);
    assert.match(second, /"This sign-in link has expired", use this link instead/);
    assert.match(second, /Opening your browser/);
    assert.match(second, /https:\/\/a\/y/);
  });
});

const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

describe('a sign-in link that expires', () => {
  const linkFlow = (
    fetchFn: FetchLike,
    openUrl: (url: string, link: SignInLink) => Promise<void> | void,
    limits: { timeoutMs: number; linkLifetimeMs?: number; maxLinks?: number },
    extra: Record<string, unknown> = {},
  ) =>
    authorizeWithCode({
      discovered: discovered(extra),
      client: { kind: 'dynamic', clientId: 'agent-1', authMethod: 'none' },
      scope: 'a b',
      openUrl,
      fetchFn,
      ...limits,
    });

  test('is replaced by a new request after its lifetime; the old state is refused, the new one taken', async () => {
    const { fetchFn, requests } = backChannel(() => tokens());
    const seen: Array<{ url: URL; link: SignInLink }> = [];
    const refused: Array<{ status: number; page: string }> = [];
    const openUrl = async (url: string, link: SignInLink) => {
      const authorization = new URL(url);
      seen.push({ url: authorization, link });
      // The user ignores the first link; on the second, their browser first comes back late from the
      // first sign-in, then from the new one.
      if (link.number !== 2) return;
      const old = seen[0]!.url;
      const late = new URL(old.searchParams.get('redirect_uri')!);
      late.searchParams.set('code', 'stale-code');
      late.searchParams.set('state', old.searchParams.get('state')!);
      late.searchParams.set('iss', ISSUER);
      const answer = await fetch(late);
      refused.push({ status: answer.status, page: await answer.text() });
      await browserReturning({ code: 'fresh-code', iss: ISSUER })(url);
    };
    const started = Date.now();
    const result = await linkFlow(fetchFn, openUrl, { timeoutMs: 5000, linkLifetimeMs: 150 });
    assert.equal(result.access_token, 'at');
    assert.ok(Date.now() - started >= 140, 'the second link came after the first one’s lifetime');

    assert.deepEqual(
      seen.map(({ link }) => link),
      [
        { number: 1, of: 3, lifetimeMs: 150 },
        { number: 2, of: 3, lifetimeMs: 150 },
      ],
    );
    const [first, second] = seen.map(({ url }) => url.searchParams);
    assert.notEqual(first!.get('state'), second!.get('state'), 'a new state');
    assert.notEqual(first!.get('code_challenge'), second!.get('code_challenge'), 'a new PKCE verifier');
    assert.equal(first!.get('redirect_uri'), second!.get('redirect_uri'), 'the same loopback server');

    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.status, 400);
    assert.match(refused[0]!.page, /replaced/);
    assert.doesNotMatch(refused[0]!.page, /stale-code/);

    assert.equal(requests.length, 1, 'only the new link’s code is redeemed');
    const token = requests[0]!.body;
    assert.equal(token.get('code'), 'fresh-code');
    assert.equal(s256(token.get('code_verifier')!), second!.get('code_challenge'), 'with the new verifier');
  });

  test('gives at most three links, then waits for the overall timeout', async () => {
    const { fetchFn, requests } = backChannel(() => tokens());
    const links: SignInLink[] = [];
    const started = Date.now();
    await assert.rejects(
      linkFlow(fetchFn, (_url, link) => void links.push(link), { timeoutMs: 1200, linkLifetimeMs: 100 }),
      (error: unknown) => error instanceof AgentError && /within 1 seconds/.test(error.message),
    );
    assert.ok(Date.now() - started >= 1150, 'the last link is waited for until the timeout');
    assert.deepEqual(
      links.map((link) => link.number),
      [1, 2, 3],
    );
    assert.equal(requests.length, 0);

    const bounded: SignInLink[] = [];
    await assert.rejects(
      linkFlow(fetchFn, (_url, link) => void bounded.push(link), {
        timeoutMs: 600,
        linkLifetimeMs: 100,
        maxLinks: 2,
      }),
      AgentError,
    );
    assert.equal(bounded.length, 2, 'maxLinks bounds them too');
  });

  test('no new link when the overall timeout would come before anyone could use it', async () => {
    const { fetchFn } = backChannel(() => tokens());
    const links: SignInLink[] = [];
    await assert.rejects(
      linkFlow(fetchFn, (_url, link) => void links.push(link), { timeoutMs: 500, linkLifetimeMs: 400 }),
      AgentError,
    );
    assert.equal(links.length, 1);
  });

  test('a pushed request’s expires_in is the link’s lifetime, and each link is pushed anew', async () => {
    const par = `${ISSUER}/par`;
    let pushes = 0;
    const { fetchFn, requests } = backChannel((url) =>
      url === par
        ? json(201, { request_uri: `urn:ietf:params:oauth:request_uri:${++pushes}`, expires_in: 1 })
        : tokens(),
    );
    const seen: Array<{ url: URL; link: SignInLink }> = [];
    const openUrl = async (url: string, link: SignInLink) => {
      seen.push({ url: new URL(url), link });
      if (link.number !== 2) return;
      const pushed = requests.at(-1)!.body;
      const callback = new URL(pushed.get('redirect_uri')!);
      callback.searchParams.set('code', 'c');
      callback.searchParams.set('state', pushed.get('state')!);
      callback.searchParams.set('iss', ISSUER);
      await fetch(callback).then((response) => response.text());
    };
    const result = await linkFlow(
      fetchFn,
      openUrl,
      { timeoutMs: 5000 },
      { pushed_authorization_request_endpoint: par },
    );
    assert.equal(result.access_token, 'at');
    assert.deepEqual(
      seen.map(({ link }) => link.lifetimeMs),
      [1000, 1000],
      'the server’s word beats the default of 15 minutes',
    );
    assert.deepEqual(
      seen.map(({ url }) => url.searchParams.get('request_uri')),
      ['urn:ietf:params:oauth:request_uri:1', 'urn:ietf:params:oauth:request_uri:2'],
    );
    assert.notEqual(requests[0]!.body.get('state'), requests[1]!.body.get('state'));
  });
});
