/**
 * A lightweight MCP agent, on plain HTTP, so that hundreds fit in one process on two cores: the
 * steps an MCP client takes (MCP authorization spec) and the JSON-RPC calls it makes afterwards.
 *
 *   discover   POST /mcp without a token → 401 + WWW-Authenticate (resource_metadata, scope);
 *              GET the Protected Resource Metadata (RFC 9728); GET the AS metadata (RFC 8414)
 *   register   POST /register (RFC 7591, public native client)
 *   authorize  the code flow with PKCE S256 and `resource`, the user played over HTTP: email → the
 *              one-time code from the development inbox (`<issuer>/dev/inbox.json`) → consent
 *   redeem     POST /token → an opaque Bearer token (no DPoP proof is sent, so none is bound)
 *   call       `tools/list` and `tools/call` on `<gateway>/mcp`, in the 2025-11-25 form (the
 *              `MCP-Protocol-Version` header, no session) or the stateless 2026-07-28 form (the
 *              `_meta` envelope on every request)
 *
 * Every request of one agent leaves from its own loopback address: it is one machine. A step that
 * does not get what a client expects throws a StepError naming the step and the status.
 */
import { createHash, randomBytes } from 'node:crypto';
import type http from 'node:http';
import { type Answer, Browser, keepAliveAgent, type Outcome, request, settle } from './http.ts';

export const REDIRECT_URI = 'http://127.0.0.1/callback';
export type Era = '2025-11-25' | '2026-07-28';

export class StepError extends Error {
  override name = 'StepError';
  readonly step: string;
  readonly status: number | string;
  constructor(step: string, status: number | string, detail: string) {
    super(`${step}: ${status} ${detail.slice(0, 300)}`);
    this.step = step;
    this.status = status;
  }
}

export function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
const challengeParam = (header: string, name: string) => new RegExp(`${name}="([^"]*)"`).exec(header)?.[1];

function json(answer: Answer, step: string): Record<string, unknown> {
  if (answer.status < 200 || answer.status > 299) throw new StepError(step, answer.status, answer.body);
  try {
    return JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    throw new StepError(step, answer.status, `not JSON: ${answer.body}`);
  }
}

/** Wraps a connection failure of `step` as a StepError. */
async function attempt<T>(step: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof StepError) throw error;
    throw new StepError(step, (error as { code?: string }).code ?? 'error', (error as Error).message);
  }
}

export interface Discovery {
  issuer: string;
  resource: string;
  scope: string;
  registrationEndpoint: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
}

export async function discover(mcpUrl: string, agent: http.Agent): Promise<Discovery> {
  return attempt('discovery', async () => {
    const first = await request(mcpUrl, {
      method: 'POST',
      headers: mcpHeaders('2025-11-25'),
      agent,
      body: '{}',
    });
    if (first.status !== 401) throw new StepError('discovery', first.status, first.body);
    const header = String(first.headers['www-authenticate'] ?? '');
    const metadataUrl = challengeParam(header, 'resource_metadata');
    if (!metadataUrl) throw new StepError('discovery', 401, `no resource_metadata in ${header}`);
    const prm = json(await request(metadataUrl, { agent }), 'discovery');
    const issuer = String((prm.authorization_servers as string[] | undefined)?.[0] ?? '');
    const metadata = json(
      await request(`${new URL(issuer).origin}/.well-known/oauth-authorization-server`, { agent }),
      'discovery',
    );
    if (metadata.issuer !== issuer)
      throw new StepError('discovery', 200, `issuer ${String(metadata.issuer)}`);
    return {
      issuer,
      resource: String(prm.resource),
      scope: challengeParam(header, 'scope') ?? '',
      registrationEndpoint: String(metadata.registration_endpoint),
      authorizationEndpoint: String(metadata.authorization_endpoint),
      tokenEndpoint: String(metadata.token_endpoint),
    };
  });
}

export interface Registration {
  clientId: string;
  registrationAccessToken: string;
  registrationClientUri: string;
}

export function registrationBody(name: string): string {
  return JSON.stringify({
    client_name: name,
    redirect_uris: [REDIRECT_URI],
    application_type: 'native',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  });
}

/** A 201 from the registration endpoint, as the client data it acknowledges. */
export function registrationOf(answer: Answer): Registration {
  if (answer.status !== 201) throw new StepError('registration', answer.status, answer.body);
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  return {
    clientId: String(body.client_id),
    registrationAccessToken: String(body.registration_access_token),
    registrationClientUri: String(body.registration_client_uri),
  };
}

export async function register(discovery: Discovery, agent: http.Agent, name: string): Promise<Registration> {
  return attempt('registration', async () =>
    registrationOf(
      await request(discovery.registrationEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: registrationBody(name),
        agent,
      }),
    ),
  );
}

