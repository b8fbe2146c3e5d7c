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
 * A link is not good forever: a pushed request's URI lives `expires_in` (Gatehouse: 5 minutes), and
 * a sign-in started from a link lives the server's interaction lifetime. A user who comes back after
 * that finds a dead link (the server's page says "This sign-in link has expired ... it will give you a
 * new link"), so when a link's lifetime passes without an answer the agent makes a new request (new
 * state and PKCE verifier) and shows its link, saying that it replaces the expired one, up to
 * MAX_SIGN_IN_LINKS links within the overall timeout. Only the newest link's answer is taken.
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
  /**
   * Shows the user the authorization URL: opens a browser, prints it, or (in tests) plays the user.
   * Called again with a new URL each time a link expires unused (see SignInLink).
   */
  openUrl: (url: string, link: SignInLink) => void | Promise<void>;
  fetchFn: FetchLike;
  /** How long to wait for the user overall, across every link. */
  timeoutMs: number;
  /** How long a link lives when the server does not say (default DEFAULT_LINK_LIFETIME_MS). */
  linkLifetimeMs?: number | undefined;
  /** How many links at most (default MAX_SIGN_IN_LINKS). */
  maxLinks?: number | undefined;
  trace?: TraceSink | undefined;
  /** The key to bind the code and the tokens to (RFC 9449), when both servers take DPoP. */
  dpop?: DpopSession | undefined;
}

/** RFC 6749 §5.2 / RFC 9126 §2.3: the server does not know (or no longer knows) this client. */
const isUnknownClient = (error: unknown) => error instanceof OAuthError && error.code === 'invalid_client';

/**
 * RFC 9126: posts the authorization request to the server, which answers with a `request_uri` to send
 * the browser to, and how long that URI lives. An unknown client is refused here, before any user
 * interaction.
 */
async function pushAuthorizationRequest(
  endpoint: string,
  authorizationUrl: URL,
  options: CodeFlowOptions,
): Promise<{ url: URL; expiresInSeconds: number | undefined }> {
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
  const body = (await response.json()) as { request_uri?: unknown; expires_in?: unknown };
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
  const expiresIn = body.expires_in;
  return {
    url,
    expiresInSeconds:
      typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : undefined,
  };
}

/**
 * One authorization request as the user sees it: a link, and how long it stays usable as far as the
 * agent knows. Every link is a new request (state, PKCE verifier, pushed request).
 */
export interface SignInLink {
  /** 1 for the first link; 2, 3, … for each that replaces an expired one. */
  number: number;
  /** How many links one sign-in gives at most. */
  of: number;
  /** How long after it is shown the link is taken to have expired. */
  lifetimeMs: number;
}

/**
 * How long a sign-in link is taken to live when the server says nothing (no pushed request): the
 * Interaction TTL of Gatehouse's authorization server (15 minutes, provider.ts), the longest any part
 * of one sign-in lasts there. Another server may differ: --link-lifetime.
 */
export const DEFAULT_LINK_LIFETIME_MS = 15 * 60_000;
/** A sign-in gives at most this many links (the first and two that replace expired ones). */
export const MAX_SIGN_IN_LINKS = 3;
/** No new link with less time left than this before the overall timeout: nobody could finish with it. */
const MIN_LINK_WAIT_MS = 60_000;

/** What the console says with a link: the user may have just read "This sign-in link has expired". */
export function signInLinkMessage(url: string, link: SignInLink, opening: boolean): string {
  const minutes = Math.max(1, Math.round(link.lifetimeMs / 60_000));
  const validity = `it is valid for about ${minutes} minute${minutes === 1 ? '' : 's'}`;
  if (link.number === 1) {
    return opening
      ? `Opening your browser to sign in. If it does not open, visit:\n\n  ${url}\n`
      : `Open this link in a browser to sign in (${validity}):\n\n  ${url}\n`;
  }
  // The authorization server's dead-end page says "This sign-in link has expired ... it will give you
  // a new link": this is that link, and it says so in the same words.
  return `The sign-in link has expired, so here is a new one (link ${link.number} of at most ${link.of}; ${validity}). If a page says "This sign-in link has expired", use this link instead: the earlier ones no longer work.${opening ? ' Opening your browser at it; if it does not open, visit:' : ''}\n\n  ${url}\n`;
}

