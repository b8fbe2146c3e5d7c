import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { AuthorizationServerMetadata, FetchLike } from '@modelcontextprotocol/client';
import type { Discovered } from './discovery.ts';
import { AgentError } from './errors.ts';
import { checkClientMetadataUrl, chooseClient, DYNAMIC_CLIENT_METADATA } from './registration.ts';
import { openTokenStore } from './token-store.ts';

const ISSUER = 'https://auth.example.com';

function discovered(extra: Record<string, unknown> = {}): Discovered {
  const metadata = {
    issuer: ISSUER,
    authorization_endpoint: `${ISSUER}/authorize`,
    token_endpoint: `${ISSUER}/token`,
    registration_endpoint: `${ISSUER}/register`,
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    ...extra,
  } as AuthorizationServerMetadata;
  return {
    issuer: ISSUER,
    resource: 'https://mcp.example.com/mcp',
    metadata,
    resourceMetadata: { resource: 'x' },
  };
}

function registrar() {
  const bodies: Array<Record<string, unknown>> = [];
  const fetchFn: FetchLike = async (_input, init) => {
    const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
    bodies.push(body);
    return new Response(
      JSON.stringify({
        ...body,
        client_id: `dyn-${bodies.length}`,
        registration_client_uri: `${ISSUER}/register/dyn-${bodies.length}`,
        registration_access_token: 'rat',
      }),
      { status: 201, headers: { 'content-type': 'application/json' } },
    );
  };
  return { fetchFn, bodies };
}

const newStore = () =>
  openTokenStore(path.join(mkdtempSync(path.join(tmpdir(), 'agent-reg-')), 'store.json'));

describe('registration, in the spec’s order', () => {
  test('pre-registered credentials come first', async () => {
    const { fetchFn, bodies } = registrar();
    const client = await chooseClient({
      discovered: discovered({ client_id_metadata_document_supported: true }),
      preRegistered: { clientId: 'partner', clientSecret: 'secret' },
      clientMetadataUrl: 'https://agent.example.com/client.json',
      store: newStore(),
      fetchFn,
    });
    assert.deepEqual(
      { kind: client?.kind, id: client?.clientId, method: client?.authMethod },
      { kind: 'pre-registered', id: 'partner', method: 'client_secret_basic' },
    );
    assert.equal(bodies.length, 0);
  });

  test('then the metadata document URL, when the server supports them', async () => {
    const { fetchFn, bodies } = registrar();
    const url = 'https://agent.example.com/client.json';
    const client = await chooseClient({
      discovered: discovered({ client_id_metadata_document_supported: true }),
      clientMetadataUrl: url,
      store: newStore(),
      fetchFn,
    });
    assert.deepEqual({ kind: client?.kind, id: client?.clientId }, { kind: 'metadata-document', id: url });
    assert.equal(bodies.length, 0);
  });

  test('else dynamic registration as a native app with a port-less loopback redirect, stored and reused', async () => {
    const { fetchFn, bodies } = registrar();
    const store = newStore();
    const notes: string[] = [];
    const first = await chooseClient({
      discovered: discovered({ client_id_metadata_document_supported: false }),
      clientMetadataUrl: 'https://agent.example.com/client.json',
      store,
      fetchFn,
      note: (message) => notes.push(message),
    });
    assert.equal(first?.kind, 'dynamic');
    assert.equal(bodies.length, 1);
    assert.equal(bodies[0]!.application_type, 'native');
    assert.deepEqual(bodies[0]!.redirect_uris, ['http://127.0.0.1/callback']);
    assert.equal(bodies[0]!.token_endpoint_auth_method, 'none');
    assert.equal(bodies[0]!.scope, undefined, 'no scope at registration: it would pin the client to it');
    assert.match(notes.join('\n'), /does not support client ID metadata documents/);
    const stored = store.registration(ISSUER);
    assert.equal(stored?.client_id, 'dyn-1');
    assert.equal(stored?.registration_access_token, 'rat', 'RFC 7592 management credentials are kept');

    const again = await chooseClient({ discovered: discovered(), store, fetchFn });
    assert.equal(again?.clientId, 'dyn-1');
    assert.equal(bodies.length, 1, 'not registered twice');
    assert.deepEqual(DYNAMIC_CLIENT_METADATA.redirect_uris, ['http://127.0.0.1/callback']);
  });

  test('without any way to register, says what to do; and never registers when told not to', async () => {
    const { fetchFn, bodies } = registrar();
    await assert.rejects(
      chooseClient({
        discovered: discovered({ registration_endpoint: undefined }),
        store: newStore(),
        fetchFn,
      }),
      (error: unknown) => error instanceof AgentError && /--client-id/.test(error.hint ?? ''),
    );
    assert.equal(
      await chooseClient({ discovered: discovered(), store: newStore(), fetchFn, mayRegister: false }),
      undefined,
    );
    assert.equal(bodies.length, 0);
  });

  test('a metadata document URL must be https with a path; http only on loopback (development)', () => {
    assert.equal(checkClientMetadataUrl('https://agent.example.com/client.json').host, 'agent.example.com');
    assert.equal(checkClientMetadataUrl('http://127.0.0.1:8123/client.json').hostname, '127.0.0.1');
    for (const bad of [
      'http://agent.example.com/client.json',
      'https://agent.example.com/',
      'https://agent.example.com/c#x',
      'nope',
    ]) {
      assert.throws(() => checkClientMetadataUrl(bad), AgentError, bad);
    }
  });
});
