/**
 * The harness standing in for an internal component, with that component's own credentials (the
 * secrets the authorization server generated in the data directory, as an operator has them):
 *
 * - as the gateway: introspection (RFC 7662), to check a token is still active after a restart, and
 *   to obtain the phantom JWT the gateway would forward, for requests sent straight to the MCP server;
 * - as the MCP server: token exchange (RFC 8693) of that phantom JWT for an API's audience, for
 *   requests sent straight to the APIs.
 */
import { FORM } from './agent.ts';
import { request } from './http.ts';
import type { Stack } from './stack.ts';

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

function introspect(stack: Stack, token: string, accept: string) {
  return request(`${stack.urls.issuer}/introspect`, {
    method: 'POST',
    headers: {
      ...FORM,
      accept,
      authorization: basic('gatehouse-gateway', stack.secret('gatehouse-gateway')),
    },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
  });
}

/** True when the authorization server says the access token is active. */
export async function isActive(stack: Stack, token: string): Promise<boolean> {
  const answer = await introspect(stack, token, 'application/json');
  if (answer.status !== 200) throw new Error(`introspection answered ${answer.status}: ${answer.body}`);
  return (JSON.parse(answer.body) as { active?: unknown }).active === true;
}

/** The phantom JWT for an agent's token, as the gateway gets it. */
export async function phantomJwt(stack: Stack, token: string): Promise<string> {
  const answer = await introspect(stack, token, 'application/jwt');
  if (answer.status !== 200 || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(answer.body.trim())) {
    throw new Error(`no phantom token (${answer.status}): ${answer.body.slice(0, 200)}`);
  }
  return answer.body.trim();
}

/** A token for the stocks API, for an order: exchanged as the MCP server does for place_order. */
export async function stocksApiToken(stack: Stack, phantom: string): Promise<string> {
  const answer = await request(`${stack.urls.issuer}/token`, {
    method: 'POST',
    headers: {
      ...FORM,
      accept: 'application/json',
      authorization: basic('gatehouse-mcp-server', stack.secret('gatehouse-mcp-server')),
      // As the MCP server does: a user's token is exchanged for one tool's call (an order).
      'gatehouse-tool': 'place_order',
    },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: phantom,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      audience: stack.urls.stocksAudience,
    }).toString(),
  });
  const token =
    answer.status === 200 ? (JSON.parse(answer.body) as { access_token?: string }).access_token : '';
  if (!token) throw new Error(`token exchange answered ${answer.status}: ${answer.body.slice(0, 200)}`);
  return token;
}
