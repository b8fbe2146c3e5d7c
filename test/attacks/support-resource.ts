/**
 * Shared by the resource-side attack files (token confusion, gateway and MCP server edges, secrets
 * in logs): the whole stack on free loopback ports, each component with its own log, and two
 * recording taps, one between the gateway and the MCP server and one in front of the APIs (both the
 * gateway's `/api/*` routes and the MCP server's tool calls go through it). A tap forwards what it
 * gets and records every request as Node's parser saw it, the same parser the real upstream uses,
 * so a test can say exactly what reached an upstream, and that nothing did.
 *
 * Also: an agent registered by DCR with tokens got by the scripted user, forged JWTs (`jose`), DPoP
 * proofs, and raw HTTP/1.1 over a socket for what `fetch` and `node:http` refuse to send.
 */
import { createHash, createPrivateKey, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http, { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { startApis } from '../../src/apis/server.ts';
import {
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '../../src/authorization-server/server.ts';
import { type RunningGateway, startGateway } from '../../src/gateway/server.ts';
import { loopbackStackSections, loopbackUrls } from '../../src/launcher/loopback-config.ts';
import { type RunningMcpServer, startMcpServer } from '../../src/mcp-server/server.ts';
import type { RunningComponent } from '../../src/shared/component.ts';
import { parseConfig } from '../../src/shared/config/load.ts';
import { close } from '../../src/shared/http.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { authorize, basic, postForm, redeemCode, toolHeader } from '../helpers/oauth.ts';
import { freePort } from '../helpers/stack.ts';

export const REDIRECT = 'http://127.0.0.1/callback';
export const MCP_SERVER_CLIENT = 'gatehouse-mcp-server';
export const GATEWAY_CLIENT = 'gatehouse-gateway';
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

// ---------------------------------------------------------------------------------------------
// Recording taps.

export interface TapHit {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Names and values as they arrived, in order, duplicates kept. */
  rawHeaders: string[];
  body: string;
}

export interface Tap {
  url: string;
  hits: TapHit[];
  /** The requests the tap forwarded while `action` ran. */
  during(action: () => Promise<unknown>): Promise<TapHit[]>;
  close(): Promise<void>;
}

/** Fields that belong to one connection and are re-created by the tap's own client (RFC 9110 §7.6.1). */
const TAP_CONNECTION_FIELDS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/** Starts a recording reverse proxy; `target()` says where to forward (known once the upstream listens). */
export async function startTap(target: () => string): Promise<Tap> {
  const hits: TapHit[] = [];
  const agent = new http.Agent({ keepAlive: false });
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    hits.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: body.toString('utf8'),
    });
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !TAP_CONNECTION_FIELDS.has(name)) headers[name] = value;
    }
    if (body.length > 0) headers['content-length'] = String(body.length);
    const upstream = http.request(new URL(req.url ?? '/', target()), {
      method: req.method,
      headers,
      agent,
    });
    upstream.on('response', (answer) => {
      const back: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !TAP_CONNECTION_FIELDS.has(name)) back[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, back);
      if (/event-stream/.test(String(answer.headers['content-type']))) res.flushHeaders();
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.on('close', () => upstream.destroy());
    upstream.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    async during(action) {
      const before = hits.length;
      await action();
      // A tap records on arrival of the whole request: give a request in flight a moment to land.
      await new Promise((resolve) => setImmediate(resolve));
      return hits.slice(before);
    },
    async close() {
      await close(server);
      agent.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The stack.

export type ComponentName = 'authorization-server' | 'gateway' | 'mcp-server' | 'apis';

export interface ResourceStack {
  issuer: string;
  gatewayUrl: string;
  /** The MCP server's canonical URI (through the gateway), the audience of agent tokens. */
  mcpUrl: string;
  /** The MCP server's own /mcp, bypassing the gateway. */
  mcpDirect: string;
  /** The APIs' own origin, bypassing the gateway (`/stocks`, `/customers`). */
  apisUrl: string;
  stocksAudience: string;
  customersAudience: string;
  dataDir: string;
  authorizationServer: RunningAuthorizationServer;
  gateway: RunningGateway;
  mcpServer: RunningMcpServer;
  apis: RunningComponent;
  /** Between the gateway and the MCP server. */
  mcpTap: Tap;
  /** In front of the APIs: the gateway's `/api/*` routes and the MCP server's tool calls. */
  apiTap: Tap;
  /** Every log line of every component, in order. */
  logs: string[];
  logsOf(component: ComponentName): string[];
  /** Parsed audit records (`"message": "audit"`) with this event, from any component. */
  audit(event: string): Array<Record<string, unknown>>;
  /** Parsed records of one component. */
  records(component: ComponentName): Array<Record<string, unknown>>;
  /** The generated secret of an internal client (`gatehouse-gateway`, `gatehouse-mcp-server`). */
  secret(clientId: string): string;
  close(): Promise<void>;
}

type Section = Record<string, unknown>;

export interface ResourceStackOptions {
  gateway?: Section;
  mcpServer?: Section;
  apis?: Section;
  authorizationServer?: Section;
}

export async function startResourceStack(options: ResourceStackOptions = {}): Promise<ResourceStack> {
  const ports = {
    authorizationServer: await freePort(),
    gateway: await freePort(),
    mcpServer: await freePort(),
    apis: await freePort(),
  };
  const urls = loopbackUrls(ports);
  const sections = loopbackStackSections(ports);
  const mcpTap = await startTap(() => urls.mcpServerUrl);
  const apiTap = await startTap(() => urls.apisUrl);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-attacks-'));
  const config = parseConfig({
    dataDir,
    logLevel: 'debug',
    authorizationServer: {
      ...sections.authorizationServer,
      login: { perEmail: { max: 1000, windowSeconds: 60 }, perAddress: { max: 1000, windowSeconds: 60 } },
      ...options.authorizationServer,
    },
    gateway: {
      ...sections.gateway,
      mcpServerUrl: mcpTap.url,
      routes: [
        { prefix: '/api/stocks', upstream: `${apiTap.url}/stocks` },
        { prefix: '/api/customers', upstream: `${apiTap.url}/customers` },
      ],
      ...options.gateway,
    },
    mcpServer: {
      ...sections.mcpServer,
      apis: {
        stocks: { baseUrl: `${apiTap.url}/stocks`, audience: urls.stocksAudience },
        customers: { baseUrl: `${apiTap.url}/customers`, audience: urls.customersAudience },
      },
      ...options.mcpServer,
    },
    apis: { ...sections.apis, ...options.apis },
  });
  const loaded = { config, dataDir, file: undefined };
  const logs: string[] = [];
  const byComponent: Record<ComponentName, string[]> = {
    'authorization-server': [],
    gateway: [],
    'mcp-server': [],
    apis: [],
  };
  const loggerFor = (component: ComponentName) =>
    createLogger(component, {
      level: 'debug',
      write: (line) => {
        logs.push(line);
        byComponent[component].push(line);
      },
    });
  const started: Array<{ close(): Promise<void> }> = [];
  const up = async <T extends { close(): Promise<void> }>(start: Promise<T>) => {
    const running = await start;
    started.push(running);
    return running;
  };
  const closeAll = async () => {
    for (const component of started.reverse()) await component.close();
    await mcpTap.close();
    await apiTap.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const authorizationServer = await up(
      startAuthorizationServer(loaded, { logger: loggerFor('authorization-server') }),
    );
    const apis = await up(startApis(loaded, { logger: loggerFor('apis') }));
    const mcpServer = await up(startMcpServer(loaded, { logger: loggerFor('mcp-server') }));
    const gateway = await up(startGateway(loaded, { logger: loggerFor('gateway') }));
    const parse = (lines: string[]) => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    return {
      issuer: urls.issuer,
      gatewayUrl: urls.gatewayUrl,
      mcpUrl: urls.mcpUrl,
      mcpDirect: `${urls.mcpServerUrl}/mcp`,
      apisUrl: urls.apisUrl,
      stocksAudience: urls.stocksAudience,
      customersAudience: urls.customersAudience,
      dataDir,
      authorizationServer,
      gateway,
      mcpServer,
      apis,
      mcpTap,
      apiTap,
      logs,
      logsOf: (component) => byComponent[component],
      audit: (event) => parse(logs).filter((r) => r.message === 'audit' && r.event === event),
      records: (component) => parse(byComponent[component]),
      secret: (clientId) => readFileSync(path.join(dataDir, `secrets/${clientId}.secret`), 'utf8').trim(),
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Agents and their tokens.

/** Registers a public native agent by DCR (RFC 7591); returns its client_id. */
export async function registerAgent(issuer: string, name = 'Attack suite agent'): Promise<string> {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: name, redirect_uris: [REDIRECT], application_type: 'native' }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  if (response.status !== 201) throw new Error(`registration failed: ${JSON.stringify(body)}`);
  return String(body.client_id);
}

export interface AgentToken {
  accessToken: string;
  /** The authorization code that was redeemed (spent), for the log scan. */
  code: string;
  verifier: string;
  tokenType: string;
}

/**
 * A user signs in and consents; the agent redeems the code for an opaque token for the MCP server.
 * With `dpop`, the code is redeemed with a DPoP proof (RFC 9449 §5), so the token is sender-bound.
 */
export async function agentToken(
  stack: Pick<ResourceStack, 'issuer' | 'mcpUrl'>,
  clientId: string,
  scope: string,
  options: { email?: string; dpop?: DpopKey } = {},
): Promise<AgentToken> {
  const result = await authorize({
    issuer: stack.issuer,
    clientId,
    redirectUri: REDIRECT,
    scope,
    resource: stack.mcpUrl,
    ...(options.email ? { email: options.email } : {}),
  });
  const code = result.callback.searchParams.get('code');
  if (!code) throw new Error(`no code: ${result.callback.href}`);
  const headers: Record<string, string> = options.dpop
    ? { dpop: await options.dpop.proof('POST', `${stack.issuer}/token`) }
    : {};
  const token = await redeemCode(
    stack.issuer,
    { code, verifier: result.verifier, redirectUri: REDIRECT, clientId, resource: stack.mcpUrl },
    headers,
  );
  if (token.status !== 200) throw new Error(`token request failed: ${token.text}`);
  return {
    accessToken: String(token.json.access_token),
    code,
    verifier: result.verifier,
    tokenType: String(token.json.token_type),
  };
}

/** The phantom JWT the gateway would forward for an opaque token, asked with the gateway's credentials. */
export async function phantomFor(stack: ResourceStack, opaque: string): Promise<string> {
  const response = await postForm(
    `${stack.issuer}/introspect`,
    { token: opaque },
    { authorization: basic(GATEWAY_CLIENT, stack.secret(GATEWAY_CLIENT)), accept: 'application/jwt' },
  );
  if (response.status !== 200 || !/application\/jwt/.test(response.headers.get('content-type') ?? ''))
    throw new Error(`no phantom token: ${response.status} ${response.text}`);
  return response.text.trim();
}

/** An API token, exchanged the way the MCP server does it (RFC 8693), with its credentials. */
export async function exchangedFor(stack: ResourceStack, subject: string, audience: string): Promise<string> {
  const response = await postForm(
    `${stack.issuer}/token`,
    {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: subject,
      subject_token_type: subject.includes('.')
        ? 'urn:ietf:params:oauth:token-type:jwt'
        : 'urn:ietf:params:oauth:token-type:access_token',
      audience,
    },
    { authorization: basic(MCP_SERVER_CLIENT, stack.secret(MCP_SERVER_CLIENT)), ...toolHeader(audience) },
  );
  if (response.status !== 200) throw new Error(`exchange failed: ${response.text}`);
  return String(response.json.access_token);
}

// ---------------------------------------------------------------------------------------------
// Forged tokens.

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The authorization server's own ES256 signing key (from `keys.json`): for tokens it would never issue. */
export function serverSigningKey(stack: Pick<ResourceStack, 'dataDir'>): JWK {
  const keys = JSON.parse(readFileSync(path.join(stack.dataDir, 'keys.json'), 'utf8')) as {
    signingKeys: JWK[];
  };
  const jwk = keys.signingKeys.find((key) => key.alg === 'ES256');
  if (!jwk) throw new Error('no ES256 key in keys.json');
  return jwk;
}

/** The public half of a JWK (no `d`, `p`, `q`, ...). */
export function publicPart(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, k: _k, ...rest } = jwk;
  return rest;
}

/**
 * Signs `claims` with `header` (alg ES256) using the server's real key: only the tampered part
 * differs from a token the server would issue. Signed by hand (node:crypto), not with jose, because
 * jose refuses to produce some of the headers an attacker would send (an unknown `crit`, say).
 * A header value of `undefined` removes that parameter.
 */
export function signAsServer(
  stack: Pick<ResourceStack, 'dataDir'>,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const jwk = serverSigningKey(stack);
  const input = `${b64({ alg: 'ES256', typ: 'at+jwt', kid: jwk.kid, ...header })}.${b64(claims)}`;
  const key = createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return Promise.resolve(`${input}.${signature.toString('base64url')}`);
}

/** A JWT with `alg: none` and no signature (RFC 7519 §6). */
export const unsignedJwt = (claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
  `${b64({ alg: 'none', typ: 'at+jwt', ...header })}.${b64(claims)}.`;

/**
 * The classic key confusion (RFC 8725 §2.1): HS256 with the server's *public* key as the HMAC
 * secret, once as the JWK JSON text and once as the raw `x` coordinate bytes: a verifier that
 * takes the algorithm from the token would accept one of them.
 */
export async function hs256WithPublicKey(
  stack: Pick<ResourceStack, 'dataDir'>,
  claims: Record<string, unknown>,
): Promise<string[]> {
  const jwk = publicPart(serverSigningKey(stack));
  const secrets = [
    new TextEncoder().encode(JSON.stringify(jwk)),
    new TextEncoder().encode(JSON.stringify({ keys: [jwk] })),
    Buffer.from(String(jwk.x), 'base64url'),
  ];
  return Promise.all(
    secrets.map((secret) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid! }).sign(secret),
    ),
  );
}

/** An attacker's own ES256 key pair, as private key and public JWK. */
export async function attackerKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: `attacker-${randomUUID()}`, alg: 'ES256', use: 'sig' };
  return {
    jwk,
    sign: (claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: jwk.kid, ...header })
        .sign(privateKey),
  };
}