/** Bounds how many users wait for a code at once (the development inbox keeps the last 50 messages). */
export class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active += 1;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}

export const signInGate = new Gate(16);

/** The authorization request an agent sends its user to. */
export interface AuthorizationRequest {
  url: string;
  state: string;
  verifier: string;
}

export function authorizationRequest(
  discovery: Discovery,
  clientId: string,
  extra: Record<string, string> = {},
): AuthorizationRequest {
  const { verifier, challenge } = pkce();
  const state = randomBytes(12).toString('base64url');
  const url = new URL(discovery.authorizationEndpoint);
  for (const [key, value] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    scope: discovery.scope,
    resource: discovery.resource,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...extra,
  })) {
    url.searchParams.set(key, value);
  }
  return { url: url.href, state, verifier };
}

/** The consent page, shown and not yet answered: the POST that answers it. */
export interface PendingConsent {
  browser: Browser;
  url: string;
  form: Record<string, string>;
  /** The page itself. */
  html: string;
}

export type UserProgress = { callback: URL } | { consent: PendingConsent };

/**
 * Plays the user from `startAnswer` (the answer to the authorization URL, or to a consent POST) until
 * the browser is sent back to the client, or (with `stopAtConsent`) until the consent page is shown.
 */
export async function playUser(
  issuer: string,
  browser: Browser,
  email: string,
  first: Promise<Answer> | Answer,
  options: {
    stopAtConsent?: boolean /** false: a sign-in page is an error (the session must hold). */;
    signIn?: boolean;
  } = {},
): Promise<UserProgress> {
  return attempt('authorization', async () => {
    let answer = browser.received(issuer, await first);
    for (let step = 0; step < 12; step += 1) {
      if (answer.status !== 303 && answer.status !== 302) {
        throw new StepError('authorization', answer.status, answer.body.replace(/<[^>]+>/g, ' '));
      }
      const location = answer.location!;
      if (!location.startsWith(issuer)) return { callback: new URL(location) };
      const page = await browser.request(location);
      if (page.status === 303 || page.status === 302) {
        answer = page;
        continue;
      }
      if (page.status !== 200) throw new StepError('authorization', page.status, page.body);
      const base = `${issuer}${new URL(location).pathname}`;
      if (page.body.includes('name="email"')) {
        if (options.signIn === false) throw new StepError('authorization', 'signed out', 'the sign-in page');
        answer = await signInGate.run(async () => {
          const sent = await browser.request(`${base}/email`, { form: { csrf: csrfOf(page.body), email } });
          if (sent.status !== 200) {
            throw new StepError(
              'sign-in',
              sent.status,
              sent.body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' '),
            );
          }
          const code = await codeFor(issuer, browser, email);
          return browser.request(`${base}/code`, { form: { csrf: csrfOf(sent.body), code } });
        });
      } else if (page.body.includes('name="decision"')) {
        const consent = {
          browser,
          url: `${base}/consent`,
          form: { csrf: csrfOf(page.body), decision: 'allow' },
          html: page.body,
        };
        if (options.stopAtConsent) return { consent };
        answer = await browser.request(consent.url, { form: consent.form });
      } else {
        throw new StepError('authorization', page.status, `unexpected page ${location}`);
      }
    }
    throw new StepError('authorization', 'loop', 'did not finish in 12 steps');
  });
}

async function codeFor(issuer: string, browser: Browser, email: string): Promise<string> {
  const inbox = JSON.parse((await request(`${issuer}/dev/inbox.json`, { agent: browser.agent })).body) as {
    messages: Array<{ to: string; text: string }>;
  };
  const code = /\b(\d{6})\b/.exec(inbox.messages.find((m) => m.to === email)?.text ?? '')?.[1];
  if (!code) throw new StepError('sign-in', 'no-code', `no code for ${email} in the development inbox`);
  return code;
}

/** The code from a callback, after checking `state` and `iss` (RFC 9207). */
export function codeOf(callback: URL, authorization: AuthorizationRequest, issuer: string): string {
  const params = callback.searchParams;
  if (params.get('error')) throw new StepError('authorization', params.get('error')!, callback.href);
  if (params.get('state') !== authorization.state)
    throw new StepError('authorization', 'state', callback.href);
  if (params.get('iss') !== issuer) throw new StepError('authorization', 'iss', callback.href);
  return params.get('code') ?? '';
}

export function tokenRequestBody(
  discovery: Discovery,
  clientId: string,
  code: string,
  verifier: string,
): string {
  return new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT_URI,
    client_id: clientId,
    resource: discovery.resource,
  }).toString();
}

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** The access token of a 200 token response. */
export function accessTokenOf(answer: Answer): string {
  if (answer.status !== 200) throw new StepError('token', answer.status, answer.body);
  const token = (JSON.parse(answer.body) as { access_token?: unknown }).access_token;
  if (typeof token !== 'string') throw new StepError('token', 200, 'no access_token');
  return token;
}

