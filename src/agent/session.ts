/**
 * The agent's authorization state for one MCP server, and what it does when the server says no.
 *
 *   401 (no token, or one refused)  discovery → a client → the stored token if there is one, else a
 *                                   refresh when a refresh token is held, else a new authorization
 *                                   (code flow, or client credentials for a workload); the transport
 *                                   then retries the request.
 *   403 insufficient_scope          step-up: a new authorization for the union of the scope held and
 *                                   the scope the challenge names (SEP-2350), then the operation is
 *                                   retried; at most MAX_STEP_UPS times per operation.
 *   invalid_client                  the registration is dropped and done again, once.
 *
 * The SDK's transport calls `authProvider` (a plain AuthProvider, not an OAuthClientProvider: the
 * SDK's own orchestration would end each 401 with a redirect to finish later, where a console agent
 * can simply wait for the browser) and throws InsufficientScopeError for the 403, which `run` handles.
 * Authorizations never overlap: a second 401 while one is under way waits for it and uses its token.
 */
import {
  type AuthProvider,
  extractWWWAuthenticateParams,
  type FetchLike,
  InsufficientScopeError,
  OAuthError,
  type OAuthTokens,
  SdkHttpError,
} from '@modelcontextprotocol/client';
import { authorizeWithCode, refreshTokens } from './authorization.ts';
import type { AgentClient } from './client-authentication.ts';
import { type Challenge, type Discovered, discover } from './discovery.ts';
import { AgentError, UnknownClientError } from './errors.ts';
import { chooseClient, dropClient, type PreRegisteredClient } from './registration.ts';
import { revokeTokens } from './revocation.ts';
import { covers, initialScope, scopeList, stepUpScope } from './scopes.ts';
import type { StoredTokens, TokenStore } from './token-store.ts';
import type { TraceSink } from './trace.ts';
import { workloadTokens } from './workload.ts';

/** How many times one operation may step up before the agent gives up (the server keeps asking). */
export const MAX_STEP_UPS = 2;

export interface SessionOptions {
  serverUrl: string;
  store: TokenStore;
  /** Fetch for OAuth traffic (discovery, registration, token, revocation): traced when tracing. */
  fetchFn: FetchLike;
  openUrl: (url: string) => void | Promise<void>;
  clientMetadataUrl?: string | undefined;
  /** Pre-registered credentials, for any issuer or looked up per issuer (configuration). */
  preRegistered?: PreRegisteredClient | ((issuer: string) => PreRegisteredClient | undefined) | undefined;
  /** Client credentials instead of a user's authorization; defaults to true when a private key is given. */
  workload?: boolean | undefined;
  /** The scope of the first authorization; by default the challenge's, else the resource's. */
  scope?: string | undefined;
  authorizationTimeoutMs: number;
  trace?: TraceSink | undefined;
  /** Messages for the user (registered, signing in again, …). */
  note?: ((message: string) => void) | undefined;
}

export interface SessionIdentity {
  issuer: string;
  resource: string;
  clientId: string;
  clientKind: AgentClient['kind'];
}

export interface Session {
  /** For StreamableHTTPClientTransport's `authProvider`. */
  authProvider: AuthProvider;
  /** Runs an MCP operation, stepping up on 403 insufficient_scope and retrying once after a second 401. */
  run<T>(operation: () => Promise<T>): Promise<T>;
  /** The scopes of the token held. */
  scopes(): string[];
  identity(): SessionIdentity | undefined;
  /** Revokes and forgets the tokens held for this server; returns what could not be done. */
  logout(): Promise<string[]>;
}

/** A stored token this close to its `expires_at` is not tried: it is refreshed or replaced at once. */
const EXPIRY_SLACK_SECONDS = 10;
const expired = (tokens: StoredTokens) =>
  tokens.expires_at !== undefined && tokens.expires_at - EXPIRY_SLACK_SECONDS <= Date.now() / 1000;

