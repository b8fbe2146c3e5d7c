/**
 * DPoP end to end through real servers (RFC 9449, defect 6): a workload gets a DPoP-bound token from
 * the authorization server and calls the MCP server through the gateway, which verifies every proof,
 * refuses the bound token as a plain Bearer token, and hands nonces out when they are required.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createDpopKey, type DpopKey, dpopProof } from '../helpers/dpop.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { workloadTokenRequest } from '../helpers/workload.ts';

const LIST_TOOLS = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} };
const CALL_STOCK = {
  jsonrpc: '2.0',
  id: 2,
  method: 'tools/call',
  params: { name: 'list_stocks', arguments: {} },
};

async function workloadToken(stack: TestStack, key: DpopKey | undefined) {
  const response = await workloadTokenRequest(
    stack,
    key ? { dpop: await dpopProof(key, { htm: 'POST', htu: `${stack.issuer}/token` }) } : {},
  );
  assert.equal(response.status, 200, response.text);
  return { token: String(response.json.access_token), type: String(response.json.token_type) };
}

function mcp(stack: TestStack, headers: Record<string, string>, body: unknown = LIST_TOOLS) {
  return fetch(stack.mcpUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

const proofFor = (
  stack: TestStack,
  key: DpopKey,
  token: string,
  extra: Partial<Parameters<typeof dpopProof>[1]> = {},
) => dpopProof(key, { htm: 'POST', htu: stack.mcpUrl, accessToken: token, ...extra });

describe('DPoP through the gateway', () => {
  let stack: TestStack;
  let key: DpopKey;
  let bound: string;
  before(async () => {
    stack = await startTestStack();
    key = await createDpopKey();
    const issued = await workloadToken(stack, key);
    assert.equal(issued.type, 'DPoP');
    bound = issued.token;
  });
  after(() => stack.close());

  test('a bound token with a good proof lists and calls tools', async () => {
    const list = await mcp(stack, {
      authorization: `DPoP ${bound}`,
      dpop: await proofFor(stack, key, bound),
    });
    assert.equal(list.status, 200, await list.clone().text());
    assert.match(await list.text(), /list_stocks/);
    const call = await mcp(
      stack,
      { authorization: `DPoP ${bound}`, dpop: await proofFor(stack, key, bound) },
      CALL_STOCK,
    );
    assert.equal(call.status, 200);
    const text = await call.text();
    assert.doesNotMatch(text, /"isError":true/, text);
  });

  test('the same bound token as Bearer is refused (RFC 9449 §7.2), never forwarded', async () => {
    const requests = stack.logs.length;
    const response = await mcp(stack, { authorization: `Bearer ${bound}` });
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /^DPoP error="invalid_token"/);
    const forwarded = stack.logs
      .slice(requests)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record.component === 'mcp-server' && record.message === 'audit');
    assert.deepEqual(forwarded, []);
  });

  test('bad proofs get 401 invalid_dpop_proof with a DPoP challenge', async () => {
    const other = await createDpopKey();
    const cases: Array<[string, Record<string, string>]> = [
      ['no proof', { authorization: `DPoP ${bound}` }],
      ['another key', { authorization: `DPoP ${bound}`, dpop: await proofFor(stack, other, bound) }],
      [
        'wrong htu',
        {
          authorization: `DPoP ${bound}`,
          dpop: await proofFor(stack, key, bound, { htu: 'http://evil.example/mcp' }),
        },
      ],
      [
        'htu of the Host sent, not the public URL',
        {
          authorization: `DPoP ${bound}`,
          host: 'evil.example',
          dpop: await proofFor(stack, key, bound, { htu: 'http://evil.example/mcp' }),
        },
      ],
      [
        'wrong method',
        { authorization: `DPoP ${bound}`, dpop: await proofFor(stack, key, bound, { htm: 'GET' }) },
      ],
      [
        'no ath',
        { authorization: `DPoP ${bound}`, dpop: await dpopProof(key, { htm: 'POST', htu: stack.mcpUrl }) },
      ],
      [
        'old iat',
        {
          authorization: `DPoP ${bound}`,
          dpop: await proofFor(stack, key, bound, { iat: Math.floor(Date.now() / 1000) - 600 }),
        },
      ],
      [
        'alg none',
        {
          authorization: `DPoP ${bound}`,
          dpop: await proofFor(stack, key, bound, { header: { alg: 'HS256' } }).catch(() => 'x.y.z'),
        },
      ],
    ];
    for (const [name, headers] of cases) {
      const response = await mcp(stack, headers);
      assert.equal(response.status, 401, name);
      assert.match(response.headers.get('www-authenticate') ?? '', /^DPoP error="invalid_dpop_proof"/, name);
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_dpop_proof', name);
    }
  });

  test('a replayed proof is refused', async () => {
    const proof = await proofFor(stack, key, bound);
    assert.equal((await mcp(stack, { authorization: `DPoP ${bound}`, dpop: proof })).status, 200);
    const replay = await mcp(stack, { authorization: `DPoP ${bound}`, dpop: proof });
    assert.equal(replay.status, 401);
    assert.match(replay.headers.get('www-authenticate') ?? '', /invalid_dpop_proof/);
  });

  test('an unbound token with the DPoP scheme is refused; as Bearer it works', async () => {
    const plain = (await workloadToken(stack, undefined)).token;
    const dpop = await mcp(stack, {
      authorization: `DPoP ${plain}`,
      dpop: await proofFor(stack, key, plain),
    });
    assert.equal(dpop.status, 401);
    assert.match(dpop.headers.get('www-authenticate') ?? '', /invalid_token/);
    assert.equal((await mcp(stack, { authorization: `Bearer ${plain}` })).status, 200);
  });

  test('the MCP server challenge names both schemes; Protected Resource Metadata names the algorithms', async () => {
    const response = await mcp(stack, {});
    assert.equal(response.status, 401);
    const challenge = response.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer resource_metadata=/);
    assert.match(challenge, /DPoP algs="[^"]*ES256/);
    const prm = (await (
      await fetch(`${stack.gatewayUrl}/.well-known/oauth-protected-resource/mcp`)
    ).json()) as {
      dpop_signing_alg_values_supported?: string[];
    };
    assert.ok(prm.dpop_signing_alg_values_supported?.includes('ES256'));
  });
});

describe('DPoP with gateway nonces', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack({ gateway: { dpop: { requireNonce: true } } });
  });
  after(() => stack.close());

  test('a proof without the nonce gets use_dpop_nonce and a DPoP-Nonce; with it, the call works', async () => {
    const key = await createDpopKey();
    const { token } = await workloadToken(stack, key);
    const first = await mcp(stack, {
      authorization: `DPoP ${token}`,
      dpop: await proofFor(stack, key, token),
      origin: 'http://localhost',
    });
    assert.equal(first.status, 401);
    assert.match(first.headers.get('www-authenticate') ?? '', /^DPoP error="use_dpop_nonce"/);
    assert.match(first.headers.get('access-control-expose-headers') ?? '', /DPoP-Nonce/);
    const nonce = first.headers.get('dpop-nonce');
    assert.ok(nonce);
    const second = await mcp(stack, {
      authorization: `DPoP ${token}`,
      dpop: await proofFor(stack, key, token, { nonce }),
    });
    assert.equal(second.status, 200, await second.clone().text());
    assert.ok(second.headers.get('dpop-nonce'), 'a fresh nonce comes with every DPoP answer');
    const forged = await mcp(stack, {
      authorization: `DPoP ${token}`,
      dpop: await proofFor(stack, key, token, { nonce: `${nonce}x` }),
    });
    assert.equal(forged.status, 401);
    assert.match(forged.headers.get('www-authenticate') ?? '', /use_dpop_nonce/);
  });
});
