/**
 * The authorization code flow of a native app (RFC 8252), as the MCP authorization spec wants it:
 * PKCE S256 and `resource` (RFC 8707) on the authorization and token requests, `state` and `iss`
 * (RFC 9207) checked on the way back, the code received on a loopback redirect.
 *
 * The SDK builds the request (startAuthorization: PKCE, state, scope, resource) and redeems the code
 * (exchangeAuthorization, which checks `iss` again); this module runs the loopback server, pushes the
 * request first when the server offers it (RFC 9126: the server refuses an unknown client before the
 * user sees anything, so a forgotten registration is noticed and redone), opens the browser, and
 * checks `state` and `iss` before reading anything else from the response.
 *
 * With DPoP (RFC 9449) the authorization request carries `dpop_jkt`, the thumbprint of the agent's
 * key (§10), so the code can only be redeemed with a proof from that key, and every token request
 * carries a proof (§5).
 */
import { randomBytes } from 'node:crypto';
import {
  type DpopSession,
  exchangeAuthorization,
  type FetchLike,
  OAuthError,
  type OAuthTokens,
  parseErrorResponse,
  refreshAuthorization,
  startAuthorization,
  validateAuthorizationResponseIssuer,
} from '@modelcontextprotocol/client';
import { type AgentClient, authenticateRequest, tokenEndpointClient } from './client-authentication.ts';
import { type Discovered, metadataEndpoint } from './discovery.ts';
import { AgentError, UnknownClientError } from './errors.ts';
import { startLoopbackCallback } from './loopback-callback.ts';
import { redactUrl, type TraceSink } from './trace.ts';

export interface CodeFlowOptions {
  discovered: Discovered;
  client: AgentClient;
  scope: string | undefined;
  /** Shows the user the authorization URL: opens a browser, prints it, or (in tests) plays the user. */
  openUrl: (url: string) => void | Promise<void>;
  fetchFn: FetchLike;
  timeoutMs: number;
  trace?: TraceSink | undefined;
  /** The key to bind the code and the tokens to (RFC 9449), when both servers take DPoP. */
  dpop?: DpopSession | undefined;
}

/** RFC 6749 §5.2 / RFC 9126 §2.3: the server does not know (or no longer knows) this client. */
const isUnknownClient = (error: unknown) => error instanceof OAuthError && error.code === 'invalid_client';

/**
 * RFC 9126: posts the authorization request to the server, which answers with a `request_uri` to send
 * the browser to. An unknown client is refused here, before any user interaction.
 */
async function pushAuthorizationRequest(
  endpoint: string,
  authorizationUrl: URL,
  options: CodeFlowOptions,
): Promise<URL> {
  const params = new URLSearchParams(authorizationUrl.searchParams);
  const headers = new Headers({
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  });
  await authenticateRequest(options.client, headers, params, endpoint, options.discovered.metadata);
  const response = await options.fetchFn(endpoint, { method: 'POST', headers, body: params });
  // RFC 9449 §8.2: a nonce may come with any response of the server; the token request uses it.
  options.dpop?.observeNonce(response, endpoint);
  if (!response.ok) {
    const error = await parseErrorResponse(response);
    if (isUnknownClient(error)) throw new UnknownClientError(error.message);
    throw error;
  }
  const body = (await response.json()) as { request_uri?: unknown };
  if (typeof body.request_uri !== 'string') {
    throw new AgentError(
      'authorization',
      `${endpoint} answered without a request_uri`,
      'Tell the server operator.',
    );
  }
  const url = new URL(options.discovered.metadata.authorization_endpoint);
  url.searchParams.set('client_id', options.client.clientId);
  url.searchParams.set('request_uri', body.request_uri);
  return url;
}

