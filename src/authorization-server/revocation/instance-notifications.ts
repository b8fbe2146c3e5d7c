/**
 * Revocations across authorization-server instances (issue 10): an event appended at one instance
 * reaches the revocation listeners (gateways, MCP servers) connected to every other instance,
 * through PostgreSQL's LISTEN/NOTIFY, within a second.
 *
 * The wrapped log stays the record (listeners that reconnect are replayed from it, by id); the
 * notification only carries the event to the streams of the other instances now. NOTIFY is
 * delivered to every listening connection, the sender's included, so each notification names its
 * instance and an instance skips its own. When the listening connection was lost and came back,
 * notifications sent meanwhile are gone: `onGap` then ends the open streams, and their listeners
 * reconnect with Last-Event-ID and get what they missed from the log.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../shared/logging.ts';
import type { Postgres } from '../store/postgres/connection.ts';
import type { RevocationEventLog, StoredRevocationEvent } from './event-log.ts';

export const REVOCATION_CHANNEL = 'gatehouse_revocations';

interface Notification {
  from: string;
  stored: StoredRevocationEvent;
}

export interface SharedRevocationLog {
  log: RevocationEventLog;
  /** Called when notifications may have been missed; set once the stream exists. */
  onGap(handler: () => void): void;
  stop(): Promise<void>;
}

export async function shareAcrossInstances(
  inner: RevocationEventLog,
  postgres: Postgres,
  logger: Logger,
): Promise<SharedRevocationLog> {
  const instance = randomUUID();
  const listeners = new Set<(stored: StoredRevocationEvent) => void>();
  const deliver = (stored: StoredRevocationEvent) => {
    for (const listener of listeners) listener(stored);
  };
  let gap: () => void = () => {};
  inner.subscribe(deliver);
  const stop = await postgres.listen(
    REVOCATION_CHANNEL,
    (payload) => {
      let notification: Notification;
      try {
        notification = JSON.parse(payload) as Notification;
      } catch {
        return;
      }
      if (notification.from === instance || typeof notification.stored?.id !== 'number') return;
      deliver(notification.stored);
    },
    () => {
      logger.warn('revocation notifications were interrupted: listeners reconnect to catch up');
      gap();
    },
  );
  const log: RevocationEventLog = {
    get streamId() {
      return inner.streamId;
    },
    async append(event) {
      const stored = await inner.append(event);
      const notification: Notification = { from: instance, stored };
      postgres.notify(REVOCATION_CHANNEL, JSON.stringify(notification)).catch((error: unknown) => {
        // The other instances' listeners learn it when they next check the latest id or reconnect.
        logger.error('a revocation was not sent to the other instances', {
          type: event.type,
          error: (error as Error).message,
        });
      });
      return stored;
    },
    since: (id) => inner.since(id),
    retained: () => inner.retained(),
    latestId: () => inner.latestId(),
    hasToken: (hash) => inner.hasToken(hash),
    hasClientSince: (clientId, at) => inner.hasClientSince(clientId, at),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    prune: (maxAgeSeconds, maxEvents) => inner.prune(maxAgeSeconds, maxEvents),
  };
  return {
    log,
    onGap(handler) {
      gap = handler;
    },
    stop,
  };
}
