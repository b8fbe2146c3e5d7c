/**
 * The independent baseline for the token benchmark: a bare oidc-provider, the library Gatehouse's
 * authorization server is built on, with nothing of Gatehouse's code. What a client credentials
 * token costs with the library alone is the yardstick for what Gatehouse adds (its SQLite store,
 * rate limits, token tags, assertion lifetime policy, audit lines, hardened HTTP listener).
 *
 * Configured to do the same work per token as Gatehouse's for the same request:
 * - the same two workload clients, registered the same way (static clients in the configuration):
 *   `example-workload` with `private_key_jwt` and an ES256 key generated at start (its private key
 *   written to `<dataDir>/example-workload.private-key.json`, as Gatehouse does), and
 *   `bench-secret-workload` with `client_secret_basic` and the bench's secret; both for
 *   `client_credentials` and the `stocks:read` scope;
 * - the same client authentication methods enabled, the same clock tolerance;
 * - the same token: opaque, for the same kind of resource (the MCP server's URI, its scopes, the
 *   same lifetime), through resource indicators as Gatehouse issues it;
 * - oidc-provider's own in-memory adapter (no `adapter` configured), which also keeps the
 *   assertions' `jti`s for replay detection;
 * - a plain `node:http` listener.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { type Configuration, errors } from 'oidc-provider';
import { KEY_WORKLOAD, SECRET_WORKLOAD, WORKLOAD_SCOPE } from '../workload-clients.ts';

/** Gatehouse's defaults: the MCP scopes, the MCP access token lifetime, the clock tolerance. */
const MCP_SCOPES = ['stocks:read', 'stocks:trade', 'customers:read'];
const ACCESS_TOKEN_TTL_SECONDS = 900;
const CLOCK_TOLERANCE_SECONDS = 15;

async function signingKey(alg: 'ES256' | 'RS256'): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' },
    publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
  };
}

export async function startBareAuthorizationServer(port: number, dataDir: string, host = '127.0.0.1') {
  const issuer = `http://${host}:${port}`;
  const mcpUri = `${issuer}/mcp`;
  const workload = await signingKey('ES256');
  const privateKeyFile = path.join(dataDir, `${KEY_WORKLOAD}.private-key.json`);
  writeFileSync(privateKeyFile, JSON.stringify(workload.privateJwk), { mode: 0o600 });
  const providerKeys = [(await signingKey('ES256')).privateJwk, (await signingKey('RS256')).privateJwk];

  const configuration: Configuration = {
    clients: [
      {
        client_id: KEY_WORKLOAD,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [workload.publicJwk as never] },
        scope: WORKLOAD_SCOPE,
      },
      {
        client_id: SECRET_WORKLOAD.clientId,
        client_secret: SECRET_WORKLOAD.secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: WORKLOAD_SCOPE,
      },
    ],
    jwks: { keys: providerKeys as never },
    // Unused by client credentials; given so that the library does not warn of its own default.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    scopes: ['openid', ...MCP_SCOPES],
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    // As Gatehouse sets it: the resource server's lifetime (the library's default does the same, noisily).
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TOKEN_TTL_SECONDS,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => mcpUri,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== mcpUri) throw new errors.InvalidTarget();
          return {
            scope: MCP_SCOPES.join(' '),
            audience: mcpUri,
            accessTokenTTL: ACCESS_TOKEN_TTL_SECONDS,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
  };
  const provider = new Provider(issuer, configuration);
  const server = createServer(provider.callback());
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return { server, issuer, privateKeyFiles: { [KEY_WORKLOAD]: privateKeyFile } };
}
