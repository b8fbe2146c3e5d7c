/**
 * oidc-provider's models in PostgreSQL (oidc-model-store.ts): the same table, columns and rules as
 * the SQLite store, so that every instance sharing the database sees every client, grant, session,
 * code, token and replay `jti` the moment it is written. Every write is awaited: the answer that
 * depends on a row is sent after PostgreSQL committed it.
 */
import { LRUCache } from 'lru-cache';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import {
  alreadyConsumed,
  CONSUMED_ONCE,
  clientUseThrottle,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  GRACE_USED,
  GRANTABLE_MODELS,
  type GraceConsumable,
  indexedColumns,
  type OidcModelStore,
  REPLAY_CLAIM_MS,
  REPLAY_MODEL,
} from '../oidc-model-store.ts';
import type { Postgres } from './connection.ts';
import type { Migration } from './migrations.ts';

export const OIDC_MODEL_MIGRATIONS: readonly Migration[] = [
  {
    id: 'oidc-models-1',
    sql: `CREATE TABLE oidc_models (
            model        text   NOT NULL,
            id           text   NOT NULL,
            payload      jsonb  NOT NULL,
            grant_id     text,
            uid          text,
            user_code    text,
            client_id    text,
            expires_at   bigint,
            consumed_at  bigint,
            created_at   bigint NOT NULL,
            last_used_at bigint,
            PRIMARY KEY (model, id)
          );
          CREATE INDEX oidc_models_grant_id ON oidc_models (grant_id) WHERE grant_id IS NOT NULL;
          CREATE INDEX oidc_models_uid ON oidc_models (model, uid) WHERE uid IS NOT NULL;
          CREATE INDEX oidc_models_user_code ON oidc_models (model, user_code) WHERE user_code IS NOT NULL;
          CREATE INDEX oidc_models_client_id ON oidc_models (client_id) WHERE client_id IS NOT NULL;
          CREATE INDEX oidc_models_expires_at ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;`,
  },
];

const LIVE = '(expires_at IS NULL OR expires_at > $NOW)';

function live(position: number): string {
  return LIVE.replace('$NOW', `$${position}`);
}

interface PayloadRow {
  payload: AdapterPayload;
}

export interface PostgresOidcStoreOptions {
  /** Seconds rows outlive their TTL; the provider's `clockTolerance`. */
  clockTolerance?: number;
}

