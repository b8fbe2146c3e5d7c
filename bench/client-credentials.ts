/**
 * Client credentials tokens from the token endpoint, as fast as `concurrency` callers get them.
 *
 * - `private_key_jwt`: the pre-registered `example-workload`, with an RFC 7523 assertion of its own
 *   for every request, signed with the private key the authorization server generated for it
 *   (ES256, aud = issuer, unique jti, 60 s), ahead of the measured window (`prepare`) so that the
 *   load generator's signing does not limit what is measured. The server verifies the signature and
 *   records the jti (replay detection: one store write) on every request.
 * - `client_secret_basic`: the bench-only `bench-secret-workload` (bench/config.ts).
 *
 * Each answer is checked: HTTP 200 with an opaque `access_token`.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { importJWK, type JWK, SignJWT } from 'jose';
import { basic } from '../test/helpers/oauth.ts';
import { request } from './http-client.ts';
import { nowMs } from './stats.ts';
import { WORKLOAD_SCOPE as SCOPE, SECRET_WORKLOAD, KEY_WORKLOAD as WORKLOAD } from './workload-clients.ts';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export type ClientAuthentication = 'private_key_jwt' | 'client_secret_basic';

export interface TokenRequest {
  headers: Record<string, string>;
  body: string;
}

export interface TokenRequests {
  /** The request for the next token. */
  next(): Promise<TokenRequest>;
  /**
   * Signs `count` assertions ahead (private_key_jwt), so that signing them, the load generator's
   * work, is not done during a measured window; `next` signs more if they run out. Assertions left
   * over are dropped at the next call (each lives 60 s).
   */
  prepare(count: number): Promise<void>;
}

/** Builds the requests for tokens: a fresh assertion each time for private_key_jwt. */
export async function tokenRequestFactory(
  /** The issuer: the audience of the assertions. */
  issuer: string,
  auth: ClientAuthentication,
  privateKeyFile: string | undefined,
): Promise<TokenRequests> {
  const form = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (auth === 'client_secret_basic') {
    const headers = { ...form, authorization: basic(SECRET_WORKLOAD.clientId, SECRET_WORKLOAD.secret) };
    const body = new URLSearchParams({ grant_type: 'client_credentials', scope: SCOPE }).toString();
    return { next: async () => ({ headers, body }), prepare: async () => {} };
  }
  if (!privateKeyFile) throw new Error(`the authorization server generated no private key for ${WORKLOAD}`);
  const jwk = JSON.parse(readFileSync(privateKeyFile, 'utf8')) as JWK;
  const key = await importJWK(jwk, 'ES256');
  const sign = async (): Promise<TokenRequest> => {
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', ...(jwk.kid ? { kid: jwk.kid } : {}) })
      .setIssuer(WORKLOAD)
      .setSubject(WORKLOAD)
      .setAudience(issuer)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(key);
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: assertion,
      scope: SCOPE,
    }).toString();
    return { headers: form, body };
  };
  let ahead: TokenRequest[] = [];
  return {
    next: () => {
      const prepared = ahead.pop();
      return prepared ? Promise.resolve(prepared) : sign();
    },
    async prepare(count) {
      const fresh: TokenRequest[] = [];
      // In batches: jose signs through WebCrypto, whose work runs on the thread pool.
      while (fresh.length < count) {
        const batch = Math.min(256, count - fresh.length);
        fresh.push(...(await Promise.all(Array.from({ length: batch }, sign))));
      }
      ahead = fresh;
    },
  };
}

export interface TokenLoadOptions {
  /** Token endpoints; caller i sends to `endpoints[i % endpoints.length]` (a load split across processes). */
  endpoints: readonly URL[];
  agent: http.Agent;
  next: () => Promise<TokenRequest>;
  concurrency: number;
  durationMs: number;
  maxRequests: number;
}

export interface TokenLoadResult {
  tokens: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  latencies: number[];
}

export async function runTokenLoad(options: TokenLoadOptions): Promise<TokenLoadResult> {
  const latencies: number[] = [];
  let sent = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = nowMs();
  const deadline = started + options.durationMs;

  async function caller(index: number): Promise<void> {
    const url = options.endpoints[index % options.endpoints.length]!;
    while (nowMs() < deadline && sent < options.maxRequests) {
      sent += 1;
      const { headers, body } = await options.next();
      const t0 = nowMs();
      try {
        const answer = await request(options.agent, url, { method: 'POST', headers, body });
        const json = JSON.parse(answer.body) as { access_token?: unknown };
        if (
          answer.status !== 200 ||
          typeof json.access_token !== 'string' ||
          json.access_token.includes('.')
        ) {
          throw new Error(`token endpoint answered ${answer.status}: ${answer.body.slice(0, 200)}`);
        }
        latencies.push(nowMs() - t0);
      } catch (error) {
        errors += 1;
        firstError ??= (error as Error).message;
      }
    }
  }

  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => caller(i)));
  return { tokens: latencies.length, errors, firstError, elapsedMs: nowMs() - started, latencies };
}
