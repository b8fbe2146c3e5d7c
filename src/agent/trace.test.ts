import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import {
  redactBody,
  redactForm,
  redactHeader,
  redactJson,
  redactUrl,
  tracedFetch,
  traceTransport,
} from './trace.ts';

const SECRETS = [
  's3cr3t-access',
  's3cr3t-refresh',
  's3cr3t-code',
  's3cr3t-verifier',
  's3cr3t-client',
  's3cr3t-assertion',
];

describe('trace redaction', () => {
  test('the Authorization header keeps its scheme only; cookies and DPoP proofs go', () => {
    assert.equal(redactHeader('Authorization', 'Bearer s3cr3t-access'), 'Bearer [redacted]');
    assert.equal(redactHeader('authorization', 'Basic Y2xpZW50OnNlY3JldA=='), 'Basic [redacted]');
    assert.equal(redactHeader('cookie', '_gh_session=abc'), '[redacted]');
    assert.equal(redactHeader('set-cookie', '_gh_session=abc; path=/'), '[redacted]');
    assert.equal(redactHeader('DPoP', 'eyJ...'), '[redacted]');
    assert.equal(redactHeader('Authorization', 'DPoP s3cr3t-access'), 'DPoP [redacted]');
    assert.equal(redactHeader('DPoP-Nonce', 'server-nonce'), 'server-nonce', 'a nonce is no secret');
    assert.equal(redactHeader('content-type', 'application/json'), 'application/json');
    assert.equal(
      redactHeader('location', 'http://127.0.0.1:5000/callback?code=s3cr3t-code&state=xyz'),
      'http://127.0.0.1:5000/callback?code=[redacted]&state=xyz',
    );
  });

  test('form fields that carry credentials are redacted, the rest is kept', () => {
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code: 's3cr3t-code',
      code_verifier: 's3cr3t-verifier',
      refresh_token: 's3cr3t-refresh',
      client_secret: 's3cr3t-client',
      client_assertion: 's3cr3t-assertion',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      access_token: 's3cr3t-access',
      token: 's3cr3t-access',
      resource: 'https://mcp.example.com/mcp',
    }).toString();
    const redacted = redactForm(form);
    for (const secret of SECRETS) assert.ok(!redacted.includes(secret), `${secret} in ${redacted}`);
    assert.match(redacted, /grant_type=authorization_code/);
    assert.match(redacted, /client_assertion_type=urn:ietf/);
    assert.match(redacted, /resource=https:\/\/mcp\.example\.com\/mcp/);
    assert.match(redacted, /code_verifier=\[redacted\]/);
  });

  test('query strings lose their codes, keeping fragments and other parameters', () => {
    assert.equal(
      redactUrl('http://x/cb?state=1&code=s3cr3t-code&iss=https%3A%2F%2Fa#frag'),
      'http://x/cb?state=1&code=[redacted]&iss=https://a#frag',
    );
    assert.equal(redactUrl('http://x/no-query'), 'http://x/no-query');
  });

  test('JSON members are redacted at any depth; numbers (a JSON-RPC error code) are kept', () => {
    const value = {
      access_token: 's3cr3t-access',
      refresh_token: 's3cr3t-refresh',
      registration_access_token: 's3cr3t-client',
      client_secret: 's3cr3t-client',
      scope: 'stocks:read',
      deep: { a: { b: { c: { d: { e: { f: { id_token: 's3cr3t-access' } } } } } } },
      error: { code: -32602, message: 'bad' },
    };
    const text = JSON.stringify(redactJson(value));
    for (const secret of SECRETS) assert.ok(!text.includes(secret), text);
    assert.match(text, /"scope":"stocks:read"/);
    assert.match(text, /"code":-32602/);
    assert.equal(redactBody('<html>secret page</html>', 'text/html'), '(24 bytes of text/html)');
    assert.equal(
      redactBody('{"access_token":"s3cr3t-access"}', 'application/json'),
      '{"access_token":"[redacted]"}',
    );
  });

  test('tracedFetch prints request and response, with every credential redacted', async () => {
    const lines: string[] = [];
    const base = async () =>
      new Response(
        JSON.stringify({ access_token: 's3cr3t-access', refresh_token: 's3cr3t-refresh', expires_in: 900 }),
        {
          status: 200,
          headers: { 'content-type': 'application/json', 'set-cookie': 'a=b' },
        },
      );
    const traced = tracedFetch((line) => lines.push(line), { bodies: true }, base);
    const response = await traced('https://auth.example.com/token', {
      method: 'POST',
      headers: {
        authorization: 'Basic Y2xpZW50OnMzY3IzdC1jbGllbnQ=',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 's3cr3t-refresh' }),
    });
    assert.equal(
      ((await response.json()) as { access_token: string }).access_token,
      's3cr3t-access',
      'the caller gets the real body',
    );
    const text = lines.join('\n');
    for (const secret of [...SECRETS, 'Y2xpZW50OnMzY3IzdC1jbGllbnQ='])
      assert.ok(!text.includes(secret), text);
    assert.match(text, /HTTP → POST https:\/\/auth\.example\.com\/token/);
    assert.match(text, /authorization: Basic \[redacted\]/);
    assert.match(text, /HTTP ← 200 OK/);
    assert.match(text, /"expires_in":900/);
  });

  test('traceTransport prints JSON-RPC messages both ways, redacted', async () => {
    const lines: string[] = [];
    const sent: JSONRPCMessage[] = [];
    const transport = {
      onmessage: undefined as Transport['onmessage'],
      async start() {},
      async close() {},
      async send(message: JSONRPCMessage) {
        sent.push(message);
      },
    } as Transport;
    traceTransport(transport, (line) => lines.push(line));
    const received: JSONRPCMessage[] = [];
    transport.onmessage = (message) => received.push(message);
    await transport.send({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'x', arguments: { password: 'p' } },
    });
    transport.onmessage?.({ jsonrpc: '2.0', id: 1, result: { content: [] } });
    assert.equal(sent.length, 1);
    assert.equal(received.length, 1);
    assert.match(lines[0]!, /^MCP {2}→ .*"method":"tools\/call".*"password":"\[redacted\]"/);
    assert.match(lines[1]!, /^MCP {2}← .*"result"/);
  });
});
