/**
 * Gatehouse's agent: an MCP client that finds, registers with and signs in to whatever
 * authorization server protects an MCP server, as a stranger would, over HTTP only.
 *
 *   const agent = createAgent({ serverUrl: 'http://localhost:8000/mcp' });
 *   await agent.connect();                        // 401 → discovery → registration → sign-in
 *   const tools = await agent.listTools();
 *   const result = await agent.callTool('list_stocks', {});
 *   await agent.close();
 *
 * The MCP side is the SDK's Client over Streamable HTTP; the OAuth side is session.ts. Every failure
 * is thrown as an AgentError that says what to do next; a tool's own error is a result with `isError`.
 */

import {
  type CallToolResult,
  Client,
  type FetchLike,
  StreamableHTTPClientTransport,
  type Tool,
} from '@modelcontextprotocol/client';
import packageJson from '../../package.json' with { type: 'json' };
import { answerElicitation, type ElicitationParams } from './approval.ts';
import { type SignInLink, signInLinkMessage } from './authorization.ts';
import { openSystemBrowser } from './browser.ts';
import { readSigningKey } from './client-authentication.ts';
import { AgentError, asAgentError } from './errors.ts';
import { checkClientMetadataUrl, type PreRegisteredClient } from './registration.ts';
import { createSession, type SessionIdentity } from './session.ts';
import { defaultStorePath, openTokenStore } from './token-store.ts';
import { startToolCallTracing, type ToolCallTracing } from './tool-call-tracing.ts';
import { type TraceSink, tracedFetch, traceTransport } from './trace.ts';

export { DEFAULT_LINK_LIFETIME_MS, MAX_SIGN_IN_LINKS, type SignInLink } from './authorization.ts';
export { AgentError, EXIT_CODES } from './errors.ts';
export type { SessionIdentity } from './session.ts';
export { agentHome, defaultStorePath } from './token-store.ts';

export const AGENT_NAME = 'gatehouse-agent';
export const AGENT_VERSION: string = packageJson.version;

/** Pre-registered credentials as flags or the configuration file give them. */
export interface ClientCredentialsOption {
  clientId: string;
  clientSecret?: string | undefined;
  /** A JWK private key file, for private_key_jwt. */
  privateKeyFile?: string | undefined;
}

export interface AgentOptions {
  /** The MCP server's URL (its canonical URI, e.g. http://localhost:8000/mcp). */
  serverUrl: string;
  /** The credentials file; defaults to agent-credentials.json in the agent's home (see agentHome). */
  storePath?: string | undefined;
  /**
   * Shows the user an authorization URL; defaults to opening the system browser. Called again with a
   * new URL when a link expires unused (link.number > 1).
   */
  openUrl?: ((url: string, link: SignInLink) => void | Promise<void>) | undefined;
  /** The URL of this agent's Client ID Metadata Document, used when the server supports them. */
  clientMetadataUrl?: string | undefined;
  /** Pre-registered credentials for the authorization server the MCP server names (the first, in a run). */
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  privateKeyFile?: string | undefined;
  /** Pre-registered credentials per authorization server issuer (the configuration file). */
  clients?: Record<string, ClientCredentialsOption> | undefined;
  /** Client credentials instead of a user's sign-in; the default when a private key is given. */
  workload?: boolean | undefined;
  /** The scope of the first authorization (default: the server's challenge, per the MCP spec). */
  scope?: string | undefined;
  /** Receives the `--trace` lines: HTTP exchanges and JSON-RPC messages, credentials redacted. */
  trace?: TraceSink | undefined;
  /** Receives messages for the user (registered, signing in, stepping up, …). */
  note?: ((message: string) => void) | undefined;
  /** How long to wait for the user to finish signing in (default 5 minutes), across every link. */
  authorizationTimeoutMs?: number | undefined;
  /**
   * How long a sign-in link lives when the authorization server does not say (a pushed request's
   * expires_in does); default DEFAULT_LINK_LIFETIME_MS, Gatehouse's interaction lifetime.
   */
  signInLinkLifetimeMs?: number | undefined;
  /** How long an MCP request may take once authorized (default 60 s). */
  requestTimeoutMs?: number | undefined;
  /**
   * An OTLP/HTTP collector (base URL): each tool call is then a span exported there, its trace
   * context sent in `_meta` (SEP-414; tool-call-tracing.ts). Undefined: no tracing.
   */
  otlpEndpoint?: string | undefined;
  /**
   * Opens an approval page a tool call asks the person to visit (MCP URL-mode elicitation), for a
   * caller that has the person's consent to; by default the link is only printed. Only pages at
   * the authorization server the agent signed in with are ever shown (approval.ts).
   */
  openApprovalUrl?: ((url: string) => void | Promise<void>) | undefined;
}