/** A JWKS server the attacker controls, counting fetches: a verifier must never fetch it. */
export async function startAttackerJwks(keys: JWK[]) {
  let fetches = 0;
  const server: Server = createServer((_req, res) => {
    fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    get fetches() {
      return fetches;
    },
    close: () => close(server),
  };
}

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449).

export interface DpopKey {
  jwk: JWK;
  /** RFC 7638 thumbprint, as in `cnf.jkt`. */
  thumbprint: string;
  proof(method: string, url: string, accessToken?: string): Promise<string>;
}

export async function dpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return {
    jwk,
    thumbprint: createHash('sha256').update(canonical).digest('base64url'),
    proof: (method, url, accessToken) =>
      new SignJWT({
        htm: method,
        htu: url,
        jti: randomUUID(),
        ...(accessToken ? { ath: createHash('sha256').update(accessToken).digest('base64url') } : {}),
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
        .setIssuedAt()
        .sign(privateKey),
  };
}

// ---------------------------------------------------------------------------------------------
// Talking MCP without an SDK.

export const RPC_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
};

/** A JSON-RPC POST in the 2025 style (no `_meta` envelope), with a bearer token when given. */
export function rpc(url: string, body: unknown, token?: string, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { ...RPC_HEADERS, ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export const toolCall = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

/** The JSON-RPC message(s) of a response that may be JSON or an SSE stream. */
export async function rpcMessages(response: Response): Promise<Array<Record<string, unknown>>> {
  const text = await response.text();
  if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    return text
      .split('\n')
      .filter((line) => line.startsWith('data: ') && line.includes('"jsonrpc"'))
      .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
  }
  const parsed = JSON.parse(text) as Record<string, unknown> | Array<Record<string, unknown>>;
  return Array.isArray(parsed) ? parsed : [parsed];
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP.

export interface RawResponse {
  /** Every response read off the connection, in order (a smuggled second request shows up here). */
  responses: Array<{ status: number; head: string; body: string }>;
  raw: string;
}

/**
 * Writes `request` (bytes exactly as given) on a fresh TCP connection and collects what comes back
 * until the server closes, or the last response is complete and `quietMs` more pass without data
 * (so a second, smuggled response would still be seen). Waits at most `timeoutMs` overall. Splits
 * the answer into responses by their status lines.
 */
export function rawHttp(url: string, request: string, quietMs = 60, timeoutMs = 5000): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let raw = '';
    let quiet: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(quiet);
      clearTimeout(deadline);
      socket.destroy();
      resolve({ raw, responses: splitResponses(raw) });
    };
    const deadline = setTimeout(finish, timeoutMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      raw += chunk.toString('latin1');
      clearTimeout(quiet);
      if (lastResponseComplete(raw)) quiet = setTimeout(finish, quietMs);
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', (error) => {
      if (raw) finish();
      else reject(error);
    });
  });
}

