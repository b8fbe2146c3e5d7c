/**
 * Attacks: token confusion at every port that takes a token from outside — the gateway (`/mcp` and
 * `/api/*`), the MCP server directly and the APIs directly. Wrong audiences (real tokens of every
 * kind at the wrong place), `alg: none`, HS256 keyed with the public key, `jku`/`x5u`/`jwk`/`kid`
 * headers, expired and not-yet-valid tokens, foreign issuers, `typ` confusion, missing claims,
 * DPoP-bound tokens as plain Bearer, two Authorization headers, and tokens in the query.
 *
 * Forged tokens are signed with the authorization server's real key (from `keys.json`) wherever the
 * attack allows it, so only the tampered part differs from a token the server would accept; the
 * control cases show that such a token, untampered, is accepted, so every refusal below is the
 * tampering's doing. Each refusal is checked for how (status, challenge, error code) and that
 * nothing happened behind it: no API request, no token exchange, no tool call.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { basic } from '../helpers/oauth.ts';
import {
  agentToken,
  attackerKey,
  type DpopKey,
  dpopKey,
  exchangedFor,
  GATEWAY_CLIENT,
  hs256WithPublicKey,
  MCP_SERVER_CLIENT,
  nodeRequest,
  nowSeconds,
  phantomFor,
  type ResourceStack,
  RPC_HEADERS,
  registerAgent,
  rpc,
  rpcMessages,
  serverSigningKey,
  signAsServer,
  startAttackerJwks,
  startResourceStack,
  toolCall,
  unsignedJwt,
} from './support-resource.ts';

let stack: ResourceStack;
let agentId: string;
/** The agent's opaque token (stocks:read customers:read) and what the inside made of it. */
let opaque: string;
let phantom: string;
let stocksToken: string;
let customersToken: string;
let dpop: DpopKey;
let dpopBound: string;
let attacker: Awaited<ReturnType<typeof attackerKey>>;
let attackerJwks: Awaited<ReturnType<typeof startAttackerJwks>>;
/** Every token used in this file, real or forged: none may appear in any log line. */
const tokens = new Set<string>();

before(async () => {
  stack = await startResourceStack();
  agentId = await registerAgent(stack.issuer);
  opaque = (await agentToken(stack, agentId, 'stocks:read customers:read')).accessToken;
  phantom = await phantomFor(stack, opaque);
  stocksToken = await exchangedFor(stack, phantom, stack.stocksAudience);
  customersToken = await exchangedFor(stack, phantom, stack.customersAudience);
  dpop = await dpopKey();
  dpopBound = (await agentToken(stack, agentId, 'stocks:read', { dpop })).accessToken;
  attacker = await attackerKey();
  attackerJwks = await startAttackerJwks([attacker.jwk]);
  for (const token of [opaque, phantom, stocksToken, customersToken, dpopBound]) tokens.add(token);
});

after(async () => {
  await attackerJwks?.close();
  await stack?.close();
});

// ---------------------------------------------------------------------------------------------
// Claims the server would sign, for each resource.

/** A phantom-token-like payload for the MCP server: everything right unless overridden. */
const mcpClaims = (overrides: Record<string, unknown> = {}) =>
  withOverrides(
    {
      iss: stack.issuer,
      aud: stack.mcpUrl,
      sub: 'user-forged',
      client_id: agentId,
      scope: 'stocks:read customers:read',
      region: 'eu',
      iat: nowSeconds(),
      exp: nowSeconds() + 300,
      jti: crypto.randomUUID(),
    },
    overrides,
  );

/** An exchanged-token-like payload for the stocks API. */
const stocksClaims = (overrides: Record<string, unknown> = {}) =>
  withOverrides(
    {
      iss: stack.issuer,
      aud: stack.stocksAudience,
      sub: 'user-forged',
      client_id: agentId,
      scope: 'stocks.read stocks.trade',
      region: 'eu',
      client_assurance_level: 4,
      act: { sub: MCP_SERVER_CLIENT },
      iat: nowSeconds(),
      exp: nowSeconds() + 300,
      jti: crypto.randomUUID(),
    },
    overrides,
  );