export function createSession(options: SessionOptions): Session {
  const { store, fetchFn, serverUrl } = options;
  const trace = (line: string) => options.trace?.(`AUTH   ${line}`);
  const note = (message: string) => (options.note ? options.note(message) : trace(message));
  let discovered: Discovered | undefined;
  /** The `resource_metadata` URL the discovery followed, if a challenge named one. */
  let discoveredFrom: string | undefined;
  let client: AgentClient | undefined;
  let tokens: StoredTokens | undefined;
  /** Bumped whenever `tokens` changes, so a 401 for an older token is not answered twice. */
  let generation = 0;
  let lock: Promise<unknown> = Promise.resolve();

  const serialize = <T>(task: () => Promise<T>): Promise<T> => {
    const run = lock.then(task, task);
    lock = run.catch(() => {});
    return run;
  };

  async function ensureDiscovered(challenge: Challenge): Promise<Discovered> {
    const hinted = challenge.resourceMetadataUrl?.href;
    if (discovered && (!hinted || hinted === discoveredFrom)) return discovered;
    const found = await discover(serverUrl, challenge, fetchFn);
    if (discovered && discovered.issuer !== found.issuer) {
      client = undefined;
      tokens = undefined;
    }
    discovered = found;
    discoveredFrom = hinted;
    trace(`authorization server ${found.issuer}, resource ${found.resource}`);
    return found;
  }

  async function ensureClient(mayRegister = true): Promise<AgentClient | undefined> {
    if (client) return client;
    const { issuer } = discovered!;
    const pre =
      typeof options.preRegistered === 'function' ? options.preRegistered(issuer) : options.preRegistered;
    client = await chooseClient({
      discovered: discovered!,
      preRegistered: pre,
      clientMetadataUrl: options.clientMetadataUrl,
      store,
      fetchFn,
      mayRegister,
      note,
    });
    if (client) trace(`client ${client.clientId} (${client.kind})`);
    return client;
  }

  const isWorkload = (c: AgentClient) => options.workload ?? c.signingKey !== undefined;

  function keep(oauth: OAuthTokens, requested: string | undefined, previous?: StoredTokens) {
    const { issuer, resource } = discovered!;
    const refresh = oauth.refresh_token ?? previous?.refresh_token;
    // RFC 6749 §5.1: a response without `scope` granted what was asked for.
    const scope = oauth.scope ?? requested ?? previous?.scope;
    // (An empty `scope` means "nothing known to be granted": it is not stored.)
    tokens = {
      access_token: oauth.access_token,
      token_type: oauth.token_type,
      ...(refresh ? { refresh_token: refresh } : {}),
      ...(scope ? { scope } : {}),
      ...(oauth.expires_in !== undefined
        ? { expires_at: Math.floor(Date.now() / 1000) + oauth.expires_in }
        : {}),
    };
    generation += 1;
    store.saveTokens(issuer, client!.clientId, resource, tokens);
  }

  function forget() {
    if (client && discovered) store.forgetTokens(discovered.issuer, client.clientId, discovered.resource);
    tokens = undefined;
    generation += 1;
  }

  /** A new authorization for `scope`, registering again once if the server forgot the client. */
  async function obtain(scope: string | undefined, stepUp = false): Promise<void> {
    const { issuer } = discovered!;
    for (let attempt = 0; ; attempt += 1) {
      const current = (await ensureClient())!;
      try {
        if (isWorkload(current)) {
          trace(`client credentials for ${scope ?? '(default scope)'}`);
          const oauth = await workloadTokens({
            discovered: discovered!,
            client: current,
            scope,
            fetchFn,
            note,
            fallbackToDefaultScope: !stepUp,
          });
          keep(oauth, scope);
        } else {
          note(`signing in at ${issuer} for: ${scope ?? '(default scope)'}`);
          const oauth = await authorizeWithCode({
            discovered: discovered!,
            client: current,
            scope,
            openUrl: options.openUrl,
            fetchFn,
            timeoutMs: options.authorizationTimeoutMs,
            trace: options.trace,
          });
          keep(oauth, scope);
        }
        return;
      } catch (error) {
        if (!(error instanceof UnknownClientError)) throw error;
        if (current.kind === 'dynamic' && attempt === 0) {
          note(`${issuer} no longer knows client ${current.clientId}; registering again`);
          dropClient(store, issuer, current);
          client = undefined;
          tokens = undefined;
          continue;
        }
        throw new AgentError(
          'authorization',
          `the authorization server does not know the client ${current.clientId} (invalid_client)`,
          current.kind === 'metadata-document'
            ? 'Check that the client metadata document is reachable by the server and valid.'
            : 'Check --client-id and its credentials with the server operator.',
        );
      }
    }
  }

  /** Refresh when a refresh token is held; false when there is none or it no longer works. */
  async function tryRefresh(): Promise<boolean> {
    const held = tokens;
    if (!held?.refresh_token || !client || isWorkload(client)) return false;
    trace('refreshing the access token');
    try {
      keep(
        await refreshTokens({ discovered: discovered!, client, refreshToken: held.refresh_token, fetchFn }),
        held.scope,
        held,
      );
      return true;
    } catch (error) {
      if (error instanceof UnknownClientError) {
        dropClient(store, discovered!.issuer, client);
        client = undefined;
      } else if (!(error instanceof OAuthError)) {
        throw error;
      }
      trace(`the refresh token was refused (${error instanceof Error ? error.message : String(error)})`);
      forget();
      return false;
    }
  }

  async function onUnauthorized(response: Response): Promise<void> {
    const seen = generation;
    const params = extractWWWAuthenticateParams(response);
    const challenge: Challenge = params;
    await serialize(async () => {
      if (generation !== seen) return; // another authorization replaced the token meanwhile
      trace(
        `401 from the MCP server${params.error ? ` (${params.error}${params.errorDescription ? `: ${params.errorDescription}` : ''})` : ''}`,
      );
      await ensureDiscovered(challenge);
      await ensureClient();
      const held = tokens;
      if (!held) {
        const stored = store.tokens(discovered!.issuer, client!.clientId, discovered!.resource);
        if (stored) {
          tokens = stored;
          generation += 1;
          if (!expired(stored)) {
            trace('using the stored token');
            return;
          }
          if (await tryRefresh()) return;
        }
      } else if (await tryRefresh()) {
        return;
      }
      // Re-authorizing after an expired or refused token keeps what was held.
      const scope = tokens?.scope
        ? stepUpScope(tokens.scope, challenge.scope)
        : initialScope({
            requested: options.scope,
            challenged: challenge.scope,
            scopesSupported: discovered!.resourceMetadata.scopes_supported,
          });
      forget();
      await obtain(scope);
    });
  }

  async function stepUp(error: InsufficientScopeError): Promise<void> {
    await serialize(async () => {
      await ensureDiscovered({ resourceMetadataUrl: error.resourceMetadataUrl, scope: error.requiredScope });
      await ensureClient();
      // The token was granted what the server now asks for: asking the user again would change nothing.
      if (tokens?.scope && error.requiredScope && covers(tokens.scope, error.requiredScope)) {
        throw new AgentError(
          'authorization',
          `the MCP server refuses the call for lack of ${error.requiredScope}, which the token already holds`,
          'The server may restrict this account or client further; ask its operator.',
        );
      }
      const scope = stepUpScope(tokens?.scope, error.requiredScope);
      note(
        `the server asks for more permission (${error.requiredScope ?? 'unspecified'}): authorizing ${scope}`,
      );
      await obtain(scope, true);
    });
  }

  return {
    authProvider: {
      token: async () => tokens?.access_token,
      onUnauthorized: (ctx) => onUnauthorized(ctx.response),
    },
    async run(operation) {
      let stepUps = 0;
      let retried = false;
      for (;;) {
        try {
          return await operation();
        } catch (error) {
          if (error instanceof InsufficientScopeError && stepUps < MAX_STEP_UPS) {
            stepUps += 1;
            await stepUp(error);
            continue;
          }
          // The transport retries once after a 401; a stored token refused on that retry gets one more round.
          if (error instanceof SdkHttpError && error.status === 401 && !retried) {
            retried = true;
            continue;
          }
          throw error;
        }
      }
    },
    scopes: () => scopeList(tokens?.scope),
    identity: () =>
      discovered && client
        ? {
            issuer: discovered.issuer,
            resource: discovered.resource,
            clientId: client.clientId,
            clientKind: client.kind,
          }
        : undefined,
    logout: () =>
      serialize(async () => {
        await ensureDiscovered({});
        const current = await ensureClient(false);
        if (!current) return [];
        const held = tokens ?? store.tokens(discovered!.issuer, current.clientId, discovered!.resource);
        const problems = held ? await revokeTokens(held, current, discovered!.metadata, fetchFn) : [];
        forget();
        return problems;
      }),
  };
}
