/**
 * What the audit trail keeps and how it is asked (issue 9, "Audit trail"): the types shared by the
 * trail (audit-trail.ts) and the stores behind it. This file has the SQLite store's contract only;
 * each store is a file of its own (sqlite-audit-store.ts), so another (PostgreSQL, ...) is a new file.
 */

export type AuditOutcome = 'success' | 'failure' | 'denied';

/** A search. Every filter is optional and they combine with AND; results come newest first. */
export interface AuditQuery {
  /** The subject (the keyed identifier of a user, or a workload's client id): never an email address. */
  sub?: string;
  /** The client the event concerns (for `token.exchange`: the agent's client, not the MCP server). */
  clientId?: string;
  /** The MCP tool whose call caused a token exchange. */
  tool?: string;
  /** The API's audience (a `resources.apis[].audience`). */
  api?: string;
  event?: string;
  outcome?: AuditOutcome;
  requestId?: string;
  /** The grant: its consent records, the tokens issued for it and the tool calls resting on it. */
  grantId?: string;
  /** Seconds since the epoch, inclusive. */
  since?: number;
  /** Seconds since the epoch, inclusive (the whole second). */
  until?: number;
  /** Records per page: 100 unless given, at most 1000. */
  limit?: number;
  /** `nextCursor` of the previous page: the records older than that page's last one. */
  cursor?: string;
}

/** One audit event as kept. The searchable fields are columns; `fields` holds the rest, redacted. */
export interface AuditRecord {
  /** Increases with every record; opaque to callers. */
  id: string;
  /** When the event happened (ISO 8601, milliseconds). */
  at: string;
  event: string;
  outcome: AuditOutcome;
  sub?: string;
  client_id?: string;
  tool?: string;
  audience?: string;
  scope?: string;
  grant_id?: string;
  request_id?: string;
  /** Everything else the event said (`actor`, `reason`, `ip`, `grant_type`, ...), as JSON, redacted. */
  fields: Record<string, unknown>;
}

/** A record on its way in: the same fields, time in epoch milliseconds, `fields` already serialized. */
export interface AuditRow {
  at: number;
  event: string;
  outcome: AuditOutcome;
  sub: string | undefined;
  client_id: string | undefined;
  tool: string | undefined;
  audience: string | undefined;
  scope: string | undefined;
  grant_id: string | undefined;
  request_id: string | undefined;
  /** JSON of an object, redacted (audit-trail.ts). */
  fields: string;
}

/** A filter has a value the store cannot take (a cursor it did not make, a negative limit, ...). */
export class AuditQueryError extends Error {
  override name = 'AuditQueryError';
}

export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;

export interface AuditStore {
  /** Writes the rows in one transaction: all of them or, when it throws, none. */
  append(rows: readonly AuditRow[]): void;
  /**
   * One page, newest first. Paging by cursor is stable: records written after the first page have
   * later ids and never push a record into a page already read, nor repeat one.
   */
  search(query: AuditQuery): { records: AuditRecord[]; nextCursor?: string };
  /** Deletes the records older than `before` (epoch milliseconds); how many went. */
  deleteBefore(before: number): number;
}

/** The page size a query asks for, bounded; AuditQueryError for one that is not a positive integer. */
export function pageSize(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1) throw new AuditQueryError('limit must be a positive integer');
  return Math.min(limit, MAX_PAGE);
}

/** Checks the time bounds: seconds since the epoch, finite. */
export function checkTimeBounds(query: AuditQuery): void {
  for (const name of ['since', 'until'] as const) {
    const value = query[name];
    if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
      throw new AuditQueryError(`${name} must be seconds since the epoch`);
    }
  }
}