/** Overrides replace claims; an override of `undefined` removes the claim. */
function withOverrides(base: Record<string, unknown>, overrides: Record<string, unknown>) {
  const claims: Record<string, unknown> = { ...base, ...overrides };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  return claims;
}

const remember = (token: string) => {
  tokens.add(token);
  return token;
};

// ---------------------------------------------------------------------------------------------
// The three ports, and what "refused, and nothing happened" means at each.

/** Lets a request the tap is still forwarding, or a log line still being written, land. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/** Runs `action` and asserts that nothing happened behind the port: no API call, exchange or tool call. */
async function nothingBehind<T>(action: () => Promise<T>): Promise<T> {
  const hits = stack.apiTap.hits.length;
  const exchanges = stack.mcpServer.exchanges;
  const toolCalls = stack.audit('mcp.tool_call').length;
  const result = await action();
  await settle();
  assert.deepEqual(
    stack.apiTap.hits.slice(hits).map((hit) => hit.url),
    [],
    'no request reached an API',
  );
  assert.equal(stack.mcpServer.exchanges, exchanges, 'no token exchange');
  assert.equal(stack.audit('mcp.tool_call').length, toolCalls, 'no tool call ran');
  return result;
}

interface Answer {
  status: number;
  challenge: string;
  body: Record<string, unknown>;
}

async function answerOf(response: Response): Promise<Answer> {
  const text = await response.text();
  assert.doesNotMatch(text, /\n\s+at /, 'never a stack trace');
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // An SSE answer (a tool result) is not JSON: the status says enough.
  }
  return { status: response.status, challenge: response.headers.get('www-authenticate') ?? '', body };
}

const prmUrl = () => `${stack.gatewayUrl}/.well-known/oauth-protected-resource/mcp`;

/** The MCP server, directly: 401 `invalid_token` with the discovery hints (RFC 6750 §3.1, RFC 9728 §5.1). */
async function refusedByMcpServer(token: string): Promise<void> {
  const answer = await nothingBehind(async () =>
    answerOf(await rpc(stack.mcpDirect, toolCall(1, 'list_stocks'), token)),
  );
  assert.equal(answer.status, 401);
  assert.match(answer.challenge, /^Bearer error="invalid_token", error_description="[^"]+"/);
  assert.ok(answer.challenge.includes(`resource_metadata="${prmUrl()}"`), answer.challenge);
  assert.equal(answer.body.error, 'invalid_token');
}

/** The stocks API, directly: 401 `invalid_token` naming its realm, and its log says so with no subject. */
async function refusedByApi(token: string, path = '/stocks'): Promise<void> {
  const before = stack.records('apis').length;
  const answer = await answerOf(
    await fetch(`${stack.apisUrl}${path}`, { headers: { authorization: `Bearer ${token}` } }),
  );
  assert.equal(answer.status, 401);
  assert.match(answer.challenge, /^Bearer realm="(Stocks|Customers) API", error="invalid_token"/);
  assert.equal(answer.body.error, 'invalid_token');
  await settle();
  const logged = stack
    .records('apis')
    .slice(before)
    .filter((record) => record.message === 'request');
  assert.equal(logged.length, 1);
  assert.equal(logged[0]!.status, 401);
  assert.equal(logged[0]!.error, 'invalid_token');
  assert.equal(logged[0]!.sub, undefined, 'nobody was authenticated');
}

/**
 * The gateway's /mcp with a credential it does not take from outside (anything but an opaque
 * token): removed, never introspected, so the MCP server sees no token and answers with its
 * discovery challenge (no `error`, RFC 6750 §3.1).
 */
async function refusedByGateway(token: string): Promise<void> {
  const introspections = stack.gateway.stats().introspections;
  const seen = await stack.mcpTap.during(() =>
    nothingBehind(async () => {
      const answer = await answerOf(await rpc(stack.mcpUrl, toolCall(1, 'list_stocks'), token));
      assert.equal(answer.status, 401);
      assert.match(answer.challenge, /^Bearer resource_metadata="/);
      assert.doesNotMatch(answer.challenge, /error=/);
    }),
  );
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.headers.authorization, undefined, 'the MCP server saw no credential');
  assert.equal(stack.gateway.stats().introspections, introspections, 'a JWT is never introspected');
}

