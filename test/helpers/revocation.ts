/**
 * What the revocation suites share: a JSON-RPC request to an MCP endpoint, waiting for a condition,
 * and the phantom JWT the gateway would forward for an opaque token.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { basic, postForm } from './oauth.ts';

/** A 2025-style JSON-RPC POST to `<base>/mcp`, with a bearer token when given. */
export function rpc(base: string, token: string | undefined, method = 'tools/list') {
  return fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: {} }),
  });
}

/** A 2025-style JSON-RPC `tools/call` of `get_stock` for SAP at `<base>/mcp` with a bearer token. */
export function callGetStock(base: string, token: string, headers: Record<string, string> = {}) {
  return fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      authorization: `Bearer ${token}`,
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'get_stock', arguments: { symbol: 'SAP' } },
    }),
  });
}

/** Polls `check` until it is true (a throw counts as false); fails after `ms`; returns how long it took. */
export async function until(check: () => Promise<boolean>, what: string, ms = 5000): Promise<number> {
  const started = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - started > ms) assert.fail(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Date.now() - started;
}

/** The secret the authorization server generated for an internal client (`<dataDir>/secrets/`). */
export const internalSecret = (stack: { dataDir: string }, clientId: string) =>
  readFileSync(path.join(stack.dataDir, `secrets/${clientId}.secret`), 'utf8').trim();

/** The phantom JWT the gateway would forward for `token` (introspection with the gateway's secret). */
export async function phantomFor(stack: { issuer: string; dataDir: string }, token: string): Promise<string> {
  const response = await postForm(
    `${stack.issuer}/introspect`,
    { token },
    {
      authorization: basic('gatehouse-gateway', internalSecret(stack, 'gatehouse-gateway')),
      accept: 'application/jwt',
    },
  );
  assert.equal(response.status, 200);
  assert.equal(response.text.split('.').length, 3, 'a phantom JWT');
  return response.text;
}
