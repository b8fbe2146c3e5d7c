/**
 * Cold onboarding of a new agent, headless, the way an MCP client does it (MCP authorization spec):
 * from the first request without a token (401) to the first tool result.
 *
 *   discovery      POST /mcp → 401 + WWW-Authenticate; GET the Protected Resource Metadata (RFC 9728);
 *                  GET the authorization server metadata (RFC 8414), checking `issuer` and S256
 *   registration   POST /register (RFC 7591, `application_type: native`)
 *   authorization  GET /authorize (PKCE S256, `resource`, scope from the challenge) → sign in with
 *                  the one-time code from the development inbox → consent → redirect with code,
 *                  `state` and `iss` checked (the user is played by test/helpers/oauth.ts)
 *   token          POST /token (authorization_code + code_verifier + resource) → opaque token
 *   first call     POST /mcp tools/call get_stock: introspection, phantom token validation, token
 *                  exchange and API token validation all happen for the first time for this token
 *
 * Every onboarding is a new client and a new browser (no session): nothing is reused but the
 * servers' warm processes and the JWKS they already hold.
 */
import { randomBytes } from 'node:crypto';
import { Browser, pkce, playUser, postForm } from '../test/helpers/oauth.ts';
import { nowMs } from './stats.ts';
import { mcpHeaders, READ_TOOL, toolCallBody, toolResultText } from './tool-calls.ts';

const REDIRECT_URI = 'http://127.0.0.1/callback';
const USER = 'alice@example.com';

export interface OnboardingResult {
  accessToken: string;
  /** Milliseconds per phase, and in total. */
  phases: {
    discovery: number;
    registration: number;
    authorization: number;
    token: number;
    firstCall: number;
  };
  totalMs: number;
}

const challengeParam = (header: string, name: string) => new RegExp(`${name}="([^"]*)"`).exec(header)?.[1];

async function json(response: Response, what: string): Promise<Record<string, unknown>> {
  if (!response.ok) throw new Error(`${what} answered HTTP ${response.status}`);
  return (await response.json()) as Record<string, unknown>;
}

async function callTool(mcpUrl: string, token: string | undefined) {
  const response = await fetch(mcpUrl, { method: 'POST', headers: mcpHeaders(token), body: toolCallBody() });
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.text(),
    challenge: response.headers.get('www-authenticate') ?? '',
  };
}

export async function onboard(mcpUrl: string): Promise<OnboardingResult> {
  const t0 = nowMs();

  // Discovery.
  const first = await callTool(mcpUrl, undefined);
  if (first.status !== 401) throw new Error(`the first call answered ${first.status}, not 401`);
  const metadataUrl = challengeParam(first.challenge, 'resource_metadata');
  const scope = challengeParam(first.challenge, 'scope');
  if (!metadataUrl) throw new Error(`no resource_metadata in the challenge: ${first.challenge}`);
  const prm = await json(await fetch(metadataUrl), 'the protected resource metadata');
  const issuer = (prm.authorization_servers as string[] | undefined)?.[0];
  if (!issuer) throw new Error('no authorization server in the protected resource metadata');
  const resource = String(prm.resource);
  const asMetadata = await json(
    await fetch(`${new URL(issuer).origin}/.well-known/oauth-authorization-server`),
    'the authorization server metadata',
  );
  if (asMetadata.issuer !== issuer)
    throw new Error(`metadata issuer ${String(asMetadata.issuer)} ≠ ${issuer}`);
  if (!(asMetadata.code_challenge_methods_supported as string[] | undefined)?.includes('S256')) {
    throw new Error('the authorization server does not support PKCE S256');
  }
  const t1 = nowMs();

  // Registration.
  const registered = await json(
    await fetch(String(asMetadata.registration_endpoint), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'Benchmark agent',
        redirect_uris: [REDIRECT_URI],
        application_type: 'native',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    }),
    'registration',
  );
  const clientId = String(registered.client_id);
  const t2 = nowMs();

  // Authorization: the user signs in and consents.
  const { verifier, challenge } = pkce();
  const state = randomBytes(12).toString('base64url');
  const authorizationUrl = new URL(String(asMetadata.authorization_endpoint));
  for (const [key, value] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    scope: scope ?? '',
    resource,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  })) {
    authorizationUrl.searchParams.set(key, value);
  }
  const played = await playUser(authorizationUrl.href, { browser: new Browser(), email: USER });
  const callback = played.callback.searchParams;
  if (callback.get('state') !== state) throw new Error('state did not round-trip');
  if (callback.get('iss') !== issuer) throw new Error('iss (RFC 9207) missing or wrong');
  const code = callback.get('code');
  if (!code) throw new Error(`no code: ${played.callback.href}`);
  const t3 = nowMs();

  // Token.
  const token = await postForm(String(asMetadata.token_endpoint), {
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT_URI,
    client_id: clientId,
    resource,
  });
  if (token.status !== 200) throw new Error(`token endpoint answered ${token.status}: ${token.text}`);
  const accessToken = String(token.json.access_token);
  const t4 = nowMs();

  // The first tool result.
  const result = await callTool(mcpUrl, accessToken);
  const text = toolResultText(result);
  if (!text.includes(READ_TOOL.arguments.symbol)) throw new Error(`unexpected tool result: ${text}`);
  const t5 = nowMs();

  return {
    accessToken,
    phases: {
      discovery: t1 - t0,
      registration: t2 - t1,
      authorization: t3 - t2,
      token: t4 - t3,
      firstCall: t5 - t4,
    },
    totalMs: t5 - t0,
  };
}