// ---------------------------------------------------------------------------------------------

describe('control: untampered tokens are accepted, so the refusals below are the tampering', () => {
  test('the agent’s opaque token at the gateway calls a tool, reaching the API with an exchanged token', async () => {
    const hits = await stack.apiTap.during(async () => {
      const response = await rpc(stack.mcpUrl, toolCall(1, 'list_stocks'), opaque);
      assert.equal(response.status, 200);
      const [message] = await rpcMessages(response);
      assert.equal((message!.result as { isError?: boolean }).isError, undefined);
    });
    assert.equal(hits.length, 1);
    assert.equal(decodeJwt(String(hits[0]!.headers.authorization).slice(7)).aud, stack.stocksAudience);
  });

  test('a token forged with the server’s key and right claims is accepted by the MCP server and the API', async () => {
    const forMcp = remember(await signAsServer(stack, mcpClaims()));
    const response = await rpc(stack.mcpDirect, toolCall(1, 'list_stocks'), forMcp);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    const forApi = remember(await signAsServer(stack, stocksClaims()));
    const api = await fetch(`${stack.apisUrl}/stocks`, { headers: { authorization: `Bearer ${forApi}` } });
    assert.equal(api.status, 200);
    assert.ok(((await api.json()) as { stocks: unknown[] }).stocks.length > 0);
  });
});

