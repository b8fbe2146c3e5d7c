/**
 * The audit trail for administrators (audit/audit-trail.ts): search and JSON-lines export in the
 * admin API (`GET /admin/api/audit`, `GET /admin/api/audit/export`) and the console's Audit tab.
 * Administrators search by a user's email: it is turned into the keyed subject the trail holds
 * (also for users removed since), and records show the email again where the account is known.
 */
import { Readable } from 'node:stream';
import type { Context } from 'koa';
import { type AuditQuery, AuditQueryError, type AuditRecord, type AuditTrail } from '../audit/audit-trail.ts';
import type { Accounts } from '../login/accounts.ts';
import { normalizeEmail, subjectFor } from '../login/approved-users.ts';
import type { AdminApiExtension } from './admin-api.ts';
import { invalid } from './admin-error.ts';
import type { ConsoleExtension } from './console-routes.ts';
import { auditPage } from './views/audit-page.ts';

export interface AuditAdminDependencies {
  trail: AuditTrail;
  accounts: Accounts;
  subjectKey: string;
  /** API names → audiences, so `api=Stocks API` works as well as the audience itself. */
  apis: ReadonlyArray<{ name: string; audience: string }>;
}

/** The query parameters an administrator may give, by name. */
export const AUDIT_FILTERS = [
  'user',
  'client',
  'tool',
  'api',
  'event',
  'outcome',
  'request_id',
  'grant_id',
  'since',
  'until',
  'limit',
  'cursor',
] as const;

/** ISO 8601 date-time (or date) or seconds since the epoch → seconds; undefined when absent. */
function timeOf(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const seconds = /^\d{1,12}$/.test(value) ? Number(value) : Math.floor(Date.parse(value) / 1000);
  if (!Number.isFinite(seconds))
    throw invalid(field, 'must be an ISO 8601 date-time or seconds since the epoch');
  return seconds;
}

export function auditAdmin(deps: AuditAdminDependencies) {
  function queryOf(get: (name: string) => string | undefined): AuditQuery {
    const text = (name: string) => {
      const value = get(name)?.trim();
      if (value !== undefined && value.length > 2000) throw invalid(name, 'is too long');
      return value || undefined;
    };
    const query: AuditQuery = {};
    const user = text('user');
    if (user !== undefined) {
      const email = normalizeEmail(user);
      // A subject may be given as it is (a workload's is its client id).
      query.sub = email ? subjectFor(email, deps.subjectKey) : user;
    }
    const client = text('client');
    if (client) query.clientId = client;
    const tool = text('tool');
    if (tool) query.tool = tool;
    const api = text('api');
    if (api)
      query.api = deps.apis.find((entry) => entry.name.toLowerCase() === api.toLowerCase())?.audience ?? api;
    const event = text('event');
    if (event) query.event = event;
    const outcome = text('outcome');
    if (outcome !== undefined) {
      if (outcome !== 'success' && outcome !== 'failure' && outcome !== 'denied')
        throw invalid('outcome', 'must be success, failure or denied');
      query.outcome = outcome;
    }
    const requestId = text('request_id');
    if (requestId) query.requestId = requestId;
    const grantId = text('grant_id');
    if (grantId) query.grantId = grantId;
    const since = timeOf(text('since'), 'since');
    if (since !== undefined) query.since = since;
    const until = timeOf(text('until'), 'until');
    if (until !== undefined) query.until = until;
    const limit = text('limit');
    if (limit !== undefined) {
      if (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > 1000)
        throw invalid('limit', 'must be a number from 1 to 1000');
      query.limit = Number(limit);
    }
    const cursor = text('cursor');
    if (cursor) query.cursor = cursor;
    return query;
  }

  /** The records with their users' addresses, read in one lookup for the whole page. */
  const withEmails = async (records: AuditRecord[]) => {
    const emails = await deps.accounts.emailsOf(
      records.flatMap((record) => (record.sub ? [record.sub] : [])),
    );
    return records.map((record) => {
      const email = record.sub ? emails.get(record.sub) : undefined;
      return email ? { ...record, email } : record;
    });
  };

  async function search(get: (name: string) => string | undefined) {
    try {
      const { records, nextCursor } = await deps.trail.search(queryOf(get));
      return { records: await withEmails(records), ...(nextCursor ? { next_cursor: nextCursor } : {}) };
    } catch (error) {
      if (error instanceof AuditQueryError) throw invalid('query', error.message);
      throw error;
    }
  }

  /** The export as a stream of JSON lines; a bad query fails before the first line. */
  async function exportTo(ctx: Context, get: (name: string) => string | undefined) {
    let lines: AsyncIterable<string>;
    try {
      lines = await deps.trail.exportLines(queryOf(get));
    } catch (error) {
      if (error instanceof AuditQueryError) throw invalid('query', error.message);
      throw error;
    }
    ctx.status = 200;
    ctx.type = 'application/x-ndjson';
    ctx.set('cache-control', 'no-store');
    ctx.set(
      'content-disposition',
      `attachment; filename="gatehouse-audit-${new Date().toISOString().slice(0, 10)}.jsonl"`,
    );
    ctx.body = Readable.from(lines);
  }

  const queryParam = (ctx: Context) => (name: string) => {
    const value = ctx.query[name];
    if (Array.isArray(value)) throw invalid(name, 'may be given once');
    return value;
  };

  const api: AdminApiExtension[] = [
    {
      method: 'GET',
      path: /^\/audit$/,
      scope: 'admin.read',
      handle: async (ctx) => search(queryParam(ctx)),
    },
    {
      method: 'GET',
      path: /^\/audit\/export$/,
      scope: 'admin.read',
      handle: async (ctx) => exportTo(ctx, queryParam(ctx)),
    },
  ];

  const console: ConsoleExtension = {
    tab: 'audit',
    page: async (frame, ctx) => {
      const get = queryParam(ctx);
      const filters = Object.fromEntries(
        AUDIT_FILTERS.filter((name) => name !== 'cursor' && name !== 'limit').map((name) => [
          name,
          get(name) ?? '',
        ]),
      );
      try {
        const result = await search((name) => (name === 'limit' ? '50' : get(name)));
        return auditPage(frame, filters, result.records, result.next_cursor);
      } catch (error) {
        if (!(error instanceof Error) || !('field' in error)) throw error;
        return auditPage(
          frame,
          filters,
          [],
          undefined,
          `Not done: ${error.message} (${String(error.field)}).`,
        );
      }
    },
    download: (ctx) => exportTo(ctx, queryParam(ctx)),
  };

  return { api, console };
}
