/**
 * Failures the agent expects, each with what to do next, and the exit code the CLI gives them.
 *
 * Everything thrown by the SDK or the network is turned into an AgentError by `asAgentError`, so the
 * user sees one clear sentence and a hint, never a stack trace.
 */
import {
  InsecureTokenEndpointError,
  InsufficientScopeError,
  IssuerMismatchError,
  OAuthError,
  ProtocolError,
  RegistrationRejectedError,
  SdkError,
  SdkHttpError,
} from '@modelcontextprotocol/client';

export type FailureKind = 'tool' | 'usage' | 'authorization' | 'network' | 'server';

/** Exit codes of `gatehouse agent`: 0 success, then one per kind of failure. */
export const EXIT_CODES: Record<FailureKind, number> = {
  tool: 1,
  usage: 2,
  authorization: 3,
  network: 4,
  server: 5,
};

export class AgentError extends Error {
  readonly kind: FailureKind;
  /** What the user can do about it. */
  readonly hint: string | undefined;
  constructor(kind: FailureKind, message: string, hint?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AgentError';
    this.kind = kind;
    this.hint = hint;
  }
}

/** The authorization server no longer knows a client: its registration must be dropped and redone. */
export class UnknownClientError extends Error {
  constructor(description: string) {
    super(description);
    this.name = 'UnknownClientError';
  }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'ECONNRESET',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);

/** Why a request never got an answer (connection refused, unknown host, …), if that is what happened. */
/** The address a failed connection was aimed at (undici's cause carries it), e.g. `127.0.0.1:9000`. */
function failedAddress(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current instanceof Error; depth += 1) {
    const { address, port } = current as { address?: unknown; port?: unknown };
    if (typeof address === 'string' && typeof port === 'number') {
      return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    }
    current = current.cause;
  }
  return undefined;
}

function networkCause(error: unknown): string | undefined {
  let failedFetch = false;
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current instanceof Error; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    if (failedFetch && !(current instanceof TypeError)) return current.message;
    if (current instanceof TypeError && current.message === 'fetch failed') failedFetch = true;
    current = current.cause;
  }
  return failedFetch ? 'fetch failed' : undefined;
}

/** Turns anything thrown while talking to the server into an AgentError that says what to do next. */
export function asAgentError(error: unknown, serverUrl: string): AgentError {
  if (error instanceof AgentError) return error;
  if (error instanceof IssuerMismatchError) {
    // RFC 9207: the received value is attacker-controlled on the authorization-response path; never shown.
    return error.kind === 'metadata'
      ? new AgentError(
          'authorization',
          `the authorization server metadata names the issuer ${JSON.stringify(error.received)}, not ${JSON.stringify(error.expected)} it was fetched for (RFC 8414 §3.3): refusing to use it`,
          'The server is misconfigured or something is impersonating it; tell its operator.',
        )
      : new AgentError(
          'authorization',
          'the authorization response did not come from the expected authorization server (RFC 9207 iss check): nothing was exchanged',
          'This can be a mix-up attack. Try again; if it persists, tell the server operator.',
        );
  }
  if (error instanceof RegistrationRejectedError) {
    let detail = `HTTP ${error.status}`;
    try {
      const body = JSON.parse(error.body) as { error?: string; error_description?: string };
      detail = [body.error, body.error_description].filter(Boolean).join(': ') || detail;
    } catch {}
    return new AgentError(
      'authorization',
      `the authorization server refused to register this agent (${detail})`,
      'Ask the server operator for a pre-registered client and pass it with --client-id, or use --client-metadata-url.',
    );
  }
  if (error instanceof InsecureTokenEndpointError) {
    return new AgentError(
      'authorization',
      `refusing to send credentials to ${error.tokenEndpoint}: it is not https`,
      'The authorization server must use https (loopback addresses excepted).',
    );
  }
  if (error instanceof InsufficientScopeError) {
    return new AgentError(
      'authorization',
      `the server still asks for more permission (${error.requiredScope ?? 'unspecified scope'}) after re-authorization`,
      'The permission may have been declined, or your account may not be allowed it; run `logout` and try again, or ask the server operator.',
    );
  }
  if (error instanceof OAuthError) {
    const hints: Record<string, string> = {
      access_denied: 'You declined (or the server refused) the request. Run the command again to retry.',
      invalid_scope: 'Ask for fewer or other permissions with --scope, or ask the server operator.',
      invalid_client: 'Check --client-id and its credentials, or drop them to let the agent register itself.',
      unauthorized_client: 'This client is not allowed that kind of access; ask the server operator.',
      invalid_grant: 'Sign in again: run `logout`, then retry.',
    };
    return new AgentError(
      'authorization',
      `the authorization server refused: ${error.code}${error.message && error.message !== error.code ? ` (${error.message})` : ''}`,
      hints[error.code] ?? 'Run with --trace to see the exchange.',
    );
  }
  if (error instanceof SdkHttpError) {
    if (error.status === 401 || error.status === 403) {
      return new AgentError(
        'authorization',
        `the MCP server refused the credentials (HTTP ${error.status}) even after signing in again`,
        'Run `logout` and try again, or run with --trace to see the exchange.',
      );
    }
    return new AgentError(
      'server',
      `the MCP server answered HTTP ${error.status}${error.statusText ? ` ${error.statusText}` : ''}`,
      error.status === 503
        ? 'The server or its authorization server is unavailable; try again shortly.'
        : 'Check the URL, or run with --trace to see the exchange.',
    );
  }
  const network = networkCause(error);
  if (network) {
    return new AgentError(
      'network',
      // Name the address that failed: it may be the authorization server, not the MCP server.
      `could not reach ${failedAddress(error) ?? new URL(serverUrl).origin} (${network})`,
      'Check the URL and that the server is running (`gatehouse start`).',
    );
  }
  if (error instanceof SdkError && error.code === 'REQUEST_TIMEOUT') {
    return new AgentError(
      'network',
      'the MCP server did not answer in time',
      'Try again, or raise --timeout.',
    );
  }
  if (error instanceof ProtocolError) {
    return new AgentError('server', `the MCP server answered with an error: ${error.message}`, undefined);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new AgentError('server', message, 'Run with --trace to see the exchange.');
}