/** A tool call waiting for the person's approval on a page of the authorization server. */
export interface ApprovalRequest {
  url: string;
  message: string;
}

export interface Agent {
  /** Connects to the MCP server, signing in first if it asks. */
  connect(): Promise<void>;
  listTools(): Promise<Tool[]>;
  /** Calls a tool; a tool's own failure is a result with `isError: true`, not an exception. */
  callTool(name: string, args?: Record<string, unknown>): Promise<CallToolResult>;
  /** The scopes of the token held. */
  scopes(): string[];
  /** Which authorization server, resource and client the agent ended up with (after connect). */
  identity(): SessionIdentity | undefined;
  /** Revokes and forgets this server's tokens; returns what could not be done. */
  logout(): Promise<string[]>;
  /**
   * Who decides on approval requests: resolves true once the person says they approved, false to
   * go on without (the call then answers with the link). Unset: the link is shown and the call goes
   * on without waiting.
   */
  onApproval(handler: ((request: ApprovalRequest) => Promise<boolean>) | undefined): void;
  close(): Promise<void>;
}

function preRegisteredFrom(option: ClientCredentialsOption): PreRegisteredClient {
  if (option.clientSecret && option.privateKeyFile) {
    throw new AgentError('usage', 'give either a client secret or a private key, not both', undefined);
  }
  return {
    clientId: option.clientId,
    clientSecret: option.clientSecret,
    signingKey: option.privateKeyFile ? readSigningKey(option.privateKeyFile) : undefined,
  };
}

/** The text of a tool result's text content, joined by newlines. */
export function resultText(result: CallToolResult): string {
  return result.content
    .map((block) => (block.type === 'text' ? block.text : `[${block.type} content]`))
    .join('\n');
}

