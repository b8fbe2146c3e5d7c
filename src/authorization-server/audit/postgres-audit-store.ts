/**
 * The audit trail in the shared PostgreSQL database (`audit_records`), read and written by every
 * instance: the same rows, columns and query semantics as sqlite-audit-store.ts (filters combined
 * with AND, time bounds inclusive to the second, newest first by id, cursor = "older than this id").
 *
 * Ids come from an identity sequence, so they increase across instances. A batch is one INSERT of
 * arrays (unnest … WITH ORDINALITY, ordered), so its rows take ids in the order they were recorded,
 * all or none of them. Records are append-only: a trigger refuses UPDATE, so neither a bug nor a
 * careless statement can rewrite history; only retention (deleteBefore) removes rows.
 */
import type { Postgres } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
import { type AuditStore, conditionsOf, PRUNE_CHUNK, pageOf } from './audit-store.ts';

export const AUDIT_MIGRATIONS: readonly Migration[] = [
  {
    id: 'audit-1',
    sql: `
      CREATE TABLE audit_records (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at         bigint NOT NULL,
        event      text   NOT NULL,
        outcome    text   NOT NULL,
        sub        text,
        client_id  text,
        tool       text,
        audience   text,
        scope      text,
        grant_id   text,
        request_id text,
        fields     text   NOT NULL
      );
      CREATE INDEX audit_records_at ON audit_records (at);
      CREATE INDEX audit_records_event ON audit_records (event, id);
      -- As in SQLite: no index on outcome (three values), partial indexes on the columns most
      -- events leave empty, each ending with the id so a filtered page is read in order.
      CREATE INDEX audit_records_sub ON audit_records (sub, id) WHERE sub IS NOT NULL;
      CREATE INDEX audit_records_client_id ON audit_records (client_id, id) WHERE client_id IS NOT NULL;
      CREATE INDEX audit_records_tool ON audit_records (tool, id) WHERE tool IS NOT NULL;
      CREATE INDEX audit_records_audience ON audit_records (audience, id) WHERE audience IS NOT NULL;
      CREATE INDEX audit_records_grant_id ON audit_records (grant_id, id) WHERE grant_id IS NOT NULL;
      CREATE INDEX audit_records_request_id ON audit_records (request_id, id) WHERE request_id IS NOT NULL;
      CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit records are append-only';
      END
      $$;
      CREATE TRIGGER audit_records_append_only BEFORE UPDATE ON audit_records
        FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
    `,
  },
];

const INSERT = `
  INSERT INTO audit_records
    (at, event, outcome, sub, client_id, tool, audience, scope, grant_id, request_id, fields)
  SELECT at, event, outcome, sub, client_id, tool, audience, scope, grant_id, request_id, fields
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[], $9::text[], $10::text[], $11::text[])
    WITH ORDINALITY AS r(at, event, outcome, sub, client_id, tool, audience, scope, grant_id,
                         request_id, fields, n)
  ORDER BY n`;

const PRUNE = `
  WITH gone AS (
    DELETE FROM audit_records WHERE id IN
      (SELECT id FROM audit_records WHERE at < $1 ORDER BY at LIMIT ${PRUNE_CHUNK})
    RETURNING 1
  )
  SELECT count(*)::int AS n FROM gone`;

export function postgresAuditStore(db: Postgres): AuditStore {
  return {
    async append(rows) {
      if (rows.length === 0) return;
      await db.query(INSERT, [
        rows.map((row) => row.at),
        rows.map((row) => row.event),
        rows.map((row) => row.outcome),
        rows.map((row) => row.sub ?? null),
        rows.map((row) => row.client_id ?? null),
        rows.map((row) => row.tool ?? null),
        rows.map((row) => row.audience ?? null),
        rows.map((row) => row.scope ?? null),
        rows.map((row) => row.grant_id ?? null),
        rows.map((row) => row.request_id ?? null),
        rows.map((row) => row.fields),
      ]);
    },

    async search(query) {
      const conditions = conditionsOf(query);
      const where: string[] = [];
      const values: unknown[] = [];
      const bind = (value: unknown) => {
        values.push(value);
        return `$${values.length}`;
      };
      // Column names come from EQUALS (audit-store.ts), never from the query.
      for (const [column, value] of conditions.equals) where.push(`${column} = ${bind(value)}`);
      if (conditions.atFrom !== undefined) where.push(`at >= ${bind(conditions.atFrom)}`);
      if (conditions.atBefore !== undefined) where.push(`at < ${bind(conditions.atBefore)}`);
      if (conditions.idBelow !== undefined) where.push(`id < ${bind(conditions.idBelow)}`);
      const limit = bind(conditions.limit + 1);
      // One more than asked: whether there is a next page, without a second query.
      const rows = await db.query(
        `SELECT * FROM audit_records${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ${limit}`,
        values,
      );
      return pageOf(rows, conditions.limit);
    },

    async deleteBefore(before) {
      let deleted = 0;
      for (;;) {
        const [row] = await db.query<{ n: number }>(PRUNE, [before]);
        const changes = row?.n ?? 0;
        deleted += changes;
        if (changes < PRUNE_CHUNK) return deleted;
      }
    },
  };
}
