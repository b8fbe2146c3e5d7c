/**
 * The authorization code flow end to end against a real server: registration, login by one-time
 * code, consent, PKCE, token, and every rejection the flow promises.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestAuthorizationServer,
  type TestAuthorizationServer,
} from '../helpers/authorization-server.ts';
import { authorize, Browser, basic, csrfOf, pkce, postForm, redeemCode } from '../helpers/oauth.ts';

const MCP = 'http://localhost:8000/mcp';
const REDIRECT = 'http://127.0.0.1/callback';

async function register(issuer: string, metadata: Record<string, unknown> = {}) {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Test agent',
      redirect_uris: [REDIRECT],
      application_type: 'native',
      ...metadata,
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('authorization code flow', () => {
  let as: TestAuthorizationServer;
  let clientId: string;
  before(async () => {
    as = await startTestAuthorizationServer();
    const registered = await register(as.issuer);
    assert.equal(registered.status, 201);
    clientId = String(registered.body.client_id);
  });
  after(() => as.close());

  test('login by one-time code, consent, then an opaque token for the MCP server', async () => {
    const result = await authorize({
      issuer: as.issuer,
      clientId,
      redirectUri: 'http://127.0.0.1:5555/callback',
      scope: 'stocks:read',
    });
    assert.deepEqual(result.pages, ['email', 'code', 'consent']);
    assert.equal(result.callback.origin, 'http://127.0.0.1:5555');
    assert.equal(result.callback.searchParams.get('state'), result.state);
    assert.equal(
      result.callback.searchParams.get('iss'),
      as.issuer,
      'RFC 9207 iss in the authorization response',
    );
    const code = result.callback.searchParams.get('code')!;
    const token = await redeemCode(as.issuer, {
      code,
      verifier: result.verifier,
      redirectUri: 'http://127.0.0.1:5555/callback',
      clientId,
    });
    assert.equal(token.status, 200, token.text);
    assert.equal(token.json.token_type, 'Bearer');
    assert.equal(token.json.scope, 'stocks:read');
    assert.equal(token.json.refresh_token, undefined, 'no refresh token by default');
    assert.ok(Number(token.json.expires_in) <= 900);
    const accessToken = String(token.json.access_token);
    assert.equal(accessToken.split('.').length, 1, 'agents get opaque tokens, not JWTs');

    // The consent page named the client, the redirect host and the scope with its description.
    assert.match(result.consentHtml!, /Test agent/);
    assert.match(result.consentHtml!, /127\.0\.0\.1:5555/);
    assert.match(result.consentHtml!, /See stock prices in your region/);
    assert.match(result.consentHtml!, /[Uu]nverified/);
  });
});