describe('wrong audience: every real token is refused everywhere but at its own audience', () => {
  test('the agent’s opaque token at the MCP server directly', () => refusedByMcpServer(opaque));
  test('the agent’s opaque token at the API directly', () => refusedByApi(opaque));
  test('the phantom JWT (aud = MCP server) at the API directly', () => refusedByApi(phantom));
  test('the phantom JWT replayed through the gateway', () => refusedByGateway(phantom));
  test('an exchanged stocks token at the MCP server directly', () => refusedByMcpServer(stocksToken));
  test('an exchanged stocks token through the gateway', () => refusedByGateway(stocksToken));
  test('an exchanged stocks token at the customers API', () => refusedByApi(stocksToken, '/customers/me'));
  test('an exchanged customers token at the stocks API', () => refusedByApi(customersToken));

  test('the agent’s opaque token at the gateway’s /api/stocks: 401 invalid_token at the gateway, nothing forwarded', async () => {
    for (const path of ['/api/stocks', '/api/customers/me']) {
      const seen = await stack.apiTap.during(async () => {
        const answer = await answerOf(
          await fetch(`${stack.gatewayUrl}${path}`, { headers: { authorization: `Bearer ${opaque}` } }),
        );
        assert.equal(answer.status, 401, path);
        assert.equal(answer.body.error, 'invalid_token', path);
        assert.match(answer.challenge, /^Bearer .*error="invalid_token"/, path);
      });
      assert.deepEqual(
        seen.map((hit) => hit.url),
        [],
        `${path}: the API never receives the agent's token or its phantom JWT`,
      );
    }
  });

  const lookalikes: Array<[string, (s: ResourceStack) => string]> = [
    ['an API audience', (s) => s.stocksAudience],
    ['the MCP URI with a suffix', (s) => `${s.mcpUrl}x`],
    ['the MCP URI on another port', (s) => s.mcpUrl.replace(/:\d+\//, ':1/')],
    ['the issuer', (s) => s.issuer],
    ['the MCP server’s listen address', (s) => s.mcpDirect],
  ];
  for (const [name, audience] of lookalikes) {
    test(`a server-signed token whose aud is ${name}, at the MCP server`, async () =>
      refusedByMcpServer(remember(await signAsServer(stack, mcpClaims({ aud: audience(stack) })))));
  }
  test('a server-signed token whose aud is the MCP server, at the API (with API scopes)', async () =>
    refusedByApi(remember(await signAsServer(stack, stocksClaims({ aud: stack.mcpUrl })))));
});

/**
 * Forged variants, each at the MCP server and the API directly (signed for that port's audience)
 * and through the gateway.
 */
interface Forgery {
  name: string;
  /** One or more forged tokens for the claims given. */
  make(claims: Record<string, unknown>): Promise<string[]>;
  /** Claims to change before forging (a function: time claims are relative to when the test runs). */
  claims?: () => Record<string, unknown>;
}

const forgeries: Forgery[] = [
  { name: 'alg none', make: async (claims) => [unsignedJwt(claims)] },
  { name: 'alg "NONE"', make: async (claims) => [unsignedJwt(claims, { alg: 'NONE' })] },
  {
    name: 'alg none over a real signature (header swapped, signature kept)',
    async make(claims) {
      const real = await signAsServer(stack, claims);
      const [, payload, signature] = real.split('.');
      const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url');
      return [`${header}.${payload}.${signature}`];
    },
  },
  { name: 'HS256 keyed with the server’s public key', make: (claims) => hs256WithPublicKey(stack, claims) },
  {
    name: 'a jku header naming the attacker’s key set',
    make: async (claims) => [await attacker.sign(claims, { jku: attackerJwks.url })],
  },
  {
    name: 'an x5u header naming the attacker’s server',
    make: async (claims) => [await attacker.sign(claims, { x5u: attackerJwks.url })],
  },
  {
    name: 'an embedded jwk header with the attacker’s key',
    make: async (claims) => [await attacker.sign(claims, { jwk: attacker.jwk })],
  },
  {
    name: 'the real key’s kid, signed by the attacker',
    make: async (claims) => [await attacker.sign(claims, { kid: serverSigningKey(stack).kid })],
  },
  {
    name: 'a kid naming a file (path traversal)',
    make: async (claims) => [await attacker.sign(claims, { kid: '../../keys.json' })],
  },
  {
    name: 'an unknown critical header parameter',
    make: async (claims) => [await signAsServer(stack, claims, { crit: ['x-evil'], 'x-evil': true })],
  },
  {
    name: 'typ JWT (an ID-token-like JWT)',
    make: async (claims) => [await signAsServer(stack, claims, { typ: 'JWT' })],
  },
  { name: 'no typ', make: async (claims) => [await signAsServer(stack, claims, { typ: undefined })] },
  {
    name: 'typ dpop+jwt (a DPoP proof’s type)',
    make: async (claims) => [await signAsServer(stack, claims, { typ: 'dpop+jwt' })],
  },
  {
    name: 'expired (beyond the clock skew)',
    make: async (claims) => [await signAsServer(stack, claims)],
    claims: () => ({ iat: nowSeconds() - 900, exp: nowSeconds() - 120 }),
  },
  {
    name: 'not yet valid (nbf beyond the clock skew)',
    make: async (claims) => [await signAsServer(stack, claims)],
    claims: () => ({ nbf: nowSeconds() + 300 }),
  },
  {
    name: 'another issuer',
    make: async (claims) => [await signAsServer(stack, claims)],
    claims: () => ({ iss: 'https://evil.example' }),
  },
  {
    name: 'no issuer',
    make: async (claims) => [await signAsServer(stack, claims)],
    claims: () => ({ iss: undefined }),
  },
  {
    name: 'no exp',
    make: async (claims) => [await signAsServer(stack, claims)],
    claims: () => ({ exp: undefined }),
  },
  {
    name: 'no sub',
    make: async (claims) => [await signAsServer(stack, claims)],
    claims: () => ({ sub: undefined }),
  },
  {
    name: 'no client_id',
    make: async (claims) => [await signAsServer(stack, claims)],
    claims: () => ({ client_id: undefined }),
  },
];

const claimsFor = (forgery: Forgery, port: 'mcp' | 'api') => {
  const changes = forgery.claims?.() ?? {};
  return port === 'mcp' ? mcpClaims(changes) : stocksClaims(changes);
};

describe('forged tokens', () => {
  for (const forgery of forgeries) {
    describe(forgery.name, () => {
      test('the MCP server directly: 401 invalid_token, nothing behind it', async () => {
        for (const token of await forgery.make(claimsFor(forgery, 'mcp')))
          await refusedByMcpServer(remember(token));
      });
      test('the API directly: 401 invalid_token', async () => {
        for (const token of await forgery.make(claimsFor(forgery, 'api')))
          await refusedByApi(remember(token));
      });
      test('the gateway: removed, never introspected, nothing behind it', async () => {
        for (const token of await forgery.make(claimsFor(forgery, 'mcp')))
          await refusedByGateway(remember(token));
      });
    });
  }

  test('no verifier ever fetched the attacker’s jku/x5u key set', () => {
    assert.equal(attackerJwks.fetches, 0);
  });
});

describe('sender-constrained (DPoP) tokens', () => {
  test('a DPoP-bound token presented as plain Bearer at the gateway: 401 invalid_token, the MCP server never sees it', async () => {
    const seen = await stack.mcpTap.during(() =>
      nothingBehind(async () => {
        const answer = await answerOf(await rpc(stack.mcpUrl, toolCall(1, 'list_stocks'), dpopBound));
        assert.equal(answer.status, 401);
        assert.match(answer.challenge, /error="invalid_token"/);
      }),
    );
    for (const hit of seen)
      assert.equal(hit.headers.authorization, undefined, 'no phantom JWT for a DPoP-bound token as Bearer');
  });

  test('no cnf in the tokens minted for inner hops: neither the phantom JWT nor the exchanged token', async () => {
    const introspection = await fetch(`${stack.issuer}/introspect`, {
      method: 'POST',
      headers: {
        authorization: basic(GATEWAY_CLIENT, stack.secret(GATEWAY_CLIENT)),
        accept: 'application/jwt',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: dpopBound }),
    });
    const text = await introspection.text();
    assert.equal(introspection.status, 200);
    if (!/application\/jwt/.test(introspection.headers.get('content-type') ?? '')) {
      // No phantom token at all for a sender-constrained token is an acceptable fix too.
      assert.deepEqual(JSON.parse(text), { active: false });
      return;
    }
    const inner = remember(text.trim());
    assert.equal(decodeJwt(inner).cnf, undefined, 'the phantom JWT carries no cnf');
    const exchanged = remember(await exchangedFor(stack, inner, stack.stocksAudience));
    assert.equal(decodeJwt(exchanged).cnf, undefined, 'the exchanged token carries no cnf');
  });

  test('the DPoP-bound token at the MCP server and the API directly: refused (it is opaque)', async () => {
    await refusedByMcpServer(dpopBound);
    await refusedByApi(dpopBound);
    assert.ok(dpop.thumbprint.length > 0);
  });
});

describe('how the token is carried', () => {
  /** RPC_HEADERS and two Authorization fields, as the flat name/value list node:http sends as is. */
  const twoHeaders = (first: string, second: string) => [
    ...Object.entries(RPC_HEADERS).flat(),
    ...['authorization', `Bearer ${first}`, 'authorization', `Bearer ${second}`],
  ];

  /** Two Authorization field lines (RFC 9110 §5.3: not a list field, so a malformed request). */
  async function twoAuthorizationHeaders(url: string, method: string, valid: string, body?: string) {
    for (const order of [
      [valid, 'junk-token-0123456789'],
      ['junk-token-0123456789', valid],
    ] as const) {
      await nothingBehind(async () => {
        const response = await nodeRequest(url, {
          method,
          headers: twoHeaders(order[0], order[1]),
          ...(body ? { body } : {}),
        });
        assert.equal(response.status, 400, `${url} with ${order[0] === valid ? 'valid' : 'junk'} first`);
        assert.equal((JSON.parse(response.body) as { error?: string }).error, 'invalid_request');
      });
    }
  }

  const call = () => JSON.stringify(toolCall(1, 'list_stocks'));
  test('two Authorization headers at the gateway: 400 invalid_request, nothing forwarded', () =>
    twoAuthorizationHeaders(stack.mcpUrl, 'POST', opaque, call()));
  test('two Authorization headers at the MCP server: 400 invalid_request, nothing behind it', () =>
    twoAuthorizationHeaders(stack.mcpDirect, 'POST', phantom, call()));
  test('two Authorization headers at the API: 400 invalid_request', () =>
    twoAuthorizationHeaders(`${stack.apisUrl}/stocks`, 'GET', stocksToken));

  test('a token in the query (RFC 6750 §2.3) is no token at the MCP server and the API', async () => {
    await nothingBehind(async () => {
      const mcp = await answerOf(
        await rpc(
          `${stack.mcpDirect}?access_token=${encodeURIComponent(phantom)}`,
          toolCall(1, 'list_stocks'),
        ),
      );
      assert.equal(mcp.status, 401);
      assert.match(mcp.challenge, /^Bearer resource_metadata="/);
      assert.doesNotMatch(mcp.challenge, /error=/);
    });
    const api = await answerOf(await fetch(`${stack.apisUrl}/stocks?access_token=${stocksToken}`));
    assert.equal(api.status, 401);
    assert.equal(api.challenge, 'Bearer realm="Stocks API"');
  });

  test('a token in a form body (RFC 6750 §2.2) is no token at the API', async () => {
    const response = await fetch(`${stack.apisUrl}/stocks/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ access_token: stocksToken, symbol: 'SAP', side: 'buy', quantity: '1' }),
    });
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="Stocks API"');
    await response.arrayBuffer();
    assert.ok(!stack.audit('stocks.order').some((record) => record.outcome === 'success'), 'no order placed');
  });

  test('a token in the query at the gateway: no token, and it is never forwarded to the MCP server or an API', async () => {
    const toMcp = await stack.mcpTap.during(async () => {
      const answer = await answerOf(
        await rpc(`${stack.mcpUrl}?access_token=${opaque}`, toolCall(1, 'list_stocks')),
      );
      // RFC 6750 §2.3: refused outright (the token is not looked at), not forwarded.
      assert.equal(answer.status, 400);
    });
    const toApi = await stack.apiTap.during(async () => {
      const answer = await answerOf(await fetch(`${stack.gatewayUrl}/api/stocks?access_token=${opaque}`));
      assert.equal(answer.status, 400);
    });
    for (const hit of [...toMcp, ...toApi])
      assert.ok(!JSON.stringify(hit).includes(opaque), `the agent's token reached ${hit.url.split('?')[0]}`);
  });

  test('Bearer in another case, or with extra spaces, is still a bearer token; other schemes are not', async () => {
    // RFC 9110 §11.1: the scheme is case-insensitive. The gateway must not treat "bearer" as "no token".
    for (const authorization of [`bearer ${opaque}`, `BEARER ${opaque}`, `Bearer   ${opaque}`]) {
      const response = await fetch(stack.mcpUrl, {
        method: 'POST',
        headers: { ...RPC_HEADERS, authorization },
        body: call(),
      });
      assert.equal(response.status, 200, authorization.slice(0, 10));
      await response.arrayBuffer();
    }
    for (const authorization of [`Basic ${opaque}`, `DPoP ${opaque}`, `Token ${opaque}`, opaque]) {
      await nothingBehind(async () => {
        const response = await fetch(stack.mcpUrl, {
          method: 'POST',
          headers: { ...RPC_HEADERS, authorization },
          body: call(),
        });
        assert.equal(response.status, 401, authorization.slice(0, 8));
        await response.arrayBuffer();
      });
    }
  });
});

describe('after every attack', () => {
  test('no token of this file (real or forged) appears in any component’s log', () => {
    assert.ok(tokens.size > 40, `only ${tokens.size} tokens collected`);
    for (const line of stack.logs) {
      for (const token of tokens) {
        assert.ok(!line.includes(token), `a token is in a log line: ${line.slice(0, 200)}`);
        // A JWT's signature alone is as good as a fingerprint of it.
        const signature = token.split('.')[2];
        if (signature && signature.length > 20)
          assert.ok(!line.includes(signature), `a token signature is in a log line: ${line.slice(0, 200)}`);
      }
    }
  });
});
