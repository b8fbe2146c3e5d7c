/**
 * `POST /events/tool-calls`: the MCP server reports every tool call it served (its
 * tool-call-reporter.ts), and each becomes a `tool.call` record of the audit trail, joined to the
 * grant the agent's token rests on, so a search by grant finds every call, cached exchange or not.
 *
 * Only clients of role `mcp-server` may report (HTTP Basic, their own credentials). What they send
 * is validated field by field and kept within bounds: a report is data, never trusted as more than
 * what the MCP server says it saw (the record names it as `actor`).
 */
import type { Context, Middleware } from 'koa';
import type { Logger } from '../../shared/logging.ts';
import { internalCaller } from '../http/internal-client-auth.ts';
import { readBoundedJson } from '../http/json-body.ts';

export const TOOL_CALLS_PATH = '/events/tool-calls';
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_RECORDS = 1000;
const OUTCOMES = new Set(['success', 'failure', 'denied']);
/** Identifiers and names as the components make them: printable, short. */
const TEXT = /^[\x21-\x7e][\x20-\x7e]{0,199}$/;
const TEXT_FIELDS = [
  'request_id',
  'sub',
  'client_id',
  'tool',
  'api',
  'audience',
  'grant_id',
  'reason',
  'approval_id',
] as const;

/** The fields of one reported call, or undefined when any is not what the MCP server sends. */
function checkedRecord(input: unknown): Record<string, string | number> | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
  const record = input as Record<string, unknown>;
  if (typeof record.outcome !== 'string' || !OUTCOMES.has(record.outcome)) return undefined;
  if (typeof record.tool !== 'string') return undefined;
  const out: Record<string, string | number> = { outcome: record.outcome };
  for (const field of TEXT_FIELDS) {
    const value = record[field];
    if (value === undefined) continue;
    if (typeof value !== 'string' || !TEXT.test(value)) return undefined;
    out[field] = value;
  }
  for (const field of ['upstream_status', 'duration_ms', 'at'] as const) {
    const value = record[field];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 1e13) return undefined;
    out[field] = value;
  }
  return out;
}

export function toolCallIntake(options: {
  /** The MCP servers' clients: client id → secret. */
  mcpServers: ReadonlyMap<string, string>;
  /**
   * Where a reported call goes: the audit trail itself, not a log line of this server as well (the
   * MCP server's own `mcp.tool_call` line is the log of it; a second line here for every call
   * would double this server's logging under load for nothing).
   */
  record: (event: string, fields: Record<string, unknown>) => void;
  logger: Logger;
}): Middleware {
  const { logger } = options;
  const answer = (ctx: Context, status: number, body: Record<string, unknown>) => {
    ctx.status = status;
    ctx.set('cache-control', 'no-store');
    ctx.body = body;
  };
  return async (ctx, next) => {
    if (ctx.path !== TOOL_CALLS_PATH) return next();
    if (ctx.method !== 'POST') {
      ctx.set('allow', 'POST');
      return answer(ctx, 405, { error: 'invalid_request', error_description: 'POST tool-call reports here' });
    }
    const { clientId, named } = internalCaller(ctx.get('authorization'), options.mcpServers);
    if (!clientId) {
      logger.audit('tool.call.report', { outcome: 'denied', client_id: named, ip: ctx.ip });
      ctx.set('www-authenticate', 'Basic realm="tool-call reports"');
      return answer(ctx, 401, {
        error: 'invalid_client',
        error_description: 'only the MCP server reports tool calls',
      });
    }
    if (!ctx.is('application/json'))
      return answer(ctx, 415, {
        error: 'invalid_request',
        error_description: 'send {"records": [...]} as JSON',
      });
    const body = (await readBoundedJson(ctx, MAX_BODY_BYTES)) as { records?: unknown } | undefined;
    const records = body?.records;
    if (!Array.isArray(records) || records.length > MAX_RECORDS)
      return answer(ctx, 400, {
        error: 'invalid_request',
        error_description: `expected {"records": [...]} with at most ${MAX_RECORDS} records`,
      });
    let kept = 0;
    for (const input of records) {
      const record = checkedRecord(input);
      if (!record) continue;
      const { outcome, at, ...fields } = record;
      options.record('tool.call', {
        outcome: outcome as 'success' | 'failure' | 'denied',
        ...fields,
        ...(at !== undefined ? { called_at: new Date(at).toISOString() } : {}),
        actor: clientId,
      });
      kept++;
    }
    answer(ctx, 200, { recorded: kept, refused: records.length - kept });
  };
}
