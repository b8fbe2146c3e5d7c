/**
 * Where revocation announcements are kept and who hears them: an append-only log with increasing
 * ids (so a listener that reconnects can ask for what it missed), and subscribers that hear each
 * event as it is appended.
 *
 * The log sits behind `RevocationEventLog`, so that several authorization server instances share one
 * (postgres-event-log.ts, with instance-notifications.ts feeding `subscribe`) without the stream
 * (stream.ts) or the listeners changing. This one keeps the log in the server's SQLite database and
 * notifies in process. A stream id, made once per database, tells a listener whether the ids it
 * remembers mean anything here.
 *
 * Ids are handed out in the order the events are committed, in both stores: a listener that
 * reconnects asks for what came after the last id it heard, so an event committed later with a
 * smaller id would never reach it.
 */
import { randomUUID } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import type { RevocationEvent } from '../../shared/revocation-events.ts';

export interface StoredRevocationEvent {
  id: number;
  event: RevocationEvent;
}

export interface RevocationEventLog {
  /** Identifies this log: ids from another log (another database) are meaningless here. */
  readonly streamId: string;
  /** Keeps the event; settles once it is committed, and only then tells the subscribers. */
  append(event: RevocationEvent): Promise<StoredRevocationEvent>;
  /** The events after `id`, oldest first; undefined when some of them are no longer kept. */
  since(id: number): Promise<StoredRevocationEvent[] | undefined>;
  /** Every event still kept, oldest first: what a listener that starts over must learn again. */
  retained(): Promise<StoredRevocationEvent[]>;
  latestId(): Promise<number>;
  /** True when a `token` event names this token hash (kept longer than any access token lives). */
  hasToken(tokenHash: string): Promise<boolean>;
  /** True when a `client` event for this client happened at or after `at` (seconds since the epoch). */
  hasClientSince(clientId: string, at: number): Promise<boolean>;
  subscribe(listener: (stored: StoredRevocationEvent) => void): () => void;
  /**
   * Forgets events older than `maxAgeSeconds`, keeping at most `maxEvents`; returns how many events
   * younger than `maxAgeSeconds` the cap removed (a listener that starts over no longer learns them).
   */
  prune(maxAgeSeconds: number, maxEvents: number): Promise<number>;
}

/**
 * Whether a listener that last heard `id` can be replayed from the log: not when the id is from the
 * future (another log), nor when events after it were pruned (`oldest` is the oldest id kept).
 */
export function replayable(id: number, latest: number, oldest: number | undefined): boolean {
  if (id > latest) return false;
  // Events id+1 .. first-1 were pruned: the listener missed some it can no longer get.
  return (oldest ?? latest + 1) <= id + 1;
}

export function createSqliteRevocationEventLog(db: DatabaseSync): RevocationEventLog {
  db.exec(`
    CREATE TABLE IF NOT EXISTS revocation_events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      at INTEGER NOT NULL,
      payload TEXT NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS gatehouse_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    CREATE INDEX IF NOT EXISTS revocation_events_token_hash
      ON revocation_events (payload ->> '$.token_hash') WHERE payload ->> '$.type' = 'token';
    CREATE INDEX IF NOT EXISTS revocation_events_client
      ON revocation_events (payload ->> '$.client_id') WHERE payload ->> '$.type' = 'client';
  `);
  db.prepare("INSERT OR IGNORE INTO gatehouse_meta (key, value) VALUES ('revocation_stream', ?)").run(
    randomUUID(),
  );
  const streamId = String(
    (
      db.prepare("SELECT value FROM gatehouse_meta WHERE key = 'revocation_stream'").get() as {
        value: string;
      }
    ).value,
  );
  const insert = db.prepare('INSERT INTO revocation_events (at, payload) VALUES (?, ?) RETURNING id');
  const after = db.prepare('SELECT id, payload FROM revocation_events WHERE id > ? ORDER BY id');
  const rows = (from: number) =>
    after.all(from).map((row) => ({
      id: Number(row.id),
      event: JSON.parse(String(row.payload)) as RevocationEvent,
    }));
  const oldest = db.prepare('SELECT min(id) AS id FROM revocation_events');
  // AUTOINCREMENT never reuses an id, even after pruning: the sequence is the latest id ever given.
  const latest = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'revocation_events'");
  // Always a prefix of the log (everything up to the newest old event), so what is kept has no holes.
  const pruneOld = db.prepare(
    'DELETE FROM revocation_events WHERE id <= (SELECT max(id) FROM revocation_events WHERE at < ?)',
  );
  const pruneMany = db.prepare(
    'DELETE FROM revocation_events WHERE id <= (SELECT id FROM revocation_events ORDER BY id DESC LIMIT 1 OFFSET ?)',
  );
  const tokenEvent = db.prepare(
    "SELECT 1 FROM revocation_events WHERE payload ->> '$.type' = 'token' AND payload ->> '$.token_hash' = ? LIMIT 1",
  );
  const clientEvent = db.prepare(
    "SELECT 1 FROM revocation_events WHERE payload ->> '$.type' = 'client' AND payload ->> '$.client_id' = ? AND at >= ? LIMIT 1",
  );
  const listeners = new Set<(stored: StoredRevocationEvent) => void>();
  const latestId = () => Number((latest.get() as { seq?: number } | undefined)?.seq ?? 0);

  return {
    streamId,
    async append(event) {
      const row = insert.get(event.at, JSON.stringify(event)) as { id: number };
      const stored = { id: Number(row.id), event };
      for (const listener of listeners) listener(stored);
      return stored;
    },
    async since(id) {
      const first = (oldest.get() as { id: number | null }).id;
      return replayable(id, latestId(), first === null ? undefined : Number(first)) ? rows(id) : undefined;
    },
    retained: async () => rows(0),
    latestId: async () => latestId(),
    hasToken: async (tokenHash) => tokenEvent.get(tokenHash) !== undefined,
    hasClientSince: async (clientId, at) => clientEvent.get(clientId, at) !== undefined,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async prune(maxAgeSeconds, maxEvents) {
      pruneOld.run(Math.floor(Date.now() / 1000) - maxAgeSeconds);
      return Number(pruneMany.run(maxEvents).changes);
    },
  };
}
