/**
 * The audit trail (issue 9): every audit event of the authorization server (`logger.audit`), kept
 * in its database so an administrator can search it (by user, client, tool, API, outcome, time,
 * request or grant) and export it as JSON lines, for `retentionDays`.
 *
 * Writes are on the hot path (every token issued is an event), so they are grouped like the token
 * store's (store/sqlite-write-batch.ts): the records of one turn of the event loop are written in
 * one transaction right after it. The durability rule is the token store's: a request's answer
 * waits until its records are committed (the durableWrites scope, http/middleware.ts), so an
 * answered token is never missing from the trail because of a crash. Unlike the token store's, a
 * failed audit write never costs the answer: it is logged as an error, and the answer goes out.
 *
 * What is kept is redacted by the logging module's rule (src/shared/logging.ts: a field named like
 * a token, code or secret is "[redacted]", a URL loses its user info and query), and besides, any
 * string that looks like a credential (a `Bearer`, `DPoP` or `Basic` value, a JWT) is redacted
 * whatever its field is called: the trail is kept for months, the log usually for days.
 */
import { type LogFields, type Logger, redactingReplacer } from '../../shared/logging.ts';
import { answerWaitsFor } from '../store/sqlite-write-batch.ts';
import {
  type AuditOutcome,
  type AuditPage,
  type AuditQuery,
  AuditQueryError,
  type AuditRow,
  type AuditStore,
} from './audit-store.ts';

export type { AuditOutcome, AuditPage, AuditQuery, AuditRecord } from './audit-store.ts';
export { AuditQueryError } from './audit-store.ts';

export interface AuditTrail {
  /** Keeps one event; never throws (a record that cannot be made or written is logged as an error). */
  record(event: string, fields: Record<string, unknown>): void;
  /** One page of records, newest first; `nextCursor` when there are more. AuditQueryError for a bad query. */
  search(query: AuditQuery): Promise<AuditPage>;
  /**
   * Every record the query matches (from its cursor on; at most `limit` lines when it gives one, with
   * no maximum), newest first, each one JSON object and a newline: the export. Read page by page as
   * it is iterated; a bad query rejects with AuditQueryError before the iterable exists (before any line).
   */
  exportLines(query: AuditQuery): Promise<AsyncIterable<string>>;
  /** Deletes the records older than the retention; how many went (0 with retention 0: kept forever). */
  prune(now?: Date): Promise<number>;
  /**
   * Writes the records still waiting for their group commit, and waits for the writes under way
   * (before the store is closed). Never rejects: a write that fails is logged.
   */
  flush(): Promise<void>;
  readonly retentionDays: number;
}

export interface AuditTrailOptions {
  /** How long records are kept, in days; 0 keeps them forever. */
  retentionDays: number;
  /** Where a failed write is reported; never an audit line of its own. */
  logger?: Logger;
}

/** The columns; everything else an event says goes into `fields`. */
const COLUMNS = ['sub', 'client_id', 'tool', 'audience', 'scope', 'grant_id', 'request_id'] as const;
const OUTCOMES = new Set<string>(['success', 'failure', 'denied']);
/** Rows per transaction at most (as the token store's batch). */
const MAX_BATCH = 256;
/** `fields` larger than this are not kept as they are: an event is a few hundred bytes. */
const MAX_FIELDS_BYTES = 16 * 1024;
const EXPORT_PAGE = 1000;

/**
 * A credential in a value, wherever it is: an HTTP authorization value (RFC 6750 §2.1, RFC 9449
 * §7.1, RFC 7617) long enough to be one, or a JWT (a base64url JSON header `eyJ`, three parts).
 */
