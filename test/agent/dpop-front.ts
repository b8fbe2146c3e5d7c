/**
 * The whole stack behind a DPoP-checking front, for the agent's DPoP journeys until the gateway
 * checks DPoP itself (it is being built): the front listens at the public URL the stack is
 * configured with and does what the gateway will do (RFC 9449), then passes the request on to the
 * real gateway with the token as Bearer, which today's gateway accepts.
 *
 * - 401s from behind get a `DPoP algs="ES256 EdDSA"` challenge besides the Bearer one (§7.1);
 * - `Authorization: DPoP <token>` needs one valid proof (§4.3: typ, asymmetric alg, public jwk,
 *   signature, htm, htu = the public URL without query, iat, a jti never seen before, ath = the
 *   token's hash) whose key is the one the token is bound to (`cnf.jkt`, by introspection as the
 *   gateway does, §6.1); with `requireNonce`, a proof without the front's current nonce gets
 *   401 `use_dpop_nonce` and a `DPoP-Nonce` (§9);
 * - a DPoP-bound token sent as Bearer is refused (§7.2).
 * Every decision is recorded for the tests to assert on.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, type JWK, jwtVerify } from 'jose';
import { loopbackStackSections, loopbackUrls } from '../../src/launcher/loopback-config.ts';
import { type RunningStack, startStack } from '../../src/launcher/stack.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { basic, postForm } from '../helpers/oauth.ts';
import { freePort } from '../helpers/stack.ts';

const ASYMMETRIC = [
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
  'PS256',
  'PS384',
  'PS512',
  'RS256',
  'RS384',
  'RS512',
];
const IAT_WINDOW_SECONDS = 60;

export interface FrontRecord {
  /** Requests that carried a valid proof for their DPoP-bound token, and were passed on. */
  verified: number;
  jtis: string[];
  /** `use_dpop_nonce` challenges sent, and proofs that then carried the nonce. */
  nonceChallenges: number;
  nonceHonored: number;
  /** Why requests were refused: `invalid_dpop_proof: …`, `bearer-with-bound-token`, … */
  refusals: string[];
  /** Every proof seen: none may show up in a trace. */
  proofs: string[];
}

