/** Operation approvals (operation-approvals.ts) in the instance's SQLite database. */
import type { DatabaseSync } from 'node:sqlite';
import { approvalOf, type OperationApprovals } from './operation-approvals.ts';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS operation_approvals (
    id               TEXT PRIMARY KEY,
    sub              TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    grant_id         TEXT,
    tool             TEXT NOT NULL,
    arguments_digest TEXT NOT NULL,
    arguments        TEXT NOT NULL,
    request_id       TEXT,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    decided_at       INTEGER,
    used_at          INTEGER
  );
  CREATE INDEX IF NOT EXISTS operation_approvals_operation
    ON operation_approvals (sub, client_id, tool, arguments_digest);
  CREATE UNIQUE INDEX IF NOT EXISTS operation_approvals_one_pending
    ON operation_approvals (sub, client_id, tool, arguments_digest, grant_id) WHERE status = 'pending';
`;

export function createSqliteOperationApprovals(db: DatabaseSync): OperationApprovals {
  db.exec(SCHEMA);
  const q = {
    insert: db.prepare(
      `INSERT INTO operation_approvals (id, sub, client_id, grant_id, tool, arguments_digest, arguments,
         request_id, status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)
       ON CONFLICT DO NOTHING`,
    ),
    get: db.prepare('SELECT * FROM operation_approvals WHERE id = ?'),
    pendingOf: db.prepare(
      `SELECT * FROM operation_approvals WHERE sub = ? AND client_id = ? AND tool = ? AND arguments_digest = ?
         AND grant_id IS ? AND status = 'pending'`,
    ),
    recentlyUsed: db.prepare(
      `SELECT * FROM operation_approvals WHERE sub = ? AND client_id = ? AND tool = ? AND arguments_digest = ?
         AND grant_id = ? AND status = 'used' AND used_at > ? ORDER BY used_at DESC LIMIT 1`,
    ),
    open: db.prepare(
      `SELECT * FROM operation_approvals WHERE sub = ? AND client_id = ? AND tool = ? AND arguments_digest = ?
         AND grant_id = ? AND status <> 'used' AND expires_at > ? ORDER BY created_at DESC LIMIT 1`,
    ),
    decide: db.prepare(
      `UPDATE operation_approvals SET status = ?, decided_at = ?, expires_at = ? WHERE id = ? AND status = 'pending'
         AND expires_at > ? RETURNING *`,
    ),
    consume: db.prepare(
      `UPDATE operation_approvals SET status = 'used', used_at = ? WHERE id = (
         SELECT id FROM operation_approvals WHERE sub = ? AND client_id = ? AND tool = ? AND arguments_digest = ?
           AND grant_id = ? AND status = 'approved' AND expires_at > ? ORDER BY created_at DESC LIMIT 1)
       AND status = 'approved' RETURNING *`,
    ),
    purge: db.prepare(
      `DELETE FROM operation_approvals WHERE expires_at < ? OR (status = 'used' AND used_at < ?)`,
    ),
  };
  return {
    create: async (approval) => {
      const inserted = q.insert.run(
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
      );
      if (Number(inserted.changes) > 0) return { ...approval, status: 'pending' };
      // One pending approval per operation: a request made at the same moment gets that one.
      return approvalOf(
        q.pendingOf.get(
          approval.sub,
          approval.clientId,
          approval.tool,
          approval.argumentsDigest,
          approval.grantId ?? null,
        )!,
      );
    },
    get: async (id) => {
      const row = q.get.get(id);
      return row ? approvalOf(row) : undefined;
    },
    findCurrent: async (op, now) => {
      const row = q.open.get(op.sub, op.clientId, op.tool, op.argumentsDigest, op.grantId, now);
      return row ? approvalOf(row) : undefined;
    },
    decide: async (id, status, now, expiresAt) => {
      const row = q.decide.get(status, now, expiresAt, id, now);
      return row ? approvalOf(row) : undefined;
    },
    consume: async (op, now) => {
      const row = q.consume.get(now, op.sub, op.clientId, op.tool, op.argumentsDigest, op.grantId, now);
      return row ? approvalOf(row) : undefined;
    },
    lastUsed: async (op, since) => {
      const row = q.recentlyUsed.get(op.sub, op.clientId, op.tool, op.argumentsDigest, op.grantId, since);
      return row ? approvalOf(row) : undefined;
    },
    purge: async (before) => Number(q.purge.run(before, before).changes),
  };
}