function splitResponses(raw: string): RawResponse['responses'] {
  const parts = raw.split(/(?=HTTP\/1\.[01] \d{3} )/).filter((part) => /^HTTP\/1\.[01] \d{3} /.test(part));
  return parts.map((part) => {
    const end = part.indexOf('\r\n\r\n');
    const head = end >= 0 ? part.slice(0, end) : part;
    return { status: Number(part.slice(9, 12)), head, body: end >= 0 ? part.slice(end + 4) : '' };
  });
}

/** True when the last response read is whole: by its Content-Length, its last chunk, or its status. */
function lastResponseComplete(raw: string): boolean {
  const last = splitResponses(raw).at(-1);
  if (!last || !raw.slice(raw.lastIndexOf(last.head)).includes('\r\n\r\n')) return false;
  if ((last.status >= 100 && last.status < 200) || last.status === 204 || last.status === 304) return true;
  const length = rawHeader(last.head, 'content-length');
  if (length !== undefined) return last.body.length >= Number(length);
  if (/chunked/i.test(rawHeader(last.head, 'transfer-encoding') ?? ''))
    return /(^|\r\n)0\r\n\r\n$/.test(last.body);
  return false;
}

/** A response header of a raw response head, lower-cased name; undefined when absent. */
export function rawHeader(head: string, name: string): string | undefined {
  const line = head
    .split('\r\n')
    .slice(1)
    .find((candidate) => candidate.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(line.indexOf(':') + 1).trim();
}

/** The values a tap saw for a header name (lower case), from the raw headers, duplicates kept. */
export function rawValues(hit: TapHit, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < hit.rawHeaders.length; i += 2)
    if (hit.rawHeaders[i]!.toLowerCase() === name) values.push(hit.rawHeaders[i + 1]!);
  return values;
}

/**
 * A plain request with `node:http`: sends headers `fetch` forbids, and, given as a flat list of
 * names and values, the same field several times.
 */
export function nodeRequest(
  url: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders | string[]; body?: string } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    let headers = options.headers;
    // Given as a list, headers go out exactly as listed: Host too must be listed (RFC 9112 §3.2).
    if (Array.isArray(headers) && !headers.some((name, i) => i % 2 === 0 && name.toLowerCase() === 'host'))
      headers = ['host', new URL(url).host, ...headers];
    const req = http.request(url, { method: options.method ?? 'GET', headers, agent: false });
    req.on('error', reject);
    req.on('response', async (res: IncomingMessage) => {
      let body = '';
      for await (const chunk of res) body += chunk;
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
    });
    req.end(options.body);
  });
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