export interface DpopFrontedStack {
  running: RunningStack;
  issuer: string;
  /** The public MCP URL (the front's). */
  mcpUrl: string;
  dataDir: string;
  logs: string[];
  record: FrontRecord;
  /** Introspection as the gateway does it: what the authorization server says of a token. */
  introspect(token: string): Promise<Record<string, unknown>>;
  audit(event: string): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

export async function startDpopFrontedStack(
  options: { requireNonce?: boolean; authorizationServer?: Record<string, unknown> } = {},
): Promise<DpopFrontedStack> {
  const ports = {
    authorizationServer: await freePort(),
    gateway: await freePort(), // the front: the public URL
    mcpServer: await freePort(),
    apis: await freePort(),
  };
  const gatewayPort = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-dpop-stack-'));
  const urls = loopbackUrls(ports);
  const sections = loopbackStackSections(ports);
  const config = parseConfig({
    dataDir,
    logLevel: 'debug',
    authorizationServer: {
      ...sections.authorizationServer,
      login: { perEmail: { max: 1000, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
      ...options.authorizationServer,
    },
    gateway: { ...sections.gateway, listen: { host: '127.0.0.1', port: gatewayPort } },
    mcpServer: sections.mcpServer,
    apis: sections.apis,
  });
  const logs: string[] = [];
  const logger = createLogger('stack', { level: 'debug', write: (line) => logs.push(line) });
  const running = await startStack({ config, dataDir, file: undefined }, { logger });
  const gatewaySecret = readFileSync(path.join(dataDir, 'secrets/gatehouse-gateway.secret'), 'utf8').trim();

  const introspect = async (token: string) =>
    (
      await postForm(
        `${urls.issuer}/introspect`,
        { token },
        { authorization: basic('gatehouse-gateway', gatewaySecret), accept: 'application/json' },
      )
    ).json;

  const record: FrontRecord = {
    verified: 0,
    jtis: [],
    nonceChallenges: 0,
    nonceHonored: 0,
    refusals: [],
    proofs: [],
  };
  const nonce = randomBytes(16).toString('base64url');

  /** RFC 9449 §4.3 and §7: undefined when the request may pass, else the error code and why. */
  async function check(
    req: IncomingMessage,
    token: string,
  ): Promise<{ error: string; why: string } | undefined> {
    const proof = req.headers.dpop;
    if (typeof proof !== 'string' || proof.includes(','))
      return { error: 'invalid_dpop_proof', why: 'not one proof' };
    record.proofs.push(proof);
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(proof);
    } catch {
      return { error: 'invalid_dpop_proof', why: 'not a JWT' };
    }
    const jwk = header.jwk as JWK | undefined;
    if (header.typ !== 'dpop+jwt' || !ASYMMETRIC.includes(String(header.alg)) || !jwk || 'd' in jwk) {
      return { error: 'invalid_dpop_proof', why: 'header' };
    }
    let claims: Record<string, unknown>;
    try {
      claims = (await jwtVerify(proof, await importJWK(jwk, header.alg), { typ: 'dpop+jwt' })).payload;
    } catch {
      return { error: 'invalid_dpop_proof', why: 'signature' };
    }
    const htu = `${urls.gatewayUrl}${new URL(req.url ?? '/', 'http://x').pathname}`;
    if (claims.htm !== req.method || claims.htu !== htu)
      return { error: 'invalid_dpop_proof', why: 'htm/htu' };
    if (typeof claims.iat !== 'number' || Math.abs(Date.now() / 1000 - claims.iat) > IAT_WINDOW_SECONDS) {
      return { error: 'invalid_dpop_proof', why: 'iat' };
    }
    if (typeof claims.jti !== 'string' || record.jtis.includes(claims.jti)) {
      return { error: 'invalid_dpop_proof', why: 'jti replayed' };
    }
    record.jtis.push(claims.jti);
    if (claims.ath !== sha256(token)) return { error: 'invalid_dpop_proof', why: 'ath' };
    const bound = (await introspect(token)) as { active?: boolean; cnf?: { jkt?: string } };
    if (bound.active && bound.cnf?.jkt !== (await calculateJwkThumbprint(jwk))) {
      return { error: 'invalid_token', why: 'the proof key is not the one the token is bound to' };
    }
    if (options.requireNonce) {
      if (claims.nonce !== nonce) {
        record.nonceChallenges += 1;
        return { error: 'use_dpop_nonce', why: 'nonce' };
      }
      record.nonceHonored += 1;
    }
    record.verified += 1;
    return undefined;
  }

  const front = createServer(async (req, res) => {
    const authorization = req.headers.authorization ?? '';
    const [scheme, token = ''] = authorization.split(/\s+/, 2);
    const headers = { ...req.headers };
    if (scheme?.toLowerCase() === 'dpop') {
      const refused = await check(req, token);
      if (refused) {
        record.refusals.push(`${refused.error}: ${refused.why}`);
        const extra: Record<string, string> =
          refused.error === 'use_dpop_nonce' ? { 'dpop-nonce': nonce } : {};
        res
          .writeHead(401, {
            'www-authenticate': `DPoP error="${refused.error}", algs="ES256 EdDSA"`,
            ...extra,
          })
          .end();
        req.resume();
        return;
      }
      headers.authorization = `Bearer ${token}`;
      delete headers.dpop;
    } else if (scheme?.toLowerCase() === 'bearer' && token) {
      const introspection = (await introspect(token)) as { cnf?: unknown };
      if (introspection.cnf) {
        record.refusals.push('bearer-with-bound-token');
        res
          .writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token", DPoP algs="ES256 EdDSA"' })
          .end();
        req.resume();
        return;
      }
    }
    const upstream = httpRequest(
      { host: '127.0.0.1', port: gatewayPort, method: req.method, path: req.url, headers },
      (answer) => {
        const out = { ...answer.headers };
        if (answer.statusCode === 401) {
          // RFC 9449 §7.1: the resource says it takes DPoP, next to the Bearer challenge.
          out['www-authenticate'] = [answer.headers['www-authenticate'], 'DPoP algs="ES256 EdDSA"']
            .filter(Boolean)
            .join(', ');
        }
        if (options.requireNonce) out['dpop-nonce'] = nonce;
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => front.listen(ports.gateway, '127.0.0.1', resolve));

  return {
    running,
    issuer: urls.issuer,
    mcpUrl: urls.mcpUrl,
    dataDir,
    logs,
    record,
    introspect,
    audit: (event) =>
      logs
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((entry) => entry.message === 'audit' && entry.event === event),
    async close() {
      await new Promise<void>((resolve) => {
        front.close(() => resolve());
        front.closeAllConnections();
      });
      await running.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
