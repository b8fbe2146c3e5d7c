/**
 * The example workload (`example-workload`, private_key_jwt) as tests use it: a fresh RFC 7523
 * client assertion signed with the private key the authorization server generated in its data
 * directory, and a client-credentials token request with it.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { importJWK, type JWK, SignJWT } from 'jose';
import { postForm } from './oauth.ts';

export const WORKLOAD = 'example-workload';
export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface WorkloadServer {
  issuer: string;
  dataDir: string;
}

/** A client assertion for `server`: iss = sub = the workload, aud = the issuer, 60 s, a new jti. */
export async function workloadAssertion(server: WorkloadServer): Promise<string> {
  const jwk = JSON.parse(
    readFileSync(path.join(server.dataDir, 'secrets/example-workload.private-key.json'), 'utf8'),
  ) as JWK;
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', ...(jwk.kid ? { kid: jwk.kid } : {}) })
    .setIssuer(WORKLOAD)
    .setSubject(WORKLOAD)
    .setAudience(server.issuer)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(await importJWK(jwk, 'ES256'));
}

/** A client-credentials request as the workload (scope stocks:read), with extra headers (a DPoP proof). */
export async function workloadTokenRequest(server: WorkloadServer, headers: Record<string, string> = {}) {
  return postForm(
    `${server.issuer}/token`,
    {
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: await workloadAssertion(server),
      scope: 'stocks:read',
    },
    headers,
  );
}
