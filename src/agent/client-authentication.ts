/**
 * Who the agent is at the authorization server, and how it proves it on each back-channel request
 * (token, pushed authorization, revocation): a public client sends its client_id (RFC 6749 §2.1), a
 * confidential one its secret (§2.3.1), a workload a signed assertion (private_key_jwt, RFC 7523 §2.2;
 * the SDK signs it with jose, `aud` = the issuer).
 */
import { readFileSync } from 'node:fs';
import {
  type AddClientAuthentication,
  type AuthorizationServerMetadata,
  createPrivateKeyJwtAuth,
  type OAuthClientInformationMixed,
} from '@modelcontextprotocol/client';
import { AgentError } from './errors.ts';
import type { StoredRegistration } from './token-store.ts';

export type AuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

/** A JWK private key, with the algorithm to sign with. */
export interface SigningKey {
  jwk: Record<string, unknown>;
  alg: string;
}

export interface AgentClient {
  /** How the agent got its client_id: flags or configuration, a metadata document URL, or registration. */
  kind: 'pre-registered' | 'metadata-document' | 'dynamic';
  clientId: string;
  authMethod: AuthMethod;
  clientSecret?: string;
  signingKey?: SigningKey;
  /** For a dynamic registration: what the store keeps (RFC 7592 management credentials included). */
  registration?: StoredRegistration;
}

const DEFAULT_ALGORITHMS: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };

/** Reads a JWK private key file, such as `<dataDir>/secrets/example-workload.private-key.json`. */
export function readSigningKey(file: string): SigningKey {
  let jwk: Record<string, unknown>;
  try {
    jwk = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'not a JSON Web Key';
    throw new AgentError(
      'usage',
      `--private-key ${file}: ${reason}`,
      'Pass the private JWK of a pre-registered client, e.g. <dataDir>/secrets/example-workload.private-key.json.',
    );
  }
  if (typeof jwk.d !== 'string') {
    throw new AgentError(
      'usage',
      `--private-key ${file}: this JWK has no private part ("d")`,
      'Pass the private key, not the public JWKS.',
    );
  }
  const alg =
    typeof jwk.alg === 'string'
      ? jwk.alg
      : jwk.kty === 'RSA'
        ? 'RS256'
        : jwk.kty === 'OKP'
          ? 'EdDSA'
          : DEFAULT_ALGORITHMS[String(jwk.crv)];
  if (!alg)
    throw new AgentError(
      'usage',
      `--private-key ${file}: cannot tell which algorithm this key signs with`,
      'Add "alg" to the JWK.',
    );
  return { jwk, alg };
}

/** What the SDK's token functions need: client information, and the assertion signer for private_key_jwt. */
export function tokenEndpointClient(client: AgentClient): {
  clientInformation: OAuthClientInformationMixed;
  addClientAuthentication?: AddClientAuthentication;
} {
  const clientInformation: OAuthClientInformationMixed = {
    client_id: client.clientId,
    ...(client.clientSecret ? { client_secret: client.clientSecret } : {}),
    ...(client.authMethod !== 'private_key_jwt' ? { token_endpoint_auth_method: client.authMethod } : {}),
  } as OAuthClientInformationMixed;
  if (client.authMethod !== 'private_key_jwt' || !client.signingKey) return { clientInformation };
  return {
    clientInformation,
    addClientAuthentication: createPrivateKeyJwtAuth({
      issuer: client.clientId,
      subject: client.clientId,
      privateKey: client.signingKey.jwk,
      alg: client.signingKey.alg,
      lifetimeSeconds: 60,
    }),
  };
}

/** Adds the client's authentication to a back-channel request the SDK does not make for us. */
export async function authenticateRequest(
  client: AgentClient,
  headers: Headers,
  params: URLSearchParams,
  url: string,
  metadata: AuthorizationServerMetadata,
): Promise<void> {
  switch (client.authMethod) {
    case 'client_secret_basic': {
      // RFC 6749 §2.3.1: each part form-encoded before Base64.
      const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
      const pair = `${encode(client.clientId)}:${encode(client.clientSecret ?? '')}`;
      headers.set('authorization', `Basic ${Buffer.from(pair).toString('base64')}`);
      return;
    }
    case 'client_secret_post':
      params.set('client_id', client.clientId);
      params.set('client_secret', client.clientSecret ?? '');
      return;
    case 'private_key_jwt': {
      const { addClientAuthentication } = tokenEndpointClient(client);
      await addClientAuthentication?.(headers, params, url, metadata);
      return;
    }
    default:
      params.set('client_id', client.clientId);
  }
}
