/**
 * Operation approvals (operation-approvals.ts) in the shared PostgreSQL database: an approval made
 * at one instance is used up at any other, once (`consume` is one UPDATE … RETURNING).
 */
import type { Postgres } from '../store/postgres/connection.ts';
import type { Migration } from '../store/postgres/migrations.ts';
import { approvalOf, type OperationApprovals } from './operation-approvals.ts';

export const OPERATION_APPROVAL_MIGRATIONS: readonly Migration[] = [
  {
    id: 'operation-approvals-1',
    sql: `
      CREATE TABLE operation_approvals (
        id               text   PRIMARY KEY,
        sub              text   NOT NULL,
        client_id        text   NOT NULL,
        grant_id         text,
        tool             text   NOT NULL,
        arguments_digest text   NOT NULL,
        arguments        jsonb  NOT NULL,
        request_id       text,
        status           text   NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
        created_at       bigint NOT NULL,
        expires_at       bigint NOT NULL,
        decided_at       bigint,
        used_at          bigint
      );
      CREATE INDEX operation_approvals_operation
        ON operation_approvals (sub, client_id, tool, arguments_digest);
      CREATE UNIQUE INDEX operation_approvals_one_pending
        ON operation_approvals (sub, client_id, tool, arguments_digest, grant_id) WHERE status = 'pending';
    `,
  },
];

export function postgresOperationApprovals(db: Postgres): OperationApprovals {
  const one = async (text: string, values: unknown[]) => {
    const [row] = await db.query(text, values);
    return row ? approvalOf(row) : undefined;
  };
  return {
    create: async (approval) => {
      const inserted = await db.query(
        `INSERT INTO operation_approvals (id, sub, client_id, grant_id, tool, arguments_digest, arguments,
           request_id, status, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, 'pending', $9, $10)
         ON CONFLICT DO NOTHING RETURNING id`,
        [
          approval.id,
          approval.sub,
          approval.clientId,
          approval.grantId ?? null,
          approval.tool,
          approval.argumentsDigest,
          JSON.stringify(approval.arguments),
          approval.requestId ?? null,
          approval.createdAt,
          approval.expiresAt,
        ],
      );
      if (inserted.length > 0) return { ...approval, status: 'pending' };
      // One pending approval per operation: a request made at the same moment gets that one.
      return (await one(
        `SELECT * FROM operation_approvals WHERE sub = $1 AND client_id = $2 AND tool = $3 AND arguments_digest = $4
           AND grant_id IS NOT DISTINCT FROM $5 AND status = 'pending'`,
        [approval.sub, approval.clientId, approval.tool, approval.argumentsDigest, approval.grantId ?? null],
      ))!;
    },
    get: (id) => one('SELECT * FROM operation_approvals WHERE id = $1', [id]),
    findCurrent: (op, now) =>
      one(
        `SELECT * FROM operation_approvals WHERE sub = $1 AND client_id = $2 AND tool = $3 AND arguments_digest = $4
           AND grant_id = $6 AND status <> 'used' AND expires_at > $5 ORDER BY created_at DESC LIMIT 1`,
        [op.sub, op.clientId, op.tool, op.argumentsDigest, now, op.grantId],
      ),
    decide: (id, status, now, expiresAt) =>
      one(
        `UPDATE operation_approvals SET status = $1, decided_at = $2, expires_at = $4 WHERE id = $3
           AND status = 'pending' AND expires_at > $2 RETURNING *`,
        [status, now, id, expiresAt],
      ),
    consume: (op, now) =>
      one(
        `UPDATE operation_approvals SET status = 'used', used_at = $1 WHERE id = (
           SELECT id FROM operation_approvals WHERE sub = $2 AND client_id = $3 AND tool = $4 AND arguments_digest = $5
             AND grant_id = $6 AND status = 'approved' AND expires_at > $1 ORDER BY created_at DESC LIMIT 1
             FOR UPDATE SKIP LOCKED)
         AND status = 'approved' RETURNING *`,
        [now, op.sub, op.clientId, op.tool, op.argumentsDigest, op.grantId],
      ),
    lastUsed: (op, since) =>
      one(
        `SELECT * FROM operation_approvals WHERE sub = $1 AND client_id = $2 AND tool = $3 AND arguments_digest = $4
           AND grant_id = $5 AND status = 'used' AND used_at > $6 ORDER BY used_at DESC LIMIT 1`,
        [op.sub, op.clientId, op.tool, op.argumentsDigest, op.grantId, since],
      ),
    purge: async (before) =>
      (
        await db.query(
          `WITH gone AS (DELETE FROM operation_approvals WHERE expires_at < $1 OR (status = 'used' AND used_at < $1)
             RETURNING 1) SELECT count(*)::int AS n FROM gone`,
          [before],
        )
      )[0]?.n as number,
  };
}
