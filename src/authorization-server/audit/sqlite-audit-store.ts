/**
 * The audit trail in the authorization server's SQLite database (`audit_records`).
 *
 * One row per event; the searchable fields are columns with an index each, the rest is a JSON text.
 * Ids increase (AUTOINCREMENT never reuses one, even after pruning), and pages are ordered by id,
 * newest first, so a cursor is just "older than this id". Times are epoch milliseconds.
 *
 * The indexes on columns most events leave empty (tool, audience, grant, request id) are partial,
 * so an event without them costs nothing there; each index leads with its column and ends with the
 * id, so a filtered page is read in order from the index without sorting.
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';
import { type AuditStore, conditionsOf, PRUNE_CHUNK, pageOf } from './audit-store.ts';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS audit_records (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    sub        TEXT,
    client_id  TEXT,
    tool       TEXT,
    audience   TEXT,
    scope      TEXT,
    grant_id   TEXT,
    request_id TEXT,
    fields     TEXT    NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS audit_records_at ON audit_records (at);
  CREATE INDEX IF NOT EXISTS audit_records_event ON audit_records (event, id);
  -- No index on outcome: three values only, so a search by outcome walks the newest rows by id
  -- instead, and every token issued spares one more index insertion.
  DROP INDEX IF EXISTS audit_records_outcome;
  CREATE INDEX IF NOT EXISTS audit_records_sub ON audit_records (sub, id) WHERE sub IS NOT NULL;
  CREATE INDEX IF NOT EXISTS audit_records_client_id ON audit_records (client_id, id) WHERE client_id IS NOT NULL;
  CREATE INDEX IF NOT EXISTS audit_records_tool ON audit_records (tool, id) WHERE tool IS NOT NULL;
  CREATE INDEX IF NOT EXISTS audit_records_audience ON audit_records (audience, id) WHERE audience IS NOT NULL;
  CREATE INDEX IF NOT EXISTS audit_records_grant_id ON audit_records (grant_id, id) WHERE grant_id IS NOT NULL;
  CREATE INDEX IF NOT EXISTS audit_records_request_id ON audit_records (request_id, id) WHERE request_id IS NOT NULL;
`;

export function createSqliteAuditStore(db: DatabaseSync): AuditStore {
  db.exec(SCHEMA);
  const insert = db.prepare(
    `INSERT INTO audit_records
       (at, event, outcome, sub, client_id, tool, audience, scope, grant_id, request_id, fields)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const pruneChunk = db.prepare(
    `DELETE FROM audit_records WHERE id IN
       (SELECT id FROM audit_records WHERE at < ? ORDER BY at LIMIT ${PRUNE_CHUNK})`,
  );
  // One statement per combination of filters in use (a few dozen in practice), prepared once.
  const searches = new Map<string, StatementSync>();

  return {
    // Synchronous work behind the asynchronous interface: node:sqlite blocks, and each call is short.
    async append(rows) {
      if (rows.length === 0) return;
      const inTransaction = db.isTransaction;
      if (!inTransaction) db.exec('BEGIN IMMEDIATE');
      try {
        for (const row of rows) {
          insert.run(
            row.at,
            row.event,
            row.outcome,
            row.sub ?? null,
            row.client_id ?? null,
            row.tool ?? null,
            row.audience ?? null,
            row.scope ?? null,
            row.grant_id ?? null,
            row.request_id ?? null,
            row.fields,
          );
        }
        if (!inTransaction) db.exec('COMMIT');
      } catch (error) {
        if (!inTransaction && db.isTransaction) db.exec('ROLLBACK');
        throw error;
      }
    },

    async search(query) {
      const conditions = conditionsOf(query);
      const where: string[] = [];
      const values: SQLInputValue[] = [];
      for (const [column, value] of conditions.equals) {
        where.push(`${column} = ?`);
        values.push(value);
      }
      if (conditions.atFrom !== undefined) {
        where.push('at >= ?');
        values.push(conditions.atFrom);
      }
      if (conditions.atBefore !== undefined) {
        where.push('at < ?');
        values.push(conditions.atBefore);
      }
      if (conditions.idBelow !== undefined) {
        where.push('id < ?');
        values.push(conditions.idBelow);
      }
      const sql = `SELECT * FROM audit_records${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
      let statement = searches.get(sql);
      if (statement === undefined) {
        statement = db.prepare(sql);
        searches.set(sql, statement);
      }
      // One more than asked: whether there is a next page, without a second query.
      return pageOf(statement.all(...values, conditions.limit + 1), conditions.limit);
    },

    async deleteBefore(before) {
      let deleted = 0;
      for (;;) {
        const changes = Number(pruneChunk.run(before).changes);
        deleted += changes;
        if (changes < PRUNE_CHUNK) return deleted;
      }
    },
  };
}