export async function redeem(
  discovery: Discovery,
  agent: http.Agent,
  clientId: string,
  code: string,
  verifier: string,
): Promise<string> {
  return attempt('token', async () =>
    accessTokenOf(
      await request(discovery.tokenEndpoint, {
        method: 'POST',
        headers: FORM,
        body: tokenRequestBody(discovery, clientId, code, verifier),
        agent,
      }),
    ),
  );
}

// --- MCP ----------------------------------------------------------------------------------------

let nextId = 1;

/**
 * The headers of an MCP POST. 2026-07-28 (SEP-2243) also names the method, and for `tools/call` the
 * tool, in `Mcp-Method` and `Mcp-Name`, so that intermediaries can route without reading the body.
 */
export function mcpHeaders(
  era: Era,
  token?: string,
  call?: { method: McpMethod; tool?: string },
): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': era,
    ...(era === '2026-07-28' && call ? { 'mcp-method': call.method } : {}),
    ...(era === '2026-07-28' && call?.method === 'tools/call' && call.tool ? { 'mcp-name': call.tool } : {}),
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
}

const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'gatehouse-load-agent', version: '1.0.0' },
};

export type McpMethod = 'tools/list' | 'tools/call';

/** Read tools every agent's user may call (the load-test users have no customer record). */
export const READ_TOOLS = [
  { name: 'get_stock', arguments: { symbol: 'SAP' } },
  { name: 'list_stocks', arguments: {} },
];

export function rpcBody(era: Era, method: McpMethod, tool = READ_TOOLS[0]!): string {
  const params: Record<string, unknown> = method === 'tools/call' ? { ...tool } : {};
  if (era === '2026-07-28') params._meta = ENVELOPE;
  return JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params });
}

/** The JSON-RPC message of an answer that is JSON or an SSE stream; undefined when there is none. */
export function rpcMessage(answer: Answer): Record<string, unknown> | undefined {
  let text = answer.body;
  if (String(answer.headers['content-type'] ?? '').includes('text/event-stream')) {
    text =
      text
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .find((line) => line.includes('"jsonrpc"')) ?? '';
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** One simulated machine running an MCP client with a token. */
export class McpAgent {
  readonly agent: http.Agent;
  readonly address: string;
  readonly mcpUrl: string;
  readonly era: Era;
  token: string;
  calls = 0;

  constructor(address: string, mcpUrl: string, era: Era, token: string, agent?: http.Agent) {
    this.address = address;
    this.mcpUrl = mcpUrl;
    this.era = era;
    this.token = token;
    this.agent = agent ?? keepAliveAgent(address, 2);
  }

  call(method: McpMethod, token = this.token): Promise<Outcome> {
    this.calls += 1;
    const tool = READ_TOOLS[this.calls % READ_TOOLS.length]!;
    return settle(
      request(this.mcpUrl, {
        method: 'POST',
        headers: mcpHeaders(this.era, token, { method, tool: tool.name }),
        body: rpcBody(this.era, method, tool),
        agent: this.agent,
      }),
    );
  }

  close(): void {
    this.agent.destroy();
  }
}

/** What onboarding produced: everything a check after a restart needs. */
export interface Onboarded {
  address: string;
  email: string;
  discovery: Discovery;
  registration: Registration;
  browser: Browser;
  accessToken: string;
  agent: http.Agent;
}

/** A whole onboarding, from the first 401 to a token; the first call is the caller's. */
export async function onboard(
  mcpUrl: string,
  address: string,
  email: string,
  options: { scope?: string } = {},
): Promise<Onboarded> {
  const agent = keepAliveAgent(address, 2);
  const browser = new Browser(address);
  try {
    const discovery = await discover(mcpUrl, agent);
    const registration = await register(discovery, agent, `load agent ${email}`);
    const authorization = authorizationRequest(
      discovery,
      registration.clientId,
      options.scope ? { scope: options.scope } : {},
    );
    const played = await playUser(discovery.issuer, browser, email, browser.request(authorization.url));
    if (!('callback' in played)) throw new StepError('authorization', 'consent', 'stopped at consent');
    const code = codeOf(played.callback, authorization, discovery.issuer);
    const accessToken = await redeem(discovery, agent, registration.clientId, code, authorization.verifier);
    return { address, email, discovery, registration, browser, accessToken, agent };
  } catch (error) {
    agent.destroy();
    browser.close();
    throw error;
  }
}

/** A bogus token shaped like a real one: 43 base64url characters (32 random bytes). */
export const bogusToken = () => randomBytes(32).toString('base64url');
