/**
 * Pre-registered clients from configuration, turned into oidc-provider client metadata.
 *
 * Secrets come from secret references (shared/config/secrets.ts); the example workload's key pair
 * is generated at first start when asked, its private half kept beside the JWKS, owner-only, for
 * `gatehouse agent --private-key`.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { ClientMetadata } from 'oidc-provider';
import { ConfigError } from '../../shared/config/load.ts';
import type { PreRegisteredClientConfig } from '../../shared/config/schema.ts';
import { resolveSecret } from '../../shared/config/secrets.ts';
import type { GeneratedSecrets } from '../store/generated-secrets.ts';
import { shareGeneratedFiles } from '../store/shared-generated-files.ts';
import { TOKEN_EXCHANGE_GRANT } from '../tokens/token-exchange.ts';

/** Shortest client secret accepted from any source (a literal, an environment variable, a file). */
export const MIN_CLIENT_SECRET_LENGTH = 32;

export interface PreparedClient {
  config: PreRegisteredClientConfig;
  metadata: ClientMetadata;
  /** Where the generated private key lives, when one was generated. */
  privateKeyFile?: string;
}

/** `secrets/x.jwks.json` → `secrets/x.private-key.json`. */
export function privateKeyFileFor(jwksFile: string): string {
  return `${jwksFile.replace(/(\.jwks)?\.json$/, '')}.private-key.json`;
}

/** A new ES256 key pair for a private_key_jwt client: its JWKS, and its private JWK (both JSON). */
async function newKeyPair(): Promise<{ jwks: string; privateKey: string }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
  return {
    jwks: JSON.stringify({ keys: [{ ...publicJwk, kid, alg: 'ES256', use: 'sig' }] }, null, 2),
    privateKey: JSON.stringify(privateJwk, null, 2),
  };
}

async function loadOrGenerateJwks(client: PreRegisteredClientConfig, dataDir: string) {
  const jwksFile = path.resolve(dataDir, client.jwksFile!);
  const privateKeyFile = privateKeyFileFor(jwksFile);
  if (!existsSync(jwksFile)) {
    if (!client.generateKeys) {
      throw new ConfigError(`clients: ${client.clientId}.jwksFile ${jwksFile} does not exist`);
    }
    const pair = await newKeyPair();
    mkdirSync(path.dirname(jwksFile), { recursive: true, mode: 0o700 });
    writeFileSync(privateKeyFile, pair.privateKey, { mode: 0o600 });
    chmodSync(privateKeyFile, 0o600);
    writeFileSync(jwksFile, pair.jwks);
  }
  let jwks: { keys: JWK[] };
  try {
    jwks = JSON.parse(readFileSync(jwksFile, 'utf8'));
  } catch {
    throw new ConfigError(`clients: ${client.clientId}.jwksFile ${jwksFile} is not a JSON Web Key Set`);
  }
  if (!Array.isArray(jwks.keys) || jwks.keys.some((key) => 'd' in key || key.kty === 'oct')) {
    throw new ConfigError(`clients: ${client.clientId}.jwksFile must hold public keys only`);
  }
  return { jwks, privateKeyFile: existsSync(privateKeyFile) ? privateKeyFile : undefined };
}

/**
 * With PostgreSQL: the secrets and key pairs prepareClients would generate into the data directory
 * come from the shared database instead (or go there, from the first instance), and are written
 * into this data directory for its readers (store/shared-generated-files.ts). Run before
 * prepareClients, which then finds the files and reads them as on one machine.
 */
export async function shareGeneratedClientSecrets(
  clients: readonly PreRegisteredClientConfig[],
  dataDir: string,
  secrets: GeneratedSecrets,
): Promise<void> {
  for (const client of clients) {
    if (client.authMethod === 'client_secret_basic' && client.secret?.startsWith('file:')) {
      const name = client.secret.slice(5);
      await shareGeneratedFiles(secrets, dataDir, {
        name,
        files: [{ path: name, mode: 0o600 }],
        generate: async () => [randomBytes(32).toString('base64url')],
        mirror: true,
      });
    } else if (client.authMethod === 'private_key_jwt' && client.generateKeys && client.jwksFile) {
      await shareGeneratedFiles(secrets, dataDir, {
        name: client.jwksFile,
        files: [
          { path: client.jwksFile, mode: 0o644 },
          { path: privateKeyFileFor(client.jwksFile), mode: 0o600 },
        ],
        generate: async () => {
          const pair = await newKeyPair();
          return [pair.jwks, pair.privateKey];
        },
        mirror: true,
      });
    }
  }
}

const GRANTS_BY_ROLE: Record<PreRegisteredClientConfig['role'], string[]> = {
  gateway: [],
  'mcp-server': [TOKEN_EXCHANGE_GRANT],
  workload: ['client_credentials'],
  agent: ['authorization_code'],
  admin: ['client_credentials'],
};

/** Roles whose tokens DPoP can bind: internal services (gateway, MCP server) never hold tokens. */
const TOKEN_HOLDING_ROLES = new Set<PreRegisteredClientConfig['role']>(['agent', 'workload']);

export async function prepareClients(
  clients: PreRegisteredClientConfig[],
  dataDir: string,
  options: {
    dpopRequired?: boolean;
    /** Whether a pre-registered agent authenticating so gets refresh tokens (tokens/refresh-token-policy.ts). */
    refreshTokens?: (authMethod: string) => boolean;
  } = {},
): Promise<PreparedClient[]> {
  const prepared: PreparedClient[] = [];
  for (const client of clients) {
    const refreshes = client.role === 'agent' && options.refreshTokens?.(client.authMethod) === true;
    const metadata: ClientMetadata = {
      client_id: client.clientId,
      client_name: client.name,
      grant_types: [...GRANTS_BY_ROLE[client.role], ...(refreshes ? ['refresh_token'] : [])],
      response_types: client.role === 'agent' ? ['code'] : [],
      redirect_uris: client.redirectUris,
      token_endpoint_auth_method: client.authMethod,
      // An admin client's scopes are the admin API's, which the provider's `scopes` does not list: the
      // admin resource grants them (provider.ts, getResourceServerInfo), so none is set here.
      ...(client.scopes.length > 0 && client.role !== 'admin' ? { scope: client.scopes.join(' ') } : {}),
      // RFC 9449 §5.2: token requests without a DPoP proof are refused for this client.
      ...(options.dpopRequired && TOKEN_HOLDING_ROLES.has(client.role)
        ? { dpop_bound_access_tokens: true }
        : {}),
    };
    let privateKeyFile: string | undefined;
    if (client.authMethod === 'client_secret_basic') {
      // Internal clients' secrets are generated on first start when they are file references.
      const secret = resolveSecret(client.secret!, dataDir, { generate: true });
      // The token endpoint locks no client out after wrong secrets (http/token-rate-limit.ts): a secret
      // must be long enough that guessing it is hopeless (RFC 6749 §10.10), whatever its source.
      if (secret.length < MIN_CLIENT_SECRET_LENGTH) {
        throw new ConfigError(
          `clients: the secret of ${client.clientId} has fewer than ${MIN_CLIENT_SECRET_LENGTH} characters; use a long random one (e.g. openssl rand -base64 32)`,
        );
      }
      metadata.client_secret = secret;
    } else if (client.authMethod === 'private_key_jwt') {
      const loaded = await loadOrGenerateJwks(client, dataDir);
      metadata.jwks = loaded.jwks as ClientMetadata['jwks'];
      privateKeyFile = loaded.privateKeyFile;
    }
    prepared.push({ config: client, metadata, ...(privateKeyFile ? { privateKeyFile } : {}) });
  }
  return prepared;
}
