/**
 * The agent's authorization state for one MCP server, and what it does when the server says no.
 *
 *   401 (no token, or one refused)  discovery → a client → the stored token if there is one, else a
 *                                   refresh when a refresh token is held, else a new authorization
 *                                   (code flow, or client credentials for a workload); the transport
 *                                   then retries the request. A refused token sends the agent back to
 *                                   the Protected Resource Metadata (SEP-2352): when it names another
 *                                   authorization server, the agent finds, registers with (or uses its
 *                                   client at) and signs in to that one; nothing of the old one is used.
 *   403 insufficient_scope          step-up: a new authorization for the union of the scope held and
 *                                   the scope the challenge names (SEP-2350), then the operation is
 *                                   retried; at most MAX_STEP_UPS times per operation.
 *   invalid_client                  the registration is dropped and done again, once.
 *
 * The SDK's transport calls `authProvider` (a plain AuthProvider, not an OAuthClientProvider: the
 * SDK's own orchestration would end each 401 with a redirect to finish later, where a console agent
 * can simply wait for the browser) and throws InsufficientScopeError for the 403, which `run` handles.
 * Authorizations never overlap: a second 401 while one is under way waits for it and uses its token.
 *
 * DPoP (dpop.ts): when both servers take it, every token request carries a proof from the client's
 * key and the tokens come back bound to it; `resourceFetch` then presents them with the DPoP scheme.
 */
import {
  type AuthProvider,
  type DpopSession,
  extractWWWAuthenticateParams,
  type FetchLike,
  InsufficientScopeError,
  OAuthError,
  type OAuthTokens,
  SdkHttpError,
} from '@modelcontextprotocol/client';
import { authorizeWithCode, refreshTokens, type SignInLink } from './authorization.ts';
import type { AgentClient } from './client-authentication.ts';
import { type Challenge, type Discovered, discover } from './discovery.ts';
import {
  createDpopKey,
  type DpopAlgorithm,
  type DpopChallenge,
  type DpopPresentation,
  dpopChallenge,
  dpopSessionFor,
  isDpopBound,
  presentingDpop,
  proofAlgorithm,
} from './dpop.ts';
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
  openUrl: (url: string, link: SignInLink) => void | Promise<void>;
  clientMetadataUrl?: string | undefined;
  /** Pre-registered credentials, for any issuer or looked up per issuer (configuration). */
  preRegistered?: PreRegisteredClient | ((issuer: string) => PreRegisteredClient | undefined) | undefined;
  /** Client credentials instead of a user's authorization; defaults to true when a private key is given. */
  workload?: boolean | undefined;
  /** The scope of the first authorization; by default the challenge's, else the resource's. */
  scope?: string | undefined;
  authorizationTimeoutMs: number;
  /** How long a sign-in link lives when the server does not say (see authorization.ts). */
  signInLinkLifetimeMs?: number | undefined;
  trace?: TraceSink | undefined;
  /** Messages for the user (registered, signing in again, …). */
  note?: ((message: string) => void) | undefined;
}

export interface SessionIdentity {
  issuer: string;
  resource: string;
  clientId: string;
  clientKind: AgentClient['kind'];
  /** `DPoP` when the token held is bound to the agent's key (RFC 9449), else `Bearer`. */
  tokenType: string | undefined;
}

export interface Session {
  /** For StreamableHTTPClientTransport's `authProvider`. */
  authProvider: AuthProvider;
  /** Wraps the transport's fetch: a DPoP-bound token is presented with the DPoP scheme and a proof. */
  resourceFetch(base: FetchLike): FetchLike;
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
  /** The key a DPoP-bound `tokens` is bound to (never unset while such a token is held). */
  let boundKey: DpopSession | undefined;
  /** The MCP server's latest `DPoP` challenge: it takes DPoP-bound tokens (RFC 9449 §7.1). */
  let resourceDpop: DpopChallenge | undefined;
  /** Signing sessions per `${issuer} ${client_id}`: their nonces (§8, §9) last as long as the process. */
  const dpopSessions = new Map<string, DpopSession>();
  /** Bumped whenever `tokens` changes, so a 401 for an older token is not answered twice. */
  let generation = 0;
  let lock: Promise<unknown> = Promise.resolve();

  const serialize = <T>(task: () => Promise<T>): Promise<T> => {
    const run = lock.then(task, task);
    lock = run.catch(() => {});
    return run;
  };

