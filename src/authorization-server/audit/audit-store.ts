/**
 * What the audit trail keeps and how it is asked (issue 9, "Audit trail"): the types shared by the
 * trail (audit-trail.ts) and the stores behind it, and what every store shares (cursors, bounds,
 * the record made of a row). Each store is a file of its own: sqlite-audit-store.ts,
 * postgres-audit-store.ts. The interface is asynchronous so a store may be over the network; a
 * store's errors (StoreUnavailableError, ...) propagate, the trail decides what to do with them.
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

export interface AuditPage {
  records: AuditRecord[];
  nextCursor?: string;
}

/** Records are append-only: nothing but retention (deleteBefore) ever changes or removes one. */
export interface AuditStore {
  /** Writes the rows, in their order, in one transaction: all of them or, when it rejects, none. */
  append(rows: readonly AuditRow[]): Promise<void>;
  /**
   * One page, newest first. Paging by cursor is stable: records written after the first page have
   * later ids and never push a record into a page already read, nor repeat one.
   */
  search(query: AuditQuery): Promise<AuditPage>;
  /** Deletes the records older than `before` (epoch milliseconds); how many went. */
  deleteBefore(before: number): Promise<number>;
}

/** The query's equality filters and the column each one reads. */
export const EQUALS = [
  ['sub', 'sub'],
  ['clientId', 'client_id'],
  ['tool', 'tool'],
  ['api', 'audience'],
  ['event', 'event'],
  ['outcome', 'outcome'],
  ['requestId', 'request_id'],
  ['grantId', 'grant_id'],
] as const;

export const OPTIONAL_COLUMNS = [
  'sub',
  'client_id',
  'tool',
  'audience',
  'scope',
  'grant_id',
  'request_id',
] as const;

/** Deleted per statement when pruning, so a lock is never held long. */
export const PRUNE_CHUNK = 5000;

/** Opaque to callers; a version letter leaves room to change what it holds. */
export const encodeCursor = (id: number) => Buffer.from(`a${id}`).toString('base64url');

export function decodeCursor(cursor: string): number {
  const match = /^a(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw new AuditQueryError('cursor is not one this audit trail gave');
  return Number(match[1]);
}

/**
 * The filters of a query as column conditions, checked (AuditQueryError), in EQUALS order then
 * since, until, cursor: each store writes them in its own SQL, so both read the same records.
 */
export interface AuditConditions {
  equals: Array<[column: string, value: string]>;
  /** Epoch milliseconds, inclusive. */
  atFrom?: number;
  /** Epoch milliseconds, exclusive (the whole second of `until` is in). */
  atBefore?: number;
  /** Ids below this one (the cursor). */
  idBelow?: number;
  limit: number;
}

export function conditionsOf(query: AuditQuery): AuditConditions {
  const limit = pageSize(query.limit);
  checkTimeBounds(query);
  const conditions: AuditConditions = { equals: [], limit };
  for (const [name, column] of EQUALS) {
    const value = query[name];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new AuditQueryError(`${name} must be a string`);
    conditions.equals.push([column, value]);
  }
  if (query.since !== undefined) conditions.atFrom = Math.floor(query.since) * 1000;
  if (query.until !== undefined) conditions.atBefore = (Math.floor(query.until) + 1) * 1000;
  if (query.cursor !== undefined) conditions.idBelow = decodeCursor(query.cursor);
  return conditions;
}

/** A stored row (either store's) as the record callers see. */
export function recordOf(row: Record<string, unknown>): AuditRecord {
  const record: AuditRecord = {
    id: String(row.id),
    at: new Date(Number(row.at)).toISOString(),
    event: String(row.event),
    outcome: String(row.outcome) as AuditOutcome,
    fields: {},
  };
  for (const column of OPTIONAL_COLUMNS) {
    const value = row[column];
    if (typeof value === 'string') record[column] = value;
  }
  try {
    record.fields = JSON.parse(String(row.fields)) as Record<string, unknown>;
  } catch {
    // Written by this code as JSON; a row edited by hand is still shown, without its fields.
  }
  return record;
}

/** The page of `limit` records out of `limit + 1` rows read: the extra one says there is a next page. */
export function pageOf(rows: readonly Record<string, unknown>[], limit: number): AuditPage {
  const records = rows.slice(0, limit).map(recordOf);
  const last = records.at(-1);
  return rows.length > limit && last ? { records, nextCursor: encodeCursor(Number(last.id)) } : { records };
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
