import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FetchLike } from '@modelcontextprotocol/client';
import { discover, protectedResourceMetadataUrls, requireS256 } from './discovery.ts';
import { AgentError } from './errors.ts';

type Routes = Record<string, unknown>;

/** A fetch that answers JSON for known URLs and 404 for the rest, recording every URL asked for. */
function fakeFetch(routes: Routes) {
  const asked: string[] = [];
  const fetchFn: FetchLike = async (input) => {
    const url = String(input);
    asked.push(url);
    const body = routes[url];
    return body === undefined
      ? new Response('not found', { status: 404 })
      : new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  return { fetchFn, asked };
}

const asMetadata = (issuer: string, extra: Record<string, unknown> = {}) => ({
  issuer,
  authorization_endpoint: `${issuer}/authorize`,
  token_endpoint: `${issuer}/token`,
  response_types_supported: ['code'],
  code_challenge_methods_supported: ['S256'],
  ...extra,
});

const MCP = 'https://mcp.example.com/mcp';
const prm = (issuer: string, resource = MCP) => ({
  resource,
  authorization_servers: [issuer],
  scopes_supported: ['a', 'b'],
});

describe('discovery', () => {
  test('the Protected Resource Metadata URLs: path-inserted first, then the root one', () => {
    assert.deepEqual(protectedResourceMetadataUrls('https://mcp.example.com/mcp'), [
      'https://mcp.example.com/.well-known/oauth-protected-resource/mcp',
      'https://mcp.example.com/.well-known/oauth-protected-resource',
    ]);
    assert.deepEqual(protectedResourceMetadataUrls('https://mcp.example.com/'), [
      'https://mcp.example.com/.well-known/oauth-protected-resource',
    ]);
  });

  test('follows the challenge’s resource_metadata, and nothing else, when there is one', async () => {
    const issuer = 'https://auth.example.com';
    const { fetchFn, asked } = fakeFetch({
      'https://mcp.example.com/custom/prm': prm(issuer),
      [`${issuer}/.well-known/oauth-authorization-server`]: asMetadata(issuer),
    });
    const found = await discover(
      MCP,
      { resourceMetadataUrl: new URL('https://mcp.example.com/custom/prm') },
      fetchFn,
    );
    assert.equal(found.issuer, issuer);
    assert.equal(found.resource, MCP);
    assert.deepEqual(asked, [
      'https://mcp.example.com/custom/prm',
      `${issuer}/.well-known/oauth-authorization-server`,
    ]);
  });

  test('without a hint: path-inserted PRM, then root PRM; RFC 8414 then OpenID discovery, path-inserted, for an issuer with a path', async () => {
    const issuer = 'https://auth.example.com/tenant/one';
    const { fetchFn, asked } = fakeFetch({
      'https://mcp.example.com/.well-known/oauth-protected-resource': prm(issuer),
      'https://auth.example.com/tenant/one/.well-known/openid-configuration': {
        ...asMetadata(issuer),
        jwks_uri: `${issuer}/jwks`,
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      },
    });
    const found = await discover(MCP, {}, fetchFn);
    assert.equal(found.issuer, issuer);
    assert.deepEqual(asked, [
      'https://mcp.example.com/.well-known/oauth-protected-resource/mcp',
      'https://mcp.example.com/.well-known/oauth-protected-resource',
      'https://auth.example.com/.well-known/oauth-authorization-server/tenant/one',
      'https://auth.example.com/.well-known/openid-configuration/tenant/one',
      'https://auth.example.com/tenant/one/.well-known/openid-configuration',
    ]);
  });

  test('refuses metadata whose issuer is not the one its URL was built from (RFC 8414 §3.3)', async () => {
    const issuer = 'https://auth.example.com';
    const { fetchFn } = fakeFetch({
      'https://mcp.example.com/.well-known/oauth-protected-resource/mcp': prm(issuer),
      [`${issuer}/.well-known/oauth-authorization-server`]: asMetadata('https://evil.example.com'),
    });
    await assert.rejects(discover(MCP, {}, fetchFn), (error: unknown) => {
      const agentError = error as Error;
      assert.equal(agentError.name, 'IssuerMismatchError');
      return true;
    });
  });

  test('refuses an authorization server that does not advertise S256, or advertises only plain', () => {
    assert.throws(
      () => requireS256(asMetadata('https://a', { code_challenge_methods_supported: undefined }) as never),
      (error: unknown) =>
        error instanceof AgentError &&
        /does not advertise code_challenge_methods_supported/.test(error.message),
    );
    assert.throws(
      () => requireS256(asMetadata('https://a', { code_challenge_methods_supported: ['plain'] }) as never),
      (error: unknown) =>
        error instanceof AgentError && /does not support PKCE S256 \(it offers plain\)/.test(error.message),
    );
    requireS256(asMetadata('https://a') as never);
  });

  test('discovery stops at an authorization server without S256', async () => {
    const issuer = 'https://auth.example.com';
    const { fetchFn } = fakeFetch({
      'https://mcp.example.com/.well-known/oauth-protected-resource/mcp': prm(issuer),
      [`${issuer}/.well-known/oauth-authorization-server`]: asMetadata(issuer, {
        code_challenge_methods_supported: undefined,
      }),
    });
    await assert.rejects(discover(MCP, {}, fetchFn), /PKCE S256/);
  });

  test('refuses resource metadata about another resource, and one naming no authorization server', async () => {
    const other = fakeFetch({
      'https://mcp.example.com/.well-known/oauth-protected-resource/mcp': prm(
        'https://a',
        'https://other.example.com/mcp',
      ),
    });
    await assert.rejects(discover(MCP, {}, other.fetchFn), /is for https:\/\/other\.example\.com\/mcp/);
    const none = fakeFetch({
      'https://mcp.example.com/.well-known/oauth-protected-resource/mcp': { resource: MCP },
    });
    await assert.rejects(discover(MCP, {}, none.fetchFn), /names no authorization server/);
  });

  test('says where it looked when there is no resource metadata at all', async () => {
    const { fetchFn } = fakeFetch({});
    await assert.rejects(
      discover(MCP, {}, fetchFn),
      (error: unknown) =>
        error instanceof AgentError &&
        error.message.includes(
          'https://mcp.example.com/.well-known/oauth-protected-resource/mcp and https://mcp.example.com/.well-known/oauth-protected-resource',
        ),
    );
  });
});