/** Signs the user in through the browser and returns the tokens for the resource. */
export async function authorizeWithCode(options: CodeFlowOptions): Promise<OAuthTokens> {
  const { discovered, client, trace } = options;
  const { issuer, metadata, resource } = discovered;
  const state = randomBytes(24).toString('base64url');
  const callback = await startLoopbackCallback({
    state,
    timeoutMs: options.timeoutMs,
    onRequest: (url) =>
      trace?.(`HTTP ⇐ ${url.pathname}${redactUrl(url.search)} (the browser, at the loopback callback)`),
  });
  try {
    const { clientInformation, addClientAuthentication } = tokenEndpointClient(client);
    const { authorizationUrl, codeVerifier } = await startAuthorization(issuer, {
      metadata,
      clientInformation,
      redirectUrl: callback.redirectUri,
      scope: options.scope,
      state,
      resource,
    });
    // RFC 9449 §10: the code is bound to the key, before the user sees anything.
    if (options.dpop) authorizationUrl.searchParams.set('dpop_jkt', options.dpop.thumbprint);
    const pushEndpoint = metadataEndpoint(metadata, 'pushed_authorization_request_endpoint');
    const userUrl = pushEndpoint
      ? await pushAuthorizationRequest(pushEndpoint, authorizationUrl, options)
      : authorizationUrl;
    trace?.(`AUTH   sending the user to ${userUrl.href}`);
    const opening = Promise.resolve().then(() => options.openUrl(userUrl.href));
    // The browser is only asked to open: the answer comes to the loopback server. A test's openUrl that
    // fails (rather than a browser that cannot be started) ends the wait at once.
    const params = await Promise.race([
      callback.response,
      opening.then(
        () => new Promise<never>(() => {}),
        (error: unknown) => {
          throw new AgentError(
            'authorization',
            `the sign-in page could not be completed: ${error instanceof Error ? error.message : String(error)}`,
            'Open the sign-in link again by re-running the command.',
          );
        },
      ),
    ]);
    // RFC 9207 §2.4 before anything else in the response is believed.
    const iss = params.get('iss') ?? undefined;
    validateAuthorizationResponseIssuer({
      iss,
      expectedIssuer: metadata.issuer,
      issParameterSupported: metadata.authorization_response_iss_parameter_supported === true,
    });
    const error = params.get('error');
    if (error === 'invalid_client') throw new UnknownClientError(params.get('error_description') ?? error);
    if (error) throw new OAuthError(error, params.get('error_description') ?? error);
    const code = params.get('code');
    if (!code)
      throw new AgentError('authorization', 'the authorization response carried no code', 'Try again.');
    try {
      return await exchangeAuthorization(issuer, {
        metadata,
        clientInformation,
        authorizationCode: code,
        iss,
        codeVerifier,
        redirectUri: callback.redirectUri,
        resource,
        ...(addClientAuthentication ? { addClientAuthentication } : {}),
        ...(options.dpop ? { dpop: options.dpop } : {}),
        fetchFn: options.fetchFn,
      });
    } catch (failure) {
      if (isUnknownClient(failure)) throw new UnknownClientError((failure as OAuthError).message);
      throw failure;
    }
  } finally {
    await callback.close();
  }
}

/** RFC 6749 §6: new tokens from a refresh token, for the same resource and (by default) scope. */
export async function refreshTokens(options: {
  discovered: Discovered;
  client: AgentClient;
  refreshToken: string;
  fetchFn: FetchLike;
  /** RFC 9449 §5: a public client's refresh token is bound to its key, so it needs a proof from it. */
  dpop?: DpopSession | undefined;
}): Promise<OAuthTokens> {
  const { clientInformation, addClientAuthentication } = tokenEndpointClient(options.client);
  try {
    return await refreshAuthorization(options.discovered.issuer, {
      metadata: options.discovered.metadata,
      clientInformation,
      refreshToken: options.refreshToken,
      resource: options.discovered.resource,
      ...(addClientAuthentication ? { addClientAuthentication } : {}),
      ...(options.dpop ? { dpop: options.dpop } : {}),
      fetchFn: options.fetchFn,
    });
  } catch (failure) {
    if (isUnknownClient(failure)) throw new UnknownClientError((failure as OAuthError).message);
    throw failure;
  }
}