export function createAgent(options: AgentOptions): Agent {
  let serverUrl: string;
  try {
    serverUrl = new URL(options.serverUrl).href;
  } catch {
    throw new AgentError(
      'usage',
      `${options.serverUrl} is not a URL`,
      'Pass the MCP server URL, e.g. http://localhost:8000/mcp',
    );
  }
  if (!options.clientId && (options.clientSecret || options.privateKeyFile)) {
    throw new AgentError('usage', '--client-secret and --private-key need --client-id', undefined);
  }
  if (options.clientMetadataUrl) checkClientMetadataUrl(options.clientMetadataUrl);
  const flags = options.clientId
    ? preRegisteredFrom({
        clientId: options.clientId,
        clientSecret: options.clientSecret,
        privateKeyFile: options.privateKeyFile,
      })
    : undefined;
  let flagsIssuer: string | undefined;
  const configured = new Map(
    Object.entries(options.clients ?? {}).map(([issuer, credentials]) => [issuer, credentials]),
  );
  const note = options.note ?? (() => {});
  const trace = options.trace;
  const oauthFetch: FetchLike = trace ? tracedFetch(trace, { bodies: true }) : fetch;
  const mcpFetch: FetchLike = trace ? tracedFetch(trace, { bodies: false }) : fetch;
  const authorizationTimeoutMs = options.authorizationTimeoutMs ?? 5 * 60_000;
  // An MCP request waits while the user signs in (the transport authorizes inside the request).
  const timeout = authorizationTimeoutMs + (options.requestTimeoutMs ?? 60_000);
  // Without a way to show messages, the sign-in link still reaches the user (on stderr).
  const tell = options.note ?? ((message: string) => process.stderr.write(`${message}\n`));
  const openUrl =
    options.openUrl ??
    ((url: string, link: SignInLink) => {
      tell(signInLinkMessage(url, link, true).trimEnd());
      openSystemBrowser(url, (reason) => tell(`Could not open a browser (${reason}); open the link above.`));
    });
  let approvalHandler: ((request: ApprovalRequest) => Promise<boolean>) | undefined;
  // Printed, never opened by default: a URL from a tool call opens only with the person's consent.
  const openApprovalUrl = options.openApprovalUrl;
  const session = createSession({
    serverUrl,
    store: openTokenStore(options.storePath ?? defaultStorePath(), note),
    fetchFn: oauthFetch,
    openUrl,
    clientMetadataUrl: options.clientMetadataUrl,
    preRegistered: (issuer: string) => {
      if (flags) {
        // SEP-2352: credentials are one server's. Flags name none, so they go to the first the MCP
        // server names; should it move to another during the run, they are not offered there.
        flagsIssuer ??= issuer;
        return issuer === flagsIssuer ? flags : undefined;
      }
      const entry = configured.get(issuer) ?? configured.get(issuer.replace(/\/$/, ''));
      return entry ? preRegisteredFrom(entry) : undefined;
    },
    // A private key on the command line makes the whole run a workload (never a browser sign-in).
    workload: options.workload ?? (flags?.signingKey ? true : undefined),
    scope: options.scope,
    authorizationTimeoutMs,
    signInLinkLifetimeMs: options.signInLinkLifetimeMs,
    trace,
    note,
  });

  let client: Client | undefined;
  const guarded = async <T>(operation: () => Promise<T>): Promise<T> => {
    try {
      return await session.run(operation);
    } catch (error) {
      throw asAgentError(error, serverUrl);
    }
  };

  async function connect(): Promise<void> {
    if (client) return;
    await guarded(async () => {
      const transport = new StreamableHTTPClientTransport(new URL(serverUrl), {
        authProvider: session.authProvider,
        // DPoP-bound tokens go with the DPoP scheme and a proof; the trace (inside) sees what is sent.
        fetch: session.resourceFetch(mcpFetch),
        onInsufficientScope: 'throw',
      });
      if (trace) traceTransport(transport, trace);
      // 2026-07-28 when the server speaks it (a server/discover probe), else the 2025 handshake.
      const candidate = new Client(
        { name: AGENT_NAME, version: AGENT_VERSION },
        // URL-mode elicitation: a tool call may send the person to approve it (approval.ts).
        { versionNegotiation: { mode: 'auto' }, capabilities: { elicitation: { url: {} } } },
      );
      candidate.setRequestHandler('elicitation/create', (request) =>
        answerElicitation(request.params as ElicitationParams, {
          issuer: session.identity()?.issuer,
          open: openApprovalUrl,
          decide: approvalHandler,
          tell,
        }),
      );
      try {
        await candidate.connect(transport, { timeout });
      } catch (error) {
        await candidate.close().catch(() => {});
        throw error;
      }
      client = candidate;
    });
  }

  const connected = async () => {
    await connect();
    return client!;
  };

  // Started with the first tool call, so a run that calls none loads no tracing at all.
  let tracing: Promise<ToolCallTracing> | undefined;
  const toolCallTracing = (): Promise<ToolCallTracing> | undefined => {
    if (!options.otlpEndpoint) return undefined;
    tracing ??= startToolCallTracing({ otlpEndpoint: options.otlpEndpoint, version: AGENT_VERSION });
    return tracing;
  };

  return {
    connect,
    async listTools() {
      const mcp = await connected();
      return guarded(async () => (await mcp.listTools(undefined, { timeout })).tools);
    },
    async callTool(name, args = {}) {
      const mcp = await connected();
      const call = (meta?: Record<string, string>) =>
        guarded(
          async () =>
            (await mcp.callTool(
              { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
              { timeout },
            )) as CallToolResult,
        );
      const traced = await toolCallTracing();
      return traced ? traced.call(name, call) : call();
    },
    onApproval(handler) {
      approvalHandler = handler;
    },
    scopes: () => session.scopes(),
    identity: () => session.identity(),
    async logout() {
      try {
        return await session.logout();
      } catch (error) {
        throw asAgentError(error, serverUrl);
      }
    },
    async close() {
      const open = client;
      client = undefined;
      await open?.close().catch(() => {});
      // The last spans go to the collector before the process ends.
      await (await tracing)?.shutdown().catch(() => {});
    },
  };
}