const CREDENTIAL =
  /\b(?:bearer|dpop|basic)\s+[A-Za-z0-9\-._~+/]{16,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\./i;

const REDACTED = '[redacted]';

/** The logger's replacer, and strings that look like credentials whatever their key. */
function auditReplacer(this: unknown, key: string, value: unknown): unknown {
  const redacted = redactingReplacer.call(this, key, value);
  return typeof redacted === 'string' && CREDENTIAL.test(redacted) ? REDACTED : redacted;
}

/** A column's value: a non-empty string, redacted like the fields; anything else stays in `fields`. */
function columnValue(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  return CREDENTIAL.test(value) ? REDACTED : value;
}

/** The row for an event: columns taken out of the fields, the rest serialized and redacted. */
export function auditRow(event: string, fields: Record<string, unknown>, at = Date.now()): AuditRow {
  const rest: Record<string, unknown> = { ...fields };
  delete rest.outcome;
  const columns: Partial<Record<(typeof COLUMNS)[number], string>> = {};
  for (const column of COLUMNS) {
    const value = columnValue(fields[column]);
    if (value === undefined) continue;
    columns[column] = value;
    delete rest[column];
  }
  let json = JSON.stringify(rest, auditReplacer);
  if (json.length > MAX_FIELDS_BYTES) json = JSON.stringify({ truncated: true, length: json.length });
  const outcome = String(fields.outcome);
  return {
    at,
    event,
    // The logger's type allows only these; a caller in plain JavaScript could pass anything.
    outcome: (OUTCOMES.has(outcome) ? outcome : 'failure') as AuditOutcome,
    sub: columns.sub,
    client_id: columns.client_id,
    tool: columns.tool,
    audience: columns.audience,
    scope: columns.scope,
    grant_id: columns.grant_id,
    request_id: columns.request_id,
    fields: json,
  };
}

/** The records of one turn, and the promise the requests that made them wait for. */
interface Batch {
  rows: AuditRow[];
  written: Promise<void>;
  settle: () => void;
}

function newBatch(): Batch {
  let settle!: () => void;
  const written = new Promise<void>((resolve) => {
    settle = resolve;
  });
  return { rows: [], written, settle };
}

/**
 * The trail over a store (sqlite-audit-store.ts, postgres-audit-store.ts). Batches are written one
 * after the other, in the order recorded, so ids follow the order of events; a batch that fails is
 * logged (how many records, which events) and the next ones are still written.
 */
export function createAuditTrail(store: AuditStore, options: AuditTrailOptions): AuditTrail {
  const { retentionDays, logger } = options;
  if (!Number.isInteger(retentionDays) || retentionDays < 0) {
    throw new Error('audit retentionDays must be a whole number of days, 0 to keep forever');
  }
  let batch: Batch | undefined;
  let scheduled: NodeJS.Immediate | undefined;
  /** The last write handed to the store; each waits for the one before. Never rejects. */
  let writing: Promise<void> = Promise.resolve();

  async function write(current: Batch): Promise<void> {
    try {
      await store.append(current.rows);
    } catch (error) {
      // Not silent, never thrown: the answers went out, the log says what the trail is missing.
      logger?.error('audit records could not be written; the requests were answered all the same', {
        records: current.rows.length,
        events: [...new Set(current.rows.map((row) => row.event))],
        error: (error as Error).message,
      });
    } finally {
      current.settle();
    }
  }

  /** Hands the pending batch to the write queue; the promise settles once it is written (or logged). */
  function startWrite(): Promise<void> {
    if (scheduled !== undefined) clearImmediate(scheduled);
    scheduled = undefined;
    const current = batch;
    batch = undefined;
    if (current) writing = writing.then(() => write(current));
    return writing;
  }

  async function flush(): Promise<void> {
    // Records made while a write was under way form a new batch: loop until none is left.
    do await startWrite();
    while (batch !== undefined);
  }

  async function search(query: AuditQuery): Promise<AuditPage> {
    // This process's reads see its own writes.
    await flush();
    return store.search(query);
  }

  return {
    retentionDays,
    record(event, fields) {
      let row: AuditRow;
      try {
        row = auditRow(event, fields);
      } catch (error) {
        // A value JSON cannot hold (a cycle, a BigInt): the log line still says what happened.
        logger?.error('audit record could not be made', { event, error: (error as Error).message });
        return;
      }
      batch ??= newBatch();
      batch.rows.push(row);
      answerWaitsFor(batch.written);
      if (batch.rows.length >= MAX_BATCH) void startWrite();
      else scheduled ??= setImmediate(() => void startWrite());
    },
    search,
    async exportLines(query) {
      if (query.limit !== undefined && (!Number.isInteger(query.limit) || query.limit < 1)) {
        throw new AuditQueryError('limit must be a positive integer');
      }
      let remaining = query.limit ?? Number.POSITIVE_INFINITY;
      // The first page now, so a bad query rejects here, before an answer has begun.
      let page = await search({ ...query, limit: Math.min(EXPORT_PAGE, remaining) });
      return (async function* lines() {
        for (;;) {
          for (const record of page.records) yield `${JSON.stringify(record)}\n`;
          remaining -= page.records.length;
          if (!page.nextCursor || remaining <= 0) return;
          page = await search({ ...query, limit: Math.min(EXPORT_PAGE, remaining), cursor: page.nextCursor });
        }
      })();
    },
    async prune(now = new Date()) {
      if (retentionDays === 0) return 0;
      await flush();
      return store.deleteBefore(now.getTime() - retentionDays * 86_400_000);
    },
    flush,
  };
}

/**
 * `logger`, with every audit line also kept in `trail` (as metrics.countAudits counts them). A
 * child's fields (`part: 'mail'`, ...) go into the record as they go into the line.
 */
export function recordAudits(logger: Logger, trail: AuditTrail, base: LogFields = {}): Logger {
  return {
    ...logger,
    audit(event, fields) {
      logger.audit(event, fields);
      trail.record(event, { ...base, ...fields });
    },
    child: (fields) => recordAudits(logger.child(fields), trail, { ...base, ...fields }),
  };
}