  /** Discovery, reused unless `fresh` (a refused token: SEP-2352) or the challenge names other metadata. */
  async function ensureDiscovered(challenge: Challenge, fresh = false): Promise<Discovered> {
    const hinted = challenge.resourceMetadataUrl?.href;
    if (!fresh && discovered && (!hinted || hinted === discoveredFrom)) return discovered;
    const found = await discover(serverUrl, challenge, fetchFn);
    if (discovered && discovered.issuer !== found.issuer) {
      // SEP-2352: credentials are the issuer's; the old tokens are of no use to this server any more.
      note(`the MCP server now names the authorization server ${found.issuer} (was ${discovered.issuer})`);
      if (tokens) forget();
      client = undefined;
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
    if (!pre && options.workload === true && mayRegister) {
      // Client credentials need a client the server knows already; registering one would not do.
      throw new AgentError(
        'authorization',
        `no pre-registered client for ${issuer}: a workload cannot register itself there`,
        'Give the credentials of a client pre-registered at that server (agent.json "clients", or --client-id).',
      );
    }
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

  /**
   * The DPoP session of the current client's key: the stored one, or (with `alg`) a new one when
   * there is none or the servers no longer take its algorithm. One key per client at an issuer.
   */
  async function dpopKey(alg?: DpopAlgorithm): Promise<DpopSession | undefined> {
    const { issuer } = discovered!;
    const { clientId } = client!;
    const id = `${issuer} ${clientId}`;
    const cached = dpopSessions.get(id);
    if (cached && (!alg || cached.alg === alg)) return cached;
    let stored = store.dpopKey(issuer, clientId);
    if (alg && stored?.alg !== alg) {
      stored = await createDpopKey(alg);
      store.saveDpopKey(issuer, clientId, stored);
      trace(`a new DPoP key (${alg}) for ${clientId}`);
    }
    if (!stored) return undefined;
    const session = await dpopSessionFor(stored);
    dpopSessions.set(id, session);
    return session;
  }

  /**
   * The key a token request proves possession of: the one a held bound token (and its refresh
   * token, RFC 9449 §5) is bound to, else a key when both servers take DPoP, else none (Bearer).
   */
  async function proofKeyFor(held?: StoredTokens): Promise<DpopSession | undefined> {
    if (isDpopBound(held)) return dpopKey();
    const alg = proofAlgorithm({
      metadata: discovered!.metadata,
      resourceMetadata: discovered!.resourceMetadata,
      challenge: resourceDpop,
    });
    return alg ? dpopKey(alg) : undefined;
  }

  function keep(
    oauth: OAuthTokens,
    requested: string | undefined,
    previous: StoredTokens | undefined,
    proofKey: DpopSession | undefined,
  ) {
    const { issuer, resource } = discovered!;
    const refresh = oauth.refresh_token ?? previous?.refresh_token;
    // RFC 6749 §5.1: a response without `scope` granted what was asked for.
    const scope = oauth.scope ?? requested ?? previous?.scope;
    // (An empty `scope` means "nothing known to be granted": it is not stored.)
    if (isDpopBound(oauth) && !proofKey) {
      throw new AgentError(
        'authorization',
        'the authorization server issued a DPoP-bound token for a request without a DPoP proof',
        'The server is misconfigured; tell its operator.',
      );
    }
    // RFC 9449 §5: `token_type` says whether the server bound the token; a Bearer token stays Bearer.
    boundKey = isDpopBound(oauth) ? proofKey : undefined;
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
    boundKey = undefined;
    generation += 1;
  }

  /** Drops a client the server no longer knows (its registration, tokens and DPoP key). */
  function drop(current: AgentClient) {
    dropClient(store, discovered!.issuer, current);
    dpopSessions.delete(`${discovered!.issuer} ${current.clientId}`);
    client = undefined;
    tokens = undefined;
    boundKey = undefined;
  }

  /** A new authorization for `scope`, registering again once if the server forgot the client. */
  async function obtain(scope: string | undefined, stepUp = false): Promise<void> {
    const { issuer } = discovered!;
    for (let attempt = 0; ; attempt += 1) {
      const current = (await ensureClient())!;
      try {
        const proofKey = await proofKeyFor();
        if (proofKey) trace(`binding the tokens to DPoP key ${proofKey.thumbprint} (${proofKey.alg})`);
        if (isWorkload(current)) {
          trace(`client credentials for ${scope ?? '(default scope)'}`);
          const oauth = await workloadTokens({
            discovered: discovered!,
            client: current,
            scope,
            fetchFn,
            note,
            fallbackToDefaultScope: !stepUp,
            dpop: proofKey,
          });
          keep(oauth, scope, undefined, proofKey);
        } else {
          note(`signing in at ${issuer} for: ${scope ?? '(default scope)'}`);
          const oauth = await authorizeWithCode({
            discovered: discovered!,
            client: current,
            scope,
            openUrl: options.openUrl,
            fetchFn,
            timeoutMs: options.authorizationTimeoutMs,
            linkLifetimeMs: options.signInLinkLifetimeMs,
            trace: options.trace,
            dpop: proofKey,
          });
          keep(oauth, scope, undefined, proofKey);
        }
        return;
      } catch (error) {
        if (!(error instanceof UnknownClientError)) throw error;
        if (current.kind === 'dynamic' && attempt === 0) {
          note(`${issuer} no longer knows client ${current.clientId}; registering again`);
          drop(current);
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
      const proofKey = await proofKeyFor(held);
      keep(
        await refreshTokens({
          discovered: discovered!,
          client,
          refreshToken: held.refresh_token,
          fetchFn,
          dpop: proofKey,
        }),
        held.scope,
        held,
        proofKey,
      );
      return true;
    } catch (error) {
      if (error instanceof UnknownClientError) {
        drop(client);
      } else if (!(error instanceof OAuthError)) {
        throw error;
      }
      trace(`the refresh token was refused (${error instanceof Error ? error.message : String(error)})`);
      forget();
      return false;
    }
  }

  /** The stored token for the current issuer, client and resource, with the key it is bound to; false if none is usable. */
  async function loadStored(): Promise<boolean> {
    const stored = store.tokens(discovered!.issuer, client!.clientId, discovered!.resource);
    if (!stored) return false;
    const key = isDpopBound(stored) ? await dpopKey() : undefined;
    if (isDpopBound(stored) && !key) {
      trace('the stored token is DPoP-bound but its key is gone: it cannot be used');
      store.forgetTokens(discovered!.issuer, client!.clientId, discovered!.resource);
      return false;
    }
    tokens = stored;
    boundKey = key;
    generation += 1;
    return true;
  }

  async function onUnauthorized(response: Response): Promise<void> {
    const seen = generation;
    const params = extractWWWAuthenticateParams(response);
    const challenge: Challenge = params;
    const offered = dpopChallenge(response.headers.get('www-authenticate'));
    await serialize(async () => {
      if (generation !== seen) return; // another authorization replaced the token meanwhile
      if (offered) resourceDpop = offered;
      trace(
        `401 from the MCP server${params.error ? ` (${params.error}${params.errorDescription ? `: ${params.errorDescription}` : ''})` : ''}`,
      );
      const refused = tokens;
      // SEP-2352: a refused token may mean the server moved to another authorization server, so its
      // metadata is read again (the first 401, without a token, reuses what is known).
      await ensureDiscovered(challenge, refused !== undefined);
      await ensureClient();
      const held = tokens;
      if (!held) {
        if (await loadStored()) {
          if (!expired(tokens!)) {
            trace('using the stored token');
            return;
          }
          if (await tryRefresh()) return;
        }
      } else if (await tryRefresh()) {
        return;
      }
      // Re-authorizing after an expired or refused token keeps what was held (at the new server too).
      const kept = tokens?.scope ?? (held ? undefined : refused?.scope);
      const scope = kept
        ? stepUpScope(kept, challenge.scope)
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

  /** A DPoP-bound token and its key, for the MCP requests; undefined for a Bearer token or none. */
  const presentation = (): DpopPresentation | undefined =>
    tokens && isDpopBound(tokens) && boundKey ? { session: boundKey, token: tokens.access_token } : undefined;

  return {
    authProvider: {
      // RFC 9449 §7.2: a bound token never goes as Bearer, so one without its key is not offered at all.
      token: async () => (tokens && (!isDpopBound(tokens) || boundKey) ? tokens.access_token : undefined),
      onUnauthorized: (ctx) => onUnauthorized(ctx.response),
    },
    resourceFetch: (base) => presentingDpop(base, presentation),
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
            tokenType: tokens?.token_type,
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