/** Signs the user in through the browser and returns the tokens for the resource. */
export async function authorizeWithCode(options: CodeFlowOptions): Promise<OAuthTokens> {
  const { discovered, client, trace } = options;
  const { issuer, metadata, resource } = discovered;
  const maxLinks = Math.max(1, options.maxLinks ?? MAX_SIGN_IN_LINKS);
  const configuredLifetimeMs = options.linkLifetimeMs ?? DEFAULT_LINK_LIFETIME_MS;
  // One loopback server for every link: the redirect URI stays the same, the expected state changes.
  const callback = await startLoopbackCallback({
    timeoutMs: options.timeoutMs,
    onRequest: (url) =>
      trace?.(`HTTP ⇐ ${url.pathname}${redactUrl(url.search)} (the browser, at the loopback callback)`),
  });
  const deadline = Date.now() + options.timeoutMs;
  let linkTimer: NodeJS.Timeout | undefined;
  try {
    const { clientInformation, addClientAuthentication } = tokenEndpointClient(client);
    let codeVerifier = '';
    let params: URLSearchParams | undefined;
    for (let number = 1; params === undefined; number++) {
      const state = randomBytes(24).toString('base64url');
      const started = await startAuthorization(issuer, {
        metadata,
        clientInformation,
        redirectUrl: callback.redirectUri,
        scope: options.scope,
        state,
        resource,
      });
      const { authorizationUrl } = started;
      // RFC 9449 §10: the code is bound to the key, before the user sees anything.
      if (options.dpop) authorizationUrl.searchParams.set('dpop_jkt', options.dpop.thumbprint);
      const pushEndpoint = metadataEndpoint(metadata, 'pushed_authorization_request_endpoint');
      const pushed = pushEndpoint
        ? await pushAuthorizationRequest(pushEndpoint, authorizationUrl, options)
        : { url: authorizationUrl, expiresInSeconds: undefined };
      // From here on only this request's answer is taken; the previous link's is refused as replaced.
      callback.expect(state);
      codeVerifier = started.codeVerifier;
      // RFC 9126 §2.2: a pushed request's URI is unusable after expires_in, whatever we were told.
      const lifetimeMs =
        pushed.expiresInSeconds === undefined
          ? configuredLifetimeMs
          : Math.min(configuredLifetimeMs, pushed.expiresInSeconds * 1000);
      const link: SignInLink = { number, of: maxLinks, lifetimeMs };
      trace?.(`AUTH   sending the user to ${pushed.url.href} (link ${number}, valid for ${lifetimeMs} ms)`);
      const opening = Promise.resolve().then(() => options.openUrl(pushed.url.href, link));
      // After the link's lifetime, a new one only if it could still be used before the overall timeout.
      const left = deadline - Date.now() - lifetimeMs;
      const renew = number < maxLinks && left >= Math.min(lifetimeMs, MIN_LINK_WAIT_MS);
      const expired = renew
        ? new Promise<'expired'>((resolve) => {
            linkTimer = setTimeout(() => resolve('expired'), lifetimeMs);
            linkTimer.unref();
          })
        : new Promise<never>(() => {});
      // The browser is only asked to open: the answer comes to the loopback server. A test's openUrl that
      // fails (rather than a browser that cannot be started) ends the wait at once.
      const outcome = await Promise.race([
        callback.response,
        expired,
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
      clearTimeout(linkTimer);
      if (outcome === 'expired') trace?.(`AUTH   sign-in link ${number} expired; making a new one`);
      else params = outcome;
    }
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
    clearTimeout(linkTimer);
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