export function postgresOidcModelStore(db: Postgres, options: PostgresOidcStoreOptions = {}): OidcModelStore {
  const toleranceMs = (options.clockTolerance ?? DEFAULT_CLOCK_TOLERANCE_SECONDS) * 1000;
  const throttle = clientUseThrottle();
  const first = async (sql: string, values: unknown[]) =>
    (await db.query<PayloadRow>(sql, values))[0]?.payload;
  const changes = async (sql: string, values: unknown[]) => (await db.query(sql, values)).length;

  /**
   * The save that follows a claim (ReplayDetection.unique) only shortens the claimed row's expiry
   * to the JWT's exp plus the clock tolerance: the claim already keeps the `jti` longer than that,
   * so the request need not wait for it. Such saves are gathered and written once a second in one
   * statement; a save that would lengthen the row (a JWT valid past the claim) is written at once.
   * If one is lost (a crash, the database away), the row only lives until the claim's end.
   */
  const claims = new LRUCache<string, number>({ max: 20_000 });
  const shortened = new Map<string, number>();
  let shortenTimer: NodeJS.Timeout | undefined;
  const writeShortened = async (): Promise<void> => {
    shortenTimer = undefined;
    if (shortened.size === 0) return;
    const ids = [...shortened.keys()];
    const expiries = [...shortened.values()];
    shortened.clear();
    await db
      .query(
        `UPDATE oidc_models AS m SET expires_at = u.expires_at
         FROM unnest($1::text[], $2::bigint[]) AS u(id, expires_at)
         WHERE m.model = 'ReplayDetection' AND m.id = u.id AND m.expires_at > u.expires_at`,
        [ids, expiries],
      )
      .catch(() => {});
  };
  const replaySaved = (id: string, expiresAt: number | null): boolean => {
    const claimedUntil = claims.get(id);
    if (claimedUntil === undefined || expiresAt === null || expiresAt > claimedUntil) return false;
    claims.delete(id);
    shortened.set(id, expiresAt);
    if (shortened.size >= 1000) void writeShortened();
    else if (!shortenTimer) {
      shortenTimer = setTimeout(() => void writeShortened(), 1000);
      shortenTimer.unref();
    }
    return true;
  };

  /** The replay check's claim (oidc-model-store.ts, REPLAY_CLAIM_MS), in one statement. */
  const claimReplayId = async (id: string): Promise<AdapterPayload | undefined> => {
    const now = Date.now();
    const claimed = await db.query(
      `INSERT INTO oidc_models (model, id, payload, expires_at, created_at)
       VALUES ('ReplayDetection', $1, $2::jsonb, $3, $4)
       ON CONFLICT (model, id) DO UPDATE SET
         payload = excluded.payload, expires_at = excluded.expires_at, created_at = excluded.created_at
       WHERE oidc_models.expires_at IS NOT NULL AND oidc_models.expires_at <= $4
       RETURNING 1`,
      [id, JSON.stringify({ jti: id }), now + REPLAY_CLAIM_MS, now],
    );
    if (claimed.length === 0) return { jti: id };
    claims.set(id, now + REPLAY_CLAIM_MS);
    return undefined;
  };

  /** GraceConsumable (oidc-model-store.ts) in one statement. */
  const consumeWithGrace = async (id: string, firstUsedSince: number, now: number): Promise<boolean> => {
    const rows = await db.query(
      `UPDATE oidc_models SET
         payload = CASE WHEN consumed_at IS NULL
                        THEN jsonb_set(payload, '{consumed}', to_jsonb($1::bigint))
                        ELSE jsonb_set(payload, '{${GRACE_USED}}', to_jsonb($1::bigint)) END,
         consumed_at = coalesce(consumed_at, $2::bigint)
       WHERE model = 'RefreshToken' AND id = $3 AND (expires_at IS NULL OR expires_at > $2::bigint)
         AND (consumed_at IS NULL
              OR (NOT payload ? '${GRACE_USED}' AND (payload->>'consumed')::bigint >= $4::bigint))
       RETURNING 1`,
      [now, Date.now(), id, firstUsedSince],
    );
    return rows.length > 0;
  };

  const adapter = (model: string): Adapter & Partial<GraceConsumable> => ({
    ...(model === 'RefreshToken' ? { consumeWithGrace } : {}),
    async upsert(id, payload, expiresIn) {
      const now = Date.now();
      const c = indexedColumns(model, payload, expiresIn, toleranceMs, now);
      if (model === REPLAY_MODEL && replaySaved(id, c.expiresAt)) return;
      // ON CONFLICT keeps created_at and last_used_at across re-saves (sessions and grants are saved often).
      await db.query(
        `INSERT INTO oidc_models
           (model, id, payload, grant_id, uid, user_code, client_id, expires_at, consumed_at, created_at)
         VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (model, id) DO UPDATE SET
           payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
           user_code = excluded.user_code, client_id = excluded.client_id,
           expires_at = excluded.expires_at, consumed_at = excluded.consumed_at`,
        [
          model,
          id,
          JSON.stringify(payload),
          c.grantId,
          c.uid,
          c.userCode,
          c.clientId,
          c.expiresAt,
          c.consumedAt,
          now,
        ],
      );
    },
    find: (id) =>
      model === REPLAY_MODEL
        ? claimReplayId(id)
        : first(`SELECT payload FROM oidc_models WHERE model = $1 AND id = $2 AND ${live(3)}`, [
            model,
            id,
            Date.now(),
          ]),
    findByUid: (uid) =>
      first(`SELECT payload FROM oidc_models WHERE model = $1 AND uid = $2 AND ${live(3)} LIMIT 1`, [
        model,
        uid,
        Date.now(),
      ]),
    findByUserCode: (userCode) =>
      first(`SELECT payload FROM oidc_models WHERE model = $1 AND user_code = $2 AND ${live(3)} LIMIT 1`, [
        model,
        userCode,
        Date.now(),
      ]),
    async consume(id) {
      const now = Date.now();
      // One statement, so atomic; `consumed` in epoch seconds, as oidc-provider's epochTime().
      // The grant sources only while unconsumed: one redemption wins, at any instance.
      const once = CONSUMED_ONCE.has(model);
      const rows = await db.query(
        `UPDATE oidc_models
           SET payload = jsonb_set(payload, '{consumed}', to_jsonb($1::bigint)), consumed_at = $2
         WHERE model = $3 AND id = $4${once ? ' AND consumed_at IS NULL' : ''} RETURNING 1`,
        [Math.floor(now / 1000), now, model, id],
      );
      if (once && rows.length === 0) throw alreadyConsumed(model);
    },
    async destroy(id) {
      await db.query('DELETE FROM oidc_models WHERE model = $1 AND id = $2', [model, id]);
    },
    async revokeByGrantId(grantId) {
      // Every grantable model at once, as the SQLite store does (sqlite-store.ts, revokeByGrantId).
      await db.query('DELETE FROM oidc_models WHERE grant_id = $1 AND model = ANY($2::text[])', [
        grantId,
        GRANTABLE_MODELS,
      ]);
    },
  });

  const deleteClientRows = (clientId: string) =>
    changes(`DELETE FROM oidc_models WHERE client_id = $1 OR (model = 'Client' AND id = $1) RETURNING 1`, [
      clientId,
    ]);

  return {
    adapter,
    async recordClientUse(clientId) {
      const now = Date.now();
      if (!throttle.due(clientId, now)) return;
      // A no-op for static clients from the configuration: they have no row.
      await db.query("UPDATE oidc_models SET last_used_at = $1 WHERE model = 'Client' AND id = $2", [
        now,
        clientId,
      ]);
    },
    async removeUnusedClients(unusedForSeconds) {
      const cutoff = Date.now() - unusedForSeconds * 1000;
      return db.transaction(async (tx) => {
        const rows = await tx.query<{ id: string }>(
          "SELECT id FROM oidc_models WHERE model = 'Client' AND coalesce(last_used_at, created_at) < $1 FOR UPDATE",
          [cutoff],
        );
        const ids = rows.map((row) => row.id);
        if (ids.length > 0) {
          await tx.query(
            "DELETE FROM oidc_models WHERE client_id = ANY($1::text[]) OR (model = 'Client' AND id = ANY($1::text[]))",
            [ids],
          );
        }
        for (const id of ids) throttle.forget(id);
        return ids;
      });
    },
    async removeClientRows(clientId) {
      throttle.forget(clientId);
      return deleteClientRows(clientId);
    },
    removeClientTokens: (clientId) =>
      changes(
        "DELETE FROM oidc_models WHERE client_id = $1 AND model NOT IN ('Client', 'Session') RETURNING 1",
        [clientId],
      ),
    removeSessionsOf: (sub) =>
      changes("DELETE FROM oidc_models WHERE model = 'Session' AND payload->>'accountId' = $1 RETURNING 1", [
        sub,
      ]),
    async listStoredClients() {
      const rows = await db.query<{
        payload: Record<string, unknown>;
        created_at: number;
        last_used_at: number | null;
      }>(
        "SELECT payload, created_at, last_used_at FROM oidc_models WHERE model = 'Client' ORDER BY created_at DESC",
      );
      return rows.map((row) => ({
        metadata: row.payload,
        createdAt: row.created_at,
        lastUsedAt: row.last_used_at ?? undefined,
      }));
    },
    async countLiveRows(models) {
      const counts: Record<string, number> = Object.fromEntries(models.map((model) => [model, 0]));
      const rows = await db.query<{ model: string; n: number }>(
        `SELECT model, count(*)::int8 AS n FROM oidc_models
         WHERE model = ANY($1::text[]) AND ${live(2)} GROUP BY model`,
        [models, Date.now()],
      );
      for (const row of rows) counts[row.model] = row.n;
      return counts;
    },
    async purgeExpired() {
      // In slices, so that a large backlog does not hold row locks for long.
      let total = 0;
      for (;;) {
        const removed = await changes(
          `DELETE FROM oidc_models WHERE ctid IN (
             SELECT ctid FROM oidc_models WHERE expires_at < $1 LIMIT 5000
           ) RETURNING 1`,
          [Date.now()],
        );
        total += removed;
        if (removed < 5000) return total;
      }
    },
  };
}
