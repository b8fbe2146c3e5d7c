/**
 * Turns every way a token can stop being valid into a revocation announcement (event-log.ts), and
 * serves the announcements to the internal listeners (stream.ts):
 * - a grant revoked (RFC 7009 revocation, which always takes the grant here; a refresh token reused
 *   past its grace; a code replayed): `grant`;
 * - a token deleted (a workload's client-credentials token has no grant): `token`, by its hash;
 * - a client deleted (RFC 7592, or removed as unused): `client`;
 * - a user removed from the approved list (found at start): `subject`, by the caller.
 */
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { tokenHash } from '../../shared/jwt.ts';
import type { Logger } from '../../shared/logging.ts';
import type { RevocationEvent } from '../../shared/revocation-events.ts';
import type { PreparedClient } from '../clients/static-clients.ts';
import { answerWaitsFor } from '../store/sqlite-write-batch.ts';
import type { RevocationEventLog } from './event-log.ts';
import { createRevocationStream, type RevocationStream } from './stream.ts';

export interface Revocations {
  /** Settles once the event is kept and streamed, or the listeners were cut off; never rejects. */
  announce(event: RevocationEvent): Promise<void>;
  stream: RevocationStream;
  log: RevocationEventLog;
}

const now = () => Math.floor(Date.now() / 1000);

/** At most this many revocations are kept (about 150 bytes each, replayed to a listener that resets). */
export const REVOCATION_LOG_MAX_EVENTS = 100_000;

/**
 * How long a revocation is kept: as long as an access token for the MCP server lives (a phantom
 * token of a revoked grant is refused until it expires), with five minutes for clocks and caches,
 * and never under an hour.
 */
export function revocationRetentionSeconds(longestAccessTokenSeconds: number): number {
  return Math.max(3600, longestAccessTokenSeconds + 300);
}

/** The internal clients that may listen (roles `gateway` and `mcp-server`), with their secrets. */
export function internalListeners(clients: PreparedClient[]): Map<string, string> {
  return new Map(
    clients.flatMap((client) =>
      (client.config.role === 'gateway' || client.config.role === 'mcp-server') &&
      typeof client.metadata.client_secret === 'string'
        ? [[client.config.clientId, client.metadata.client_secret] as const]
        : [],
    ),
  );
}

export function announceRevocations(
  provider: Provider,
  log: RevocationEventLog,
  listeners: ReadonlyMap<string, string>,
  logger: Logger,
  ready: Record<string, string> = {},
): Revocations {
  const stream = createRevocationStream({
    ready,
    log,
    listeners,
    logger: logger.child({ part: 'revocation-events' }),
  });
  provider.use(stream.middleware);
  const announce = (event: RevocationEvent): Promise<void> => {
    const kept = log.append(event).then(
      () => {},
      (error: unknown) => {
        // Not kept, so not streamed: the listeners are cut off instead, so that they drop their caches
        // and fail safe until they are back, rather than serve the revoked token until it lapses.
        logger.error('a revocation could not be announced: revocation listeners cut off', {
          type: event.type,
          error: (error as Error).message,
        });
        stream.closeAll();
      },
    );
    // The answer of the request that revoked (RFC 7009 §2.2: the token is invalid once it says 200)
    // waits for the announcement, so no listener can still be serving the token after it.
    answerWaitsFor(kept);
    return kept;
  };

  provider.on('grant.revoked', (_ctx: KoaContextWithOIDC, grantId: string) => {
    announce({ type: 'grant', grant_id: grantId, at: now() });
  });
  // Model events are not in the library's typed event map.
  const on = provider.on.bind(provider) as (
    event: string,
    listener: (token: { jti?: string; clientId?: string; grantId?: string }) => void,
  ) => void;
  for (const model of ['access_token', 'client_credentials']) {
    on(`${model}.destroyed`, (token) => {
      if (!token.jti) return;
      announce({
        type: 'token',
        token_hash: tokenHash(token.jti),
        ...(token.clientId ? { client_id: token.clientId } : {}),
        at: now(),
      });
    });
  }
  provider.on('registration_delete.success', (_ctx: KoaContextWithOIDC, client: { clientId: string }) => {
    announce({ type: 'client', client_id: client.clientId, at: now() });
  });
  return { announce, stream, log };
}
